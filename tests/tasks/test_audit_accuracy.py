"""Machine accuracy on the review queue's audit slice: known counts per month and model, Wilson intervals, undo and
items outside the slice left out, and the report's review section showing it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from models.statistics import wilson_interval
from reports.html import template_environment
from schemas.config import Settings
from schemas.home import HomeLayout
from tasks.catalog import query, refresh_views
from tasks.report_sections import prediction_sections
from tasks.review import save_correction
from tests.review_home import DROP, write_review_home

JUNE, JULY = datetime(2026, 6, 3, 9, tzinfo=UTC), datetime(2026, 7, 1, 9, tzinfo=UTC)


def correction(kind: str, target: str, field: str, machine: str, human: str, when: datetime, audit: bool = True):
    """One set row of a keeper's decision (only what the audit counts)."""
    return {
        "correction_id": uuid.uuid4().hex,
        "action": "set",
        "target_kind": kind,
        "target_id": target,
        "drop_id": "" if kind == "animal" else DROP,
        "field": field,
        "machine_value": machine,
        "human_value": human,
        "model_version": {"sex": "panda-gender@v1", "outcome": "cganet@v1", "is_face": "mtcnn-panda@v1"}[field],
        "reviewer": "kim",
        "created_at": when,
        "audit": audit,
    }


@pytest.fixture()
def home(tmp_path: Path) -> HomeLayout:
    home = write_review_home(tmp_path / "home")
    rows = [
        correction("face", "f1", "sex", "male", "male", JUNE),  # kept
        correction("face", "f2", "sex", "female", "female", JUNE),  # kept
        correction("face", "f3", "sex", "male", "male", JUNE),  # kept
        correction("face", "f4", "sex", "male", "female", JUNE),  # changed
        correction("face", "f5", "is_face", "true", "false", JUNE),  # not a face: the detector was wrong
        correction("animal", "A02", "sex", "unknown", "male", JUNE),  # the model made no call
        correction("face", "f6", "sex", "male", "female", JUNE, audit=False),  # ranked, not audited: left out
        correction("encounter", "E01", "outcome", "success", "success", JUNE),
        correction("face", "f7", "sex", "female", "female", JULY),
    ]
    wrong = correction("encounter", "E02", "outcome", "success", "failure", JUNE)
    undo = {**wrong, "correction_id": uuid.uuid4().hex, "action": "undo", "undoes": wrong["correction_id"]}
    for row in [*rows, wrong, {**undo, "human_value": None}]:
        save_correction(home, row)
    refresh_views(home, Settings().view_thresholds())
    return home


def test_audit_accuracy_per_month_and_model_from_known_counts(home: HomeLayout) -> None:
    rows = query(home, "SELECT * FROM audit_accuracy ORDER BY month, model").to_pylist()
    counts = {(r["month"], r["model"]): (r["n"], r["correct"], r["abstained"]) for r in rows}
    assert counts == {
        ("2026-06", "detector"): (5, 4, 0),
        ("2026-06", "gender"): (4, 3, 1),
        ("2026-06", "mating"): (1, 1, 0),  # the undone wrong call is not counted
        ("2026-07", "detector"): (1, 1, 0),
        ("2026-07", "gender"): (1, 1, 0),
    }
    gender = next(r for r in rows if (r["month"], r["model"]) == ("2026-06", "gender"))
    expected = wilson_interval(3, 4)
    assert (gender["accuracy"], gender["ci_low"], gender["ci_high"]) == pytest.approx(
        (0.75, expected.ci_low, expected.ci_high)
    )
    assert 0.2 < gender["ci_low"] < 0.75 < gender["ci_high"] < 1.0 and gender["model_versions"] == "panda-gender@v1"


def test_the_report_shows_the_audit_accuracy_with_its_counts(home: HomeLayout) -> None:
    review = prediction_sections(home, [DROP])["review"]
    assert [(a["month"], a["model"], a["n"]) for a in review["audit"]][:2] == [
        ("2026-06", "detector", 5),
        ("2026-06", "gender", 4),
    ]
    html = template_environment().get_template("_review.html.j2").render(review=review)
    assert "Machine accuracy on the audit slice" in html
    assert '<td>2026-06</td><td>gender</td><td class="num">4</td><td class="num">3</td>' in html
    assert "0.750" in html and f"{wilson_interval(3, 4).ci_low:.3f}" in html
