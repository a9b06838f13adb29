"""Rows of the report's summary tables from counts: gender ratio with Wilson and Rogan-Gladen, mating success with Wilson."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from models.statistics import ClassifierRates, corrected_proportion, rates_from_confusion, wilson_interval


def card_rates(card: Mapping[str, Any]) -> ClassifierRates | None:
    """Per-animal sensitivity and specificity (male positive) from a gender model card's metrics.per_animal, if it has them."""
    per_animal = (card.get("metrics") or {}).get("per_animal") or {}
    matrix = per_animal.get("confusion_matrix")
    if matrix is None:
        return None
    rates = rates_from_confusion(matrix)
    se, sp = per_animal.get("sensitivity"), per_animal.get("specificity")
    if se is not None and sp is not None:  # stated explicitly (e.g. measured on decided animals only): use them
        return ClassifierRates(float(se), float(sp), rates.n_positive, rates.n_negative)
    return rates


def versions_note(versions: Sequence[str]) -> str:
    """The sentence for a group whose animals were called by several model versions."""
    return f"No correction: the animals were classified by {len(versions)} model versions ({', '.join(versions)}), so no single sensitivity and specificity applies."


def group_rates(versions: Sequence[str], rates: Mapping[str, ClassifierRates]) -> tuple[str | None, ClassifierRates | None, str | None]:
    """The one model version of a group, its rates, and a note when there is not exactly one version with rates."""
    if len(versions) > 1:
        return None, None, versions_note(versions)
    if not versions:
        return None, None, None
    found = rates.get(versions[0])
    if found is None:
        return versions[0], None, f"No correction: no model card with per-animal test metrics was found for {versions[0]}."
    return versions[0], found, None


def gender_ratio_row(counts: Mapping[str, Any], rates: Mapping[str, ClassifierRates]) -> dict[str, Any]:
    """One gender_ratio row: counts, raw male share with its Wilson interval, and the Rogan-Gladen corrected share."""
    males, females = int(counts["males"]), int(counts["females"])
    raw = wilson_interval(males, males + females)
    version, found, note = group_rates(sorted(counts.get("model_versions") or []), rates)
    corrected = corrected_proportion(raw, found.sensitivity if found else None, found.specificity if found else None)
    return {
        "level": counts["level"], "site": counts.get("site"), "deployment_id": counts.get("deployment_id"),
        "males": males, "females": females, "unknown": int(counts["unknown"]), "n": raw.n,
        "estimate": raw.estimate, "ci_low": raw.ci_low, "ci_high": raw.ci_high,
        "corrected": corrected.estimate, "corrected_ci_low": corrected.ci_low, "corrected_ci_high": corrected.ci_high,
        "model_version": version,
        "sensitivity": found.sensitivity if found else None, "specificity": found.specificity if found else None,
        "validation_males": found.n_positive if found else None, "validation_females": found.n_negative if found else None,
        "note": note or corrected.note,
    }


def mating_success_row(counts: Mapping[str, Any]) -> dict[str, Any]:
    """One mating_success row: successes of the decided encounters with the Wilson interval of their share."""
    successes, failures = int(counts["successes"]), int(counts["failures"])
    share = wilson_interval(successes, successes + failures)
    return {
        "level": counts["level"], "season": counts.get("season"),
        "successes": successes, "failures": failures, "unknown": int(counts["unknown"]), "n": share.n,
        "estimate": share.estimate, "ci_low": share.ci_low, "ci_high": share.ci_high,
    }
