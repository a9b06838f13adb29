"""Pure comparisons of `breedwatch bench`: do the pipeline's results equal the naive way's (boxes, probabilities,
MFCC), within which tolerances."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from models.audio_features import relative_error
from models.quantize import INT8_PROB_TOLERANCE

Box = tuple[float, float, float, float]  # relative x, y, w, h (top-left origin), as in the faces table

MIN_BOX_IOU = 0.9
BF16_PROB_TOLERANCE = 0.01  # |P(male) bf16 autocast - P(male) fp32|; bf16 keeps 8 significant bits (2^-8 = 0.4 %)
MFCC_RELATIVE_TOLERANCE = 1e-4
MATING_TOLERANCE = 1e-3  # |p_success on torch MFCC - p_success on librosa MFCC|, both fp32


def gender_tolerance(precision: str) -> float:
    """How far the pipeline's P(male) may be from the naive fp32 one: int8's agreement tolerance for int8, else the
    autocast one (which fp32 meets with room)."""
    return INT8_PROB_TOLERANCE if precision == "int8" else BF16_PROB_TOLERANCE


def mating_tolerance(precision: str) -> float:
    """How far the pipeline's p_success may be from the naive fp32 one: MATING_TOLERANCE in fp32, int8's agreement
    tolerance for int8, else the autocast one."""
    if precision == "int8":
        return INT8_PROB_TOLERANCE
    return MATING_TOLERANCE if precision == "fp32" else BF16_PROB_TOLERANCE


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, w, h) boxes; 0 when either is empty."""
    left, top = max(a[0], b[0]), max(a[1], b[1])
    right, bottom = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(right - left, 0.0) * max(bottom - top, 0.0)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def best_ious(naive: Sequence[Box], pipeline: Sequence[Box]) -> list[float]:
    """For each naive box, its best IoU with any pipeline box of the same image (0 when the pipeline has none)."""
    return [max((box_iou(box, other) for other in pipeline), default=0.0) for box in naive]


def box_check(naive: Mapping[str, Sequence[Box]], pipeline: Mapping[str, Sequence[Box]]) -> dict[str, Any]:
    """Same number of faces per image and every naive box matched by a pipeline box at IoU above MIN_BOX_IOU; a check
    over no box at all fails (it shows nothing)."""
    images = sorted(set(naive) | set(pipeline))
    counts_equal = all(len(naive.get(key, ())) == len(pipeline.get(key, ())) for key in images)
    ious = [iou for key in images for iou in best_ious(naive.get(key, ()), pipeline.get(key, ()))]
    minimum = min(ious) if ious else None
    passed = counts_equal and minimum is not None and minimum > MIN_BOX_IOU
    return {
        "images": len(images),
        "boxes_naive": sum(len(v) for v in naive.values()),
        "boxes_pipeline": sum(len(v) for v in pipeline.values()),
        "counts_equal": counts_equal,
        "min_iou": minimum,
        "threshold": MIN_BOX_IOU,
        "passed": passed,
    }


def value_check(naive: Mapping[str, float], pipeline: Mapping[str, float], tolerance: float) -> dict[str, Any]:
    """Same keys, and every pipeline value within an absolute tolerance of the naive one; a check over no value
    fails."""
    same_keys = set(naive) == set(pipeline)
    diffs = [abs(float(pipeline[key]) - float(naive[key])) for key in naive if key in pipeline]
    largest = max(diffs) if diffs else 0.0
    return {
        "n": len(diffs),
        "same_items": same_keys,
        "max_abs_diff": largest,
        "tolerance": tolerance,
        "passed": same_keys and bool(diffs) and largest <= tolerance,
    }


def mfcc_check(naive: Mapping[str, np.ndarray], pipeline: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Same segments, and every torch MFCC within MFCC_RELATIVE_TOLERANCE (max relative error) of librosa's; a check
    over no segment fails."""
    same_keys = set(naive) == set(pipeline)
    keys = sorted(set(naive) & set(pipeline))
    errors = (
        relative_error(np.stack([pipeline[k] for k in keys]), np.stack([naive[k] for k in keys]))
        if keys
        else np.zeros(0)
    )
    largest = float(errors.max()) if errors.size else 0.0
    return {
        "n": len(keys),
        "same_items": same_keys,
        "max_relative_error": largest,
        "tolerance": MFCC_RELATIVE_TOLERANCE,
        "passed": same_keys and bool(keys) and largest <= MFCC_RELATIVE_TOLERANCE,
    }
