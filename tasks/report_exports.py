"""Write every report table as CSV next to the report's HTML."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from reports.exports import Rows, check_table_name, report_tables, table_csv
from tasks.lake import write_bytes_atomic


def write_report_csvs(report_dir: Path, tables: Mapping[str, pa.Table | Rows]) -> list[Path]:
    """Write <report_dir>/<name>.csv for each table atomically and return the paths, in name order."""
    names = sorted(check_table_name(name) for name in tables)
    paths = []
    for name in names:
        path = report_dir / f"{name}.csv"
        write_bytes_atomic(path, table_csv(tables[name]).encode("utf-8"))
        paths.append(path)
    return paths


def write_context_csvs(report_dir: Path, context: Mapping[str, Any]) -> list[Path]:
    """Write every table of a report context (lists of row dicts or Arrow tables) as CSV beside report.html."""
    return write_report_csvs(report_dir, report_tables(context))
