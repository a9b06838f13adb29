"""Text renderings for the terminal: query results and the one-screen run summary."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
from rich.table import Table


def json_default(value: Any) -> Any:
    """Encode values JSON does not know: times as ISO 8601, decimals as numbers, bytes as hex."""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def plain_rows(table: pa.Table) -> list[dict[str, Any]]:
    """Rows as dicts, with map columns as dicts rather than lists of pairs."""
    map_columns = [field.name for field in table.schema if pa.types.is_map(field.type)]
    rows = table.to_pylist()
    for row in rows:
        for name in map_columns:
            row[name] = dict(row[name]) if row[name] is not None else None
    return rows


def table_to_json(table: pa.Table) -> str:
    """An array with one object per row."""
    return json.dumps(plain_rows(table), default=json_default, indent=2)


def table_to_csv(table: pa.Table) -> str:
    """CSV with a header row; nested values as JSON."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.column_names)
    for row in plain_rows(table):
        writer.writerow([csv_cell(value) for value in row.values()])
    return buffer.getvalue()


def csv_cell(value: Any) -> Any:
    """A CSV cell: empty for null, JSON for lists and maps, ISO 8601 for times."""
    if value is None:
        return ""
    if isinstance(value, (list, dict, tuple)):
        return json.dumps(value, default=json_default)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def table_to_rich(table: pa.Table, title: str | None = None) -> Table:
    """A rich table for the terminal."""
    view = Table(title=title, show_lines=False)
    for name in table.column_names:
        view.add_column(name, overflow="fold")
    for row in plain_rows(table):
        view.add_row(*("" if value is None else str(csv_cell(value)) for value in row.values()))
    return view


def run_summary_table(summary: dict[str, Any]) -> Table:
    """The one-screen summary of a run: one line per drop plus totals."""
    numbers = {
        "images": "images",
        "audio": "audio",
        "duplicates": "dup",
        "rejected": "rejected",
        "faces": "faces",
        "faces_excluded": "excl",
        "segments": "segments",
    }
    view = Table(title=f"run {summary['run_id']}")
    view.add_column("drop", overflow="fold")
    view.add_column("result")
    for header in numbers.values():
        view.add_column(header, justify="right")
    view.add_column("detector / note", overflow="fold")
    faces = {stage["drop_id"]: stage for stage in summary.get("faces", [])}
    audio = {stage["drop_id"]: stage for stage in summary.get("audio", [])}
    for drop in summary["drops"]:
        stage = faces.get(drop["drop_id"], {})
        counts = {**drop["counts"], **stage.get("counts", {}), **audio.get(drop["drop_id"], {}).get("counts", {})}
        note = drop["message"] or stage.get("model") or ""
        view.add_row(drop["drop_id"], drop["status"], *(str(counts.get(k, 0)) for k in numbers), note)
    return view
