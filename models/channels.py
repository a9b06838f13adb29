"""Two 44.1 kHz channels from a recording's samples: channel choice and resampling, each change flagged (pure)."""

from __future__ import annotations

import numpy as np
import soxr

PIPELINE_RATE = 44_100


def pick_channels(data: np.ndarray, channel_pair: tuple[int, int]) -> tuple[np.ndarray, list[str]]:
    """Two channels from any count: mono is duplicated, more than two gives the configured pair."""
    channels = data.shape[1]
    if channels == 1:
        return np.repeat(data, 2, axis=1), ["mono_duplicated"]
    if channels == 2:
        return data, []
    left, right = channel_pair
    if max(left, right) >= channels:
        raise ValueError(f"channel pair {channel_pair} does not exist in a {channels}-channel recording")
    return data[:, [left, right]], [f"channels_{left}_{right}_of_{channels}"]


def resample_to_pipeline(data: np.ndarray, rate: int) -> tuple[np.ndarray, list[str]]:
    """Resample with soxr only when the file's rate differs from 44.1 kHz."""
    if rate == PIPELINE_RATE:
        return data, []
    resampled = soxr.resample(data, rate, PIPELINE_RATE, quality="HQ").astype(np.float32, copy=False)
    return resampled, [f"resampled_from_{rate}"]
