"""The share among classified and known items together: known items as counted, classified ones corrected."""

from __future__ import annotations

import pytest

from models.statistics import Corrected, share_with_known


def test_the_known_part_is_added_as_counted_and_the_interval_scales_with_the_classified_part() -> None:
    classified = Corrected(0.5, 0.2, 0.8, None)
    mixed = share_with_known(classified, classified_n=10, known_positives=6, known_n=10)
    assert (mixed.estimate, mixed.ci_low, mixed.ci_high) == pytest.approx((0.55, 0.4, 0.7))


def test_nothing_known_leaves_the_corrected_share_and_nothing_classified_gives_the_count() -> None:
    classified = Corrected(0.3, 0.1, 0.6, "clipped")
    assert share_with_known(classified, 12, 0, 0) == classified
    exact = share_with_known(Corrected(None, None, None, "none counted"), 0, 3, 4)
    assert exact.estimate == exact.ci_low == exact.ci_high == 0.75


def test_classified_items_without_a_correction_give_no_mixed_share() -> None:
    missing = Corrected(None, None, None, "No correction: the model card gives no sensitivity and specificity.")
    assert share_with_known(missing, 5, 2, 3) == missing


def test_impossible_known_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="known items"):
        share_with_known(Corrected(0.5, 0.4, 0.6), 4, 5, 3)
