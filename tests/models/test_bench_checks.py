"""The comparisons behind `breedwatch bench`'s equality statements."""

from __future__ import annotations

import numpy as np
import pytest

from models.bench.checks import box_check, box_iou, mfcc_check, value_check
from models.bench.rates import even_sample, median_seconds, rates, scale


def test_box_iou_of_known_overlaps() -> None:
    assert box_iou((0, 0, 0.2, 0.2), (0, 0, 0.2, 0.2)) == pytest.approx(1.0)
    assert box_iou((0, 0, 0.2, 0.2), (0.1, 0, 0.2, 0.2)) == pytest.approx(0.02 / 0.06)
    assert box_iou((0, 0, 0.1, 0.1), (0.5, 0.5, 0.1, 0.1)) == 0.0


def test_box_check_fails_on_a_shifted_or_missing_box() -> None:
    naive = {"m1": [(0.1, 0.1, 0.2, 0.2)], "m2": []}
    assert box_check(naive, {"m1": [(0.1, 0.1, 0.2, 0.2)]})["passed"]
    shifted = box_check(naive, {"m1": [(0.15, 0.1, 0.2, 0.2)]})
    assert not shifted["passed"] and shifted["min_iou"] < 0.9
    missing = box_check(naive, {"m1": [(0.1, 0.1, 0.2, 0.2)], "m2": [(0.5, 0.5, 0.1, 0.1)]})
    assert not missing["counts_equal"] and not missing["passed"]


def test_value_and_mfcc_checks_apply_their_tolerances() -> None:
    assert value_check({"a": 0.5}, {"a": 0.505}, 0.01)["passed"]
    assert not value_check({"a": 0.5}, {"a": 0.52}, 0.01)["passed"]
    assert not value_check({"a": 0.5, "b": 0.1}, {"a": 0.5}, 0.01)["passed"]
    reference = np.random.default_rng(0).normal(size=(2, 86, 40)).astype(np.float32)
    assert mfcc_check({"s": reference}, {"s": reference * (1 + 1e-6)})["passed"]
    assert not mfcc_check({"s": reference}, {"s": reference + 1e-2})["passed"]


def test_a_check_over_nothing_fails() -> None:
    assert not box_check({}, {})["passed"]
    assert not box_check({"m1": []}, {"m1": []})["passed"]  # an image compared, but no box on it
    assert not value_check({}, {}, 0.01)["passed"]
    assert not mfcc_check({}, {})["passed"]


def test_rates_use_medians_of_totals() -> None:
    seconds = {
        "pipeline": median_seconds([{"a": 1.0, "b": 1.0}, {"a": 3.0, "b": 2.0}, {"a": 2.0, "b": 1.0}]),
        "naive": {"total": 8.0},
        "bound": {"total": 2.0},
    }
    assert seconds["pipeline"] == {"a": 2.0, "b": 1.0, "total": 3.0}
    result = rates(12, seconds)
    assert (
        result["pipeline_per_s"] == 4.0
        and result["vs_naive"] == pytest.approx(8 / 3)
        and result["vs_bound"] == pytest.approx(2 / 3)
    )


def test_even_sample_spreads_over_the_items_and_scale_extrapolates() -> None:
    assert even_sample(list(range(10)), 4) == [0, 3, 6, 9]
    assert even_sample([1, 2], 5) == [1, 2] and even_sample([1, 2, 3], None) == [1, 2, 3]
    assert scale(3.0, 30, 10) == 9.0 and scale(1.0, 5, 0) == 0.0


def test_each_precision_is_held_to_its_own_tolerance() -> None:
    from models.bench.checks import gender_tolerance, mating_tolerance

    assert gender_tolerance("int8") == mating_tolerance("int8") == 0.02
    assert gender_tolerance("fp32") == gender_tolerance("bf16") == mating_tolerance("bf16") == 0.01
    assert mating_tolerance("fp32") == 1e-3
