"""The report's gender-ratio section: its wording and what it says about the width of the corrected interval."""

from __future__ import annotations

from models.statistics import ClassifierRates
from models.summaries import gender_ratio_row
from reports.html import template_environment


def render(rows: list[dict]) -> str:
    """The gender section alone, with the given gender_ratio rows."""
    template = template_environment().get_template("_gender.html.j2")
    return template.render(
        gender_ratio=rows,
        ratio_scope="these drops",
        ratio_series=None,
        animals=[],
        face_events=[],
        gradcams=[],
        individuals=[],
        who_is_this=[],
    )


def counts(males: int, females: int, unknown: int) -> dict[str, int]:
    """gender_ratio's counts of machine-called animals (none of known sex)."""
    return {"called_males": males, "called_females": females, "known_males": 0, "known_females": 0, "unknown": unknown}


def test_the_report_names_the_share_among_detected_individuals_and_what_makes_it_wide() -> None:
    rates = {"g@v1": ClassifierRates(0.75, 1.0, 4, 4)}
    few_labelled = gender_ratio_row({**counts(30, 50, 0), "level": "overall", "model_versions": ["g@v1"]}, rates)
    few_counted = gender_ratio_row(
        {
            "level": "deployment",
            "site": "N",
            "deployment_id": "d",
            **counts(3, 4, 1),
            "model_versions": ["g@v2"],
        },
        {"g@v2": ClassifierRates(0.95, 0.95, 100, 100)},
    )
    html = render([few_counted, few_labelled])
    assert "share among detected individuals" in html
    assert "label more animals of known sex" in html and "observe longer" in html
    assert "with 4 times the validation animals" in html
    assert "carries the" in html and "uncertainty of those rates" in html


def test_a_row_without_a_correction_shows_no_width_advice() -> None:
    row = gender_ratio_row({**counts(0, 0, 2), "level": "overall", "model_versions": []}, {})
    html = render([row])
    assert "label more animals" not in html and "observe longer" not in html and "n/a" in html
