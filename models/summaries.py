"""Rows of the report's summary tables from counts: gender ratio and mating success, each with the raw share (Wilson)
and the share corrected for the classifier's errors, with an interval that carries the uncertainty of the card's
rates."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from models.statistics import (
    KNOWN_ONLY,
    LANG_REICZIGEL,
    OUTCOME_WORDING,
    SEX_WORDING,
    WITH_KNOWN,
    ClassifierRates,
    Corrected,
    ShareWording,
    corrected_share_interval,
    rates_from_confusion,
    share_with_known,
    width_drivers,
    wilson_interval,
)


def stated_rates(rates: Mapping[str, Any], positives_key: str, negatives_key: str) -> ClassifierRates:
    """A card's rates block (sensitivity, specificity and the counts of decided items under the given keys)."""
    se, sp = rates.get("sensitivity"), rates.get("specificity")
    return ClassifierRates(
        None if se is None else float(se),
        None if sp is None else float(sp),
        int(rates.get(positives_key) or 0),
        int(rates.get(negatives_key) or 0),
    )


FACE_SOURCE_NAMES = {"keeper": "keeper photos", "detector": "camera-trap (detector) faces", "mixed": "both"}


@dataclass(frozen=True)
class SourceRates:
    """A gender card's rates by face source: the sources its overall rates were measured on, and the rates measured
    on each source alone (keeper photos, detector crops) when its test animals had faces of both."""

    measured_on: tuple[str, ...] = ()
    by_source: Mapping[str, ClassifierRates] = field(default_factory=dict)

    def of(self, source: str) -> ClassifierRates | None:
        """The rates measured on faces of this source alone, if the card has them."""
        return self.by_source.get(source)


def card_source_rates(card: Mapping[str, Any]) -> SourceRates:
    """The face sources a gender card's rates were measured on and its per-source rates (metrics.rates_by_source)."""
    metrics = card.get("metrics") or {}
    measured_on = tuple((metrics.get("rates") or {}).get("face_sources") or ())
    by_source = {
        source: stated_rates(rates, "decided_males", "decided_females")
        for source, rates in (metrics.get("rates_by_source") or {}).items()
        if isinstance(rates, Mapping)
    }
    return SourceRates(measured_on, by_source)


def face_source_rates(rows: Sequence[Mapping[str, Any]]) -> dict[str, SourceRates]:
    """SourceRates of each gender model version, from the cards in model_cards rows."""
    return {
        row["model_version"]: card_source_rates(json.loads(row["card"]))
        for row in rows
        if row["kind"] == "gender" and row.get("card")
    }


def card_rates(card: Mapping[str, Any]) -> ClassifierRates | None:
    """Per-animal sensitivity and specificity (male positive) of a gender model card, if it has them.

    Read from metrics.rates (sensitivity, specificity, decided_males, decided_females: the test animals the abstain
    band decided, as train_gender writes them) when present,
    else from metrics.per_animal (explicit sensitivity/specificity, else its confusion matrix [[TN, FP], [FN, TP]]).
    """
    metrics = card.get("metrics") or {}
    rates = metrics.get("rates")
    if isinstance(rates, Mapping):
        return stated_rates(rates, "decided_males", "decided_females")
    per_animal = metrics.get("per_animal") or {}
    matrix = per_animal.get("confusion_matrix")
    if matrix is None:
        return None
    counted = rates_from_confusion(matrix)
    se, sp = per_animal.get("sensitivity"), per_animal.get("specificity")
    if se is not None and sp is not None:  # stated explicitly (e.g. measured on decided animals only): use them
        return ClassifierRates(float(se), float(sp), counted.n_positive, counted.n_negative)
    return counted


def mating_card_rates(card: Mapping[str, Any]) -> ClassifierRates | None:
    """Encounter-level sensitivity and specificity (success positive) of a CGANet card, measured on the validation
    encounters the abstain band decided (metrics.encounter.rates, as train_mating writes them), if it has them."""
    rates = ((card.get("metrics") or {}).get("encounter") or {}).get("rates")
    return stated_rates(rates, "decided_successes", "decided_failures") if isinstance(rates, Mapping) else None


def missing_rate_note(rates: ClassifierRates, wording: ShareWording = SEX_WORDING) -> str | None:
    """Say which rate the card cannot give and why (no test item of that class)."""
    missing = [
        name
        for name, value in (("sensitivity", rates.sensitivity), ("specificity", rates.specificity))
        if value is None
    ]
    if not missing:
        return None
    return (
        f"No correction: the model card's {wording.test_units} are {rates.n_positive} {wording.positive_adjective} "
        f"and {rates.n_negative} {wording.negative_adjective}, so its {' and '.join(missing)} "
        f"{'is' if len(missing) == 1 else 'are'} unknown."
    )


def versions_note(versions: Sequence[str], wording: ShareWording = SEX_WORDING) -> str:
    """The sentence for a group whose items were called by several model versions."""
    return (
        f"No correction: the {wording.items} were classified by {len(versions)} model versions "
        f"({', '.join(versions)}), so no single sensitivity and specificity applies."
    )


def group_rates(
    versions: Sequence[str], rates: Mapping[str, ClassifierRates], wording: ShareWording = SEX_WORDING
) -> tuple[str | None, ClassifierRates | None, str | None]:
    """The one model version of a group, its rates, and a note when there is not exactly one version with rates."""
    if len(versions) > 1:
        return None, None, versions_note(versions, wording)
    if not versions:
        return None, None, None
    found = rates.get(versions[0])
    if found is None:
        return (
            versions[0],
            None,
            f"No correction: no model card with measured sensitivity and specificity was found for {versions[0]}.",
        )
    return versions[0], found, missing_rate_note(found, wording)


def rate_successes(rate: float | None, n: int) -> int | None:
    """The count of validation items a rate measured on n items stands for (the card stores rate and n)."""
    return None if rate is None else int(round(rate * n))


def corrected_share(
    positives: int, n: int, found: ClassifierRates | None, wording: ShareWording = SEX_WORDING
) -> Corrected:
    """corrected_share_interval of the positive share with the card's rates as counts; None values when they are
    missing."""
    if n == 0:
        return Corrected(None, None, None, f"No correction: {wording.none_counted}.")
    se_hits = rate_successes(found.sensitivity, found.n_positive) if found else None
    sp_hits = rate_successes(found.specificity, found.n_negative) if found else None
    if found is None or se_hits is None or sp_hits is None:
        return Corrected(None, None, None, "No correction: the model card gives no sensitivity and specificity.")
    return corrected_share_interval(positives, n, se_hits, found.n_positive, sp_hits, found.n_negative)


def scaled(width: float | None, weight: float) -> float | None:
    """A classified part's interval width as a width of the share among all counted items (share_with_known)."""
    return None if width is None else width * weight


def width_columns(
    positives: int, n: int, found: ClassifierRates | None, wording: ShareWording = SEX_WORDING, weight: float = 1.0
) -> dict[str, Any]:
    """The columns saying what makes the corrected interval wide (None without an interval); widths are those of the
    share among all counted items, of which the classified n are this weight."""
    se_hits = rate_successes(found.sensitivity, found.n_positive) if found else None
    sp_hits = rate_successes(found.specificity, found.n_negative) if found else None
    drivers = (
        width_drivers(positives, n, se_hits, found.n_positive, sp_hits, found.n_negative, wording)
        if found and se_hits is not None and sp_hits is not None and n > 0
        else None
    )
    return {
        "validation_variance_share": drivers.validation_share if drivers else None,
        "width_4x_validation": scaled(drivers.width_more_validation, weight) if drivers else None,
        "width_4x_counted": scaled(drivers.width_more_counted, weight) if drivers else None,
        "wide_because": drivers.sentence if drivers else None,
    }


def corrected_columns(
    positives: int,
    n: int,
    versions: Sequence[str],
    rates: Mapping[str, ClassifierRates],
    wording: ShareWording,
    count_columns: tuple[str, str],
    known: tuple[int, int] = (0, 0),
) -> dict[str, Any]:
    """The corrected share's columns of a summary row: estimate, interval, method, what makes it wide, the model
    version, the card's rates with their validation counts (named by count_columns) and the note.

    positives of n items were classified by the machine and are corrected for its errors; known = (positives, n) of
    items whose class a keeper or the registry gives, added as counted (statistics.share_with_known)."""
    known_positives, known_n = known
    version, found, note = group_rates(versions, rates, wording) if n else (None, None, None)
    classified = corrected_share(positives, n, found, wording)
    corrected = share_with_known(classified, n, known_positives, known_n)
    has_interval = corrected.estimate is not None
    widths = (
        width_columns(positives, n, found, wording, n / (n + known_n))
        if has_interval and n
        else width_columns(0, 0, None)
    )
    method = (KNOWN_ONLY if not n else WITH_KNOWN if known_n else LANG_REICZIGEL) if has_interval else None
    if n == 0:
        note = f"No correction: {wording.all_known}." if known_n else corrected.note
    else:
        note = note or corrected.note
    return {
        "corrected": corrected.estimate,
        "corrected_ci_low": corrected.ci_low,
        "corrected_ci_high": corrected.ci_high,
        "interval_method": method,
        **widths,
        "model_version": version,
        "sensitivity": found.sensitivity if found else None,
        "specificity": found.specificity if found else None,
        count_columns[0]: found.n_positive if found else None,
        count_columns[1]: found.n_negative if found else None,
        "note": note,
    }


def rates_for_sources(
    versions: Sequence[str],
    sources: Sequence[str],
    rates: Mapping[str, ClassifierRates],
    source_rates: Mapping[str, SourceRates],
) -> tuple[Mapping[str, ClassifierRates], str | None, str | None]:
    """The rates to correct a group of animals with, the face sources they were measured on, and a sentence when
    those are not the sources the group's animals were seen on.

    Animals all seen on one source (keeper photos, or detector faces) are corrected with the rates the card measured
    on that source alone when it has them; otherwise with its overall rates (each test animal pooled over all its
    faces), which describe mixed animals."""
    if len(versions) != 1:
        return rates, None, None
    found = source_rates.get(versions[0], SourceRates())
    if len(sources) == 1 and found.of(sources[0]) is not None:
        return {**rates, versions[0]: found.of(sources[0])}, sources[0], None
    measured_on = "+".join(found.measured_on) or None
    seen = [s for s in sources if s != "mixed"]
    unmeasured = [s for s in seen if s not in found.measured_on]
    if not found.measured_on or not unmeasured:
        return rates, measured_on, None
    said = " and ".join(FACE_SOURCE_NAMES.get(s, s) for s in found.measured_on)
    missing = " and ".join(FACE_SOURCE_NAMES.get(s, s) for s in unmeasured)
    return (
        rates,
        measured_on,
        f"The card's rates were measured on {said} only, but some animals were seen on {missing}; "
        "the correction may be biased (train on the station's own camera-trap faces to measure them).",
    )


def called_and_known(counts: Mapping[str, Any], positives: str, negatives: str) -> tuple[int, int, int, int]:
    """(positives, n) of the machine's calls and of the known items, from counts keyed called_/known_ + the class."""
    called_pos, called_neg = int(counts[f"called_{positives}"]), int(counts[f"called_{negatives}"])
    known_pos, known_neg = int(counts[f"known_{positives}"]), int(counts[f"known_{negatives}"])
    return called_pos, called_pos + called_neg, known_pos, known_pos + known_neg


def gender_ratio_row(
    counts: Mapping[str, Any],
    rates: Mapping[str, ClassifierRates],
    source_rates: Mapping[str, SourceRates] | None = None,
) -> dict[str, Any]:
    """One gender_ratio row: counts, raw male share (Wilson) and the corrected share with its interval (module doc).

    Animals whose sex a keeper or the registry gives (known_males, known_females) count as they are; the machine's
    calls (called_males, called_females) are corrected with the rates of the face source those animals were seen on
    (rates_for_sources)."""
    called_males, called_n, known_males, known_n = called_and_known(counts, "males", "females")
    males = called_males + known_males
    raw = wilson_interval(males, called_n + known_n)
    versions = sorted(counts.get("model_versions") or [])
    chosen, measured_on, caveat = rates_for_sources(
        versions, sorted(counts.get("face_sources") or []), rates, source_rates or {}
    )
    columns = corrected_columns(
        called_males,
        called_n,
        versions,
        chosen,
        SEX_WORDING,
        ("validation_males", "validation_females"),
        known=(known_males, known_n),
    )
    if columns["corrected"] is not None and columns["model_version"] is not None:
        columns["rates_face_source"] = measured_on
        columns["note"] = " ".join(s for s in (columns["note"], caveat) if s) or None
    else:
        columns["rates_face_source"] = None
    return {
        "level": counts["level"],
        "site": counts.get("site"),
        "deployment_id": counts.get("deployment_id"),
        "males": males,
        "females": raw.n - males,
        "known_males": known_males,
        "known_females": known_n - known_males,
        "unknown": int(counts["unknown"]),
        "n": raw.n,
        "estimate": raw.estimate,
        "ci_low": raw.ci_low,
        "ci_high": raw.ci_high,
        **columns,
    }


def mating_success_row(counts: Mapping[str, Any], rates: Mapping[str, ClassifierRates]) -> dict[str, Any]:
    """One mating_success row: decided encounters, the raw success share (Wilson) and the share corrected with the
    CGANet card's encounter-level rates, with its interval; outcomes a keeper or the record gives (known_successes,
    known_failures) count as they are."""
    called_successes, called_n, known_successes, known_n = called_and_known(counts, "successes", "failures")
    successes = called_successes + known_successes
    share = wilson_interval(successes, called_n + known_n)
    versions = sorted(counts.get("model_versions") or [])
    columns = corrected_columns(
        called_successes,
        called_n,
        versions,
        rates,
        OUTCOME_WORDING,
        ("validation_successes", "validation_failures"),
        known=(known_successes, known_n),
    )
    return {
        "level": counts["level"],
        "season": counts.get("season"),
        "successes": successes,
        "failures": share.n - successes,
        "known_successes": known_successes,
        "known_failures": known_n - known_successes,
        "unknown": int(counts["unknown"]),
        "n": share.n,
        "estimate": share.estimate,
        "ci_low": share.ci_low,
        "ci_high": share.ci_high,
        **columns,
    }


def rates_of_kind(rows: Sequence[Mapping[str, Any]], kind: str) -> dict[str, ClassifierRates]:
    """Sensitivity and specificity of each model version of one kind (gender, mating) that has them, from model_cards
    rows."""
    return {
        row["model_version"]: ClassifierRates(
            row["sensitivity"], row["specificity"], row["n_positive"], row["n_negative"]
        )
        for row in rows
        if row["kind"] == kind and row["n_positive"] is not None
    }
