"""Inference precision shared by the image and audio nets: which autocast dtype a precision setting means on a device."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

import torch

Precision = Literal["bf16", "fp32", "amp"]
PrecisionSetting = Literal["auto", "bf16", "fp32", "amp"]


def resolved_precision(setting: PrecisionSetting, device: torch.device) -> Precision:
    """'auto' is bf16 autocast on the CPU and fp16 AMP on CUDA; any other setting is kept."""
    if setting != "auto":
        return setting
    return "amp" if device.type == "cuda" else "bf16"


def autocast_dtype(device: torch.device, precision: Precision) -> torch.dtype | None:
    """The autocast dtype: bf16 on CPU for 'bf16' and 'amp', fp16 on CUDA for 'amp', bf16 for 'bf16'; None for fp32."""
    if precision == "fp32":
        return None
    if precision == "amp" and device.type == "cuda":
        return torch.float16
    if precision in ("amp", "bf16"):
        return torch.bfloat16
    raise ValueError(f"unknown precision {precision!r}; choose bf16, fp32 or amp")


@contextlib.contextmanager
def inference(device: torch.device, precision: Precision) -> Iterator[None]:
    """inference_mode with autocast per precision (none for fp32): how every net runs at night."""
    dtype = autocast_dtype(device, precision)
    with torch.inference_mode(), torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        yield
