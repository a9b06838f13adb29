"""Schema versions both ways: a newer breedwatch reads an older home, an older breedwatch refuses a newer home."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from typer.testing import CliRunner

import schemas.tables
import tasks.catalog
import tasks.home_version
import tasks.lake
from flows.cli import app
from flows.nightly import nightly
from schemas.config import load_settings
from schemas.home import HOME_LAYOUT_VERSION, HomeLayout
from schemas.tables import LAKE_TABLES, MEDIA, Renamed, TableSpec
from tasks.catalog import query, refresh_views
from tasks.home_version import HomeVersionError, check_home_version, open_home_for_writing
from tasks.ingest import ingest_drop_dir
from tasks.lake import read_part, read_table, write_rows
from tests.drops import write_small_drop

# What a future version might do to media: rename camera_model and add a column.
FUTURE_MEDIA = TableSpec(
    "media",
    MEDIA.version + 1,
    pa.schema(
        [pa.field("camera_model_name", f.type) if f.name == "camera_model" else f for f in MEDIA.schema]
        + [pa.field("light_level", pa.float64())]
    ),
    renamed=(Renamed(MEDIA.version + 1, "camera_model", "camera_model_name"),),
)
FUTURE_TABLES = tuple(FUTURE_MEDIA if spec.name == "media" else spec for spec in LAKE_TABLES)
MODULES_WITH_TABLES = (schemas.tables, tasks.lake, tasks.catalog, tasks.home_version)


def run_future_code(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make this process behave like the future version (its table list everywhere the code reads it)."""
    for module in MODULES_WITH_TABLES:
        monkeypatch.setattr(module, "LAKE_TABLES", FUTURE_TABLES)


@pytest.fixture()
def todays_home(tmp_path) -> HomeLayout:
    """A home written by today's code: one ingested drop, its catalog and its version record."""
    settings = load_settings(None, home=tmp_path / "home")
    layout = HomeLayout(settings.home)
    open_home_for_writing(layout)
    assert ingest_drop_dir(write_small_drop(tmp_path / "d1"), layout, "run-1", settings, lambda: None).status
    refresh_views(layout, settings.view_thresholds())
    return layout


def test_the_home_records_its_layout_and_table_versions(todays_home):
    record = json.loads(todays_home.version_file.read_text())
    assert record["layout_version"] == HOME_LAYOUT_VERSION
    assert record["tables"] == {spec.name: spec.version for spec in LAKE_TABLES}
    assert record["written_by"] and record["previous"] is None


def test_a_home_from_before_version_records_opens_and_gets_one(todays_home):
    todays_home.version_file.unlink()
    assert check_home_version(todays_home) is None
    open_home_for_writing(todays_home)
    assert json.loads(todays_home.version_file.read_text())["tables"]["media"] == MEDIA.version


def test_newer_code_reads_the_older_home_and_older_code_refuses_it_after(todays_home, monkeypatch, tmp_path):
    old_cameras = query(todays_home, "SELECT path, camera_model FROM media WHERE kind = 'image'").to_pylist()
    assert "HC550 HYPERFIRE" in {row["camera_model"] for row in old_cameras}

    run_future_code(monkeypatch)
    open_home_for_writing(todays_home)  # the newer code's first write records its versions
    record = json.loads(todays_home.version_file.read_text())
    assert record["tables"]["media"] == FUTURE_MEDIA.version and record["previous"]["tables"]["media"] == MEDIA.version
    new_row = {"media_id": "m-new", "drop_id": "d2", "path": "images/x.jpg", "kind": "image", "status": "ok"}
    write_rows(todays_home, FUTURE_MEDIA, "d2", "ingest", [{**new_row, "camera_model_name": "X9", "light_level": 0.5}])
    refresh_views(todays_home, load_settings(None, home=todays_home.root).view_thresholds())

    rows = query(todays_home, "SELECT drop_id, path, camera_model_name, light_level FROM media WHERE kind = 'image'")
    by_path = {(row["drop_id"], row["path"]): row for row in rows.to_pylist()}
    for old in old_cameras:  # old parts through the view: the renamed column under its new name, the new one null
        assert by_path["d1", old["path"]]["camera_model_name"] == old["camera_model"]
        assert by_path["d1", old["path"]]["light_level"] is None
    assert by_path["d2", "images/x.jpg"]["camera_model_name"] == "X9" and by_path["d2", "images/x.jpg"]["light_level"]
    columns = query(todays_home, "SELECT * FROM media LIMIT 0").column_names
    assert columns == FUTURE_MEDIA.schema.names  # camera_model is gone, in schema order
    assert query(todays_home, "SELECT count(*) AS n FROM animals").column("n")[0].as_py() > 0  # derived views work
    old_part = todays_home.part("media", "drop", "d1", "ingest")
    assert set(read_part(old_part, FUTURE_MEDIA, ["camera_model_name"]).column(0).to_pylist()) >= {"HC550 HYPERFIRE"}
    assert read_table(todays_home, FUTURE_MEDIA).num_rows == len(rows) + 1  # and the recording

    monkeypatch.undo()  # today's code again, on the home the future code has written
    with pytest.raises(HomeVersionError) as refused:
        check_home_version(todays_home)
    sentence = str(refused.value)
    assert str(todays_home.root) in sentence and f"table media v{FUTURE_MEDIA.version} (this code: v1)" in sentence
    assert "upgrade breedwatch" in sentence and sentence.count(". ") == 0 and "\n" not in sentence
    with pytest.raises(HomeVersionError):
        query(todays_home, "SELECT 1")
    with pytest.raises(HomeVersionError):
        nightly(drops=[], home=str(todays_home.root))
    result = CliRunner().invoke(app, ["query", "--home", str(todays_home.root), "SELECT 1"])
    assert result.exit_code == 1 and result.output.strip().startswith("The breedwatch home")


def test_an_unknown_table_or_layout_counts_as_newer(todays_home):
    record = json.loads(todays_home.version_file.read_text())
    todays_home.version_file.write_text(json.dumps({**record, "tables": {**record["tables"], "pose_keypoints": 1}}))
    with pytest.raises(HomeVersionError, match="table pose_keypoints v1 \\(unknown here\\)"):
        check_home_version(todays_home)
    todays_home.version_file.write_text(json.dumps({**record, "layout_version": HOME_LAYOUT_VERSION + 1}))
    with pytest.raises(HomeVersionError, match=f"home layout {HOME_LAYOUT_VERSION + 1}"):
        check_home_version(todays_home)


def test_renames_chain_across_versions():
    spec = TableSpec(
        "t",
        3,
        pa.schema([("c", pa.string())]),
        renamed=(Renamed(2, "a", "b"), Renamed(3, "b", "c")),
    )
    assert spec.old_names() == {"a": "c", "b": "c"}
    assert spec.read_schema().names == ["c", "a", "b"]
