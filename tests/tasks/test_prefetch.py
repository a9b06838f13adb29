"""Batch prefetch: same batches in the same order; one batch ahead on a thread for CUDA, in turn on the CPU."""

from __future__ import annotations

import threading

import torch

from tasks.prefetch import one_ahead, prefetched_batches


def test_one_ahead_keeps_order_and_works_one_item_ahead_on_a_thread() -> None:
    started: list[int] = []
    used: list[int] = []
    threads: set[int] = set()

    def work(item: int) -> int:
        started.append(item)
        threads.add(threading.get_ident())
        assert len(started) <= len(used) + 2  # the item in use and the next one
        return item * 10

    for result in one_ahead(work, list(range(6))):
        used.append(result // 10)
    assert used == list(range(6)) and threading.get_ident() not in threads
    assert list(one_ahead(work, [])) == []


def test_cpu_batches_are_loaded_in_turn_on_the_calling_thread() -> None:
    loaded: list[int] = []
    consumed: list[int] = []
    threads: set[int] = set()

    def load(item: int) -> torch.Tensor:
        loaded.append(item)
        threads.add(threading.get_ident())
        assert len(loaded) <= len(consumed) + 3  # only the batch being built: nothing decoded ahead
        return torch.full((2,), float(item))

    batches = []
    for batch in prefetched_batches(load, list(range(8)), 3):
        consumed.extend(int(v) for v in batch[:, 0])
        batches.append(batch)
    assert threads == {threading.get_ident()}
    assert [b.shape[0] for b in batches] == [3, 3, 2]
    assert torch.equal(torch.cat(batches)[:, 0], torch.arange(8, dtype=torch.float32))
    assert list(prefetched_batches(load, [], 3)) == []
