"""Damaged lake parts: find them (every page read back against its CRC), say how each is rebuilt, and set them aside
under lake/_damaged/ so every view answers without them until a run rebuilds them.

A part is rebuilt by re-running the stage that wrote it on its drop: setting it aside marks that stage's commit marker
stale (the marker keeps the drop's folder), so `breedwatch run DROP` (or the next nightly run, for a drop still in the
inbox) runs that stage again and nothing else. Corrections are the one table no run can write again: a damaged
corrections part comes back from a backup."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from schemas.home import HomeLayout
from schemas.tables import CORRECTIONS, RUNS
from tasks.compaction import file_keys, is_compacted_folder
from tasks.lake import read_marker, write_json_atomic, write_marker

INGEST_STAGE = "ingest"
NOTE_SUFFIX = ".damaged.json"
LAKE_FILE = re.compile(r"(/[^'\"\s]*/lake/[^'\"\s]+\.parquet)")


class DamagedPartError(RuntimeError):
    """A query or refresh met a lake part it could not read; the message names it and what to do."""


@dataclass(frozen=True)
class DamagedPart:
    """A lake part that does not read back whole: where it is, why, which drops' stages wrote it and the command that
    rebuilds it."""

    path: str
    table: str
    reason: str
    stages: list[tuple[str, str]]
    rebuild: str


def part_damage(path: Path) -> str | None:
    """Why a Parquet part cannot be trusted (its footer, a page whose CRC fails, data that does not decode), or None
    when every page reads back."""
    try:
        file = pq.ParquetFile(path, page_checksum_verification=True)
        for group in range(file.num_row_groups):
            file.read_row_group(group)
    except (OSError, pa.ArrowException, ValueError) as error:
        said = str(error).splitlines()[0] if str(error).strip() else type(error).__name__
        return "".join(char if char.isprintable() else "?" for char in said)  # thrift quotes the damaged bytes
    return None


def lake_parts(home: HomeLayout) -> list[Path]:
    """Every published Parquet part of the lake (own, compacted and schema parts; not those set aside)."""
    return sorted(home.lake.glob("*/*/part-*.parquet")) if home.lake.exists() else []


def stage_of(part_name: str) -> str:
    """The stage that writes a part of this name ('part-faces.parquet': faces)."""
    return part_name.removeprefix("part-").removesuffix(".parquet")


def written_by(path: Path) -> list[tuple[str, str]]:
    """The (drop, stage) pairs whose output a part holds: its own drop and stage, or those a compacted file lists
    (none when its footer is unreadable, or for runs, corrections and schema parts)."""
    if path.parent.name.startswith("drop="):
        return [(path.parent.name.split("=", 1)[1], stage_of(path.name))]
    if is_compacted_folder(path.parent) and not path.name.startswith("part-schema-"):
        try:
            held = file_keys(path)
        except (OSError, pa.ArrowException, ValueError):
            return []
        return sorted(
            {
                (key.split("=", 1)[1], stage_of(name))
                for key, names in held.items()
                if key.startswith("drop=")
                for name in names
            }
        )
    return []


def drop_source(home: HomeLayout, drop_id: str) -> str | None:
    """The drop folder its ingest recorded, or None."""
    marker = read_marker(home, drop_id, INGEST_STAGE)
    return marker.get("source") if marker else None


def rebuild_advice(home: HomeLayout, path: Path, stages: list[tuple[str, str]], set_aside: bool) -> str:
    """One sentence saying how the part's rows come back: the breedwatch command line that re-runs its drops' stages,
    or, for corrections, the backup."""
    flag = f"--home {shlex.quote(str(home.root))}"
    table = path.parent.parent.name
    if table == CORRECTIONS.name:
        return (
            "it holds keepers' corrections, which no run can write again: restore a backup into another folder "
            f"(breedwatch restore BACKUP.tar OTHER) and copy OTHER/lake/{path.relative_to(home.lake)} back"
        )
    if path.name.startswith("part-schema-"):
        return f"it is an empty schema part, written again by the next catalog refresh (breedwatch compact {flag})"
    if table == RUNS.name:
        return "it is one run's record in the runs table; no run writes it again and the other runs are unaffected"
    sources = sorted({drop_source(home, drop) or f"<folder of drop {drop}>" for drop, _ in stages})
    if not sources:
        return "its footer is unreadable, so the drops it held are unknown: re-run them with breedwatch run DROP..."
    repair = "" if set_aside else f"breedwatch check --repair {flag} && "
    return f"rebuild it with: {repair}breedwatch run {' '.join(shlex.quote(s) for s in sources)} {flag}"


def find_damaged(home: HomeLayout, paths: list[Path] | None = None) -> list[DamagedPart]:
    """Read every lake part (or those given) back whole and describe each that fails."""
    found = []
    for path in lake_parts(home) if paths is None else paths:
        reason = part_damage(path)
        if reason is not None:
            stages = written_by(path)
            advice = rebuild_advice(home, path, stages, set_aside=False)
            found.append(DamagedPart(str(path), path.parent.parent.name, reason, stages, advice))
    return found


def set_aside(home: HomeLayout, damaged: DamagedPart) -> Path:
    """Move a damaged part under lake/_damaged/ with a note (reason, time, rebuild command) and mark the stages that
    wrote it stale, so views no longer read it and the next run of its drops rebuilds it; return where it went."""
    path = Path(damaged.path)
    target = home.damaged / path.relative_to(home.lake)
    target = target.with_name(f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{target.name}")
    target.parent.mkdir(parents=True, exist_ok=True)
    path.replace(target)
    for drop, stage in damaged.stages:
        marker = read_marker(home, drop, stage)
        if marker is not None:
            write_marker(home, drop, stage, {**marker, "fingerprint": f"damaged part set aside: {target.name}"})
    note = {
        **asdict(damaged),
        "set_aside_as": str(target),
        "found_at": datetime.now(UTC).isoformat(),
        "rebuild": rebuild_advice(home, path, damaged.stages, set_aside=True),
    }
    write_json_atomic(target.with_name(target.name + NOTE_SUFFIX), note)
    return target


def damaged_notes(home: HomeLayout) -> list[dict[str, object]]:
    """The notes of every part set aside, each with whether its original place holds a rebuilt part again."""
    notes = []
    for note in sorted(home.damaged.rglob(f"*{NOTE_SUFFIX}")) if home.damaged.exists() else []:
        row = json.loads(note.read_text())
        notes.append(
            {
                "path": row["path"],
                "table_name": row["table"],
                "reason": row["reason"],
                "found_at": row["found_at"],
                "set_aside_as": row["set_aside_as"],
                "rebuild": row["rebuild"],
                "rebuilt": Path(row["path"]).exists(),
            }
        )
    return notes


def unreadable_part_error(home: HomeLayout, message: str) -> DamagedPartError | None:
    """A DuckDB error naming a lake part, as one sentence naming the file and the command that finds and rebuilds
    it; None when the error names no lake part."""
    match = LAKE_FILE.search(message)
    if match is None:
        return None
    return DamagedPartError(
        f"The lake part {match.group(1)} could not be read ({message.splitlines()[0]}); run breedwatch check "
        f"--home {shlex.quote(str(home.root))} to list the damaged parts and the command that rebuilds each."
    )
