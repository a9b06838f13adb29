"""The catalog is built whole into a temp file and renamed: a killed refresh's leftovers, an old write-ahead log and
an open reader neither break the next refresh nor see a half-built catalog."""

from __future__ import annotations

from pathlib import Path

import duckdb

from schemas.config import Settings
from schemas.tables import ANIMALS_MANIFEST
from tasks.catalog import query, refresh_views, wal_path
from tasks.lake import TEMP_PREFIX, write_rows
from tests.review_home import write_review_home


def test_refresh_replaces_the_catalog_whole_over_a_killed_refreshs_leftovers(tmp_path: Path) -> None:
    home = write_review_home(tmp_path / "home")
    building = home.root / f"{TEMP_PREFIX}{home.catalog.name}.partial"
    building.write_bytes(b"half a database from a killed refresh")
    wal_path(building).write_bytes(b"its log")
    wal_path(home.catalog).write_bytes(b"a log an older writer left when killed")
    reader = duckdb.connect(str(home.catalog), read_only=True)  # a query under way while the run refreshes
    try:
        names = refresh_views(home, Settings().view_thresholds())
        assert reader.sql("SELECT count(*) FROM faces").fetchall()[0][0] == 9
    finally:
        reader.close()
    assert not building.exists() and not wal_path(building).exists() and not wal_path(home.catalog).exists()
    relations = query(home, "SELECT table_name FROM information_schema.tables").column("table_name").to_pylist()
    assert set(names) <= set(relations)
    assert query(home, "SELECT count(*) AS n FROM animals").column("n").to_pylist() == [2]


def test_an_animal_named_differently_by_two_drops_takes_the_latest_drops_name(tmp_path: Path) -> None:
    home = write_review_home(tmp_path / "home")
    for drop, name in (("d0", "Lexiao"), ("d2", "Luntian"), ("d3", None)):
        write_rows(home, ANIMALS_MANIFEST, drop, "ingest", [{"drop_id": drop, "animal_id": "A01", "name": name}])
    for _ in range(3):  # any_value gave either name, so two refreshes of one lake could differ
        refresh_views(home, Settings().view_thresholds())
        assert query(home, "SELECT name FROM animals WHERE animal_id = 'A01'").column("name").to_pylist() == ["Luntian"]
