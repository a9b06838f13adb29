"""Ingest one drop: manifests, file identity and metadata, media and rejects parts, commit marker."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from models.camtrap_rows import deployment_rows, media_overrides, observation_rows, package_animals
from models.ingest_rows import STAGE, Manifests, ProbedFile, dedupe, encounter_time_rows, media_row, reject_rows
from models.media_checks import FileRejected
from schemas.config import Settings
from schemas.drop_listing import DropListing, FoundFile
from schemas.home import HomeLayout
from schemas.manifest import AnimalRow, DropInfo, EncounterRow, ManifestError, parse_csv_manifest, parse_drop_toml
from schemas.tables import (
    ANIMALS_MANIFEST,
    CAMTRAP_OBSERVATIONS,
    DEPLOYMENTS,
    DROPS,
    ENCOUNTER_MANIFEST,
    MEDIA,
    REJECTS,
)
from tasks.camtrap_dp import package_listing, read_package
from tasks.discover import drop_id_of, walk_drop
from tasks.lake import clear_drop, read_marker, write_marker, write_rows
from tasks.probe import probe_audio, probe_image, sha256_of

INGEST_SETTINGS = ("ingest", "default_timezone")
INGEST_VERSION = "2"  # 2: deployments and camtrap_observations tables, Camtrap DP packages


@dataclass
class DropResult:
    """What ingesting one drop did, small enough to pass between tasks."""

    drop_id: str
    status: str  # ingested | unchanged | failed
    message: str = ""
    counts: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for logs and the run summary."""
        return asdict(self)


def read_manifests(drop_dir: Path) -> Manifests:
    """Parse drop.toml, animals.csv and encounters.csv when present."""
    info = (
        parse_drop_toml(read_text(drop_dir / "drop.toml"), "drop.toml")
        if (drop_dir / "drop.toml").exists()
        else DropInfo()
    )
    animals = read_csv_manifest(drop_dir, "animals.csv", AnimalRow, "animal_id")
    encounters = read_csv_manifest(drop_dir, "encounters.csv", EncounterRow, "encounter_id")
    package = read_package(drop_dir)
    individuals, notes = package_animals(package, animals)
    return Manifests(info, animals + individuals, encounters, package, notes, media_overrides(package, info))


def read_text(path: Path) -> str:
    """Read a manifest as UTF-8, naming the file when it is not text."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(path.name, None, None, f"is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def read_csv_manifest(drop_dir: Path, name: str, row_model: type, key: str) -> list:
    """Parse one CSV manifest if the drop has it."""
    path = drop_dir / name
    return parse_csv_manifest(read_text(path), name, row_model, key) if path.exists() else []


def check_recordings(manifests: Manifests, listing: DropListing) -> None:
    """Every encounter must name a recording that the drop contains."""
    present = {found.rel for found in listing.files} | {reject.rel for reject in listing.rejects}
    for row in manifests.encounters:
        if row.recording not in present:
            raise ManifestError("encounters.csv", row.csv_line, "recording", f"{row.recording} is not in the drop")


def probe_one(drop_dir: Path, found: FoundFile, settings: Settings, default_tz: str) -> ProbedFile:
    """Hash and probe one file, turning any read problem into a reason."""
    path = drop_dir / found.rel
    result = ProbedFile(found)
    try:
        result.size_bytes = path.stat().st_size
        result.sha256 = sha256_of(path, settings.ingest.hash_chunk_bytes)
        if found.kind == "image":
            result.probe = probe_image(path, settings.ingest, default_tz)
        else:
            result.probe = probe_audio(path, settings.ingest)
    except FileRejected as exc:
        result.reason = str(exc)
    except PermissionError:
        result.reason = "The file cannot be read (permission denied)."
    except OSError as exc:
        result.reason = f"The file cannot be read ({exc.strerror or exc})."
    except Exception as exc:  # a library bug on one file must not stop the drop: record it as data
        result.reason = f"The file could not be processed ({type(exc).__name__}: {exc})."
    return result


def probe_all(
    drop_dir: Path, files: list[FoundFile], settings: Settings, tz: str, advance: Callable[[], None]
) -> list[ProbedFile]:
    """Probe every file of a drop on a few threads (decoding releases the GIL)."""

    def work(found: FoundFile) -> ProbedFile:
        result = probe_one(drop_dir, found, settings, tz)
        advance()
        return result

    with ThreadPoolExecutor(max_workers=settings.runtime.io_threads) as pool:
        return list(pool.map(work, files))


def fail_drop(home: HomeLayout, drop_id: str, run_id: str, error: ManifestError | ValueError) -> DropResult:
    """Stop a drop on a bad manifest: only its rejects row stays, so other drops still run."""
    path = getattr(error, "filename", "")
    reason = f"The drop was stopped because a manifest is malformed: {error}."
    reject = {"drop_id": drop_id, "path": path, "stage": "manifest", "reason": reason, "run_id": run_id}
    clear_drop(home, drop_id)
    write_rows(home, REJECTS, drop_id, STAGE, [reject])
    return DropResult(drop_id, "failed", str(error), {"rejected": 1})


def drop_fingerprint(listing: DropListing, settings: Settings, drop_dir: Path) -> str:
    """What must stay the same for a finished ingest to be reused."""
    return (
        f"{INGEST_VERSION}:{settings.fingerprint(INGEST_SETTINGS)}:{listing.fingerprint}:{os.path.realpath(drop_dir)}"
    )


def ingest_drop_dir(
    drop_dir: Path, home: HomeLayout, run_id: str, settings: Settings, advance: Callable[[], None]
) -> DropResult:
    """Ingest one drop unless an identical ingest is already committed."""
    drop_id = drop_id_of(drop_dir)
    listing = walk_drop(drop_dir, settings.ingest)
    fingerprint = drop_fingerprint(listing, settings, drop_dir)
    marker = read_marker(home, drop_id, STAGE)
    if marker and marker["fingerprint"] == fingerprint:
        return DropResult(drop_id, "unchanged", "", marker["counts"])
    source = os.path.realpath(drop_dir)
    if marker and marker["source"] != source:
        message = f"drop id {drop_id!r} already belongs to {marker['source']}; rename one of the two folders"
        return DropResult(drop_id, "failed", message, {})
    try:
        manifests = read_manifests(drop_dir)
        listing = package_listing(listing, manifests.package, drop_dir, settings.ingest)
        listing = replace(listing, rejects=listing.rejects + manifests.notes)
        check_recordings(manifests, listing)
    except ManifestError as error:
        return fail_drop(home, drop_id, run_id, error)
    tz = manifests.info.timezone or settings.default_timezone
    probed = probe_all(drop_dir, listing.files, settings, tz, advance)
    counts = write_drop_tables(home, drop_id, run_id, source, listing, probed, manifests, tz)
    write_marker(
        home, drop_id, STAGE, {"fingerprint": fingerprint, "source": source, "counts": counts, "run_id": run_id}
    )
    return DropResult(drop_id, "ingested", "", counts)


def write_drop_tables(
    home: HomeLayout,
    drop_id: str,
    run_id: str,
    source: str,
    listing: DropListing,
    probed: list[ProbedFile],
    manifests: Manifests,
    tz: str,
) -> dict[str, int]:
    """Write the drop's media, rejects, manifest and drop parts; return the counts."""
    known = {animal.animal_id for animal in manifests.animals}
    media = dedupe([media_row(drop_id, p, manifests, known) for p in probed if p.sha256])
    encounters = encounter_time_rows(drop_id, manifests, media, tz)
    rejects = reject_rows(drop_id, run_id, listing, probed)
    animals = [{**animal.model_dump(), "drop_id": drop_id} for animal in manifests.animals]
    drop_row = {
        **manifests.info.model_dump(),
        "drop_id": drop_id,
        "source": source,
        "timezone": tz,
        "fingerprint": listing.fingerprint,
        "n_files": len(listing.files) + len(listing.rejects),
        "run_id": run_id,
    }
    deployments = deployment_rows(drop_id, manifests.package, manifests.info)
    observations = observation_rows(drop_id, manifests.package, media)
    for spec, rows in (
        (MEDIA, media),
        (REJECTS, rejects),
        (ANIMALS_MANIFEST, animals),
        (ENCOUNTER_MANIFEST, encounters),
        (DROPS, [drop_row]),
        (DEPLOYMENTS, deployments),
        (CAMTRAP_OBSERVATIONS, observations),
    ):
        write_rows(home, spec, drop_id, STAGE, rows)
    return {
        "images": sum(row["kind"] == "image" and row["status"] == "ok" for row in media),
        "audio": sum(row["kind"] == "audio" and row["status"] == "ok" for row in media),
        "duplicates": sum(len(row["duplicate_paths"]) for row in media if row["status"] == "ok"),
        "rejected": len(rejects),
    }
