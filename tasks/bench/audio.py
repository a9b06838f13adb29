"""The bench's audio path: the pipeline's segment windows, read as the pipeline reads them, and the naive way
(per-segment librosa MFCC, then CGANet on that one segment)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from models.audio_features import librosa_mfcc, segment_window
from schemas.tables import SEGMENTS
from tasks.audio import read_span
from tasks.bench.scratch import MATING_MODEL, Scratch, lake_rows, timed
from tasks.mating import load_mating_model
from tasks.segments import drop_recordings


def drop_segments(scratch: Scratch) -> list[dict[str, Any]]:
    """The pipeline's segment windows with their recording path and call span."""
    paths = {row["media_id"]: row["path"] for row in drop_recordings(scratch.layout, scratch.drop_id)}
    columns = ["segment_id", "media_id", "start_s", "end_s", "call_start_s", "call_end_s"]
    return [{**row, "path": paths[row["media_id"]]} for row in lake_rows(scratch, SEGMENTS, "segments", columns)]


def read_window(scratch: Scratch, segment: dict[str, Any]) -> np.ndarray:
    """One segment's peak-normalised (2, 88200) window, read from its call as the pipeline reads it."""
    call = read_span(
        scratch.drop_dir / segment["path"],
        segment["call_start_s"],
        segment["call_end_s"],
        scratch.settings.audio.channel_pair,
    )
    return segment_window(
        call.samples, segment["start_s"] - segment["call_start_s"], segment["end_s"] - segment["call_start_s"]
    )


def naive_audio(
    scratch: Scratch, segments: list[dict[str, Any]], device: torch.device
) -> tuple[dict[str, float], dict[str, np.ndarray], dict[str, float]]:
    """Per segment: read, librosa MFCC, then CGANet on that one segment; seconds of each part and the results."""
    model, _ = load_mating_model(scratch.layout, f"{MATING_MODEL}@v1", device)
    features: dict[str, np.ndarray] = {}
    p_success: dict[str, float] = {}
    seconds = {"mfcc": 0.0, "cganet": 0.0}
    for segment in segments:
        spent, features[segment["segment_id"]] = timed(lambda: librosa_mfcc(read_window(scratch, segment)))
        seconds["mfcc"] += spent
        x = torch.from_numpy(features[segment["segment_id"]][None]).to(device)
        with torch.inference_mode():
            spent, output = timed(lambda: model(x).p_success.float().cpu())
        seconds["cganet"] += spent
        p_success[segment["segment_id"]] = float(output[0])
    return seconds, features, p_success
