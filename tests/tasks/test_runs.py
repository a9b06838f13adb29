"""Run records: what a killed run left behind is swept by the next writer, and only that."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from schemas.config import load_settings
from schemas.home import HomeLayout
from tasks.lake import TEMP_PREFIX
from tasks.runs import record_run, recorded_runs, sweep_killed_writes


def temp_file(folder: Path, name: str) -> Path:
    """A temp file as a write killed midway leaves it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{TEMP_PREFIX}0123456789abcdef-{name}.partial"
    path.write_bytes(b"half")
    return path


def test_a_killed_runs_temp_files_are_swept_in_lake_run_and_report_folders_but_not_in_a_period_report(
    tmp_path: Path,
) -> None:
    home = HomeLayout(tmp_path / "home")
    run_id = "20261203T205738Z-de7db4"
    record_run(home, run_id, datetime(2026, 12, 3, 20, 57, tzinfo=UTC), "completed", load_settings(), [], {})
    left = [
        temp_file(home.lake / "faces" / "drop=d1", "part-faces.parquet"),
        temp_file(home.run_dir(run_id), "config.toml"),
        temp_file(home.report_dir(run_id), "review_animals.csv"),
    ]
    in_flight = temp_file(home.reports / "period-2026-11", "report.html")  # `breedwatch report` may be writing it
    assert sweep_killed_writes(home, recorded_runs(home)) == 3
    assert [path.exists() for path in left] == [False, False, False]
    assert in_flight.exists()
    assert sweep_killed_writes(home, recorded_runs(home)) == 0
