"""The epoch loop every net shares (gender nets, CGANet, and the identity net next): one shuffled training pass, an
epoch timed and scored, and the loop that keeps the best epoch's weights."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from models.training import EpochRecord, SelectBy, TrainingHistory, is_better

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

BatchStep = Callable[["Tensor"], tuple["Tensor", int]]


@dataclass(frozen=True)
class Validation:
    """An epoch's validation loss and accuracy (both None without validation data)."""

    loss: float | None
    accuracy: float | None


def training_pass(
    model: nn.Module,
    n_items: int,
    batch_size: int,
    step: BatchStep,
    optimiser: torch.optim.Optimizer,
    generator: torch.Generator,
    bf16: bool = False,
) -> tuple[float, float]:
    """One shuffled pass over n_items in batches: `step(index)` gives a batch's loss and number correct; mean loss and
    accuracy (a last batch of one item is skipped: BatchNorm)."""
    import torch

    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    for index in torch.randperm(n_items, generator=generator).split(batch_size):
        if len(index) < 2:
            continue
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, n_correct = step(index)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        total_loss += float(loss.detach()) * len(index)
        correct += n_correct
        seen += len(index)
    return total_loss / max(seen, 1), correct / max(seen, 1)


def timed_epoch(
    epoch: int,
    optimiser: torch.optim.Optimizer,
    train: Callable[[], tuple[float, float]],
    validate: Callable[[], Validation],
) -> EpochRecord:
    """Train one epoch and score it on the validation data, with the learning rate it started at and its seconds."""
    started, lr = time.perf_counter(), float(optimiser.param_groups[0]["lr"])
    loss, accuracy = train()
    scores = validate()
    return EpochRecord(epoch, lr, loss, accuracy, scores.loss, scores.accuracy, time.perf_counter() - started)


def run_epochs(
    model: nn.Module,
    epochs: int,
    one_epoch: Callable[[int], EpochRecord],
    select_by: SelectBy,
    history: TrainingHistory,
    progress: Callable[[EpochRecord], None] | None = None,
    patience: int | None = None,
) -> dict[str, Tensor]:
    """Run up to `epochs` epochs, recording each in `history`; the state dict of the best epoch (the toolkit's
    best-epoch rule), stopping early once `patience` epochs pass without a better one."""
    best: EpochRecord | None = None
    best_state: dict[str, Tensor] = {}
    for epoch in range(1, epochs + 1):
        record = one_epoch(epoch)
        history.epochs.append(record)
        if is_better(record, best, select_by):
            best, best_state = record, copy.deepcopy(model.state_dict())
        if progress is not None:
            progress(record)
        if patience is not None and epoch - best.epoch >= patience:
            history.stopped_early = epoch < epochs
            break
    history.best_epoch = best.epoch if best is not None else 0
    return best_state
