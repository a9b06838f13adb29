"""Choosing the compute device."""

from __future__ import annotations

import torch


def choose_device(preference: str) -> torch.device:
    """CUDA when asked or when 'auto' finds a GPU; the CPU otherwise."""
    if preference == "cuda" or (preference == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")
