"""Rows of the report's summary tables from counts: gender ratio (Wilson, and the corrected share with an interval
that carries the uncertainty of the card's rates), mating success with Wilson."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from models.statistics import (
    LANG_REICZIGEL,
    ClassifierRates,
    Corrected,
    corrected_share_interval,
    rates_from_confusion,
    width_drivers,
    wilson_interval,
)


def card_rates(card: Mapping[str, Any]) -> ClassifierRates | None:
    """Per-animal sensitivity and specificity (male positive) of a gender model card, if it has them.

    Read from metrics.rates (sensitivity, specificity, decided_males, decided_females: the test animals the abstain
    band decided, as train_gender writes them) when present,
    else from metrics.per_animal (explicit sensitivity/specificity, else its confusion matrix [[TN, FP], [FN, TP]]).
    """
    metrics = card.get("metrics") or {}
    rates = metrics.get("rates")
    if isinstance(rates, Mapping):
        se, sp = rates.get("sensitivity"), rates.get("specificity")
        return ClassifierRates(
            None if se is None else float(se),
            None if sp is None else float(sp),
            int(rates.get("decided_males") or 0),
            int(rates.get("decided_females") or 0),
        )
    per_animal = metrics.get("per_animal") or {}
    matrix = per_animal.get("confusion_matrix")
    if matrix is None:
        return None
    counted = rates_from_confusion(matrix)
    se, sp = per_animal.get("sensitivity"), per_animal.get("specificity")
    if se is not None and sp is not None:  # stated explicitly (e.g. measured on decided animals only): use them
        return ClassifierRates(float(se), float(sp), counted.n_positive, counted.n_negative)
    return counted


def missing_rate_note(rates: ClassifierRates) -> str | None:
    """Say which rate the card cannot give and why (no test animal of that sex)."""
    missing = [
        name
        for name, value in (("sensitivity", rates.sensitivity), ("specificity", rates.specificity))
        if value is None
    ]
    if not missing:
        return None
    return (
        f"No correction: the model card's test animals are {rates.n_positive} male and {rates.n_negative} female, "
        f"so its {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} unknown."
    )


def versions_note(versions: Sequence[str]) -> str:
    """The sentence for a group whose animals were called by several model versions."""
    return (
        f"No correction: the animals were classified by {len(versions)} model versions ({', '.join(versions)}), "
        "so no single sensitivity and specificity applies."
    )


def group_rates(
    versions: Sequence[str], rates: Mapping[str, ClassifierRates]
) -> tuple[str | None, ClassifierRates | None, str | None]:
    """The one model version of a group, its rates, and a note when there is not exactly one version with rates."""
    if len(versions) > 1:
        return None, None, versions_note(versions)
    if not versions:
        return None, None, None
    found = rates.get(versions[0])
    if found is None:
        return (
            versions[0],
            None,
            f"No correction: no model card with per-animal test metrics was found for {versions[0]}.",
        )
    return versions[0], found, missing_rate_note(found)


def rate_successes(rate: float | None, n: int) -> int | None:
    """The count of validation animals a rate measured on n animals stands for (the card stores rate and n)."""
    return None if rate is None else int(round(rate * n))


def corrected_share(males: int, n: int, found: ClassifierRates | None) -> Corrected:
    """corrected_share_interval of the male share with the card's rates as counts; None values when they are missing."""
    if n == 0:
        return Corrected(None, None, None, "No correction: no individual was counted.")
    se_hits = rate_successes(found.sensitivity, found.n_positive) if found else None
    sp_hits = rate_successes(found.specificity, found.n_negative) if found else None
    if found is None or se_hits is None or sp_hits is None:
        return Corrected(None, None, None, "No correction: the model card gives no sensitivity and specificity.")
    return corrected_share_interval(males, n, se_hits, found.n_positive, sp_hits, found.n_negative)


def width_columns(males: int, n: int, found: ClassifierRates | None) -> dict[str, Any]:
    """The gender_ratio columns saying what makes the corrected interval wide (None without an interval)."""
    se_hits = rate_successes(found.sensitivity, found.n_positive) if found else None
    sp_hits = rate_successes(found.specificity, found.n_negative) if found else None
    drivers = (
        width_drivers(males, n, se_hits, found.n_positive, sp_hits, found.n_negative)
        if found and se_hits is not None and sp_hits is not None and n > 0
        else None
    )
    return {
        "validation_variance_share": drivers.validation_share if drivers else None,
        "width_4x_validation": drivers.width_more_validation if drivers else None,
        "width_4x_counted": drivers.width_more_counted if drivers else None,
        "wide_because": drivers.sentence if drivers else None,
    }


def gender_ratio_row(counts: Mapping[str, Any], rates: Mapping[str, ClassifierRates]) -> dict[str, Any]:
    """One gender_ratio row: counts, raw male share (Wilson) and the corrected share with its interval (module doc)."""
    males, females = int(counts["males"]), int(counts["females"])
    raw = wilson_interval(males, males + females)
    version, found, note = group_rates(sorted(counts.get("model_versions") or []), rates)
    corrected = corrected_share(males, raw.n, found)
    note = corrected.note if raw.n == 0 else note or corrected.note
    return {
        "level": counts["level"],
        "site": counts.get("site"),
        "deployment_id": counts.get("deployment_id"),
        "males": males,
        "females": females,
        "unknown": int(counts["unknown"]),
        "n": raw.n,
        "estimate": raw.estimate,
        "ci_low": raw.ci_low,
        "ci_high": raw.ci_high,
        "corrected": corrected.estimate,
        "corrected_ci_low": corrected.ci_low,
        "corrected_ci_high": corrected.ci_high,
        "interval_method": LANG_REICZIGEL if corrected.estimate is not None else None,
        **(width_columns(males, raw.n, found) if corrected.estimate is not None else width_columns(0, 0, None)),
        "model_version": version,
        "sensitivity": found.sensitivity if found else None,
        "specificity": found.specificity if found else None,
        "validation_males": found.n_positive if found else None,
        "validation_females": found.n_negative if found else None,
        "note": note,
    }


def mating_success_row(counts: Mapping[str, Any]) -> dict[str, Any]:
    """One mating_success row: successes of the decided encounters with the Wilson interval of their share."""
    successes, failures = int(counts["successes"]), int(counts["failures"])
    share = wilson_interval(successes, successes + failures)
    return {
        "level": counts["level"],
        "season": counts.get("season"),
        "successes": successes,
        "failures": failures,
        "unknown": int(counts["unknown"]),
        "n": share.n,
        "estimate": share.estimate,
        "ci_low": share.ci_low,
        "ci_high": share.ci_high,
    }


def gender_rates(rows: Sequence[Mapping[str, Any]]) -> dict[str, ClassifierRates]:
    """Sensitivity and specificity of each gender model version that has them."""
    return {
        row["model_version"]: ClassifierRates(
            row["sensitivity"], row["specificity"], row["n_positive"], row["n_negative"]
        )
        for row in rows
        if row["kind"] == "gender" and row["n_positive"] is not None
    }
