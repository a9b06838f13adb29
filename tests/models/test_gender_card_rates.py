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
