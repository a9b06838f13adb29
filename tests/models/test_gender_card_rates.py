"""The gender model card's per-animal rates: counts and Wilson intervals beside sensitivity and specificity."""

from __future__ import annotations

import pytest

from models.gender_training import error_rates
from models.statistics import wilson_interval
from models.summaries import card_rates


def animal(label: int, decision: str) -> dict:
    """One held-out animal's row as the per-animal evaluation gives it."""
    return {"label": label, "decision": decision}


def test_card_rates_carry_counts_and_wilson_intervals() -> None:
    rows = (
        [animal(1, "male")] * 3
        + [animal(1, "female")]
        + [animal(1, "unknown")]
        + [animal(0, "female")] * 4
        + [animal(0, "unknown")]
    )
    rates = error_rates({"animals": rows})
    assert (rates["decided_males"], rates["males_called_male"], rates["sensitivity"]) == (4, 3, 0.75)
    assert (rates["decided_females"], rates["females_called_female"], rates["specificity"]) == (4, 4, 1.0)
    se = wilson_interval(3, 4)
    assert rates["sensitivity_ci"] == [pytest.approx(se.ci_low), pytest.approx(se.ci_high)]
    assert rates["specificity_ci"][1] == 1.0 and rates["specificity_ci"][0] < 0.6
    read = card_rates({"metrics": {"rates": rates}})
    assert (read.sensitivity, read.specificity, read.n_positive, read.n_negative) == (0.75, 1.0, 4, 4)


def test_a_sex_without_decided_animals_has_no_rate_and_no_interval() -> None:
    rates = error_rates({"animals": [animal(0, "female"), animal(1, "unknown")]})
    assert (rates["sensitivity"], rates["sensitivity_ci"], rates["decided_males"]) == (None, None, 0)
    assert rates["specificity"] == 1.0


def test_rates_by_source_pool_each_animal_over_the_faces_of_one_source() -> None:
    from models.gender_training import rates_by_source

    # two males and two females; keeper photos right, detector faces wrong, for every animal
    animal_ids = ["M1", "M1", "M2", "M2", "F1", "F1", "F2", "F2"]
    labels = [1, 1, 1, 1, 0, 0, 0, 0]
    sources = ["keeper", "detector"] * 4
    p_male = [0.95, 0.05, 0.95, 0.05, 0.05, 0.95, 0.05, 0.95]
    found = rates_by_source(p_male, labels, animal_ids, sources)
    assert set(found) == {"keeper", "detector"}
    keeper, detector = found["keeper"], found["detector"]
    assert (keeper["sensitivity"], keeper["specificity"], keeper["decided_males"]) == (1.0, 1.0, 2)
    assert (detector["sensitivity"], detector["specificity"], detector["decided_females"]) == (0.0, 0.0, 2)
    assert rates_by_source(p_male, labels, animal_ids, ["keeper"] * 8) == {}


def test_card_source_rates_read_the_cards_sources() -> None:
    from models.summaries import card_source_rates

    card = {
        "metrics": {
            "rates": {"sensitivity": 0.9, "face_sources": ["detector", "keeper"]},
            "rates_by_source": {
                "detector": {"sensitivity": 0.6, "specificity": 0.7, "decided_males": 5, "decided_females": 6}
            },
        }
    }
    found = card_source_rates(card)
    assert found.measured_on == ("detector", "keeper")
    detector = found.of("detector")
    assert (detector.sensitivity, detector.specificity, detector.n_positive, detector.n_negative) == (0.6, 0.7, 5, 6)
    assert found.of("keeper") is None
    assert card_source_rates({"metrics": {}}).measured_on == ()


def test_the_report_lists_the_cards_rates_overall_and_per_face_source() -> None:
    from reports.model_cards import error_rate_rows

    rows = [animal(1, "male")] * 3 + [animal(1, "female")] + [animal(0, "female")] * 2
    overall = {**error_rates({"animals": rows}), "face_sources": ["detector", "keeper"]}
    keeper = error_rates({"animals": [animal(1, "male")] * 4 + [animal(0, "female")] * 2})
    listed = error_rate_rows({"metrics": {"rates": overall, "rates_by_source": {"keeper": keeper}}})
    assert [r["faces"] for r in listed] == ["detector and keeper", "keeper"]
    assert (listed[0]["sensitivity_counts"], listed[0]["specificity_counts"]) == ("3/4", "2/2")
    assert listed[1]["sensitivity"] == 1.0 and listed[1]["sensitivity_ci"][1] == 1.0
    assert error_rate_rows({"metrics": {}}) == []
