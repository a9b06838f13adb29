"""The naive way over the whole drop: its image and audio parts on an even sample of the items, their seconds scaled
to every item."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.bench.checks import Box
from models.bench.rates import even_sample, scale
from tasks.bench.audio import naive_audio
from tasks.bench.image import naive_detect, naive_gender
from tasks.bench.scratch import Scratch
from tasks.faces import KEEPER_FOLDER


@dataclass(frozen=True)
class NaiveRun:
    """The naive way's seconds per part (scaled up from its sample to the whole drop) and its results."""

    image: dict[str, float]
    audio: dict[str, float]
    boxes: dict[str, list[Box]]
    p_male: dict[str, float]
    mfcc: dict[str, np.ndarray]
    p_success: dict[str, float]
    sampled: dict[str, int]


def run_naive(
    scratch: Scratch,
    images: list[dict[str, Any]],
    crops: dict[str, Path],
    segments: list[dict[str, Any]],
    limit: int | None,
    device: torch.device,
) -> NaiveRun:
    """The naive way on at most `limit` evenly spread images, faces and segments; times scaled to every item."""
    some_images, some_faces, some_segments = (
        even_sample(images, limit),
        even_sample(list(crops), limit),
        even_sample(segments, limit),
    )
    detect_s, boxes = naive_detect(scratch, some_images, device)
    gender_s, p_male = naive_gender(scratch, {face_id: crops[face_id] for face_id in some_faces}, device)
    audio_s, mfcc, p_success = naive_audio(scratch, some_segments, device)
    return NaiveRun(
        image={
            "detect": scale(detect_s, len(images), len(some_images)),
            "gender": scale(gender_s, len(crops), len(some_faces)),
        },
        audio={part: scale(value, len(segments), len(some_segments)) for part, value in audio_s.items()},
        boxes=boxes,
        p_male=p_male,
        mfcc=mfcc,
        p_success=p_success,
        sampled={
            "images": len(some_images),
            "faces": len(some_faces),
            "segments": len(some_segments),
            "scene_media_ids": [r["media_id"] for r in some_images if not r["path"].startswith(KEEPER_FOLDER)],
        },
    )
