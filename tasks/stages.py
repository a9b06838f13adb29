"""One protocol for the per-drop stages after ingest. A stage declares its name, the stages whose committed output it
reads, what else its results depend on (models, result-changing settings) and its compute; one runner fingerprints,
skips unchanged work, commits the marker and returns a typed result. "A new model version re-runs only the stages it
affects" follows: a stage's fingerprint holds its own dependencies and the fingerprints of the stages it reads.
Adding a stage is one module defining a DropStage plus one entry in tasks.stage_registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from schemas.config import Settings
from schemas.home import HomeLayout
from tasks.lake import read_marker, write_marker

INGEST = "ingest"
UNCHANGED = "unchanged"
NO_MODEL = "no_model"


@dataclass(frozen=True)
class StageRun:
    """Everything a stage's compute works on: the home, the drop (folder and id), the run and its settings, and the
    progress callback it calls once per item done."""

    home: HomeLayout
    drop_dir: Path
    drop_id: str
    run_id: str
    settings: Settings
    advance: Callable[[], None]


@dataclass(frozen=True)
class Computed:
    """What a stage's compute did: its status word, the counts of what it wrote, the model (or detector) version it
    used and a sentence for the log."""

    status: str
    counts: dict[str, int]
    model: str | None = None
    message: str = ""


@dataclass(frozen=True)
class StageResult:
    """What one stage did to one drop, small enough to pass between Prefect tasks."""

    drop_id: str
    stage: str
    status: str
    counts: dict[str, int] = field(default_factory=dict)
    model: str | None = None
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Plain data for logs, artifacts and the run summary."""
        return asdict(self)


@dataclass(frozen=True)
class DropStage:
    """A per-drop stage: its name, the stages it reads, its version (raised when its code changes its results), what
    else its results depend on, its compute, its config section (device and progress label) and the ingest count or
    committed count it works through."""

    name: str
    after: tuple[str, ...]
    version: str
    depends: Callable[[HomeLayout, Settings], str]
    compute: Callable[[StageRun], Computed]
    section: str
    work: Callable[[HomeLayout, str, dict[str, int]], int]


def fingerprint(stage: DropStage, home: HomeLayout, drop_id: str, settings: Settings) -> str:
    """What must stay the same for a drop's committed output of the stage to be reused: its version, the committed
    fingerprints of the stages it reads and its own dependencies."""
    upstream = []
    for name in stage.after:
        marker = read_marker(home, drop_id, name)
        upstream.append(marker["fingerprint"] if marker else "")
    return ":".join([stage.version, *upstream, stage.depends(home, settings)])


def is_current(stage: DropStage, home: HomeLayout, drop_id: str, settings: Settings) -> bool:
    """Whether the drop's committed output of the stage matches what it would compute now."""
    marker = read_marker(home, drop_id, stage.name)
    return marker is not None and marker["fingerprint"] == fingerprint(stage, home, drop_id, settings)


def run_stage(stage: DropStage, run: StageRun) -> StageResult:
    """Run a stage on one drop unless identical work is committed; its marker is written last, after its parts."""
    current = fingerprint(stage, run.home, run.drop_id, run.settings)
    marker = read_marker(run.home, run.drop_id, stage.name)
    if marker and marker["fingerprint"] == current:
        status = NO_MODEL if marker.get("status") == NO_MODEL else UNCHANGED  # still say why nothing was predicted
        return StageResult(
            run.drop_id, stage.name, status, marker["counts"], marker.get("model"), marker.get("message", "")
        )
    done = stage.compute(run)
    write_marker(
        run.home,
        run.drop_id,
        stage.name,
        {
            "fingerprint": current,
            "counts": done.counts,
            "run_id": run.run_id,
            "model": done.model,
            "status": done.status,
            "message": done.message,
        },
    )
    return StageResult(run.drop_id, stage.name, done.status, done.counts, done.model, done.message)


def ingest_count(key: str) -> Callable[[HomeLayout, str, dict[str, int]], int]:
    """A stage's work total: one of the drop's ingest counts (images, audio)."""
    return lambda home, drop_id, ingested: int(ingested.get(key, 0))


def run_on_drop(
    stage: DropStage,
    home: HomeLayout,
    drop_dir: Path,
    drop_id: str,
    run_id: str,
    settings: Settings,
    advance: Callable[[], None] = lambda: None,
) -> StageResult:
    """run_stage on one drop, given its parts."""
    return run_stage(stage, StageRun(home, drop_dir, drop_id, run_id, settings, advance))
