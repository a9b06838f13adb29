"""The catalog's summary tables: model_cards from the model store, gender_ratio and mating_success from the views,
audit_accuracy from the keepers' corrections of the review queue's audit slice.

The catalog writer calls write_summary_tables right after refreshing the views, so the tables always hold the
numbers of the current lake and thresholds; the report, its CSVs and analysts all read these tables (one source).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from models.statistics import ClassifierRates, wilson_interval
from models.summaries import (
    card_rates,
    face_source_rates,
    gender_ratio_row,
    mating_card_rates,
    mating_success_row,
    rates_of_kind,
)
from schemas.home import HomeLayout
from schemas.report_tables import AUDIT_ACCURACY, GENDER_RATIO, MATING_SUCCESS, MODEL_CARDS
from schemas.review import FRAME_MIN_YIELD
from tasks.model_store import CARD_FILE, VERSION_DIR
from tasks.review_items import write_review_items

GENDER_COUNTS_TEMPLATE = """
SELECT CASE WHEN grouping(site, deployment_id) = 0 THEN 'deployment' ELSE 'overall' END AS level,
       site, deployment_id,
       count(DISTINCT animal_id) FILTER (WHERE called AND sex = $positive) AS called_males,
       count(DISTINCT animal_id) FILTER (WHERE called AND sex = $negative) AS called_females,
       count(DISTINCT animal_id) FILTER (WHERE NOT called AND sex = $positive) AS known_males,
       count(DISTINCT animal_id) FILTER (WHERE NOT called AND sex = $negative) AS known_females,
       count(DISTINCT animal_id) FILTER (WHERE sex IS NULL OR sex NOT IN ($positive, $negative)) AS unknown,
       list_sort(list_distinct(
           list(model_version) FILTER (WHERE called AND sex IN ($positive, $negative) AND model_version IS NOT NULL)
       )) AS model_versions,
       list_sort(list_distinct(
           list(face_source) FILTER (WHERE called AND sex IN ($positive, $negative) AND face_source IS NOT NULL)
       )) AS face_sources
FROM (SELECT *, sex_source = 'machine' AS called FROM animals) {where}
GROUP BY GROUPING SETS ((site, deployment_id), ())
ORDER BY grouping(site, deployment_id), site NULLS LAST, deployment_id NULLS LAST
"""
# A period's report counts the animals registered or photographed in its drops and the individuals (registered or
# provisional) its faces were given.
PERIOD_ANIMALS = """WHERE animal_id IN (SELECT animal_id FROM animal_manifest WHERE list_contains($drops, drop_id)
                   UNION SELECT animal_id FROM gender_predictions WHERE list_contains($drops, drop_id)
                   UNION SELECT individual_id FROM face_calls WHERE list_contains($drops, drop_id))"""
GENDER_COUNTS_SQL = GENDER_COUNTS_TEMPLATE.format(where="")
PERIOD_GENDER_COUNTS_SQL = GENDER_COUNTS_TEMPLATE.format(where=PERIOD_ANIMALS)
GENDER_PARAMS = {"positive": "male", "negative": "female"}

MATING_COUNTS_TEMPLATE = """
WITH dated AS (
    SELECT e.encounter_id, e.outcome_final AS outcome, e.outcome_source = 'machine' AS called, e.model_version,
           year(e.started_at AT TIME ZONE coalesce(d.timezone, 'UTC')) AS season
    FROM encounters e
    LEFT JOIN (SELECT drop_id, any_value(timezone) AS timezone FROM drops GROUP BY drop_id) d USING (drop_id)
    {where}
)
SELECT CASE WHEN grouping(season) = 0 THEN 'season' ELSE 'overall' END AS level, season,
       count(DISTINCT encounter_id) FILTER (WHERE called AND outcome = $positive) AS called_successes,
       count(DISTINCT encounter_id) FILTER (WHERE called AND outcome = $negative) AS called_failures,
       count(DISTINCT encounter_id) FILTER (WHERE NOT called AND outcome = $positive) AS known_successes,
       count(DISTINCT encounter_id) FILTER (WHERE NOT called AND outcome = $negative) AS known_failures,
       count(DISTINCT encounter_id) FILTER (WHERE outcome IS NULL OR outcome NOT IN ($positive, $negative)) AS unknown,
       list_sort(list_distinct(
           flatten(list(string_split(model_version, ', '))
                   FILTER (WHERE called AND outcome IN ($positive, $negative) AND model_version IS NOT NULL))
       )) AS model_versions
FROM dated
GROUP BY GROUPING SETS ((season), ())
ORDER BY grouping(season), season NULLS LAST
"""
MATING_COUNTS_SQL = MATING_COUNTS_TEMPLATE.format(where="")
PERIOD_MATING_COUNTS_SQL = MATING_COUNTS_TEMPLATE.format(where="WHERE list_contains($drops, e.drop_id)")
MATING_PARAMS = {"positive": "success", "negative": "failure"}
# Audited items: the latest live correction per item and field of the random audit slice (undo applied). Gender and
# mating: the keeper kept the machine's call when the human value equals it. Detector: a face item's box was a face
# unless the keeper said "not a face" (a sex given to it confirms the box).
AUDIT_SQL = """
WITH audited AS (
    SELECT * FROM live_corrections WHERE audit
    QUALIFY row_number() OVER (PARTITION BY target_kind, coalesce(drop_id, ''), target_id, field
                               ORDER BY created_at DESC, correction_id DESC) = 1
), calls AS (
    SELECT CASE WHEN field = 'outcome' THEN 'mating' ELSE 'gender' END AS model, created_at, model_version,
           machine_value, human_value
    FROM audited WHERE field IN ('sex', 'outcome')
    UNION ALL
    SELECT 'detector', max(created_at), any_value(model_version) FILTER (WHERE field = 'is_face'), 'true',
           CASE WHEN bool_or(field = 'is_face' AND human_value = 'false') THEN 'false' ELSE 'true' END
    FROM audited WHERE target_kind = 'face' GROUP BY drop_id, target_id
)
SELECT strftime(created_at, '%Y-%m') AS month, model,
       count(*) FILTER (WHERE machine_value IN ('male', 'female', 'success', 'failure', 'true')) AS n,
       count(*) FILTER (WHERE machine_value IN ('male', 'female', 'success', 'failure', 'true')
                          AND human_value = machine_value) AS correct,
       count(*) FILTER (WHERE machine_value IS NULL OR machine_value NOT IN ('male', 'female', 'success', 'failure',
                                                                             'true')) AS abstained,
       string_agg(DISTINCT model_version, ', ' ORDER BY model_version) AS model_versions
FROM calls GROUP BY ALL ORDER BY month, model
"""
RELATIONS_SQL = "SELECT table_name FROM information_schema.tables WHERE list_contains(?, table_name)"
REVIEW_INPUTS = frozenset(
    {"face_calls", "animals", "encounters", "detector_yield", "media", "faces", "animal_manifest"}
)
RATES_OF_KIND = {"gender": card_rates, "mating": mating_card_rates}  # how each kind's card states its error rates
VIEW_SQL = "SELECT 1 FROM information_schema.tables WHERE table_name = ? AND table_type = 'VIEW'"


def card_paths(home: HomeLayout) -> list[tuple[str, str, int, Path]]:
    """(kind, name, version, card path) of every complete model version under models/<kind>/<name>/v<N>/."""
    found = []
    for path in sorted(home.models.glob(f"*/*/v*/{CARD_FILE}")) if home.models.is_dir() else []:
        match = VERSION_DIR.match(path.parent.name)
        if match:
            found.append((path.parents[2].name, path.parents[1].name, int(match.group(1)), path))
    return found


def read_card(path: Path, kind: str) -> tuple[dict[str, Any] | None, ClassifierRates | None, str | None]:
    """A model card, its per-animal rates (gender only) and the sentence saying why either could not be read."""
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
        return card, RATES_OF_KIND[kind](card) if kind in RATES_OF_KIND else None, None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, None, f"The model card cannot be read ({exc})."
    except (ValueError, TypeError, AttributeError) as exc:
        return card, None, f"The model card's per-animal metrics are malformed ({exc})."


def model_card_rows(home: HomeLayout) -> list[dict[str, Any]]:
    """One model_cards row per stored model version; gender cards carry their per-animal sensitivity and specificity,
    CGANet cards their per-encounter ones."""
    rows = []
    for kind, name, version, path in card_paths(home):
        card, rates, problem = read_card(path, kind)
        rows.append(
            {
                "kind": kind,
                "name": name,
                "version": version,
                "model_version": f"{name}@v{version}",
                "sensitivity": rates.sensitivity if rates else None,
                "specificity": rates.specificity if rates else None,
                "n_positive": rates.n_positive if rates else None,
                "n_negative": rates.n_negative if rates else None,
                "card_path": str(path),
                "card": json.dumps(card, sort_keys=True, default=str) if card is not None else None,
                "problem": problem,
            }
        )
    return rows


def existing_relations(con: duckdb.DuckDBPyConnection, names: Sequence[str]) -> set[str]:
    """Which of the named tables or views the catalog has."""
    return {row[0] for row in con.execute(RELATIONS_SQL, [list(names)]).fetchall()}


# DDL cannot take identifiers as parameters: each summary table's statements are written out in full.
SUMMARY_STATEMENTS = {
    "model_cards": ("DROP VIEW model_cards", "CREATE OR REPLACE TABLE model_cards AS SELECT * FROM _summary_rows"),
    "gender_ratio": ("DROP VIEW gender_ratio", "CREATE OR REPLACE TABLE gender_ratio AS SELECT * FROM _summary_rows"),
    "mating_success": (
        "DROP VIEW mating_success",
        "CREATE OR REPLACE TABLE mating_success AS SELECT * FROM _summary_rows",
    ),
    "audit_accuracy": (
        "DROP VIEW audit_accuracy",
        "CREATE OR REPLACE TABLE audit_accuracy AS SELECT * FROM _summary_rows",
    ),
}


def replace_table(
    con: duckdb.DuckDBPyConnection, name: str, rows: Sequence[Mapping[str, Any]], schema: pa.Schema
) -> None:
    """CREATE OR REPLACE one of the summary tables (SUMMARY_STATEMENTS) with the given columns from row dicts."""
    data = pa.Table.from_pylist([dict(row) for row in rows], schema=schema)
    con.register("_summary_rows", data)
    try:
        drop_view, create_table = SUMMARY_STATEMENTS[name]
        if con.execute(VIEW_SQL, [name]).fetchall():
            con.execute(drop_view)
        con.execute(create_table)
    finally:
        con.unregister("_summary_rows")


def summary_rows(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    params: dict[str, object],
    build: Callable[[dict[str, Any]], dict[str, Any]],
) -> list[dict[str, Any]]:
    """Run a counting query and turn each of its rows into a summary row."""
    relation = con.execute(sql, params)
    names = [column[0] for column in relation.description]
    return [build(dict(zip(names, values))) for values in relation.fetchall()]


def ratio_rows(
    con: duckdb.DuckDBPyConnection, cards: Sequence[Mapping[str, Any]], drop_ids: Sequence[str] | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """gender_ratio and mating_success rows over every drop, or over the animals and encounters of the given drops."""
    present = existing_relations(con, ["animals", "encounters", "drops"])
    gender_row = partial(gender_ratio_row, rates=rates_of_kind(cards, "gender"), source_rates=face_source_rates(cards))
    mating_row = partial(mating_success_row, rates=rates_of_kind(cards, "mating"))
    if drop_ids is None:
        gender_query, mating_query = (GENDER_COUNTS_SQL, GENDER_PARAMS), (MATING_COUNTS_SQL, MATING_PARAMS)
    else:
        ids = list(drop_ids)
        gender_query, mating_query = (
            (PERIOD_GENDER_COUNTS_SQL, {**GENDER_PARAMS, "drops": ids}),
            (PERIOD_MATING_COUNTS_SQL, {**MATING_PARAMS, "drops": ids}),
        )
    gender = summary_rows(con, *gender_query, gender_row) if "animals" in present else []
    mating = summary_rows(con, *mating_query, mating_row) if {"encounters", "drops"} <= present else []
    return gender, mating


def period_summaries(
    con: duckdb.DuckDBPyConnection, home: HomeLayout, drop_ids: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """The gender_ratio and mating_success rows of the given drops only (a period's report), computed as the tables
    are."""
    gender, mating = ratio_rows(con, model_card_rows(home), drop_ids)
    return {"gender_ratio": gender, "mating_success": mating}


def audit_row(counts: dict[str, Any]) -> dict[str, Any]:
    """One audit_accuracy row: the counts with the accuracy and its Wilson 95% interval."""
    share = wilson_interval(counts["correct"], counts["n"])
    return {**counts, "accuracy": share.estimate, "ci_low": share.ci_low, "ci_high": share.ci_high}


def audit_rows(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Machine accuracy on the audit slice per month and model (none without a corrections view)."""
    return (
        summary_rows(con, AUDIT_SQL, [], audit_row)
        if "live_corrections" in existing_relations(con, ["live_corrections"])
        else []
    )


# Views the summaries and the review queue each read more than once (face_calls inside animals too): the refresh
# computes each once into a temp table of the same name, which shadows the view for that connection only (DuckDB
# looks in temp first); the catalog keeps the views, so readers still see corrections live. DDL takes no identifiers
# as parameters: each statement is written out, in dependency order (create, then drop).
PINNED_VIEWS = {
    "face_calls": (
        "CREATE TEMP TABLE face_calls AS SELECT * FROM face_calls",
        "DROP TABLE temp.face_calls",
    ),
    "animals": ("CREATE TEMP TABLE animals AS SELECT * FROM animals", "DROP TABLE temp.animals"),
    "encounters": ("CREATE TEMP TABLE encounters AS SELECT * FROM encounters", "DROP TABLE temp.encounters"),
}


@contextlib.contextmanager
def pinned_views(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """The shared views the catalog has, computed once as same-named temp tables while the block runs."""
    present = existing_relations(con, list(PINNED_VIEWS))
    pinned = [statements for name, statements in PINNED_VIEWS.items() if name in present]
    for create, _ in pinned:
        con.execute(create)
    try:
        yield
    finally:
        for _, drop in pinned:
            con.execute(drop)


def write_summary_tables(con: duckdb.DuckDBPyConnection, home: HomeLayout) -> list[str]:
    """(Re)write model_cards, gender_ratio, mating_success, audit_accuracy and the review queue's items in the open
    catalog; a missing input view gives an empty table."""
    cards = model_card_rows(home)
    replace_table(con, "model_cards", cards, MODEL_CARDS)
    written = ["model_cards", "gender_ratio", "mating_success", "audit_accuracy"]
    with pinned_views(con):
        gender, mating = ratio_rows(con, cards)
        replace_table(con, "gender_ratio", gender, GENDER_RATIO)
        replace_table(con, "mating_success", mating, MATING_SUCCESS)
        replace_table(con, "audit_accuracy", audit_rows(con), AUDIT_ACCURACY)
        if REVIEW_INPUTS <= existing_relations(con, sorted(REVIEW_INPUTS)):  # a catalog without the views: no queue
            written.append(write_review_items(con, FRAME_MIN_YIELD))
    return written
