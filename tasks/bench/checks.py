"""The bench's equality checks: the pipeline's committed results against the naive way's on the same items."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from models.bench.checks import box_check, gender_tolerance, mating_tolerance, mfcc_check, value_check
from schemas.tables import GENDER_PREDICTIONS, MATING_PREDICTIONS, SEGMENT_FEATURES
from tasks.bench.image import pipeline_boxes
from tasks.bench.naive import NaiveRun
from tasks.bench.scratch import Scratch, lake_rows
from tasks.execution import way_of


def stored_results(scratch: Scratch) -> tuple[dict[str, float], dict[str, np.ndarray], dict[str, float]]:
    """The pipeline's committed P(male) per face, MFCC per segment and p_success per segment."""
    p_male = {
        r["face_id"]: r["p_male"] for r in lake_rows(scratch, GENDER_PREDICTIONS, "gender", ["face_id", "p_male"])
    }
    rows = lake_rows(scratch, SEGMENT_FEATURES, "segments", ["segment_id", "mfcc"])
    mfcc = {r["segment_id"]: np.asarray(r["mfcc"], np.float32).reshape(2, 86, 40) for r in rows}
    p_success = {
        r["segment_id"]: r["p_success"]
        for r in lake_rows(scratch, MATING_PREDICTIONS, "mating", ["segment_id", "p_success"])
    }
    return p_male, mfcc, p_success


def compare(naive: NaiveRun, scratch: Scratch, device: torch.device) -> dict[str, dict[str, Any]]:
    """The pipeline's stored results on the naive way's items against the naive way's."""
    p_male, mfcc, p_success = stored_results(scratch)
    boxes = {key: value for key, value in pipeline_boxes(scratch).items() if key in naive.sampled["scene_media_ids"]}
    gender = way_of(scratch.settings.gender, device).precision
    mating = way_of(scratch.settings.mating, device).precision
    return {
        "boxes": box_check(naive.boxes, boxes),
        "gender": {
            **value_check(naive.p_male, {k: p_male[k] for k in naive.p_male if k in p_male}, gender_tolerance(gender)),
            "precision": gender,
        },
        "mfcc": mfcc_check(naive.mfcc, {k: mfcc[k] for k in naive.mfcc if k in mfcc}),
        "mating": {
            **value_check(
                naive.p_success,
                {k: p_success[k] for k in naive.p_success if k in p_success},
                mating_tolerance(mating),
            ),
            "precision": mating,
        },
    }
