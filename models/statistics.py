"""Proportions ecologists can trust: Wilson score intervals and the Rogan-Gladen correction for a classifier's errors.

Rogan-Gladen (1978): when a classifier with sensitivity Se and specificity Sp labels a share p of the counted
individuals positive, the true share is p_c = (p + Sp - 1) / (Se + Sp - 1), clipped to [0, 1].

corrected_share_interval is the one interval of a corrected share: Se and Sp are themselves estimates from the
model card's validation animals (se_successes of se_n males called male, sp_successes of sp_n females called
female), and the interval carries their uncertainty as well as that of the counted share. Two published methods
are implemented; breedwatch simulate coverage measures both, and the one used is LANG_REICZIGEL (see README,
Statistics):
- Lang and Reiczigel (2014, Prev. Vet. Med. 113:13-22): an adjusted Wald interval of the Rogan-Gladen estimate,
  with z^2/2 successes and z^2 trials added to the counted share, 1 and 2 to each validation sample, the delta-method
  variance of all three binomials and a shift of the centre that removes the first-order bias;
- a Bayesian interval: equal-tailed quantiles of the corrected share over Monte Carlo draws of Jeffreys
  Beta(x + 1/2, n - x + 1/2) posteriors of the apparent share, Se and Sp (draws with Se + Sp <= 1 are dropped, a
  classifier no better than chance being ruled out a priori), seeded so the same counts give the same interval.

corrected_proportion, the older interval, maps the Wilson bounds through the correction and treats Se and Sp as
exact (the method of epiR's `epi.prev`); it under-covers when the validation set is small and is kept only as the
baseline the simulation compares against.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.stats import binomtest, norm

CONFIDENCE = 0.95
IntervalMethod = Literal["lang-reiczigel", "bayes"]
LANG_REICZIGEL: IntervalMethod = "lang-reiczigel"
WITH_KNOWN = "lang-reiczigel+known"  # classified items corrected, items of known class added as counted
KNOWN_ONLY = "known"  # every counted item's class is known: the share is a count, with nothing to correct
BAYES_DRAWS = 20_000  # Monte Carlo draws of the Bayesian interval: its quantiles move by about 0.002 between seeds
BAYES_SEED = 2014  # fixed, so a catalog refresh gives the same interval for the same counts


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
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not math.isfinite(value)
        or not 0 <= value <= 1
    ):
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
        return Corrected(
            None,
            None,
            None,
            (
                f"No correction: sensitivity {se:.3f} + specificity {sp:.3f} <= 1, "
                "the classifier is no better than chance."
            ),
        )
    estimate = rogan_gladen(observed.estimate, se, sp)
    low, high = rogan_gladen(observed.ci_low, se, sp), rogan_gladen(observed.ci_high, se, sp)
    return Corrected(estimate, low, high, clipping_note(observed.estimate, se, sp))


def clipping_note(apparent: float, se: float, sp: float) -> str | None:
    """Say so when the raw share lies outside [1 - Sp, Se], where the corrected estimate is clipped to 0 or 1."""
    if apparent < 1 - sp:
        return (
            f"The raw share {apparent:.3f} is below 1 - specificity ({1 - sp:.3f}): "
            "the corrected estimate is clipped to 0."
        )
    if apparent > se:
        return (
            f"The raw share {apparent:.3f} is above the sensitivity ({se:.3f}): the corrected estimate is clipped to 1."
        )
    return None


def rates_from_confusion(matrix: Sequence[Sequence[int]]) -> ClassifierRates:
    """Sensitivity TP/(TP+FN) and specificity TN/(TN+FP) from a confusion matrix [[TN, FP], [FN, TP]] (None for an empty
    class)."""
    if len(matrix) != 2 or any(len(row) != 2 for row in matrix):
        raise ValueError(f"a confusion matrix must be [[TN, FP], [FN, TP]], not {matrix!r}")
    (tn, fp), (fn, tp) = matrix
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in (tn, fp, fn, tp)):
        raise ValueError(f"the cells of a confusion matrix must be counts (whole numbers >= 0), not {matrix!r}")
    positives, negatives = tp + fn, tn + fp
    return ClassifierRates(
        tp / positives if positives else None, tn / negatives if negatives else None, positives, negatives
    )


def check_count_pair(successes: int, n: int, name: str) -> None:
    """check_counts with the name of the sample in the message."""
    try:
        check_counts(successes, n)
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from None


def lang_reiczigel_bounds(
    positives: np.ndarray,
    n: np.ndarray,
    se_successes: np.ndarray,
    se_n: np.ndarray,
    sp_successes: np.ndarray,
    sp_n: np.ndarray,
    confidence: float = CONFIDENCE,
) -> tuple[np.ndarray, np.ndarray]:
    """Lang-Reiczigel (2014) adjusted Wald bounds of the corrected share, elementwise, clipped to [0, 1]."""
    z = float(norm.ppf((1 + confidence) / 2))
    share = (np.asarray(positives) + z * z / 2) / (np.asarray(n) + z * z)
    n_share = np.asarray(n) + z * z
    se = (np.asarray(se_successes) + 1) / (np.asarray(se_n) + 2)
    sp = (np.asarray(sp_successes) + 1) / (np.asarray(sp_n) + 2)
    n_se, n_sp = np.asarray(se_n) + 2, np.asarray(sp_n) + 2
    youden = se + sp - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        centre = (share + sp - 1) / youden
        spread = np.sqrt(
            share * (1 - share) / n_share + se * (1 - se) / n_se * centre**2 + sp * (1 - sp) / n_sp * (1 - centre) ** 2
        ) / np.abs(youden)
    shift = 2 * z * z * (centre * se * (1 - se) / n_se - (1 - centre) * sp * (1 - sp) / n_sp)
    return np.clip(centre + shift - z * spread, 0, 1), np.clip(centre + shift + z * spread, 0, 1)


def bayes_bounds(
    positives: np.ndarray,
    n: np.ndarray,
    se_successes: np.ndarray,
    se_n: np.ndarray,
    sp_successes: np.ndarray,
    sp_n: np.ndarray,
    confidence: float = CONFIDENCE,
    draws: int = BAYES_DRAWS,
    seed: int = BAYES_SEED,
) -> tuple[np.ndarray, np.ndarray]:
    """Equal-tailed Bayesian bounds of the corrected share from Jeffreys posteriors of share, Se and Sp, elementwise."""
    rng = np.random.default_rng(seed)
    shape = np.broadcast(positives, n, se_successes, se_n, sp_successes, sp_n).shape
    columns = [
        np.broadcast_to(np.asarray(v, dtype=float), shape).reshape(-1, 1)
        for v in (positives, n, se_successes, se_n, sp_successes, sp_n)
    ]
    x, m, xse, mse, xsp, msp = columns
    share = rng.beta(x + 0.5, m - x + 0.5, size=(x.shape[0], draws))
    se = rng.beta(xse + 0.5, mse - xse + 0.5, size=share.shape)
    sp = rng.beta(xsp + 0.5, msp - xsp + 0.5, size=share.shape)
    youden = se + sp - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        corrected = np.where(youden > 0, np.clip((share + sp - 1) / youden, 0, 1), np.nan)
    alpha = 1 - confidence
    low, high = np.nanquantile(corrected, [alpha / 2, 1 - alpha / 2], axis=1)
    return low.reshape(shape), high.reshape(shape)


def share_degenerate_note(n: int, se_successes: int, se_n: int, sp_successes: int, sp_n: int) -> str | None:
    """The sentence saying why no corrected share can be given for these counts, or None when one can."""
    if n == 0:
        return "No correction: no individual was counted."
    missing = [name for name, count in (("sensitivity", se_n), ("specificity", sp_n)) if count == 0]
    if missing:
        return (
            f"No correction: the model card's {' and '.join(missing)} "
            f"{'was' if len(missing) == 1 else 'were'} measured on no validation animal."
        )
    se, sp = se_successes / se_n, sp_successes / sp_n
    if se + sp <= 1:
        return (
            f"No correction: sensitivity {se:.3f} ({se_successes}/{se_n}) + specificity {sp:.3f} "
            f"({sp_successes}/{sp_n}) <= 1, the classifier is no better than chance."
        )
    return None


def corrected_share_interval(
    positives: int,
    n: int,
    se_successes: int,
    se_n: int,
    sp_successes: int,
    sp_n: int,
    confidence: float = CONFIDENCE,
    method: IntervalMethod = LANG_REICZIGEL,
) -> Corrected:
    """The Rogan-Gladen corrected share with an interval carrying the uncertainty of the share, Se and Sp, and a note.

    positives of n counted individuals were called positive; the classifier called se_successes of se_n validation
    positives positive and sp_successes of sp_n validation negatives negative. The estimate is Rogan-Gladen with the
    observed rates, clipped to [0, 1]; estimate and interval are None, with a sentence saying why, when nothing was
    counted, a rate has no validation animal, or the observed Se + Sp <= 1.
    """
    check_count_pair(positives, n, "counted individuals")
    check_count_pair(se_successes, se_n, "sensitivity sample")
    check_count_pair(sp_successes, sp_n, "specificity sample")
    check_rate(confidence, "confidence")
    note = share_degenerate_note(n, se_successes, se_n, sp_successes, sp_n)
    if note is not None:
        return Corrected(None, None, None, note)
    estimate, low, high = corrected_share_arrays(
        np.array([positives]),
        np.array([n]),
        np.array([se_successes]),
        np.array([se_n]),
        np.array([sp_successes]),
        np.array([sp_n]),
        confidence,
        method,
    )
    se, sp = se_successes / se_n, sp_successes / sp_n
    return Corrected(float(estimate[0]), float(low[0]), float(high[0]), clipping_note(positives / n, se, sp))


def share_with_known(classified: Corrected, classified_n: int, known_positives: int, known_n: int) -> Corrected:
    """The positive share among classified and known items together: the known items as counted, the classified ones
    at their corrected share and bounds, each part weighted by its size.

    The known part (a keeper's correction, the registry) adds no uncertainty to the share among the counted items, so
    the interval is the classified part's interval scaled by its weight; with nothing classified it is the count
    itself. No estimate when the classified part has none."""
    check_count_pair(known_positives, known_n, "known items")
    if known_n == 0:
        return classified
    if classified_n == 0:
        share = known_positives / known_n
        return Corrected(share, share, share, None)
    if classified.estimate is None or classified.ci_low is None or classified.ci_high is None:
        return classified
    total = classified_n + known_n

    def mixed(value: float) -> float:
        """The share among all counted items when the classified ones have this share."""
        return (known_positives + classified_n * value) / total

    return Corrected(mixed(classified.estimate), mixed(classified.ci_low), mixed(classified.ci_high), classified.note)


def corrected_share_arrays(
    positives: np.ndarray,
    n: np.ndarray,
    se_successes: np.ndarray,
    se_n: np.ndarray,
    sp_successes: np.ndarray,
    sp_n: np.ndarray,
    confidence: float = CONFIDENCE,
    method: IntervalMethod = LANG_REICZIGEL,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """corrected_share_interval's estimate and bounds for arrays of counts; NaN where it gives None."""
    counts = [np.asarray(v, dtype=float) for v in (positives, n, se_successes, se_n, sp_successes, sp_n)]
    x, m, xse, mse, xsp, msp = counts
    with np.errstate(divide="ignore", invalid="ignore"):
        se, sp, apparent = xse / mse, xsp / msp, x / m
        valid = (m > 0) & (mse > 0) & (msp > 0) & (se + sp > 1)
        estimate = np.where(valid, np.clip((apparent + sp - 1) / (se + sp - 1), 0, 1), np.nan)
    bounds = lang_reiczigel_bounds if method == LANG_REICZIGEL else bayes_bounds
    low, high = bounds(*[np.where(valid, v, 1.0) for v in counts], confidence)
    low = np.where(valid, np.minimum(low, estimate), np.nan)
    high = np.where(valid, np.maximum(high, estimate), np.nan)
    return estimate, low, high


@dataclass(frozen=True)
class ShareWording:
    """How sentences about a corrected share name its two classes, what is counted and what more data means."""

    positives: str = "males"
    negatives: str = "females"
    positive_adjective: str = "male"
    negative_adjective: str = "female"
    validation_units: str = "validation animals"
    test_units: str = "test animals"
    label_more: str = "label more animals of known sex"
    items: str = "animals"
    counted: str = "animals counted"
    none_counted: str = "no individual was counted"
    count_more: str = "observe longer to count more individuals"
    all_known: str = "every counted animal's sex is known (a keeper's or the registry's), so nothing is corrected"


SEX_WORDING = ShareWording()
OUTCOME_WORDING = ShareWording(
    positives="successes",
    negatives="failures",
    positive_adjective="successful",
    negative_adjective="failed",
    validation_units="validation encounters",
    test_units="validation encounters",
    label_more="record the outcome of more encounters for training",
    items="encounters",
    counted="encounters counted",
    none_counted="no encounter was decided",
    count_more="observe more encounters",
    all_known="every counted encounter's outcome is known (a keeper's or the record's), so nothing is corrected",
)


@dataclass(frozen=True)
class WidthDrivers:
    """What makes a corrected interval wide: the validation rates' share of its variance and what more data would do."""

    validation_share: float  # of the delta-method variance, from Se and Sp (the rest: the animals counted)
    width_more_validation: float | None  # width with 4 times the validation animals (same rates)
    width_more_counted: float | None  # width with 4 times the animals counted (same share)
    sentence: str


def interval_width(result: Corrected) -> float | None:
    """ci_high - ci_low, or None without an interval."""
    return None if result.ci_low is None or result.ci_high is None else result.ci_high - result.ci_low


def width_drivers(
    positives: int,
    n: int,
    se_successes: int,
    se_n: int,
    sp_successes: int,
    sp_n: int,
    wording: ShareWording = SEX_WORDING,
) -> WidthDrivers | None:
    """What makes the corrected interval wide, too few validation animals or too few counted; None without one.

    The sentence names whichever of 4 times the validation animals or 4 times the animals counted narrows the
    interval more; validation_share is the rates' share of the delta-method variance, for reference.
    """
    if share_degenerate_note(n, se_successes, se_n, sp_successes, sp_n) is not None:
        return None
    # the delta-method terms with Lang-Reiczigel's adjusted shares, so that a rate of 4/4 still counts as uncertain
    share = (positives + 2) / (n + 4)
    se, sp = (se_successes + 1) / (se_n + 2), (sp_successes + 1) / (sp_n + 2)
    corrected = min(1.0, max(0.0, (share + sp - 1) / (se + sp - 1))) if se + sp > 1 else 0.5
    counted = share * (1 - share) / (n + 4)
    validation = se * (1 - se) / (se_n + 2) * corrected**2 + sp * (1 - sp) / (sp_n + 2) * (1 - corrected) ** 2
    total = counted + validation
    fraction = validation / total if total > 0 else 0.0
    more_validation = interval_width(
        corrected_share_interval(positives, n, 4 * se_successes, 4 * se_n, 4 * sp_successes, 4 * sp_n)
    )
    more_counted = interval_width(
        corrected_share_interval(4 * positives, 4 * n, se_successes, se_n, sp_successes, sp_n)
    )
    by_validation = (
        more_validation < more_counted if more_validation is not None and more_counted is not None else fraction >= 0.5
    )
    if by_validation:
        sentence = (
            f"Mostly too few {wording.validation_units} (the rates come from {se_n} {wording.positives} and {sp_n} "
            f"{wording.negatives}): {wording.label_more} to narrow it."
        )
    else:
        sentence = f"Mostly too few {wording.counted} ({n}): {wording.count_more}."
    return WidthDrivers(fraction, more_validation, more_counted, sentence)
