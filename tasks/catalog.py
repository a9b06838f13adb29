"""The DuckDB catalog: one writer refreshes views over the lake; readers query read-only."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import duckdb
import pyarrow as pa

from schemas.home import HomeLayout
from schemas.tables import LAKE_TABLES, TableSpec
from tasks.lake import ensure_schema_parts

LOCK_RETRIES = 20
LOCK_WAIT_S = 0.25


class CatalogMissingError(RuntimeError):
    """The home has no catalog yet."""


def view_sql(spec: TableSpec, lake: Path) -> str:
    """CREATE VIEW over every part of a table; the lake path is an identifier we control, not user input."""
    pattern = (lake / spec.name / "*" / "part-*.parquet").as_posix().replace("'", "''")
    return (
        f"CREATE OR REPLACE VIEW {spec.name} AS SELECT * FROM read_parquet('{pattern}', "
        "union_by_name = true, hive_partitioning = false)"
    )


DERIVED_VIEWS = {
    # Detector yield: faces per image per camera (first folder under images/) per local night.
    "detector_yield": """
        CREATE OR REPLACE VIEW detector_yield AS
        WITH frames AS (
            SELECT m.drop_id, m.media_id, split_part(m.path, '/', 2) AS camera,
                   CAST((m.captured_at AT TIME ZONE coalesce(d.timezone, 'UTC')) - INTERVAL 12 HOUR AS DATE) AS night
            FROM media m LEFT JOIN drops d USING (drop_id)
            WHERE m.kind = 'image' AND m.status = 'ok' AND m.path LIKE 'images/%'
        )
        SELECT fr.drop_id, fr.camera, fr.night,
               count(DISTINCT fr.media_id) AS images,
               count(f.face_id) AS faces,
               count(f.face_id) FILTER (WHERE NOT f.excluded) AS usable_faces,
               round(count(f.face_id) / count(DISTINCT fr.media_id), 3) AS faces_per_image,
               any_value(f.detector) AS detector
        FROM frames fr LEFT JOIN faces f ON f.media_id = fr.media_id AND f.drop_id = fr.drop_id
        GROUP BY ALL ORDER BY fr.drop_id, fr.camera, fr.night
    """,
}


def write_thresholds(con: duckdb.DuckDBPyConnection, thresholds: Mapping[str, float]) -> None:
    """The `thresholds` table (name, value): decision bands the views read, so a band changes without re-running models."""
    con.execute("CREATE OR REPLACE TABLE thresholds (name VARCHAR PRIMARY KEY, value DOUBLE NOT NULL)")
    if thresholds:
        con.executemany("INSERT INTO thresholds VALUES (?, ?)", [[name, float(value)] for name, value in sorted(thresholds.items())])


def refresh_views(home: HomeLayout, thresholds: Mapping[str, float] | None = None) -> list[str]:
    """(Re)create every lake view and derived view; the only code that opens the catalog for writing."""
    ensure_schema_parts(home)
    with connect_with_retry(home.catalog, read_only=False) as con:
        write_thresholds(con, thresholds or {})
        for spec in LAKE_TABLES:
            con.execute(view_sql(spec, home.lake.resolve()))
        for sql in DERIVED_VIEWS.values():
            con.execute(sql)
    return [spec.name for spec in LAKE_TABLES] + list(DERIVED_VIEWS)


def connect_with_retry(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    """Open the catalog, waiting briefly while another process holds its lock."""
    for attempt in range(LOCK_RETRIES):
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or attempt == LOCK_RETRIES - 1:
                raise
            time.sleep(LOCK_WAIT_S)
    raise AssertionError("unreachable")


def query(home: HomeLayout, sql: str, parameters: list[object] | None = None) -> pa.Table:
    """Run SQL against the catalog read-only and return the result as an Arrow table."""
    if not home.catalog.exists():
        raise CatalogMissingError(f"no catalog at {home.catalog}: run 'breedwatch run' (or 'make demo') first")
    with connect_with_retry(home.catalog, read_only=True) as con:
        relation = con.sql(sql, params=parameters or None)
        return relation.to_arrow_table() if relation is not None else pa.table({})
