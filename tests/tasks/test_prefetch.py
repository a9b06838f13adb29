"""Thread prefetch of batches: same batches in the same order, at most two batches loaded ahead."""

from __future__ import annotations

import threading

import torch

from tasks.prefetch import prefetched_batches


def test_prefetched_batches_keep_order_and_load_one_batch_ahead() -> None:
    loaded: list[int] = []
    consumed: list[int] = []
    lock = threading.Lock()

    def load(item: int) -> torch.Tensor:
        with lock:
            loaded.append(item)
            assert len(loaded) <= (len(consumed) + 2) * 3  # this batch and the next one, three items each
        return torch.full((2,), float(item))

    batches = []
    for batch in prefetched_batches(load, list(range(8)), 3):
        consumed.extend(int(v) for v in batch[:, 0])
        batches.append(batch)
    assert [b.shape[0] for b in batches] == [3, 3, 2]
    assert torch.equal(torch.cat(batches)[:, 0], torch.arange(8, dtype=torch.float32))
    assert list(prefetched_batches(load, [], 3)) == []
