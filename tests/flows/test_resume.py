"""A run killed mid-way leaves no partial rows, and the next run ends with the same tables."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL

from flows.nightly import nightly
from schemas.home import HomeLayout
from schemas.tables import LAKE_TABLES, table_spec
from tasks.lake import read_table
from tests.drops import write_small_drop

RUN_DEPENDENT = {"run_id"}
ROOT = Path(__file__).resolve().parents[2]


def data_rows(home: Path) -> dict[str, list[tuple]]:
    """Every data table's rows, sorted, without run ids (they differ between runs by design)."""
    tables = {}
    for spec in LAKE_TABLES:
        if spec.name == "runs":
            continue
        rows = read_table(HomeLayout(home), spec).to_pylist()
        tables[spec.name] = sorted(
            tuple((k, str(v)) for k, v in row.items() if k not in RUN_DEPENDENT and k != "source") for row in rows
        )
    return tables


def make_drops(inbox: Path) -> list[str]:
    """Three drops of different sizes so a kill can land between and inside them."""
    return [str(write_small_drop(inbox / f"d{i}", seed=i, n_images=n)) for i, n in enumerate((3, 40, 25))]


def start_run_process(home: Path, drops: list[str]) -> subprocess.Popen:
    """Start 'breedwatch run' in a child process against the test Prefect server."""
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    command = [sys.executable, "-m", "flows.cli", "run", "--home", str(home), *drops]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for(predicate, process: subprocess.Popen, timeout_s: float = 120.0) -> None:
    """Poll until the predicate holds; fail if the process ends first."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if process.poll() is not None:
            pytest.fail("the run finished before the moment chosen to kill it")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("timed out waiting for the moment to kill the run")
        time.sleep(0.005)


def first_part_written(home: Path) -> bool:
    """True once any data part exists (the run is inside the ingest stage)."""
    return any(p for p in (home / "lake").glob("media/drop=*/part-*.parquet")) if (home / "lake").exists() else False


def first_drop_committed(home: Path) -> bool:
    """True once one drop's ingest is committed (the run is between or inside later drops)."""
    return any((home / "lake" / "_state").glob("drop=*/ingest.json")) if (home / "lake").exists() else False


@pytest.mark.parametrize("moment", [first_part_written, first_drop_committed], ids=["inside-a-drop", "after-a-drop"])
def test_killed_run_resumes_to_the_same_tables(tmp_path, moment):
    drops = make_drops(tmp_path / "inbox")
    nightly(drops=drops, home=str(tmp_path / "reference"))
    killed_home = tmp_path / "killed"
    process = start_run_process(killed_home, drops)
    wait_for(lambda: moment(killed_home), process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert not any("drop=d2" in str(p) for p in (killed_home / "lake" / "_state").glob("*")), "killed too late"
    resumed = nightly(drops=drops, home=str(killed_home))
    assert data_rows(killed_home) == data_rows(tmp_path / "reference")
    assert not list(killed_home.rglob("*.partial")), "temp files must be swept"
    statuses = {
        row["run_id"]: row["status"] for row in read_table(HomeLayout(killed_home), table_spec("runs")).to_pylist()
    }
    assert statuses[resumed["run_id"]] == "completed"
    assert sorted(statuses.values()) == ["completed", "failed"]  # the killed run is marked failed, not left running
