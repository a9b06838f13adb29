"""The end-to-end coverage summary: a drop counts as covered only when the report gave an interval holding its truth."""

from __future__ import annotations

import pytest

from models.coverage import DropCoverage, end_to_end_summary


def drop(name: str, counted: int, males: int, low: float | None, high: float | None, note: str | None = None):
    """A drop whose report counted `counted` animals, `males` of them truly male, with the given interval."""
    return DropCoverage(name, counted, males, counted + 2, males + 1, None if low is None else 0.5, low, high, note)


def test_a_drop_is_covered_when_the_interval_holds_its_true_share() -> None:
    assert drop("a", 10, 4, 0.3, 0.5).covered() is True
    assert drop("b", 10, 4, 0.45, 0.9).covered() is False
    assert drop("c", 10, 4, None, None, "No correction: ...").covered() is None
    assert drop("d", 0, 0, 0.1, 0.9).covered() is None
    assert (
        "4/10 = 0.40" in drop("a", 10, 4, 0.3, 0.5).sentence() and "holds it" in drop("a", 10, 4, 0.3, 0.5).sentence()
    )


def test_the_summary_judges_only_drops_with_an_interval_and_names_why_others_have_none() -> None:
    drops = [
        drop("a", 10, 4, 0.3, 0.5),
        drop("b", 10, 4, 0.45, 0.9),
        drop("c", 20, 10, 0.2, 0.8),
        drop("d", 5, 1, None, None, "No correction: Se + Sp <= 1."),
    ]
    summary = end_to_end_summary(drops, target=0.9)
    assert (summary["drops"], summary["with_interval"]) == (4, 3)
    assert summary["coverage"] == pytest.approx(2 / 3) and not summary["meets_target"]
    assert summary["mean_width"] == pytest.approx((0.2 + 0.45 + 0.6) / 3)
    assert summary["no_interval_notes"] == ["No correction: Se + Sp <= 1."]
    assert end_to_end_summary([])["coverage"] is None and not end_to_end_summary([])["meets_target"]
