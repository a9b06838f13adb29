"""Training and evaluation of CGANet for mating success (seed 002), its SVM and FLDA baselines, and the encounter
roll-up (pure).

Inputs are MFCC arrays x (N, 2, 86, 40) float32 and labels y (N,) with 1 = success, 0 = failure, one row per 2 s
window. Evaluation splits never put a group in both train and test (DESIGN section 5): by default the group is
the pair "male_id|female_id", so a pair's calls are never used to predict that same pair.

Seed 002 gives lr 0.01, "decrease it by 10 times if the accuracy on validation set remains unchanged for 125
epochs", dropout 0.3, batch 32, 500 epochs, cross-entropy loss, and keeps the model of highest validation
accuracy. It names no optimiser: Adam is the default here (the plateau-and-checkpoint recipe is Keras' of its
time; SGD with momentum at lr 0.01 still called every window a success after 15 epochs on the 40-animal sample).
It does not say where its validation set comes from; here it is a grouped part of each training fold
(validation_fraction), never the test fold, so model selection does not see the test pairs.

Not in the seed, and why:
- inputs are standardised per MFCC coefficient with the training fold's mean and standard deviation, pooled over
  both channels and all frames so the level difference between the channels is kept (coefficient 0 is in the
  hundreds, the others tens; 73.7% vs 78.8% accuracy after 15 epochs without/with). The statistics are buffers of
  StandardisedCGANet, so they travel in the state dict and inference applies the same scaling;
- the loss weights classes to balance them (class_weight; the seed's data was balanced, a station's may not be);
- a temperature fitted on the validation windows (history.temperature, see fit_temperature) calibrates the
  probabilities, which stay near 0.5 after a short training.

Encounter roll-up (seed Eq. 4 extended over segments): P_s and P_f are the success and failure frame
probabilities summed over every frame of every segment of the encounter; p_success = P_s / (P_s + P_f).
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import torch
from scipy.special import expit, logit
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.metrics import confusion_matrix
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from torch import Tensor, nn

from models import training
from models.cganet import N_COEFFS, CGANet, CGANetOutput, build_cganet, predicted_success, segment_nll
from models.epochs import Validation, run_epochs, timed_epoch, training_pass
from models.execution import Layout, Precision
from models.precision import inference, memory_format
from models.quantize import CHECK_ITEMS, spread
from models.statistics import rates_from_confusion
from models.training import EpochRecord, TrainingHistory, binary_metrics, calibration_report
from schemas.config import MatingTrainConfig

GroupBy = Literal["pair", "encounter", "none"]
Optimiser = Literal["adam", "sgd"]
TrainPrecision = Literal["fp32", "bf16"]
ClassWeight = Literal["none", "balanced"]
BaselineFeatures = Literal["flat", "summary"]
Call = Literal["success", "failure", "unknown"]
METRICS = ("accuracy", "f1", "recall", "precision", "roc_auc")
EVAL_BATCH = 64
MIN_STD = 1e-3  # floor for a coefficient's standard deviation (a constant coefficient is centred, not blown up)


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class MatingTrainSettings:
    """CGANet recipe; defaults are seed 002's (lr 0.01 divided by 10 after 125 epochs without a better validation
    accuracy, 500 epochs, batch 32, dropout 0.3, 5 folds) with grouping by pair.

    Not in the seed: optimiser "adam" (unnamed there; "sgd" uses momentum), weight_decay 0, validation_fraction
    (the grouped share of a training fold used for model selection), standardise (see the module docstring),
    max_epochs_without_improvement (early stop; None runs every epoch, as the seed), filters/hidden (the seed's
    128/32; narrower nets train several times faster on CPU), precision ("bf16" autocasts on CPU) and
    class_weight ("balanced" weights each window's loss by N / (2 * windows of its class); the seed's data was
    nearly balanced, 2,016 to 1,859, a station's need not be).
    """

    lr: float = 0.01
    lr_factor: float = 0.1
    plateau_patience: int = 125
    epochs: int = 500
    batch_size: int = 32
    dropout: float = 0.3
    optimiser: Optimiser = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    folds: int = 5
    group_by: GroupBy = "pair"
    validation_fraction: float = 0.2
    max_epochs_without_improvement: int | None = None
    standardise: bool = True
    filters: int = 128
    hidden: int = 32
    precision: TrainPrecision = "fp32"
    class_weight: ClassWeight = "balanced"


# ---------------------------------------------------------------- grouped folds


@dataclass(frozen=True)
class FoldPlan:
    """Cross-validation folds as (train indices, test indices); iterates, indexes and sizes like a list of them.

    k_requested is what was asked, k what was used (fewer when there are fewer groups than folds), method the
    sklearn splitter, and note a sentence for people whenever k was reduced or a test fold lacks a class.
    """

    splits: tuple[tuple[np.ndarray, np.ndarray], ...]
    k_requested: int
    k: int
    method: str
    n_groups: int
    note: str = ""

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The (train, test) index pairs in fold order."""
        return iter(self.splits)

    def __len__(self) -> int:
        """Number of folds."""
        return len(self.splits)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """One (train, test) index pair."""
        return self.splits[index]


def fold_groups(group_by: GroupBy, pair_ids: Sequence[str], encounter_ids: Sequence[str]) -> list[str]:
    """The group of each window: its pair id ("male|female"), its encounter id, or its own index for "none" (the
    seed's split by segment: windows of one encounter land in train and test, so its figures are optimistic)."""
    if len(pair_ids) != len(encounter_ids):
        raise ValueError(f"{len(pair_ids)} pair ids but {len(encounter_ids)} encounter ids")
    if group_by == "pair":
        return [str(p) for p in pair_ids]
    if group_by == "encounter":
        return [str(e) for e in encounter_ids]
    if group_by == "none":
        return [f"#{i}" for i in range(len(pair_ids))]
    raise ValueError(f"group_by must be 'pair', 'encounter' or 'none', got {group_by!r}")


def raw_splits(
    groups: np.ndarray, labels: np.ndarray, k: int, seed: int, stratify: bool
) -> list[tuple[np.ndarray, np.ndarray]]:
    """sklearn StratifiedGroupKFold (shuffled with the seed) or GroupKFold splits, its class-count warning silenced."""
    splitter = StratifiedGroupKFold(k, shuffle=True, random_state=seed) if stratify else GroupKFold(k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class ... less than n_splits": in the note
        return [(np.sort(tr), np.sort(te)) for tr, te in splitter.split(np.zeros(len(labels)), labels, groups)]


def grouped_folds(groups: Sequence[str], labels: Sequence[int], k: int, seed: int) -> FoldPlan:
    """k folds that never share a group between train and test, stratified by label where possible.

    StratifiedGroupKFold is used when both labels occur; GroupKFold when only one does, or when stratification
    leaves a test fold empty. With fewer distinct groups than k, k drops to the number of groups (leave one group
    out) and the plan's note says so; fewer than 2 groups is a ValueError.
    """
    g, y = np.asarray(groups, dtype=str), np.asarray(labels, dtype=np.int64)
    if len(g) != len(y):
        raise ValueError(f"{len(g)} groups but {len(y)} labels")
    n_groups = len(set(g.tolist()))
    if n_groups < 2 or k < 2:
        raise ValueError(f"cross-validation needs k >= 2 and at least 2 groups, got k={k} and {n_groups} groups")
    notes, used = [], min(k, n_groups)
    if used < k:
        notes.append(f"only {n_groups} groups, so {used} folds were used instead of {k}")
    stratify = len(set(y.tolist())) == 2
    if not stratify:
        notes.append("every window carries the same label, so the folds are grouped but not stratified")
    try:
        splits = raw_splits(g, y, used, seed, stratify)
    except ValueError:  # StratifiedGroupKFold refuses k above the window count of every label
        stratify, splits = False, raw_splits(g, y, used, seed, False)
        notes.append(f"too few windows of each label to stratify {used} folds, so GroupKFold was used")
    if stratify and any(len(te) == 0 for _, te in splits):
        stratify, splits = False, raw_splits(g, y, used, seed, False)
        notes.append("stratification left a test fold empty, so GroupKFold was used")
    lacking = sum(len(set(y[te].tolist())) < 2 for _, te in splits)
    if lacking and stratify:
        notes.append(f"{lacking} of {used} test folds hold one label only (too few groups of the other)")
    untrainable = sum(len(set(y[tr].tolist())) < 2 for tr, _ in splits)
    if untrainable and stratify:
        notes.append(
            f"{untrainable} of {used} training parts hold one label only (its only groups are tested), "
            "so no classifier can be fit on them"
        )
    return FoldPlan(
        tuple(splits), k, used, "StratifiedGroupKFold" if stratify else "GroupKFold", n_groups, "; ".join(notes)
    )


def check_windows(x: np.ndarray, held_out: np.ndarray, rest: np.ndarray, n: int = 2 * CHECK_ITEMS) -> Tensor | None:
    """Up to n of the held-out windows (raw MFCC, N x 2 x 86 x 40 float32), else of the rest when none is held out,
    spread evenly over them, which a version stores for its int8 agreement check; None when there is none."""
    rows = held_out if len(held_out) else rest
    if len(rows) == 0:
        return None
    return torch.from_numpy(np.ascontiguousarray(x[rows[spread(len(rows), n)]], dtype=np.float32))


def validation_split(
    groups: Sequence[str], labels: Sequence[int], fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(fit indices, validation indices): about `fraction` of the groups held out, grouped and stratified (the
    first inner fold whose fit and validation parts both hold every label); no validation (all indices fit) when
    fraction is 0, there are fewer than 2 groups, or no hold-out has both labels while leaving both to fit: a
    one-label validation part would pick the epoch that calls everything that label, and fit no temperature."""
    everything, y = np.arange(len(labels)), np.asarray(labels, np.int64)
    if fraction <= 0 or len(set(groups)) < 2:
        return everything, everything[:0]
    wanted = set(y.tolist())
    for fit, val in grouped_folds(groups, labels, max(2, round(1.0 / fraction)), seed):
        if set(y[fit].tolist()) == wanted and set(y[val].tolist()) == wanted:
            return fit, val
    return everything, everything[:0]


# ---------------------------------------------------------------- the model as trained


def input_statistics(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-coefficient mean and standard deviation (40,) over windows, both channels and frames (float32)."""
    values = np.asarray(x, dtype=np.float64).reshape(-1, x.shape[-1])
    return values.mean(axis=0).astype(np.float32), np.maximum(values.std(axis=0), MIN_STD).astype(np.float32)


class StandardisedCGANet(nn.Module):
    """CGANet behind a fixed per-coefficient standardisation; its state dict holds net.* weights, input_mean,
    input_std."""

    def __init__(self, net: CGANet, mean: np.ndarray | Tensor, std: np.ndarray | Tensor) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("input_mean", torch.as_tensor(mean, dtype=torch.float32).reshape(N_COEFFS).clone())
        self.register_buffer("input_std", torch.as_tensor(std, dtype=torch.float32).reshape(N_COEFFS).clone())

    def forward(self, mfcc: Tensor) -> CGANetOutput:
        """CGANet's output on raw MFCCs (B, 2, 86, 40)."""
        return self.net((mfcc - self.input_mean) / self.input_std)

    def int8_parts(self) -> tuple[str, ...]:
        """The submodules quantized for int8: the three convolution blocks (GRUs, attention and classifier stay
        float)."""
        return ("net.conv",)


def predict_segments(
    model: StandardisedCGANet,
    mfcc: Tensor,
    device: torch.device,
    precision: Precision,
    layout: Layout = "channels_last",
) -> CGANetOutput:
    """Eval-mode forward pass of raw MFCCs (B, 2, 86, 40) on a device: convolutions in the layout's memory format,
    autocast per precision, every output float32 on the CPU."""
    model.eval()
    if precision != "int8":  # an int8 net's quantized convolutions stay as packed
        model.to(device=device, memory_format=memory_format(layout))
    batch = mfcc.to(device=device, dtype=torch.float32, non_blocking=True).contiguous(
        memory_format=memory_format(layout)
    )
    with inference(device, precision):
        output = model(batch)
    return CGANetOutput(*(part.float().cpu() for part in output))


def build_mating_model(
    settings: MatingTrainSettings, seed: int, mean: np.ndarray | None = None, std: np.ndarray | None = None
) -> StandardisedCGANet:
    """A fresh StandardisedCGANet of the settings' sizes (weights from `seed`); identity scaling without statistics."""
    net = build_cganet(seed, filters=settings.filters, hidden=settings.hidden, dropout=settings.dropout)
    mean = np.zeros(N_COEFFS, np.float32) if mean is None else mean
    std = np.ones(N_COEFFS, np.float32) if std is None else std
    return StandardisedCGANet(net, mean, std)


def mating_model_from_state(state: Mapping[str, Tensor]) -> StandardisedCGANet:
    """Rebuild the eval-mode model from a state dict of train_cganet (sizes read from the weight shapes)."""
    filters = int(state["net.conv.0.0.weight"].shape[0])
    hidden = int(state["net.classifier.weight"].shape[1])
    model = StandardisedCGANet(build_cganet(0, filters=filters, hidden=hidden), np.zeros(N_COEFFS), np.ones(N_COEFFS))
    model.load_state_dict(dict(state))
    return model.eval()


def predict_frame_probs(model: nn.Module, x: np.ndarray, batch_size: int = EVAL_BATCH) -> np.ndarray:
    """Eval-mode frame probabilities (N, 86, 2) float32 of raw MFCC windows, computed in chunks."""
    model.eval()
    inputs = torch.as_tensor(np.asarray(x, dtype=np.float32))
    with torch.inference_mode():
        parts = [model(chunk).frame_probs.float() for chunk in inputs.split(batch_size)]
    return torch.cat(parts).numpy() if parts else np.zeros((0, 86, 2), np.float32)


# ---------------------------------------------------------------- training


def check_training_data(x: np.ndarray, y: np.ndarray, settings: MatingTrainSettings) -> None:
    """ValueError unless x is (N, 2, 86, 40), y holds 0/1 for each window with both classes, and epochs >= 1."""
    if settings.epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {settings.epochs}")
    if x.ndim != 4 or tuple(x.shape[1:]) != (2, 86, N_COEFFS):
        raise ValueError(f"expected MFCC windows shaped (N, 2, 86, 40), got {tuple(x.shape)}")
    if len(x) != len(y):
        raise ValueError(f"{len(x)} windows but {len(y)} labels")
    if set(np.unique(y).tolist()) != {0, 1}:
        raise ValueError(
            f"training needs labels 0 (failure) and 1 (success), both present; got {sorted(set(y.tolist()))}"
        )


def make_optimiser(model: nn.Module, settings: MatingTrainSettings) -> torch.optim.Optimizer:
    """Adam, or SGD with momentum, at the settings' learning rate and weight decay."""
    if settings.optimiser == "adam":
        return torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    if settings.optimiser == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay
        )
    raise ValueError(f"optimiser must be 'adam' or 'sgd', got {settings.optimiser!r}")


def make_plateau(
    optimiser: torch.optim.Optimizer, settings: MatingTrainSettings
) -> torch.optim.lr_scheduler.ReduceLROnPlateau:
    """The seed's schedule: lr times lr_factor on the plateau_patience-th epoch in a row without a higher validation
    accuracy (Keras' count; torch's patience counts one more, hence the - 1)."""
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimiser,
        mode="max",
        factor=settings.lr_factor,
        patience=max(settings.plateau_patience - 1, 0),
        threshold=0.0,
        threshold_mode="abs",
    )


def class_weights(y: np.ndarray, mode: ClassWeight) -> Tensor:
    """Loss weight of failure (0) and success (1) windows: ones, or N / (2 * count) for "balanced"."""
    if mode == "none":
        return torch.ones(2)
    counts = np.bincount(y, minlength=2).astype(np.float64)
    return torch.as_tensor(len(y) / (2.0 * np.maximum(counts, 1.0)), dtype=torch.float32)


def weighted_nll(output: CGANetOutput, success: Tensor, weights: Tensor) -> Tensor:
    """segment_nll with each window's term weighted by its class weight (equal weights give segment_nll); frame
    probabilities are summed in float32, also under bf16 autocast (a bf16 sum of 86 values is coarse)."""
    p_success = output.frame_probs.float().mean(dim=1)[:, 0]
    p_label = torch.where(success.bool(), p_success, 1.0 - p_success)
    w = weights[success]
    return -(w * torch.log(p_label.clamp_min(1e-12))).sum() / w.sum()


def weighted_step(
    model: nn.Module, x: Tensor, y: Tensor, settings: MatingTrainSettings
) -> Callable[[Tensor], tuple[Tensor, int]]:
    """A training batch step: the class-weighted NLL of the indexed windows and the number called right."""
    weights = class_weights(y.numpy(), settings.class_weight)

    def step(index: Tensor) -> tuple[Tensor, int]:
        """Loss and number correct of one batch of windows."""
        output = model(x[index])
        return weighted_nll(output, y[index], weights), int((predicted_success(output).long() == y[index]).sum())

    return step


def validation_scores(model: nn.Module, x: Tensor, y: Tensor) -> Validation:
    """Eval-mode validation loss and accuracy (None without validation windows)."""
    if len(y) == 0:
        return Validation(None, None)
    model.eval()
    with torch.inference_mode():
        outputs = [model(chunk) for chunk in x.split(EVAL_BATCH)]
    frame_probs = torch.cat([o.frame_probs.float() for o in outputs])
    scores = frame_probs.sum(dim=1)
    output = CGANetOutput(frame_probs, scores, scores[:, 0] / frame_probs.shape[1], torch.empty(0), torch.empty(0))
    return Validation(float(segment_nll(output, y)), float((predicted_success(output).long() == y).float().mean()))


def train_cganet(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    settings: MatingTrainSettings,
    seed: int,
    progress: Callable[[EpochRecord], None] | None = None,
) -> tuple[dict[str, Tensor], TrainingHistory]:
    """Train with the seed's recipe, deterministic on CPU for a seed (global RNG untouched); the best-validation
    epoch's state dict of StandardisedCGANet (input statistics from x_train) and the history. Without validation
    windows the last epoch is kept and the plateau watches training accuracy. history.temperature calibrates the
    kept model's probabilities (see calibrate)."""
    y_train, y_val = np.asarray(y_train, np.int64), np.asarray(y_val, np.int64)
    check_training_data(np.asarray(x_train), y_train, settings)
    mean, std = input_statistics(x_train) if settings.standardise else (None, None)
    data = (
        torch.as_tensor(np.asarray(x_train, np.float32)),
        torch.as_tensor(y_train),
        torch.as_tensor(np.asarray(x_val, np.float32)).reshape(-1, 2, 86, N_COEFFS),
        torch.as_tensor(y_val),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_mating_model(settings, seed, mean, std)
        optimiser = make_optimiser(model, settings)
        plateau, generator = make_plateau(optimiser, settings), torch.Generator().manual_seed(seed)
        step = weighted_step(model, data[0], data[1], settings)
        history = TrainingHistory()

        def one_epoch(epoch: int) -> EpochRecord:
            """Train one epoch, score it on the validation windows and let the plateau schedule see it."""
            record = timed_epoch(
                epoch,
                optimiser,
                lambda: training_pass(
                    model, len(data[0]), settings.batch_size, step, optimiser, generator, settings.precision == "bf16"
                ),
                lambda: validation_scores(model, data[2], data[3]),
            )
            plateau.step(record.val_accuracy if record.val_accuracy is not None else record.train_accuracy)
            return record

        best_state = run_epochs(
            model,
            settings.epochs,
            one_epoch,
            "val_accuracy",
            history,
            progress,
            settings.max_epochs_without_improvement,
        )
    history.temperature = validation_temperature(model, best_state, data[2], data[3])
    return best_state, history


def validation_temperature(model: nn.Module, state: Mapping[str, Tensor], x_val: Tensor, y_val: Tensor) -> float:
    """fit_temperature on the validation windows' p_success under `state` (loaded into `model`); 1.0 without them."""
    if len(y_val) == 0:
        return 1.0
    model.load_state_dict(state)
    p_success = predict_frame_probs(model, x_val.numpy()).mean(axis=1)[:, 0]
    return fit_temperature(p_success, y_val.numpy())


# ---------------------------------------------------------------- metrics


def summarise_folds(per_fold: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean and sample standard deviation (ddof 1) over folds of each metric, skipping folds where it is None."""
    mean, std, counted = {}, {}, {}
    for name in METRICS:
        values = [f[name] for f in per_fold if f.get(name) is not None]
        counted[name] = len(values)
        mean[name] = float(np.mean(values)) if values else None
        std[name] = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return {"per_fold": [dict(f) for f in per_fold], "mean": mean, "std": std, "n_folds": counted}


def level_report(
    per_fold: Sequence[Mapping[str, Any]], p_oof: np.ndarray, y: np.ndarray, predicted: np.ndarray | None = None
) -> dict[str, Any]:
    """Per-fold metrics with their mean and std, plus "pooled": the metrics of every out-of-fold prediction at once."""
    return {**summarise_folds(per_fold), "pooled": binary_metrics(p_oof, y, predicted)}


# ---------------------------------------------------------------- calibration


def fit_temperature(p_success: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray) -> float:
    """The T in [0.01, 100] minimising the NLL of calibrate(p, T) on held-out windows (the toolkit's fit on
    logit(p)); 1.0 unless both labels occur.

    The seed's attention weights sum to 1 over 86 frames, so F_attn is about F_GRU / 86 and the per-frame logits stay
    small until the classifier's weights have grown: after tens of epochs (not the seed's 500) p_success hugs 0.5
    (encounters at 0.43-0.55 measured) although it ranks well. T < 1 spreads it out; T > 1 tempers overconfidence.
    """
    return training.fit_temperature(logit(np.clip(np.asarray(p_success, np.float64), 1e-6, 1 - 1e-6)), labels)


def calibrate(p: float | np.ndarray, temperature: float) -> float | np.ndarray:
    """sigmoid(logit(p) / T) for a window's or an encounter's p_success; 0.5 stays 0.5, so the seed's calls do not
    change, only how many leave the abstain band (an encounter uses the windows' T: too few encounters to fit one)."""
    q = expit(logit(np.clip(np.asarray(p, np.float64), 1e-12, 1 - 1e-12)) / temperature)
    return float(q) if np.ndim(q) == 0 else q


# ---------------------------------------------------------------- encounter roll-up


def encounter_probability(frame_probs_list: Sequence[np.ndarray]) -> float:
    """P_s / (P_s + P_f) with P_s, P_f the success and failure probabilities summed over every frame of every
    (86, 2) segment of an encounter (seed Eq. 4 summed over segments too); ValueError without segments."""
    if len(frame_probs_list) == 0:
        raise ValueError("an encounter without segments has no success probability")
    totals = np.zeros(2, np.float64)
    for frame_probs in frame_probs_list:
        probs = np.asarray(frame_probs, np.float64)
        if probs.ndim != 2 or probs.shape[1] != 2:
            raise ValueError(f"expected frame probabilities shaped (frames, 2), got {probs.shape}")
        totals += probs.sum(axis=0)
    if totals.sum() <= 0:
        raise ValueError("frame probabilities sum to zero")
    return float(totals[0] / totals.sum())


def encounter_call(p: float | None, abstain_low: float = 0.4, abstain_high: float = 0.6) -> Call:
    """ "success" when p > abstain_high, "failure" when p <= abstain_low, "unknown" between (or p None/NaN).
    abstain_low == abstain_high == 0.5 is the seed's rule: success iff P_s > P_f."""
    if not 0.0 <= abstain_low <= abstain_high <= 1.0:
        raise ValueError(f"need 0 <= abstain_low <= abstain_high <= 1, got {abstain_low} and {abstain_high}")
    if p is None or math.isnan(p):
        return "unknown"
    if p > abstain_high:
        return "success"
    if p <= abstain_low:
        return "failure"
    return "unknown"


@dataclass(frozen=True)
class EncounterRollup:
    """One encounter's roll-up: number of windows, P_s / (P_s + P_f) and the call with the abstain band."""

    encounter_id: str
    n_segments: int
    p_success: float
    predicted: Call


def rollup_encounters(
    encounter_ids: Sequence[str], frame_probs: np.ndarray, abstain_low: float = 0.4, abstain_high: float = 0.6
) -> list[EncounterRollup]:
    """Roll windows (N, 86, 2) up per encounter id (sorted by id) with encounter_probability and encounter_call."""
    if len(encounter_ids) != len(frame_probs):
        raise ValueError(f"{len(encounter_ids)} encounter ids but {len(frame_probs)} windows")
    members: dict[str, list[int]] = {}
    for i, encounter_id in enumerate(encounter_ids):
        members.setdefault(str(encounter_id), []).append(i)
    rows = []
    for encounter_id in sorted(members):
        p = encounter_probability([frame_probs[i] for i in members[encounter_id]])
        rows.append(
            EncounterRollup(encounter_id, len(members[encounter_id]), p, encounter_call(p, abstain_low, abstain_high))
        )
    return rows


def encounter_labels(encounter_ids: Sequence[str], labels: Sequence[int]) -> dict[str, int]:
    """Each encounter's label; ValueError when one encounter's windows carry both labels."""
    found: dict[str, set[int]] = {}
    for encounter_id, label in zip(encounter_ids, labels):
        found.setdefault(str(encounter_id), set()).add(int(label))
    mixed = sorted(e for e, seen in found.items() if len(seen) > 1)
    if mixed:
        raise ValueError(f"encounters with windows of both outcomes: {', '.join(mixed[:5])}")
    return {e: next(iter(seen)) for e, seen in found.items()}


def encounter_metrics(
    encounter_ids: Sequence[str],
    frame_probs: np.ndarray,
    labels: Sequence[int],
    temperature: float | Sequence[float] = 1.0,
) -> dict[str, Any]:
    """binary_metrics of the rolled-up encounters (the toolkit's rule p >= 0.5), with the number the 0.4-0.6 band leaves
    unknown before ("n_unknown_raw") and after calibration at `temperature` (one, or one per window: its fold's)."""
    rows = rollup_encounters(encounter_ids, frame_probs)
    truth = encounter_labels(encounter_ids, labels)
    per_window = np.broadcast_to(np.asarray(temperature, np.float64), (len(encounter_ids),))
    t_of = {str(e): float(t) for e, t in zip(encounter_ids, per_window)}
    metrics = binary_metrics([r.p_success for r in rows], [truth[r.encounter_id] for r in rows])
    calibrated_calls = [encounter_call(calibrate(r.p_success, t_of[r.encounter_id])) for r in rows]
    decided = [
        (call == "success", truth[r.encounter_id]) for r, call in zip(rows, calibrated_calls) if call != "unknown"
    ]
    return {
        **metrics,
        "n_unknown_raw": sum(r.predicted == "unknown" for r in rows),
        "n_unknown": sum(call == "unknown" for call in calibrated_calls),
        "rates": decided_rates([int(called) for called, _ in decided], [label for _, label in decided]),
    }


def decided_rates(calls: Sequence[int], labels: Sequence[int]) -> dict[str, Any]:
    """Sensitivity and specificity (success positive) of the encounters the abstain band decided, with how many of
    each outcome they were measured on: the rates the report corrects the success share with."""
    matrix = confusion_matrix(labels, calls, labels=[0, 1]).tolist() if len(labels) else [[0, 0], [0, 0]]
    rates = rates_from_confusion(matrix)
    return {
        "sensitivity": rates.sensitivity,
        "specificity": rates.specificity,
        "decided_successes": rates.n_positive,
        "decided_failures": rates.n_negative,
    }


# ---------------------------------------------------------------- cross-validation of CGANet


def train_fold(
    x: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    train_idx: np.ndarray,
    settings: MatingTrainSettings,
    seed: int,
    progress: Callable[[EpochRecord], None] | None,
) -> tuple[StandardisedCGANet, TrainingHistory]:
    """Train on one fold's training windows, a grouped validation part held out for model selection."""
    fit, val = validation_split(groups[train_idx].tolist(), y[train_idx].tolist(), settings.validation_fraction, seed)
    fit_idx, val_idx = train_idx[fit], train_idx[val]
    state, history = train_cganet(x[fit_idx], y[fit_idx], x[val_idx], y[val_idx], settings, seed, progress)
    return mating_model_from_state(state), history


def usable_folds(folds: FoldPlan, y: np.ndarray) -> tuple[list[int], list[int]]:
    """(folds whose training part holds both labels, folds skipped because it holds one: no classifier can be fit)."""
    usable = [k for k, (train, _) in enumerate(folds) if len(set(y[train].tolist())) == 2]
    return usable, [k for k in range(len(folds)) if k not in usable]


def cross_validate_cganet(
    x: np.ndarray,
    y: Sequence[int],
    groups: Sequence[str],
    settings: MatingTrainSettings,
    seed: int,
    encounter_ids: Sequence[str] | None = None,
    folds: FoldPlan | None = None,
    progress: Callable[[int, EpochRecord], None] | None = None,
) -> dict[str, Any]:
    """k-fold grouped cross-validation (fold k trained with seed + k): metrics per fold, their mean and std, and
    pooled out-of-fold metrics, for windows ("segment") and, given encounter ids, for encounters rolled up with
    Eq. 4 ("encounter"). Folds whose training part lacks a label are skipped and listed."""
    y_arr, g = np.asarray(y, np.int64), np.asarray(groups, dtype=str)
    folds = folds if folds is not None else grouped_folds(g.tolist(), y_arr.tolist(), settings.folds, seed)
    usable, skipped = usable_folds(folds, y_arr)
    oof, temperature = np.zeros((len(y_arr), 86, 2), np.float32), np.full(len(y_arr), np.nan)
    segment_folds, histories = [], []
    for k in usable:
        train_idx, test_idx = folds[k]
        report = None if progress is None else (lambda record, k=k: progress(k, record))
        model, history = train_fold(x, y_arr, g, train_idx, settings, seed + k, report)
        oof[test_idx], temperature[test_idx] = predict_frame_probs(model, x[test_idx]), history.temperature
        segment_folds.append(binary_metrics(oof[test_idx].mean(axis=1)[:, 0], y_arr[test_idx]))
        histories.append(history)
    tested = ~np.isnan(temperature)
    result = {
        "model": "cganet",
        "folds": fold_summary(folds, skipped),
        "settings": asdict(settings),
        "best_epochs": [h.best_epoch for h in histories],
        "temperatures": [h.temperature for h in histories],
        "seconds_per_epoch": float(np.mean([h.seconds_per_epoch() for h in histories])) if histories else 0.0,
        "segment": level_report(segment_folds, oof[tested].mean(axis=1)[:, 0], y_arr[tested]),
    }
    if encounter_ids is not None:
        result["encounter"] = encounter_level(folds, usable, list(encounter_ids), oof, y_arr, temperature)
    return result


def encounter_level(
    folds: FoldPlan,
    usable: Sequence[int],
    encounter_ids: list[str],
    oof: np.ndarray,
    y: np.ndarray,
    temperature: np.ndarray,
) -> dict[str, Any]:
    """Encounter metrics per tested fold, their mean and std, and pooled over every out-of-fold window."""
    per_fold = []
    for k in usable:
        test = folds[k][1]
        per_fold.append(encounter_metrics([encounter_ids[i] for i in test], oof[test], y[test], temperature[test]))
    tested = np.flatnonzero(~np.isnan(temperature))
    pooled = encounter_metrics([encounter_ids[i] for i in tested], oof[tested], y[tested], temperature[tested])
    return {**summarise_folds(per_fold), "pooled": pooled}


def fold_summary(folds: FoldPlan, skipped: Sequence[int] = ()) -> dict[str, Any]:
    """JSON-ready description of the folds: method, k asked and used, groups, note, test indices, skipped folds."""
    return {
        "method": folds.method,
        "k_requested": folds.k_requested,
        "k": folds.k,
        "n_groups": folds.n_groups,
        "note": folds.note,
        "test_indices": [te.tolist() for _, te in folds],
        "skipped": list(skipped),
    }


# ---------------------------------------------------------------- SVM and FLDA baselines


def baseline_features(x: np.ndarray, features: BaselineFeatures) -> np.ndarray:
    """Baseline input: the whole 2x86x40 MFCC flattened ("flat", 6,880 values), or per channel and coefficient
    mean and standard deviation over frames ("summary", 160 values)."""
    x = np.asarray(x, np.float32)
    if features == "flat":
        return x.reshape(len(x), -1)
    if features == "summary":
        return np.concatenate([x.mean(axis=2).reshape(len(x), -1), x.std(axis=2).reshape(len(x), -1)], axis=1)
    raise ValueError(f"features must be 'flat' or 'summary', got {features!r}")


def cross_validate_sklearn(
    make_model: Callable[[], Any],
    x: np.ndarray,
    y: Sequence[int],
    folds: FoldPlan,
    name: str,
    encounter_ids: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Fit a fresh scikit-learn classifier per fold; metrics of the logistic of its decision function (monotone, so
    AUC is the score's, and p >= 0.5 iff score >= 0, the classifier's own call). Folds lacking a label are skipped.
    Given encounter ids, "encounter" rolls windows up as CGANet's Eq. 4 does (each window one "frame")."""
    y_arr = np.asarray(y, np.int64)
    usable, skipped = usable_folds(folds, y_arr)
    scores, tested, per_fold = np.zeros(len(y_arr), np.float64), np.zeros(len(y_arr), bool), []
    for k in usable:
        train_idx, test_idx = folds[k]
        model = make_model().fit(x[train_idx], y_arr[train_idx])
        scores[test_idx], tested[test_idx] = model.decision_function(x[test_idx]), True
        per_fold.append(binary_metrics(expit(scores[test_idx]), y_arr[test_idx]))
    result = {
        "model": name,
        "folds": fold_summary(folds, skipped),
        "segment": level_report(per_fold, expit(scores[tested]), y_arr[tested]),
    }
    if encounter_ids is not None:
        result["encounter"] = encounter_level(
            folds, usable, list(encounter_ids), window_as_frame(expit(scores)), y_arr, np.where(tested, 1.0, np.nan)
        )
    return result


def window_as_frame(p_success: np.ndarray) -> np.ndarray:
    """(N, 1, 2) success/failure probabilities of windows, so the Eq. 4 roll-up of an encounter is the mean of its
    windows' p (as it is for CGANet, whose windows all have 86 frames)."""
    p = np.asarray(p_success, np.float64)
    return np.stack([p, 1.0 - p], axis=1)[:, None, :]


def svm_baseline(
    x: np.ndarray,
    y: Sequence[int],
    folds: FoldPlan,
    features: BaselineFeatures = "flat",
    c: float = 1.0,
    class_weight: ClassWeight = "balanced",
    encounter_ids: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Standardised RBF SVC (sklearn defaults, gamma "scale"; classes weighted as CGANet's loss) on the MFCCs,
    cross-validated on the given folds."""
    weight = "balanced" if class_weight == "balanced" else None
    return cross_validate_sklearn(
        lambda: make_pipeline(StandardScaler(), SVC(C=c, kernel="rbf", class_weight=weight)),
        baseline_features(x, features),
        y,
        folds,
        "svm",
        encounter_ids,
    )


def flda_model(features: BaselineFeatures, class_weight: ClassWeight = "balanced") -> Any:
    """A fresh standardised Fisher LDA: the SVD solver on "flat" (6,880 values for a few hundred windows: the
    within-class scatter is singular and SVD keeps its non-null part, while a shrunk 6,880-square covariance takes
    minutes), lsqr with Ledoit-Wolf shrinkage on the 160 "summary" values; equal priors when "balanced"."""
    priors = [0.5, 0.5] if class_weight == "balanced" else None
    if features == "flat":
        return make_pipeline(StandardScaler(), LinearDiscriminantAnalysis(solver="svd", priors=priors))
    return make_pipeline(StandardScaler(), LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto", priors=priors))


def flda_baseline(
    x: np.ndarray,
    y: Sequence[int],
    folds: FoldPlan,
    features: BaselineFeatures = "flat",
    class_weight: ClassWeight = "balanced",
    encounter_ids: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Fisher LDA (flda_model) on the MFCCs, cross-validated on the given folds."""
    return cross_validate_sklearn(
        lambda: flda_model(features, class_weight), baseline_features(x, features), y, folds, "flda", encounter_ids
    )


# ---------------------------------------------------------------- all three on the same folds


def evaluate_mating(
    x: np.ndarray,
    y: Sequence[int],
    groups: Sequence[str],
    settings: MatingTrainSettings,
    seed: int,
    encounter_ids: Sequence[str] | None = None,
    features: BaselineFeatures = "flat",
    progress: Callable[[int, EpochRecord], None] | None = None,
) -> dict[str, Any]:
    """CGANet, SVM and FLDA cross-validated on the same grouped folds: {"folds", "cganet", "svm", "flda"}."""
    folds = grouped_folds(list(groups), list(y), settings.folds, seed)
    return {
        "folds": fold_summary(folds, usable_folds(folds, np.asarray(y, np.int64))[1]),
        "cganet": cross_validate_cganet(x, y, groups, settings, seed, encounter_ids, folds, progress),
        "svm": svm_baseline(x, y, folds, features, class_weight=settings.class_weight, encounter_ids=encounter_ids),
        "flda": flda_baseline(x, y, folds, features, settings.class_weight, encounter_ids),
    }


def format_percent(mean: float | None, std: float | None, n_folds: int | None = None, k: int | None = None) -> str:
    """ "89.9% ± 9.1%" as in seed table 1; "n/a" for a missing mean, no ± for a missing std, and "[2/5]" when the
    metric was defined on fewer folds than were tested (AUC of a test fold holding one label)."""
    if mean is None:
        return "n/a"
    text = f"{100 * mean:.1f}%" if std is None else f"{100 * mean:.1f}% ± {100 * std:.1f}%"
    return text if n_folds is None or k is None or n_folds >= k else f"{text} [{n_folds}/{k}]"


def metrics_table(results: Mapping[str, Mapping[str, Any]], level: str = "segment") -> str:
    """Plain-text table like seed table 1: one row per model, mean ± std over folds of each metric."""
    lines = [f"{'model':<8}" + "".join(f"{name:>22}" for name in METRICS)]
    for name in ("cganet", "svm", "flda"):
        if name in results and level in results[name]:
            report = results[name][level]
            tested = len(report["per_fold"])
            cells = "".join(
                f"{format_percent(report['mean'][m], report['std'][m], report['n_folds'][m], tested):>22}"
                for m in METRICS
            )
            lines.append(f"{name:<8}{cells}")
    return "\n".join(lines)


# ---------------------------------------------------------------- model card


def data_fingerprint(x: np.ndarray, y: Sequence[int], encounter_ids: Sequence[str]) -> str:
    """The toolkit's order-free fingerprint over every window's encounter id, label and float32 MFCC bytes."""
    x = np.ascontiguousarray(np.asarray(x, np.float32))
    return training.data_fingerprint(
        f"{e}|{int(label)}|".encode() + x[i].tobytes() for i, (e, label) in enumerate(zip(encounter_ids, y))
    )


def mating_model_card(
    settings: MatingTrainSettings,
    seed: int,
    fingerprint: str,
    split: Mapping[str, Sequence[str]],
    history: TrainingHistory,
    metrics: Mapping[str, Any],
    abstain: tuple[float, float] = (0.4, 0.6),
) -> dict[str, Any]:
    """The JSON model card stored next to the state dict: recipe, data fingerprint, split, epochs, metrics, band."""
    return {
        "task": "mating",
        "arch": "cganet",
        "classes": ["success", "failure"],
        "settings": asdict(settings),
        "seed": seed,
        "data_fingerprint": fingerprint,
        "split": {name: list(ids) for name, ids in split.items()},
        "training": history.as_dict(),
        "metrics": dict(metrics),
        "thresholds": {"decision": 0.5, "abstain_low": abstain[0], "abstain_high": abstain[1]},
        "input_standardised": settings.standardise,
    }


MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class MatingData:
    """Labelled windows: MFCC x (N, 2, 86, 40), y (1 success, 0 failure), pair, encounter and segment of each."""

    x: np.ndarray
    y: np.ndarray
    pairs: list[str]
    encounters: list[str]
    segment_ids: list[str]
    source: str
    rejects: list[str] = field(default_factory=list)
    corrections: dict[str, int] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """Counts for people and model cards: windows, encounters and pairs by outcome."""
        outcome = {e: int(label) for e, label in zip(self.encounters, self.y)}
        return {
            "source": self.source,
            "n_windows": int(len(self.y)),
            "n_windows_success": int(self.y.sum()),
            "n_encounters": len(outcome),
            "n_encounters_success": sum(outcome.values()),
            "n_pairs": len(set(self.pairs)),
            "n_rejects": len(self.rejects),
        }


def checked_name(name: str) -> str:
    """A model name usable as a folder of the store, or ValueError."""
    if not MODEL_NAME.match(name):
        raise ValueError(
            f"model name {name!r} must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def train_settings(config: MatingTrainConfig, **overrides: Any) -> MatingTrainSettings:
    """The pure training recipe from the [mating.train] configuration, with CLI overrides that are not None."""
    values = config.model_dump(exclude={"seed", "threads"})
    values.update({key: value for key, value in overrides.items() if value is not None})
    return MatingTrainSettings(**values)


def outcome_corrections_used(rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """How many keepers' outcome corrections labelled the windows: encounters labelled by a keeper, and those whose
    encounters.csv outcome the keeper overrode."""
    human = {(r["drop_id"], r["encounter_id"]): r for r in rows if r.get("outcome_source") == "human"}
    return {
        "encounter_outcome": len(human),
        "encounter_outcome_over_registry": sum(
            r.get("registry_outcome") is not None and r["registry_outcome"] != r["outcome"] for r in human.values()
        ),
    }


def table_to_data(table: pa.Table, source: str, rejects: list[str]) -> MatingData:
    """MatingData from rows of LABELLED_SQL (outcome: the keeper's correction over encounters.csv)."""
    mfcc = table.column("mfcc").combine_chunks()
    x = mfcc.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, 2, 86, 40)
    rows = table.drop_columns(["mfcc"]).to_pylist()
    return MatingData(
        corrections=outcome_corrections_used(rows),
        x=x,
        y=np.asarray([int(r["outcome"] == "success") for r in rows], np.int64),
        pairs=[f"{r['male_id']}|{r['female_id']}" for r in rows],
        encounters=[f"{r['drop_id']}/{r['encounter_id']}" for r in rows],
        segment_ids=[r["segment_id"] for r in rows],
        source=source,
        rejects=rejects,
    )


def reject_sentence(row: dict[str, Any]) -> str:
    """A rejects row as one sentence that names its file."""
    path, reason = row["path"] or "", row["reason"]
    return reason if not path or reason.startswith(path) else f"{path}: {reason}"


def check_labelled(data: MatingData) -> None:
    """ValueError naming the source when it has no labelled windows or only one outcome."""
    if len(data.y) == 0:
        raise ValueError(
            f"no segments of encounters with a known outcome (success or failure) in {data.source}; "
            "give encounters.csv an outcome per encounter and run 'breedwatch run' on the drop first"
        )
    if len(set(data.y.tolist())) < 2:
        outcome = "success" if data.y[0] == 1 else "failure"
        n = len(set(data.encounters))
        raise ValueError(
            f"all {n} labelled encounters in {data.source} are '{outcome}'; "
            "training and evaluation need encounters of both outcomes"
        )


def validation_metrics(model: Any, data: MatingData, val: np.ndarray, temperature: float) -> dict[str, Any]:
    """Segment and encounter metrics of the kept model on the validation windows (empty without them)."""
    if len(val) == 0:
        return {
            "note": "no validation split (too few groups of one outcome); the last epoch was kept, and the "
            "calibration is not measured"
        }
    probs = predict_frame_probs(model, data.x[val])
    encounters = [data.encounters[i] for i in val]
    p_segment = probs.mean(axis=1)[:, 0]
    return {
        "segment": binary_metrics(p_segment, data.y[val]),
        "encounter": encounter_metrics(encounters, probs, data.y[val], temperature),
        "calibration": {
            **calibration_report(calibrate(p_segment, temperature), data.y[val], temperature, "validation windows"),
            "measured_on": "the validation windows the temperature was fitted on (optimistic; no test split here)",
        },
    }


Window = tuple[float, list[float], list[float]]  # p_success, per-frame P(success), attention


def prediction_rows(
    ids: list[str], outputs: list[Window], segments: dict[str, dict[str, Any]], context: dict[str, Any]
) -> list[dict[str, Any]]:
    """mating_predictions rows of one batch; context holds drop_id, temperature, model_version and run_id."""
    return [
        {
            "segment_id": sid,
            "media_id": segments[sid]["media_id"],
            "encounter_id": segments[sid]["encounter_id"],
            "p_success": p,
            "frame_p_success": f,
            "attention": a,
            **context,
        }
        for sid, (p, f, a) in zip(ids, outputs)
        if sid in segments
    ]
