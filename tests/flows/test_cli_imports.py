"""The analyst's commands answer without importing torch: `--help`, `query`, `report` and `export` run in a fresh
interpreter, which then reports what it imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from schemas.home import HomeLayout
from tasks.catalog import refresh_views

HEAVY = ("torch", "torchvision", "facenet_pytorch", "prefect.flows")
PROBE = """
import json, sys
from flows.cli import app
try:
    app(sys.argv[1:], standalone_mode=False)
    code = 0
except SystemExit as stop:
    code = stop.code
except Exception as error:
    code = type(error).__name__
print(json.dumps({"code": code, "heavy": [name for name in %r if name in sys.modules]}))
""" % (HEAVY,)  # noqa: UP031


def imported_by(*args: str) -> dict:
    """Exit code and heavy modules imported by one breedwatch command in a fresh interpreter."""
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=300, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def catalogued_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with an empty catalog (every view present, no drop)."""
    home = tmp_path_factory.mktemp("cli-imports") / "home"
    refresh_views(HomeLayout(home))
    return home


def test_help_imports_nothing_heavy() -> None:
    assert imported_by("--help") == {"code": 0, "heavy": []}


def test_query_imports_nothing_heavy(catalogued_home: Path) -> None:
    assert imported_by("query", "--home", str(catalogued_home), "select count(*) from media") == {
        "code": 0,
        "heavy": [],
    }


def test_report_and_export_import_nothing_heavy(catalogued_home: Path, tmp_path: Path) -> None:
    report = imported_by("report", "--home", str(catalogued_home))
    export = imported_by("export", "camtrap-dp", str(tmp_path / "package"), "--home", str(catalogued_home))
    assert report["heavy"] == [] and export["heavy"] == []
    assert report["code"] in (0, 1) and export["code"] in (0, 1)  # an empty catalog may have nothing to report


def test_heavy_commands_still_import_what_they_need() -> None:
    """The probe sees imports: `bench --help` stays light, but importing the bench's runner pulls torch in."""
    assert imported_by("bench", "--help")["heavy"] == []
    done = subprocess.run(
        [sys.executable, "-c", "import sys, tasks.bench.run; print('torch' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert done.stdout.strip() == "True"


def test_backup_and_restore_import_nothing_heavy(catalogued_home: Path, tmp_path: Path) -> None:
    archive = tmp_path / "home.tar"
    backup = imported_by("backup", str(archive), "--home", str(catalogued_home))
    restore = imported_by("restore", str(archive), str(tmp_path / "restored"))
    assert backup == {"code": 0, "heavy": []} and restore == {"code": 0, "heavy": []}
