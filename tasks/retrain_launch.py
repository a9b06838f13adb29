"""Start `breedwatch retrain KIND` as a process of its own, detached from the caller (the review app never trains
inside its web process), and refuse a second one while the first runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schemas.home import HomeLayout
from tasks.lake import write_json_atomic

RETRAIN_KINDS = ("gender", "mating", "detector", "identity")
RECORD_FILE = "retrain.json"  # under <home>/runs: the running retrain's process, kind and log
STARTING = threading.Lock()  # two clicks in one app process: the check and the start happen as one


class RetrainBusyError(RuntimeError):
    """A retrain is already running in this home, with a sentence naming it."""


def record_path(home: HomeLayout) -> Path:
    """The file naming the last retrain started in this home."""
    return home.root / "runs" / RECORD_FILE


def process_alive(pid: int) -> bool:
    """Whether a process still runs (a finished child of ours is reaped here, so it does not count as running)."""
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
        return finished == 0
    except ChildProcessError:  # not our child: ask the system whether it exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def running_retrain(home: HomeLayout) -> dict[str, Any] | None:
    """The record of the retrain running in this home, or None."""
    path = record_path(home)
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    return record if process_alive(int(record["pid"])) else None


def retrain_command(home: HomeLayout, kind: str, config_file: Path | None) -> list[str]:
    """The command line of one retrain (this Python, this home and configuration)."""
    command = [sys.executable, "-m", "flows.cli", "retrain", kind, "--home", str(home.root)]
    return command + (["--config", str(config_file)] if config_file else [])


def spawn(command: list[str], log: Path) -> int:
    """Start a command in a new session (it outlives the caller and none of its signals reach it), output to the log;
    its process id."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as handle:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
    return process.pid


def start_retrain(home: HomeLayout, kind: str, config_file: Path | None) -> dict[str, Any]:
    """Start a retrain of one kind unless one is running (RetrainBusyError); its record: kind, pid, log, start time."""
    if kind not in RETRAIN_KINDS:
        raise ValueError(f"Retraining {kind!r} is not offered here; choose one of {', '.join(RETRAIN_KINDS)}.")
    with STARTING:
        running = running_retrain(home)
        if running is not None:
            raise RetrainBusyError(
                f"A {running['kind']} retrain started at {running['started_at']} is still running "
                f"(process {running['pid']}, log {running['log']}); wait for it to finish."
            )
        started = datetime.now(UTC)
        log = home.root / "runs" / f"retrain-{kind}-{started:%Y%m%dT%H%M%S}.log"
        pid = spawn(retrain_command(home, kind, config_file), log)
        record = {
            "kind": kind,
            "pid": pid,
            "log": str(log.relative_to(home.root)),
            "started_at": started.isoformat(timespec="seconds"),
        }
        write_json_atomic(record_path(home), record)
    return record
