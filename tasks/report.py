"""Write a run's HTML report from the catalog."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from reports.exports import check_table_name, csv_tables, table_csv
from reports.html import humanise_seconds, render_run_report
from schemas.home import HomeLayout
from tasks.catalog import CatalogMissingError, connect_with_retry, query
from tasks.lake import write_bytes_atomic
from tasks.report_sections import prediction_sections
from tasks.summary_tables import period_summaries

MEDIA_COUNTS_SQL = """
SELECT kind, status, count(*) AS n FROM media
WHERE list_contains(?, drop_id) GROUP BY ALL ORDER BY kind, status
"""
REJECTS_SQL = """
SELECT drop_id, path, stage, reason FROM rejects
WHERE list_contains(?, drop_id) ORDER BY drop_id, stage, path
"""
RUN_SQL = "SELECT * FROM runs WHERE run_id = ?"
YIELD_SQL = """
SELECT drop_id, camera, night, images, faces, usable_faces, faces_per_image, detector FROM detector_yield
WHERE list_contains(?, drop_id) ORDER BY drop_id, camera, night
"""
AUDIO_SQL = """
SELECT m.drop_id, m.path, s.encounter_id, count(s.segment_id) AS segments,
       count(DISTINCT (s.call_start_s, s.call_end_s)) AS calls, string_agg(DISTINCT s.source, ', ') AS source,
       round(sum(s.end_s - s.start_s), 1) AS seconds
FROM media m LEFT JOIN segments s ON s.media_id = m.media_id AND s.drop_id = m.drop_id
WHERE m.kind = 'audio' AND m.status = 'ok' AND list_contains(?, m.drop_id)
GROUP BY ALL ORDER BY m.drop_id, m.path
"""
KEEPER_SQL = """
SELECT drop_id, count(*) AS faces, count(*) FILTER (WHERE NOT excluded) AS usable_faces FROM faces
WHERE source = 'keeper' AND list_contains(?, drop_id) GROUP BY ALL ORDER BY drop_id
"""


def run_header(home: HomeLayout, run_id: str) -> dict[str, Any]:
    """The runs row of a run with its duration so far."""
    run = query(home, RUN_SQL, [run_id]).to_pylist()[0]
    run["duration"] = humanise_seconds((datetime.now(UTC) - run["started_at"]).total_seconds())
    return run


def report_context(
    home: HomeLayout, run: dict[str, Any], drop_results: list[dict[str, Any]], review_url: str | None = None
) -> dict[str, Any]:
    """Everything the report template shows for a run (or a period) and its drops, read from the catalog (review_url:
    the review app's address, which the review items link to)."""
    drop_ids = [result["drop_id"] for result in drop_results]
    return {
        "run": run,
        "ratio_scope": "every animal and encounter in the catalog (its gender_ratio and mating_success tables)",
        "drops": drop_results,
        "media_counts": query(home, MEDIA_COUNTS_SQL, [drop_ids]).to_pylist(),
        "rejects": query(home, REJECTS_SQL, [drop_ids]).to_pylist(),
        "detector_yield": query(home, YIELD_SQL, [drop_ids]).to_pylist(),
        "keeper_faces": query(home, KEEPER_SQL, [drop_ids]).to_pylist(),
        "recordings": query(home, AUDIO_SQL, [drop_ids]).to_pylist(),
        **prediction_sections(home, drop_ids, review_url),
    }


def write_run_report(
    home: HomeLayout, run_id: str, drop_results: list[dict[str, Any]], review_url: str | None = None
) -> Path:
    """Render reports/<run_id>/report.html with a CSV file per report table next to it; return the HTML's path."""
    context = report_context(home, run_header(home, run_id), drop_results, review_url)
    return write_report_files(home.report_dir(run_id), context)


def write_report_files(folder: Path, context: dict[str, Any]) -> Path:
    """report.html and one CSV per table in a folder; the HTML's path."""
    for name, rows in csv_tables(context).items():
        write_bytes_atomic(folder / f"{check_table_name(name)}.csv", table_csv(rows).encode("utf-8"))
    path = folder / "report.html"
    write_bytes_atomic(path, render_run_report(context).encode("utf-8"))
    return path


PERIOD_DROPS_SQL = """
SELECT d.drop_id, count(m.media_id) FILTER (WHERE m.kind = 'image' AND m.status = 'ok') AS images,
       count(m.media_id) FILTER (WHERE m.kind = 'audio' AND m.status = 'ok') AS audio,
       count(m.media_id) FILTER (WHERE m.status = 'rejected') AS rejected
FROM drops d JOIN media m USING (drop_id) LEFT JOIN runs r ON r.run_id = d.run_id
GROUP BY d.drop_id
HAVING (?::TIMESTAMPTZ IS NULL OR coalesce(max(m.captured_at), any_value(r.started_at)) >= ?::TIMESTAMPTZ)
   AND (?::TIMESTAMPTZ IS NULL OR coalesce(min(m.captured_at), any_value(r.started_at)) < ?::TIMESTAMPTZ)
ORDER BY d.drop_id
"""


def period_drops(home: HomeLayout, since: date | None, until: date | None) -> list[dict[str, Any]]:
    """Drops with media captured between since and until (whole days, UTC; undated drops by their ingest run), as report
    rows."""
    start = datetime.combine(since, time.min, UTC) if since else None
    end = datetime.combine(until + timedelta(days=1), time.min, UTC) if until else None
    rows = query(home, PERIOD_DROPS_SQL, [start, start, end, end]).to_pylist()
    return [{"drop_id": r.pop("drop_id"), "status": "in catalog", "counts": r, "message": ""} for r in rows]


def period_ratios(home: HomeLayout, drop_ids: list[str]) -> dict[str, Any]:
    """Gender ratio and mating success of the period's drops only, computed as the catalog's summary tables are."""
    if not home.catalog.exists():
        raise CatalogMissingError(f"no catalog at {home.catalog}: run 'breedwatch run' (or 'make demo') first")
    with connect_with_retry(home.catalog, read_only=True) as con:
        rows = period_summaries(con, home, drop_ids)
    scope = (
        f"the animals and encounters of the period's {len(drop_ids)} drop{'s' if len(drop_ids) != 1 else ''}; "
        "the catalog's gender_ratio and mating_success tables hold every drop"
    )
    return {**rows, "ratio_scope": scope}


def write_period_report(
    home: HomeLayout, since: date | None, until: date | None, review_url: str | None = None
) -> Path:
    """Rebuild a report for the drops captured in a period from the catalog alone: reports/period-<since>_<until>/."""
    label = f"{since or 'start'}_{until or 'now'}"
    header = {
        "run_id": f"period {label}",
        "status": "completed",
        "started_at": datetime.now(UTC),
        "duration": "n/a (rebuilt from the catalog)",
        "code_version": "",
        "config_hash": "",
    }
    drops = period_drops(home, since, until)
    context = report_context(home, header, drops, review_url)
    context.update(period_ratios(home, [d["drop_id"] for d in drops]))
    return write_report_files(home.reports / f"period-{label}", context)
