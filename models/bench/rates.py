"""Pure arithmetic of `breedwatch bench`: the naive way's even sample and its scaling to the drop, medians over
repeats, rates and the pipeline's ratios."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any


def even_sample(items: Sequence[Any], limit: int | None) -> list[Any]:
    """All items, or `limit` of them spread evenly over the sequence (first and last included)."""
    if limit is None or len(items) <= limit:
        return list(items)
    if limit <= 1:
        return list(items[:limit])
    return [items[round(i * (len(items) - 1) / (limit - 1))] for i in range(limit)]


def scale(seconds: float, total: int, sampled: int) -> float:
    """Seconds for `total` items from the seconds measured on `sampled` of them."""
    return seconds * total / sampled if sampled else 0.0


def median_seconds(repeats: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """The median over repeats of each timed part, and of their total."""
    parts = {key: statistics.median(r[key] for r in repeats) for key in repeats[0]}
    return {**parts, "total": statistics.median(sum(r.values()) for r in repeats)}


def rates(items: int, seconds: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Items per second of the pipeline, the naive way and the bound, and the two ratios of the pipeline to them."""
    per_s = {way: items / max(seconds[way]["total"], 1e-9) for way in ("pipeline", "naive", "bound")}
    return {
        "pipeline_per_s": per_s["pipeline"],
        "naive_per_s": per_s["naive"],
        "bound_per_s": per_s["bound"],
        "vs_naive": per_s["pipeline"] / per_s["naive"],
        "vs_bound": per_s["pipeline"] / per_s["bound"],
    }
