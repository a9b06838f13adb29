"""Coverage of the corrected-share interval, simulated over a grid of true shares, counts and validation sets (pure).

Each cell draws populations of known truth: `animals` individuals with true share `share`, each called positive with
probability share * Se + (1 - share) * (1 - Sp); the classifier's rates are estimated from `validation` animals of
each class (binomial with Se and Sp). The interval of models.statistics is computed from these counts exactly as
the catalog does, and the cell reports how often it holds the true share (among the populations where it gives
one), its mean width, and how often it gives none (estimated Se + Sp <= 1). The old interval, Wilson bounds mapped
through Rogan-Gladen with the estimated rates taken as exact, is measured on the same draws as the baseline.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from models.statistics import (
    CONFIDENCE,
    LANG_REICZIGEL,
    IntervalMethod,
    bayes_bounds,
    corrected_proportion,
    corrected_share_arrays,
    wilson_interval,
)

TARGET = 0.93  # issue 21: at least this coverage in every cell with enough animals and validation animals
MIN_ANIMALS = 10
MIN_VALIDATION = 5


@dataclass(frozen=True)
class CoverageGrid:
    """The values each axis of the simulated grid takes; every combination is one cell."""

    shares: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7, 0.9)
    animals: tuple[int, ...] = (10, 30, 100, 500)
    validation: tuple[int, ...] = (5, 15, 30, 100)
    sensitivities: tuple[float, ...] = (0.6, 0.8, 0.98)
    specificities: tuple[float, ...] = (0.6, 0.8, 0.98)

    def cells(self) -> list[tuple[float, int, int, float, float]]:
        """(share, animals, validation per class, Se, Sp) of every cell, in a fixed order."""
        return list(
            itertools.product(self.shares, self.animals, self.validation, self.sensitivities, self.specificities)
        )


@dataclass(frozen=True)
class CellResult:
    """Coverage and mean width of the interval and of the old exact-rate interval in one grid cell."""

    share: float
    animals: int
    validation: int
    sensitivity: float
    specificity: float
    populations: int
    coverage: float | None
    mean_width: float | None
    no_interval: float
    baseline_coverage: float | None
    baseline_mean_width: float | None


def draw_counts(
    rng: np.random.Generator, cell: tuple[float, int, int, float, float], populations: int
) -> tuple[np.ndarray, ...]:
    """Positives among the counted animals and the two validation successes, for each simulated population."""
    share, animals, validation, se, sp = cell
    apparent = share * se + (1 - share) * (1 - sp)
    return (
        rng.binomial(animals, apparent, populations),
        rng.binomial(validation, se, populations),
        rng.binomial(validation, sp, populations),
    )


def baseline_bounds(
    positives: np.ndarray,
    animals: int,
    se_successes: np.ndarray,
    sp_successes: np.ndarray,
    validation: int,
    confidence: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The old interval (Wilson bounds through Rogan-Gladen, estimated rates as exact); NaN where it gives none."""
    low, high = np.full(positives.shape, np.nan), np.full(positives.shape, np.nan)
    keys = np.stack([positives, se_successes, sp_successes], axis=1)
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    for index, (x, xse, xsp) in enumerate(unique):
        result = corrected_proportion(wilson_interval(int(x), animals, confidence), xse / validation, xsp / validation)
        if result.ci_low is not None:
            low[inverse == index], high[inverse == index] = result.ci_low, result.ci_high
    return low, high


def coverage_and_width(share: float, low: np.ndarray, high: np.ndarray) -> tuple[float | None, float | None, float]:
    """Share of the given intervals that hold the true share, their mean width, and the share with no interval."""
    given = ~np.isnan(low)
    if not given.any():
        return None, None, 1.0
    held = (low[given] <= share + 1e-12) & (share - 1e-12 <= high[given])
    return float(held.mean()), float((high[given] - low[given]).mean()), float(1 - given.mean())


def interval_bounds(
    method: IntervalMethod, counts: tuple[np.ndarray, ...], animals: int, validation: int, confidence: float, draws: int
) -> tuple[np.ndarray, np.ndarray]:
    """The method's bounds for each population (NaN where it gives none); the Bayesian one with `draws` draws."""
    positives, se_successes, sp_successes = counts
    full = (
        positives,
        np.full_like(positives, animals),
        se_successes,
        np.full_like(positives, validation),
        sp_successes,
        np.full_like(positives, validation),
    )
    estimate, low, high = corrected_share_arrays(*full, confidence=confidence, method=LANG_REICZIGEL)
    if method != LANG_REICZIGEL:
        valid = ~np.isnan(estimate)
        bayes_low, bayes_high = bayes_bounds(*[np.where(valid, v, 1) for v in full], confidence, draws=draws)
        low = np.where(valid, np.minimum(bayes_low, estimate), np.nan)
        high = np.where(valid, np.maximum(bayes_high, estimate), np.nan)
    return low, high


def simulate_cell(
    cell: tuple[float, int, int, float, float],
    populations: int,
    seed: int,
    method: IntervalMethod,
    confidence: float = CONFIDENCE,
    draws: int = 2000,
    baseline: bool = True,
) -> CellResult:
    """Coverage and width of the interval (and of the old one) over `populations` simulated populations of a cell."""
    share, animals, validation, se, sp = cell
    rng = np.random.default_rng([seed, int(share * 1000), animals, validation, int(se * 1000), int(sp * 1000)])
    counts = draw_counts(rng, cell, populations)
    coverage, width, none = coverage_and_width(
        share, *interval_bounds(method, counts, animals, validation, confidence, draws)
    )
    old = (
        coverage_and_width(share, *baseline_bounds(counts[0], animals, counts[1], counts[2], validation, confidence))
        if baseline
        else (None, None, 0.0)
    )
    return CellResult(share, animals, validation, se, sp, populations, coverage, width, none, old[0], old[1])


def simulate_grid(
    grid: CoverageGrid,
    populations: int,
    seed: int,
    method: IntervalMethod,
    confidence: float = CONFIDENCE,
    draws: int = 2000,
    baseline: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> list[CellResult]:
    """simulate_cell over every cell of the grid, in the grid's order."""
    cells = grid.cells()
    results = []
    for index, cell in enumerate(cells):
        results.append(simulate_cell(cell, populations, seed, method, confidence, draws, baseline))
        if progress is not None:
            progress(index + 1, len(cells))
    return results


def judged(results: Sequence[CellResult]) -> list[CellResult]:
    """The cells the target applies to: at least MIN_ANIMALS counted and MIN_VALIDATION validation animals per class."""
    return [
        r for r in results if r.animals >= MIN_ANIMALS and r.validation >= MIN_VALIDATION and r.coverage is not None
    ]


def summarise(results: Sequence[CellResult], target: float = TARGET) -> dict[str, Any]:
    """Min and mean coverage and width over the judged cells, the cells under target, and the same for the baseline."""
    cells = judged(results)
    coverage = np.array([r.coverage for r in cells], dtype=float)
    width = np.array([r.mean_width for r in cells], dtype=float)
    old = np.array([r.baseline_coverage for r in cells if r.baseline_coverage is not None], dtype=float)
    old_width = np.array([r.baseline_mean_width for r in cells if r.baseline_mean_width is not None], dtype=float)
    worst = min(cells, key=lambda r: r.coverage) if cells else None
    return {
        "cells": len(results),
        "judged_cells": len(cells),
        "target": target,
        "coverage_min": float(coverage.min()) if cells else None,
        "coverage_mean": float(coverage.mean()) if cells else None,
        "cells_below_target": int((coverage < target).sum()),
        "mean_width": float(width.mean()) if cells else None,
        "worst_cell": asdict(worst) if worst else None,
        "no_interval_mean": float(np.mean([r.no_interval for r in cells])) if cells else None,
        "baseline_coverage_min": float(old.min()) if old.size else None,
        "baseline_coverage_mean": float(old.mean()) if old.size else None,
        "baseline_mean_width": float(old_width.mean()) if old_width.size else None,
        "meets_target": bool(cells) and bool((coverage >= target).all()),
    }


# ---------------------------------------------------------------- end to end: generated drops through the pipeline

END_TO_END_TARGET = 0.90  # issue 21: the report's interval holds the true share in at least this share of drops


@dataclass(frozen=True)
class DropCoverage:
    """One generated drop run through the pipeline: how many animals the report counted (decided male or female) and
    how many of them are truly male, the animals with a face and their true males, and the report's corrected share."""

    drop: str
    counted: int
    counted_true_males: int
    detected: int
    detected_true_males: int
    corrected: float | None
    ci_low: float | None
    ci_high: float | None
    note: str | None

    def true_share(self) -> float | None:
        """The true male share among the animals the report counted (its estimand), None when it counted none."""
        return self.counted_true_males / self.counted if self.counted else None

    def covered(self) -> bool | None:
        """Whether the report's interval holds the true share; None when the report gave no interval."""
        share = self.true_share()
        if share is None or self.ci_low is None or self.ci_high is None:
            return None
        return self.ci_low <= share <= self.ci_high

    def sentence(self) -> str:
        """One line: the drop, its true share, the report's interval and whether it holds the share."""
        share, covered = self.true_share(), self.covered()
        interval = (
            "no interval" if self.ci_low is None or self.ci_high is None else f"{self.ci_low:.2f}-{self.ci_high:.2f}"
        )
        truth = "none counted" if share is None else f"{self.counted_true_males}/{self.counted} = {share:.2f}"
        verdict = {True: "holds it", False: "misses it", None: "not judged"}[covered]
        return f"{self.drop}: true male share {truth}, report's interval {interval}: {verdict}"

    def covers_detected(self) -> bool | None:
        """Whether the interval holds the true share among every animal with a face (abstained ones included)."""
        if not self.detected or self.ci_low is None or self.ci_high is None:
            return None
        return self.ci_low <= self.detected_true_males / self.detected <= self.ci_high


def end_to_end_summary(drops: Sequence[DropCoverage], target: float = END_TO_END_TARGET) -> dict[str, Any]:
    """Share of drops whose report interval holds the true share, over the drops that got one, with mean width."""
    judged_drops = [d for d in drops if d.covered() is not None]
    covered = [bool(d.covered()) for d in judged_drops]
    widths = [d.ci_high - d.ci_low for d in judged_drops if d.ci_high is not None and d.ci_low is not None]
    detected = [bool(d.covers_detected()) for d in judged_drops if d.covers_detected() is not None]
    coverage = float(np.mean(covered)) if covered else None
    return {
        "drops": len(drops),
        "with_interval": len(judged_drops),
        "target": target,
        "coverage": coverage,
        "coverage_of_detected_share": float(np.mean(detected)) if detected else None,
        "mean_width": float(np.mean(widths)) if widths else None,
        "mean_counted": float(np.mean([d.counted for d in drops])) if drops else None,
        "meets_target": coverage is not None and coverage >= target,
        "no_interval_notes": sorted({d.note for d in drops if d.covered() is None and d.note}),
    }
