"""Proportions ecologists can trust: Wilson score intervals and the Rogan-Gladen correction for a classifier's errors.

Rogan-Gladen (1978): when a classifier with sensitivity Se and specificity Sp labels a share p of the counted
individuals positive, the true share is p_c = (p + Sp - 1) / (Se + Sp - 1), clipped to [0, 1].

Interval of the corrected share: the Wilson score interval of p is mapped through the same correction. With
Se + Sp > 1 the correction is increasing in p, so the bounds map to bounds and the coverage of the Wilson interval
carries over for the given Se and Sp (the method of epiR's `epi.prev`, Stevenson et al., for the true prevalence
from an apparent-prevalence interval). It treats Se and Sp as known: the uncertainty of the model card's estimates
is not added, so the interval is too narrow when the validation set was small; the card's validation counts are
reported beside it for that reason.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy.stats import binomtest

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Proportion:
    """A share of n with its confidence interval; all three are None when n is 0."""

    successes: int
    n: int
    estimate: float | None
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class Corrected:
    """A Rogan-Gladen corrected share and interval, or None values with the sentence saying why."""

    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    note: str | None = None


@dataclass(frozen=True)
class ClassifierRates:
    """Sensitivity and specificity of a binary classifier with the counts they were measured on."""

    sensitivity: float | None
    specificity: float | None
    n_positive: int
    n_negative: int


def check_counts(successes: int, n: int) -> None:
    """Refuse counts that are not whole numbers with 0 <= successes <= n."""
    for name, value in (("successes", successes), ("n", n)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be a whole number, not {value!r}")
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"counts must satisfy 0 <= successes <= n, not successes={successes}, n={n}")


def check_rate(value: float, name: str) -> float:
    """A rate (sensitivity, specificity, confidence) must be a finite number in [0, 1]."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number between 0 and 1, not {value!r}")
    return float(value)


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> Proportion:
    """The share successes / n with its Wilson score interval (scipy); no estimate and no interval when n is 0."""
    check_counts(successes, n)
    check_rate(confidence, "confidence")
    if n == 0:
        return Proportion(successes, n, None, None, None)
    interval = binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return Proportion(successes, n, successes / n, clip01(interval.low), clip01(interval.high))


def clip01(value: float) -> float:
    """Clip to [0, 1] (also removes floating-point dust such as -1e-17)."""
    return min(1.0, max(0.0, float(value)))


def rogan_gladen(apparent: float, sensitivity: float, specificity: float) -> float | None:
    """The true share (p + Sp - 1) / (Se + Sp - 1) clipped to [0, 1]; None when Se + Sp <= 1 makes it impossible."""
    check_rate(apparent, "apparent proportion")
    se, sp = check_rate(sensitivity, "sensitivity"), check_rate(specificity, "specificity")
    youden = se + sp - 1
    if youden <= 0:
        return None
    return clip01((apparent + sp - 1) / youden)


def corrected_proportion(observed: Proportion, sensitivity: float | None, specificity: float | None) -> Corrected:
    """Rogan-Gladen correction of a share and of its Wilson bounds, with a note whenever it cannot be or was clipped."""
    if observed.estimate is None or observed.ci_low is None or observed.ci_high is None:
        return Corrected(None, None, None, "No correction: no individual was counted.")
    if sensitivity is None or specificity is None:
        return Corrected(None, None, None, "No correction: the model card gives no sensitivity and specificity.")
    se, sp = check_rate(sensitivity, "sensitivity"), check_rate(specificity, "specificity")
    if se + sp <= 1:
        return Corrected(None, None, None, f"No correction: sensitivity {se:.3f} + specificity {sp:.3f} <= 1, the classifier is no better than chance.")
    estimate = rogan_gladen(observed.estimate, se, sp)
    low, high = rogan_gladen(observed.ci_low, se, sp), rogan_gladen(observed.ci_high, se, sp)
    return Corrected(estimate, low, high, clipping_note(observed.estimate, se, sp))


def clipping_note(apparent: float, se: float, sp: float) -> str | None:
    """Say so when the raw share lies outside [1 - Sp, Se], where the corrected estimate is clipped to 0 or 1."""
    if apparent < 1 - sp:
        return f"The raw share {apparent:.3f} is below 1 - specificity ({1 - sp:.3f}): the corrected estimate is clipped to 0."
    if apparent > se:
        return f"The raw share {apparent:.3f} is above the sensitivity ({se:.3f}): the corrected estimate is clipped to 1."
    return None


def rates_from_confusion(matrix: Sequence[Sequence[int]]) -> ClassifierRates:
    """Sensitivity TP/(TP+FN) and specificity TN/(TN+FP) from a confusion matrix [[TN, FP], [FN, TP]] (None for an empty class)."""
    if len(matrix) != 2 or any(len(row) != 2 for row in matrix):
        raise ValueError(f"a confusion matrix must be [[TN, FP], [FN, TP]], not {matrix!r}")
    (tn, fp), (fn, tp) = matrix
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in (tn, fp, fn, tp)):
        raise ValueError(f"the cells of a confusion matrix must be counts (whole numbers >= 0), not {matrix!r}")
    positives, negatives = tp + fn, tn + fp
    return ClassifierRates(tp / positives if positives else None, tn / negatives if negatives else None, positives, negatives)
