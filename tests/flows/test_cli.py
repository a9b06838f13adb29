"""The command line: run, query formats and errors, configuration errors."""

from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from flows.cli import app
from tests.drops import write_small_drop

runner = CliRunner()


@pytest.fixture(scope="module")
def home_with_run(tmp_path_factory):
    """A home after one CLI run over a small drop."""
    root = tmp_path_factory.mktemp("cli")
    drop = write_small_drop(root / "inbox" / "d1")
    result = runner.invoke(app, ["run", "--home", str(root / "home"), str(drop)])
    assert result.exit_code == 0, result.output
    assert "report:" in result.output and "d1" in result.output
    return root / "home"


def test_query_table_csv_json(home_with_run):
    sql = "select kind, status, count(*) as n from media group by all order by all"
    table = runner.invoke(app, ["query", sql, "--home", str(home_with_run)])
    assert table.exit_code == 0 and "image" in table.output and "rejected" in table.output
    as_csv = runner.invoke(app, ["query", sql, "--format", "csv", "--home", str(home_with_run)])
    rows = list(csv.DictReader(io.StringIO(as_csv.output)))
    assert rows[0] == {"kind": "audio", "status": "ok", "n": "1"}
    as_json = runner.invoke(app, ["query", sql, "--format", "json", "--home", str(home_with_run)])
    assert json.loads(as_json.output)[1] == {"kind": "image", "status": "ok", "n": 6}


def test_json_renders_times_lists_and_maps(home_with_run):
    result = runner.invoke(
        app,
        [
            "query",
            "select captured_at, flags, duplicate_paths from media where kind='audio'",
            "--format",
            "json",
            "--home",
            str(home_with_run),
        ],
    )
    (row,) = json.loads(result.output)
    assert row["captured_at"].startswith("2026-03-04T13:00:00") and row["flags"] == []
    runs = json.loads(
        runner.invoke(
            app, ["query", "select counts from runs", "--format", "json", "--home", str(home_with_run)]
        ).output
    )
    assert runs[0]["counts"]["images"] == 6


def test_bad_query_prints_duckdb_message_and_exits_1(home_with_run):
    result = runner.invoke(app, ["query", "selec kind from media", "--home", str(home_with_run)])
    assert result.exit_code == 1
    assert "syntax error" in result.output and "Traceback" not in result.output
    missing = runner.invoke(app, ["query", "select * from no_such_table", "--home", str(home_with_run)])
    assert missing.exit_code == 1 and "no_such_table" in missing.output


def test_query_refuses_writes(home_with_run):
    result = runner.invoke(app, ["query", "create table x as select 1", "--home", str(home_with_run)])
    assert result.exit_code == 1 and "read-only" in result.output.lower()


def test_query_without_catalog_says_what_to_do(tmp_path):
    result = runner.invoke(app, ["query", "select 1", "--home", str(tmp_path)])
    assert result.exit_code == 1 and "breedwatch run" in result.output


def test_bad_config_exits_2_with_the_setting_named(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[schedule]\ntimezone = "Nowhere/Land"\n')
    result = runner.invoke(app, ["run", "--home", str(tmp_path), "--config", str(config)])
    assert result.exit_code == 2 and "schedule.timezone" in result.output


def test_unknown_format_is_refused(home_with_run):
    result = runner.invoke(app, ["query", "select 1", "--format", "xml", "--home", str(home_with_run)])
    assert result.exit_code == 2
