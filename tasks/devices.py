"""Choosing the compute device, sharing one GPU between flows, and surviving GPU out-of-memory."""

from __future__ import annotations

import contextlib
import ctypes
import platform
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, TypeVar

import torch

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_MAX = -4
MIB = 2**20

Item = TypeVar("Item")
Result = TypeVar("Result")


class DeviceBatches(Protocol):
    """A stage configuration with one batch size for CUDA and one for the CPU."""

    batch_size: int
    cpu_batch_size: int


def batch_size_on(device: torch.device, config: DeviceBatches) -> int:
    """Items per forward pass on this device: batch_size on CUDA, cpu_batch_size on the CPU."""
    return config.batch_size if device.type == "cuda" else config.cpu_batch_size


def choose_device(preference: str) -> torch.device:
    """CUDA when asked or when 'auto' finds a GPU; the CPU otherwise."""
    if preference == "cuda" or (preference == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


@contextlib.contextmanager
def gpu_slot(device: torch.device, limit: str) -> Iterator[None]:
    """Hold one slot of the named Prefect global concurrency limit while work runs on CUDA; nothing on the CPU."""
    if device.type != "cuda" or not limit:
        yield
        return
    from prefect.concurrency.sync import concurrency

    with concurrency(limit, occupy=1):
        yield


@contextlib.contextmanager
def cpu_threads(device: torch.device, count: int | None) -> Iterator[None]:
    """Run the block with `count` intra-op threads on the CPU, then restore the previous count; nothing on CUDA or
    when count is None.

    With torch's OpenMP backend (the PyPI wheels') the count is per calling thread, so concurrent stages keep theirs.
    """
    if device.type != "cpu" or count is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def halve_on_oom(run: Callable[[Sequence[Item]], list[Result]], items: Sequence[Item]) -> list[Result]:
    """run(items); on CUDA out-of-memory, free the cache and run each half instead, down to a single item."""
    try:
        return run(items)
    except torch.cuda.OutOfMemoryError:
        if len(items) <= 1:
            raise
        torch.cuda.empty_cache()
        middle = len(items) // 2
        return halve_on_oom(run, items[:middle]) + halve_on_oom(run, items[middle:])


def retain_freed_memory(megabytes: int) -> bool:
    """Have glibc's malloc serve every allocation from its heap and keep up to `megabytes` of freed memory there, so
    each batch's large tensors reuse pages instead of being mapped and faulted in afresh; whether it was applied
    (never with 0, nor where the C library is not glibc).

    By default glibc maps allocations above 32 MiB (a gender batch's 51 MB stem output) with mmap and returns them
    on free; on 2 cores that page faulting cost the gender net 18% of its time (49 -> 58 faces/s). Process-wide and
    idempotent.
    """
    if megabytes <= 0 or platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL("libc.so.6")
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, megabytes * MIB))
