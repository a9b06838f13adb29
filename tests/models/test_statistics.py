"""Wilson intervals and the Rogan-Gladen correction against values computed by hand."""

from __future__ import annotations

import math

import pytest

from models.statistics import (
    Proportion,
    corrected_proportion,
    rates_from_confusion,
    rogan_gladen,
    wilson_interval,
)

Z = 1.959963984540054  # the 97.5% normal quantile


def wilson_by_hand(k: int, n: int) -> tuple[float, float]:
    """Wilson's formula written out: (p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)."""
    p = k / n
    centre = p + Z * Z / (2 * n)
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return (centre - half) / (1 + Z * Z / n), (centre + half) / (1 + Z * Z / n)


def test_wilson_matches_the_published_7_of_20_interval() -> None:
    result = wilson_interval(7, 20)
    assert result.estimate == pytest.approx(0.35)
    assert result.ci_low == pytest.approx(0.18119, abs=5e-5)
    assert result.ci_high == pytest.approx(0.56715, abs=5e-5)


@pytest.mark.parametrize(("k", "n"), [(1, 1), (3, 10), (12, 40), (99, 100), (250, 1000)])
def test_wilson_matches_the_formula(k: int, n: int) -> None:
    low, high = wilson_by_hand(k, n)
    result = wilson_interval(k, n)
    assert (result.ci_low, result.ci_high) == (pytest.approx(low, abs=1e-9), pytest.approx(high, abs=1e-9))


def test_wilson_at_the_edges() -> None:
    zero = wilson_interval(0, 10)
    assert (zero.estimate, zero.ci_low) == (0.0, 0.0)
    assert zero.ci_high == pytest.approx(0.27753, abs=5e-5)  # z^2/n / (1 + z^2/n)
    everything = wilson_interval(10, 10)
    assert (everything.estimate, everything.ci_high) == (1.0, 1.0)
    assert everything.ci_low == pytest.approx(1 - 0.27753, abs=5e-5)


def test_no_individuals_gives_no_estimate() -> None:
    assert wilson_interval(0, 0) == Proportion(0, 0, None, None, None)


@pytest.mark.parametrize(("k", "n"), [(-1, 3), (4, 3), (1.5, 3), (True, 3), (1, -2)])
def test_bad_counts_are_refused_in_one_sentence(k: object, n: object) -> None:
    with pytest.raises(ValueError, match="successes|n must"):
        wilson_interval(k, n)  # type: ignore[arg-type]


def test_rogan_gladen_by_hand() -> None:
    # (0.35 + 0.8 - 1) / (0.9 + 0.8 - 1) = 0.15 / 0.7
    assert rogan_gladen(0.35, 0.9, 0.8) == pytest.approx(0.15 / 0.7)
    assert rogan_gladen(0.1, 0.9, 0.8) == 0.0  # below 1 - Sp: clipped
    assert rogan_gladen(0.95, 0.9, 0.8) == 1.0  # above Se: clipped
    assert rogan_gladen(0.4, 1.0, 1.0) == pytest.approx(0.4)  # a perfect classifier changes nothing


@pytest.mark.parametrize(("se", "sp"), [(0.5, 0.5), (0.3, 0.6)])
def test_rogan_gladen_is_impossible_when_se_plus_sp_is_at_most_one(se: float, sp: float) -> None:
    assert rogan_gladen(0.4, se, sp) is None
    corrected = corrected_proportion(wilson_interval(7, 20), se, sp)
    assert (corrected.estimate, corrected.ci_low, corrected.ci_high) == (None, None, None)
    assert "no better than chance" in corrected.note


def test_corrected_interval_is_the_corrected_wilson_bounds() -> None:
    corrected = corrected_proportion(wilson_interval(7, 20), 0.9, 0.8)
    assert corrected.estimate == pytest.approx(0.214286, abs=1e-6)
    assert corrected.ci_low == 0.0  # (0.18119 - 0.2) / 0.7 < 0
    assert corrected.ci_high == pytest.approx((0.567149 - 0.2) / 0.7, abs=1e-5)
    assert corrected.note is None


def test_corrected_estimate_clipped_at_zero_says_so() -> None:
    corrected = corrected_proportion(wilson_interval(1, 20), 0.9, 0.8)
    assert corrected.estimate == 0.0
    assert "clipped to 0" in corrected.note


def test_correction_without_rates_or_individuals_says_why() -> None:
    assert "no sensitivity" in corrected_proportion(wilson_interval(3, 9), None, 0.9).note
    empty = corrected_proportion(wilson_interval(0, 0), 0.9, 0.9)
    assert empty.estimate is None and "no individual" in empty.note


def test_rates_must_be_between_zero_and_one() -> None:
    with pytest.raises(ValueError, match="sensitivity must be a number between 0 and 1"):
        corrected_proportion(wilson_interval(3, 9), 1.2, 0.9)
    with pytest.raises(ValueError, match="specificity"):
        rogan_gladen(0.3, 0.9, float("nan"))


def test_rates_from_a_confusion_matrix() -> None:
    rates = rates_from_confusion([[8, 2], [1, 9]])  # [[TN, FP], [FN, TP]]
    assert (rates.sensitivity, rates.specificity) == (0.9, 0.8)
    assert (rates.n_positive, rates.n_negative) == (10, 10)
    no_females = rates_from_confusion([[0, 0], [2, 6]])
    assert (no_females.sensitivity, no_females.specificity) == (0.75, None)
    with pytest.raises(ValueError, match="confusion matrix"):
        rates_from_confusion([[1, 2, 3], [4, 5, 6]])
    with pytest.raises(ValueError, match="counts"):
        rates_from_confusion([[1, -2], [3, 4]])
