"""Export the catalog as a Camtrap DP 1.0.2 package: query, place the media files, write the CSVs and
datapackage.json."""

from __future__ import annotations

import errno
import json
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from reports.camtrap import (
    DEPLOYMENT_COLUMNS,
    ENCOUNTER_FIELDS,
    ENCOUNTERS_FILE,
    MEDIA_COLUMNS,
    OBSERVATION_COLUMNS,
    Built,
    build_deployments,
    build_encounters,
    build_observations,
    deployment_of,
    descriptor,
    media_row,
    timed_media,
    to_csv,
)
from schemas.camtrap import ExportSettings
from schemas.home import HomeLayout
from tasks.catalog import query
from tasks.lake import write_bytes_atomic
from tasks.runs import code_version

MediaMode = Literal["link", "copy", "reference"]
DROP_FILTER = "(len(?::VARCHAR[]) = 0 OR list_contains(?::VARCHAR[], {column}))"
MEDIA_SQL = f"""
SELECT m.drop_id, m.media_id, m.path, m.kind, m.captured_at, m.camera_make, m.camera_model, m.deployment_id, m.site,
       d.timezone, d.source
FROM media m LEFT JOIN drops d USING (drop_id)
WHERE m.status = 'ok' AND {DROP_FILTER.format(column="m.drop_id")}
ORDER BY m.drop_id, m.path
"""
DEPLOYMENTS_SQL = f"SELECT * FROM deployments WHERE {DROP_FILTER.format(column='drop_id')} ORDER BY drop_id"
DROPS_SQL = f"SELECT drop_id, deployment_id, timezone, species FROM drops WHERE {DROP_FILTER.format(column='drop_id')}"
FACES_SQL = f"""
WITH latest AS (
    SELECT g.*, r.started_at AS classified_at
    FROM gender_predictions g LEFT JOIN runs r USING (run_id)
    QUALIFY row_number() OVER (
        PARTITION BY g.drop_id, g.face_id ORDER BY r.started_at DESC NULLS LAST, g.model_version DESC
    ) = 1
)
SELECT f.drop_id, f.face_id, f.media_id, f.animal_id, f.source, f.detector, f.bbox_x, f.bbox_y, f.bbox_w, f.bbox_h,
       f.excluded, f.exclude_reason, g.p_male AS face_p_male, g.model_version, g.classified_at,
       a.sex_predicted, a.p_male AS animal_p_male, a.model_version AS animal_model_version, a.sex_known,
       coalesce(c.is_face, true) AS is_face, CASE WHEN c.sex_source = 'human' THEN c.sex END AS face_human_sex,
       c.reviewer AS face_reviewer, c.reviewed_at AS face_reviewed_at,
       CASE WHEN a.sex_source = 'human' THEN a.sex END AS animal_human_sex, a.sex_reviewer AS animal_reviewer,
       a.sex_reviewed_at AS animal_reviewed_at, c.individual_id, c.identity_source, c.identity_kind,
       c.identity_score, c.identity_model_version, c.identity_reviewer, c.identity_reviewed_at, c.identity_established
FROM faces f
LEFT JOIN latest g ON g.drop_id = f.drop_id AND g.face_id = f.face_id
LEFT JOIN (
    SELECT * FROM face_calls
    QUALIFY row_number() OVER (PARTITION BY drop_id, face_id ORDER BY reviewed_at DESC NULLS LAST) = 1
) c ON c.drop_id = f.drop_id AND c.face_id = f.face_id
LEFT JOIN animals a ON a.animal_id = coalesce(c.individual_id, g.animal_id, f.animal_id)
WHERE {DROP_FILTER.format(column="f.drop_id")}
ORDER BY f.drop_id, f.face_id
"""
ENCOUNTERS_SQL = f"""
SELECT e.encounter_id, e.drop_id, e.male_id, e.female_id, e.started_at, e.n_segments, e.p_success, e.p_calibrated,
       e.predicted, e.outcome, e.model_version, m.media_id AS recording_media_id
FROM encounters e
LEFT JOIN media m ON m.drop_id = e.drop_id AND m.status = 'ok'
                 AND (m.path = e.recording OR list_contains(m.duplicate_paths, e.recording))
WHERE {DROP_FILTER.format(column="e.drop_id")}
ORDER BY e.drop_id, e.started_at, e.encounter_id
"""


class ExportError(ValueError):
    """The export cannot be written; the message says why in one sentence."""


@dataclass(frozen=True)
class Placed:
    """Where a media file is in (or referenced from) the package, and a comment when it could not be placed."""

    file_path: str
    comment: str | None = None


def rows(home: HomeLayout, sql: str, drops: Sequence[str]) -> list[dict[str, Any]]:
    """A catalog query filtered to the given drops (all drops when empty)."""
    return query(home, sql, [list(drops), list(drops)]).to_pylist()


def place_file(source: Path, package: Path, relative: str, mode: MediaMode) -> Placed:
    """Hard-link (or copy across file systems) a media file into the package, or reference it by file:// URI."""
    if not source.is_file():
        return Placed(
            source.as_uri(), "The file was not found at export time; filePath gives where it was ingested from."
        )
    if mode == "reference":
        return Placed(source.as_uri())
    target = package / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        if mode == "link" and hard_link(source, target):
            return Placed(relative)
        shutil.copy2(source, target)
    except OSError as exc:
        target.unlink(missing_ok=True)
        return Placed(
            source.as_uri(),
            f"The file could not be copied into the package ({exc.strerror or exc}); filePath gives where it is.",
        )
    return Placed(relative)


def hard_link(source: Path, target: Path) -> bool:
    """Hard-link a file; False when the file system cannot (another device, no links), so the caller copies."""
    try:
        os.link(source, target)
    except OSError as exc:
        if exc.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            return False
        raise
    return True


def place_media(media: Sequence[Mapping[str, Any]], package: Path, mode: MediaMode) -> dict[tuple[str, str], Placed]:
    """Put every exported media file under media/<drop_id>/<path> of the package (or reference it)."""
    placed = {}
    for row in media:
        source = Path(row["source"] or "/nonexistent") / row["path"]
        placed[(row["drop_id"], row["media_id"])] = place_file(
            source, package, f"media/{row['drop_id']}/{row['path']}", mode
        )
    return placed


def build_export(home: HomeLayout, package: Path, mode: MediaMode, drops: Sequence[str]) -> tuple[Built, list[str]]:
    """Query the catalog, place the media and build every row of the package; returns the rows and the species."""
    built = Built()
    media = timed_media(rows(home, MEDIA_SQL, drops), built)
    if not media:
        raise ExportError(
            "the catalog has no ingested media with a capture time to export"
            + (f" in drop(s) {', '.join(drops)}" if drops else "")
        )
    placed = place_media(media, package, mode)
    built.media = [
        media_row(m, placed[(m["drop_id"], m["media_id"])].file_path, placed[(m["drop_id"], m["media_id"])].comment)
        for m in media
    ]
    build_deployments(media, rows(home, DEPLOYMENTS_SQL, drops), built)
    drop_rows = rows(home, DROPS_SQL, drops)
    species = {d["drop_id"]: d["species"] for d in drop_rows}
    build_observations(rows(home, FACES_SQL, drops), media, species, built)
    deployments = {d["drop_id"]: deployment_of(d) for d in drop_rows}
    build_encounters(
        rows(home, ENCOUNTERS_SQL, drops), media, {d["drop_id"]: d["timezone"] for d in drop_rows}, deployments, built
    )
    return built, sorted({s for s in species.values() if s})


def write_package(package: Path, built: Built, settings: ExportSettings, species: Sequence[str]) -> None:
    """Write the four CSVs and datapackage.json into the package folder."""
    encounter_columns = [name for name, *_ in ENCOUNTER_FIELDS]
    for name, table, columns in (
        ("deployments.csv", built.deployments, DEPLOYMENT_COLUMNS),
        ("media.csv", built.media, MEDIA_COLUMNS),
        ("observations.csv", built.observations, OBSERVATION_COLUMNS),
        (ENCOUNTERS_FILE, built.encounters, encounter_columns),
    ):
        write_bytes_atomic(package / name, to_csv(table, columns).encode("utf-8"))
    document = descriptor(built, settings, species)
    write_bytes_atomic(package / "datapackage.json", json.dumps(document, indent=2, ensure_ascii=False).encode("utf-8"))


def check_target(out: Path) -> None:
    """The export goes to a new folder (or an empty one), so it never mixes with older files."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out} already exists and is not an empty folder; choose a new folder for the package")


def export_camtrap_dp(
    home: HomeLayout, out: Path, settings: ExportSettings, mode: MediaMode = "link", drops: Sequence[str] = ()
) -> dict[str, Any]:
    """Write a Camtrap DP package of the catalog (or of the given drops) to OUT; returns counts and notes."""
    check_target(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".tmp-{uuid.uuid4().hex}-{out.name}"
    staging.mkdir()
    try:
        now = datetime.now(UTC).replace(microsecond=0)
        settings = replace(
            settings,
            created=settings.created or now.isoformat().replace("+00:00", "Z"),
            package_id=settings.package_id or str(uuid.uuid4()),
            software_version=settings.software_version or code_version(),
        )
        built, species = build_export(home, staging, mode, drops)
        write_package(staging, built, settings, species)
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {
        "path": str(out),
        "deployments": len(built.deployments),
        "media": len(built.media),
        "observations": len(built.observations),
        "encounters": len(built.encounters),
        "notes": built.notes,
    }
