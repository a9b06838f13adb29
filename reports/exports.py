"""Report tables as CSV text: the same rows the HTML shows, for spreadsheets and scripts."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from reports.console import csv_cell, plain_rows

TABLE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
EMBEDDED_IMAGE = "data:image/"

Rows = Sequence[Mapping[str, Any]]


def is_table(value: object) -> bool:
    """A report-context value that is a table: an Arrow table or a list of row dicts."""
    return isinstance(value, pa.Table) or (isinstance(value, list) and all(isinstance(row, Mapping) for row in value))


def report_tables(context: Mapping[str, Any]) -> dict[str, pa.Table | Rows]:
    """Every table of a report context (lists of rows or Arrow tables), by name; other values are left out."""
    return {name: value for name, value in context.items() if is_table(value)}


def check_table_name(name: str) -> str:
    """Table names become file names: lower-case letters, digits and '_' only."""
    if not TABLE_NAME.match(name):
        raise ValueError(
            f"report table name {name!r} must be lower-case letters, digits and '_' (it becomes a file name)"
        )
    return name


def is_embedded_image(value: object) -> bool:
    """Pictures embedded in the HTML (data: URIs, bytes) have no place in a CSV cell."""
    return isinstance(value, (bytes, bytearray)) or (isinstance(value, str) and value.startswith(EMBEDDED_IMAGE))


def columns_of(rows: Rows) -> list[str]:
    """Column names in first-seen order over all rows, without columns that only hold embedded images."""
    names: dict[str, bool] = {}
    for row in rows:
        for name, value in row.items():
            names[name] = names.get(name, True) and (value is None or is_embedded_image(value))
    return [name for name, images_only in names.items() if not images_only]


def rows_to_csv(rows: Rows, columns: Sequence[str] | None = None) -> str:
    """CSV with a header: empty cells for nulls, ISO 8601 times, JSON for nested values, no embedded images."""
    header = list(columns) if columns is not None else columns_of(rows)
    if not header:
        return ""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if is_embedded_image(row.get(name)) else csv_cell(row.get(name)) for name in header])
    return buffer.getvalue()


def table_csv(table: pa.Table | Rows) -> str:
    """CSV text of an Arrow table (header kept even when it has no rows) or of row dicts."""
    if isinstance(table, pa.Table):
        return rows_to_csv(plain_rows(table), table.column_names)
    return rows_to_csv(table)


IMAGE_KEYS = ("thumbnails", "thumbnail", "image", "plots")


def csv_tables(context: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The report's tables for CSV: every table of the context and of its review queue, pictures left out."""
    tables = {**report_tables(context), **{f"review_{k}": v for k, v in report_tables(context["review"]).items()}}
    tables.pop("drops", None)
    tables["drops"] = [
        {"drop_id": d["drop_id"], "status": d["status"], **d["counts"], "message": d.get("message", "")}
        for d in context["drops"]
    ]
    return {
        name: [{k: v for k, v in row.items() if k not in IMAGE_KEYS} for row in rows] for name, rows in tables.items()
    }
