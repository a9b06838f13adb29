"""A drop's ingest rows from what was probed: media rows, duplicates, encounter times, rejects (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from models.media_checks import Probe
from schemas.camtrap import CamtrapPackage
from schemas.drop_listing import DropListing, FoundFile, FoundReject
from schemas.manifest import AnimalRow, DropInfo, EncounterRow

STAGE = "ingest"


@dataclass(frozen=True)
class Manifests:
    """The parsed manifests of a drop."""

    info: DropInfo
    animals: list[AnimalRow]
    encounters: list[EncounterRow]
    package: CamtrapPackage | None = None  # a Camtrap DP package (datapackage.json) read as a drop
    notes: list[FoundReject] = field(default_factory=list)  # manifest rows left out, one sentence each
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # per path: what the package says of a file


@dataclass
class ProbedFile:
    """One discovered file after hashing and probing."""

    found: FoundFile
    sha256: str | None = None
    size_bytes: int | None = None
    probe: Probe | None = None
    reason: str | None = None


def media_row(drop_id: str, probed: ProbedFile, manifests: Manifests, known_animals: set[str]) -> dict[str, Any]:
    """The media row of one readable file."""
    found = probed.found
    row: dict[str, Any] = {
        "media_id": probed.sha256[:20] if probed.sha256 else None,
        "drop_id": drop_id,
        "path": found.rel,
        "sha256": probed.sha256,
        "size_bytes": probed.size_bytes,
        "kind": found.kind,
        "status": "ok" if probed.reason is None else "rejected",
        "animal_id": animal_of(found, known_animals),
        "site": manifests.info.site,
        "deployment_id": manifests.info.deployment_id,
        "flags": probed.probe.flags if probed.probe else [],
        "duplicate_paths": [],
    }
    if probed.probe:
        row.update(probed.probe.metadata)
    row.update(manifests.overrides.get(found.rel, {}))
    return row


def animal_of(found: FoundFile, known_animals: set[str]) -> str | None:
    """faces/<id>/ always names an animal; images/<id>/ only when animals.csv lists it."""
    if found.folder == "faces" or (found.folder == "images" and found.subfolder in known_animals):
        return found.subfolder
    return None


def dedupe(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep one row per content hash and kind (first path in name order), listing the other paths on it."""
    by_content: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        first = by_content.setdefault((row["sha256"], row["kind"]), row)
        if first is not row:
            first["duplicate_paths"].append(row["path"])
    return list(by_content.values())


def encounter_time_rows(
    drop_id: str, manifests: Manifests, media: list[dict[str, Any]], tz: str
) -> list[dict[str, Any]]:
    """The encounter manifest rows, linked to their recordings' media ids."""
    media_by_path = {row["path"]: row for row in media}
    media_by_path.update({path: row for row in media for path in row["duplicate_paths"]})
    rows = []
    for encounter in manifests.encounters:
        recording = media_by_path.get(encounter.recording)
        rows.append(
            {
                **encounter.model_dump(),
                "drop_id": drop_id,
                "media_id": recording["media_id"] if recording else None,
                "started_at": as_utc(encounter.started_at, tz),
            }
        )
        if recording and recording.get("captured_at") is None and rows[-1]["started_at"] is not None:
            recording["captured_at"] = rows[-1]["started_at"]
    return rows


def as_utc(moment: Any, tz: str) -> Any:
    """Give a naive manifest time the drop's time zone, then convert to UTC."""
    from zoneinfo import ZoneInfo

    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(tz))
    return moment.astimezone(UTC)


def reject_rows(drop_id: str, run_id: str, listing: DropListing, probed: list[ProbedFile]) -> list[dict[str, Any]]:
    """One rejects row per refused file, with its stage and reason."""
    rows = [
        {"drop_id": drop_id, "path": r.rel, "stage": "discover", "reason": r.reason, "run_id": run_id}
        for r in listing.rejects
    ]
    rows += [
        {
            "drop_id": drop_id,
            "path": p.found.rel,
            "stage": STAGE,
            "reason": p.reason,
            "run_id": run_id,
            "sha256": p.sha256,
        }
        for p in probed
        if p.reason
    ]
    return rows
