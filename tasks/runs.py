"""Run records: the runs table, the saved resolved config, the code version."""

from __future__ import annotations

import secrets
import subprocess
import tomllib
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import tomli_w

from schemas.config import Settings
from schemas.home import HomeLayout
from schemas.tables import RUNS
from tasks.lake import TEMP_PREFIX, read_part, read_table, sweep_temp_files, write_bytes_atomic, write_rows

CONFIG_FILE = "config.toml"


def new_run_id(now: datetime) -> str:
    """A sortable, unique run id such as 20261124T020000Z-3f9a1c."""
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


def code_version() -> str:
    """The package version plus the git commit (and '-dirty') when run from a checkout."""
    version = metadata.version("breedwatch")
    source = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(source), "describe", "--always", "--dirty", "--abbrev=10"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return version
    return f"{version}+{commit}" if commit else version


def save_run_config(home: HomeLayout, run_id: str, settings: Settings) -> Path:
    """Write the resolved configuration of a run to runs/<run_id>/config.toml."""
    path = home.run_dir(run_id) / CONFIG_FILE
    write_bytes_atomic(path, tomli_w.dumps(settings.public_dict()).encode())
    return path


def load_run_settings(home: HomeLayout, run_id: str) -> Settings:
    """Read back the exact configuration a run started with (environment variables are not re-applied)."""
    data = tomllib.loads((home.run_dir(run_id) / CONFIG_FILE).read_text())
    return Settings.model_validate(data)


def record_run(
    home: HomeLayout,
    run_id: str,
    started_at: datetime,
    status: str,
    settings: Settings,
    drops: list[str],
    counts: dict[str, int],
    error: str | None = None,
    execution: dict[str, str] | None = None,
) -> None:
    """Write (or replace) the run's row in the runs table; execution says how each net runs on this machine (kept from
    the run's earlier row when not given)."""
    if execution is None:
        execution = recorded_execution(home, run_id)
    finished = datetime.now(UTC) if status != "running" else None
    row = {
        "run_id": run_id,
        "started_at": started_at,
        "finished_at": finished,
        "status": status,
        "code_version": code_version(),
        "config_hash": settings.fingerprint(),
        "drops": drops,
        "counts": sorted(counts.items()),
        "error": error,
        "execution": sorted((execution or {}).items()),
    }
    write_rows(home, RUNS, run_id, "run", [row])


def recorded_execution(home: HomeLayout, run_id: str) -> dict[str, str]:
    """How each net ran, as the run's row records it; empty before the run's first row."""
    part = home.part(RUNS.name, RUNS.partition, run_id, "run")
    if not part.exists():
        return {}
    rows = read_part(part, RUNS, ["execution"]).to_pylist()
    return dict(rows[0]["execution"] or []) if rows else {}


def recorded_runs(home: HomeLayout) -> list[dict[str, Any]]:
    """Every run record of the home (the runs table's rows)."""
    return read_table(home, RUNS).to_pylist()


def sweep_killed_writes(home: HomeLayout, runs: list[dict[str, Any]]) -> int:
    """Delete the temp files a killed run left (in the lake, run folders and the recorded runs' report folders; a
    period report, which a command may be writing beside a run, is left alone) and return how many there were."""
    run_ids = {row["run_id"] for row in runs}
    in_reports = home.reports.glob(f"*/{TEMP_PREFIX}*.partial") if home.reports.exists() else []
    left = [temp for temp in in_reports if temp.parent.name in run_ids]  # one listing, not one walk per run
    for temp in left:
        temp.unlink(missing_ok=True)
    return sweep_temp_files(home, [home.runs]) + len(left)


def mark_abandoned_runs(home: HomeLayout, runs: list[dict[str, Any]]) -> list[str]:
    """Mark the recorded runs still 'running' as failed: only the lock holder runs, so they were killed."""
    abandoned = [row for row in runs if row["status"] == "running"]
    for row in abandoned:
        row.update(status="failed", error="The run was killed before it finished; a later run resumed its work.")
        for column in ("counts", "execution"):
            row[column] = sorted((row[column] or {}).items()) if isinstance(row[column], dict) else row[column]
        write_rows(home, RUNS, row["run_id"], "run", [row])
    return [row["run_id"] for row in abandoned]
