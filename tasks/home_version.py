"""The home's version record (home.json): a newer breedwatch opens an older home, an older one refuses a newer home."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from schemas.home import HOME_LAYOUT_VERSION, HomeLayout
from schemas.tables import LAKE_TABLES, TableSpec
from tasks.lake import write_json_atomic
from tasks.runs import code_version


class HomeVersionError(RuntimeError):
    """The home was written by a newer breedwatch than this one."""


def code_versions(tables: Sequence[TableSpec]) -> dict[str, Any]:
    """What this code writes: its home layout version and each table's schema version."""
    return {"layout_version": HOME_LAYOUT_VERSION, "tables": {spec.name: spec.version for spec in tables}}


def read_home_version(home: HomeLayout) -> dict[str, Any] | None:
    """The home's version record, or None for a home from before versions were recorded (layout 1)."""
    try:
        return json.loads(home.version_file.read_text())
    except FileNotFoundError:
        return None


def newer_parts(record: dict[str, Any], tables: Sequence[TableSpec]) -> list[str]:
    """What in the home's record this code does not know: a later layout, later table versions, unknown tables."""
    mine = code_versions(tables)
    newer = []
    if int(record.get("layout_version", 1)) > mine["layout_version"]:
        newer.append(f"home layout {record['layout_version']} (this code: {mine['layout_version']})")
    for name, version in sorted(record.get("tables", {}).items()):
        if name not in mine["tables"]:
            newer.append(f"table {name} v{version} (unknown here)")
        elif int(version) > mine["tables"][name]:
            newer.append(f"table {name} v{version} (this code: v{mine['tables'][name]})")
    return newer


def check_home_version(home: HomeLayout, tables: Sequence[TableSpec] | None = None) -> dict[str, Any] | None:
    """Refuse, in one sentence, a home written by a newer breedwatch; return its record."""
    tables = LAKE_TABLES if tables is None else tables
    record = read_home_version(home)
    newer = newer_parts(record, tables) if record else []
    if newer:
        raise HomeVersionError(
            f"The breedwatch home {home.root} was written by breedwatch {record.get('written_by', '(unknown)')} with "
            f"{', '.join(newer)}, newer than this breedwatch {code_version()} understands: upgrade breedwatch to "
            f"{record.get('written_by', 'the version that wrote it')} or later to use this home."
        )
    return record


def open_home_for_writing(home: HomeLayout, tables: Sequence[TableSpec] | None = None) -> None:
    """Check the home's version and record this code's versions before its first write (an older home is migrated:
    its old parts stay and are read through the views and tasks.lake.conform; new parts are written in the new
    schema)."""
    tables = LAKE_TABLES if tables is None else tables
    record = check_home_version(home, tables)
    mine = code_versions(tables)
    if record and {key: record.get(key) for key in mine} == mine:
        return
    previous = {key: record.get(key) for key in mine} if record else None
    home.root.mkdir(parents=True, exist_ok=True)
    write_json_atomic(
        home.version_file,
        {**mine, "written_by": code_version(), "updated_at": datetime.now(UTC).isoformat(), "previous": previous},
    )
