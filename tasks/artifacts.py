"""Prefect artifacts of a run: a markdown summary, the gender-ratio and mating tables, a link to the HTML report.

Fixed keys make the Prefect UI show each artifact's history across nightly runs.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

SUMMARY_KEY = "breedwatch-run-summary"
GENDER_KEY = "breedwatch-gender-ratio"
MATING_KEY = "breedwatch-mating-success"
REPORT_KEY = "breedwatch-report"


def csv_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of one of the report's CSV files (empty when it is absent or has no rows)."""
    if not path.is_file():
        return []
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def summary_markdown(run_id: str, drops: list[dict[str, Any]], counts: dict[str, int], report: Path) -> str:
    """The run in a few lines of markdown: drops, totals and where the report is."""
    lines = [f"# breedwatch run {run_id}", "", "| drop | result | note |", "|---|---|---|"]
    lines += [f"| {d['drop_id']} | {d['status']} | {str(d.get('message', '')).replace('|', '/')} |" for d in drops]
    totals = ", ".join(f"{key} {value}" for key, value in sorted(counts.items())) or "nothing to do"
    return "\n".join([*lines, "", f"Totals: {totals}", "", f"Report: `{report}`"])


def publish_run_artifacts(run_id: str, drops: list[dict[str, Any]], counts: dict[str, int], report: Path) -> None:
    """Create the run's artifacts from its report files (the same numbers as the HTML and the catalog)."""
    create_markdown_artifact(
        summary_markdown(run_id, drops, counts, report), key=SUMMARY_KEY, description=f"run {run_id}"
    )
    for key, name, what in (
        (GENDER_KEY, "gender_ratio", "gender ratio"),
        (MATING_KEY, "mating_success", "mating success"),
    ):
        rows = csv_rows(report.parent / f"{name}.csv")
        if rows:
            create_table_artifact(rows, key=key, description=f"{what}, run {run_id}")
    create_link_artifact(report.resolve().as_uri(), link_text=f"report of run {run_id}", key=REPORT_KEY)
