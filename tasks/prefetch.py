"""Decode the next batch on a thread while the caller computes on this one (no worker processes to start)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import torch

Item = TypeVar("Item")


def stacked(load: Callable[[Item], torch.Tensor], items: Sequence[Item]) -> torch.Tensor:
    """One batch: the loaded items stacked along a new first axis."""
    return torch.stack([load(item) for item in items])


def prefetched_batches(load: Callable[[Item], torch.Tensor], items: Sequence[Item], batch_size: int, pin: bool = False) -> Iterator[torch.Tensor]:
    """Batches of loaded items in order, each loaded on a thread while the previous one is in use (two in memory at most)."""
    chunks = [items[start:start + batch_size] for start in range(0, len(items), batch_size)]
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending: Future[torch.Tensor] | None = pool.submit(stacked, load, chunks[0]) if chunks else None
        for index in range(len(chunks)):
            batch = pending.result()
            pending = pool.submit(stacked, load, chunks[index + 1]) if index + 1 < len(chunks) else None
            yield batch.pin_memory() if pin else batch
