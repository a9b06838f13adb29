"""Inference precision and memory layout shared by the image and audio nets: which autocast dtype a precision means on a
device, and which torch memory format a layout names."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from models.execution import Layout, Precision

MEMORY_FORMATS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}


def memory_format(layout: Layout) -> torch.memory_format:
    """The torch memory format of a layout name."""
    return MEMORY_FORMATS[layout]


def autocast_dtype(device: torch.device, precision: Precision) -> torch.dtype | None:
    """The autocast dtype: bf16 on CPU for 'bf16' and 'amp', fp16 on CUDA for 'amp', bf16 for 'bf16'; None for fp32 and
    int8 (an int8 net's quantized parts run integer kernels, its float parts fp32; CPU only)."""
    if precision == "int8" and device.type != "cpu":
        raise ValueError("precision 'int8' runs on the CPU only; choose fp32, bf16 or amp on a GPU")
    if precision in ("fp32", "int8"):
        return None
    if precision == "amp" and device.type == "cuda":
        return torch.float16
    if precision in ("amp", "bf16"):
        return torch.bfloat16
    raise ValueError(f"unknown precision {precision!r}; choose fp32, bf16, amp or int8")


@contextlib.contextmanager
def inference(device: torch.device, precision: Precision) -> Iterator[None]:
    """inference_mode with autocast per precision (none for fp32): how every net runs at night."""
    dtype = autocast_dtype(device, precision)
    with torch.inference_mode(), torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        yield
