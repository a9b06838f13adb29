"""A Camtrap DP package's lake rows: deployments, observations, animals, per-file overrides (reading stays in tasks)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from schemas.camtrap import (
    ANYWHERE_M,
    CamtrapDeployment,
    CamtrapMedia,
    CamtrapObservation,
    CamtrapPackage,
)
from schemas.drop_listing import FoundReject
from schemas.manifest import AnimalRow, DropInfo

SOURCE = "camtrap-dp"


def is_remote(media: CamtrapMedia) -> bool:
    """A media row whose filePath is a URL (breedwatch never downloads)."""
    return "://" in media.filePath


def line_ranges(lines: Iterable[int]) -> str:
    """'2-31, 42, 50-60' from line numbers."""
    spans: list[list[int]] = []
    for line in sorted(lines):
        if spans and line == spans[-1][1] + 1:
            spans[-1][1] = line
        else:
            spans.append([line, line])
    return ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in spans)


def remote_reject(package: CamtrapPackage) -> list[FoundReject]:
    """One rejects row for all media rows that point at URLs (their observations are still kept)."""
    remote = [m for m in package.media if is_remote(m)]
    if not remote:
        return []
    filename = package.resources["media"]
    reason = (
        f"{len(remote)} rows of {filename} name files by URL ({remote[0].filePath} ...), "
        "which breedwatch never fetches, "
        f"so they were not ingested (lines {line_ranges(m.csv_line or 0 for m in remote)}); "
        "their observations are kept."
    )
    return [FoundReject(filename, reason)]


def individual_of_media(package: CamtrapPackage) -> dict[str, str]:
    """Package mediaID to its individual, where the media's observations name exactly one individualID."""
    found: dict[str, set[str]] = defaultdict(set)
    for observation in package.observations:
        if observation.mediaID and observation.individualID:
            found[observation.mediaID].add(observation.individualID)
    return {media_id: next(iter(ids)) for media_id, ids in found.items() if len(ids) == 1}


def deployment_site(deployment: CamtrapDeployment | None) -> str | None:
    """The site a deployment stands for: its location name, else its location id."""
    return (deployment.locationName or deployment.locationID) if deployment else None


def media_overrides(package: CamtrapPackage | None, info: DropInfo) -> dict[str, dict[str, Any]]:
    """Per file path: the capture time, deployment, site and individual the package gives (over EXIF and drop.toml)."""
    if package is None:
        return {}
    deployments = {d.deploymentID: d for d in package.deployments}
    individuals = individual_of_media(package)
    overrides: dict[str, dict[str, Any]] = {}
    for media in package.media:
        rel = media.filePath.strip()
        if is_remote(media) or rel in overrides:
            continue
        overrides[rel] = {
            "captured_at": media.timestamp.astimezone(UTC),
            "deployment_id": media.deploymentID,
            "site": deployment_site(deployments.get(media.deploymentID)) or info.site,
        }
        if media.mediaID in individuals:  # else keep what the folder says (images/<animal_id>/...)
            overrides[rel]["animal_id"] = individuals[media.mediaID]
    return overrides


def package_animals(
    package: CamtrapPackage | None, listed: Sequence[AnimalRow]
) -> tuple[list[AnimalRow], list[FoundReject]]:
    """Individuals of the observations not already in animals.csv; sex only from human observations that agree."""
    if package is None:
        return [], []
    known = {animal.animal_id for animal in listed}
    sexes: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for observation in package.observations:
        if observation.individualID and observation.individualID not in known:
            sex = observation.sex if observation.classificationMethod != "machine" else None
            sexes[observation.individualID][sex or ""].append(observation.csv_line or 0)
    animals, rejects = [], []
    filename = package.resources["observations"]
    for individual, seen in sorted(sexes.items()):
        stated = sorted(sex for sex in seen if sex)
        if len(stated) > 1:
            lines = "; ".join(f"{sex} on line(s) {line_ranges(seen[sex])}" for sex in stated)
            rejects.append(
                FoundReject(
                    filename,
                    f"{filename}: individual {individual!r} is recorded as {lines}, so its sex is left unknown.",
                )
            )
        animals.append(AnimalRow(animal_id=individual, sex=stated[0] if len(stated) == 1 else None))
    return animals, rejects


def as_utc(moment: datetime | None) -> datetime | None:
    """An offset-carrying time in UTC."""
    return moment.astimezone(UTC) if moment else None


def deployment_rows(drop_id: str, package: CamtrapPackage | None, info: DropInfo) -> list[dict[str, Any]]:
    """The drop's deployments: the package's, else one from drop.toml (location fields only when given)."""
    if package is None:
        return [
            {
                "drop_id": drop_id,
                "deployment_id": info.deployment_id,
                "location_name": info.location_name,
                "latitude": info.latitude,
                "longitude": info.longitude,
                "source": "drop.toml",
            }
        ]
    return [
        {
            "drop_id": drop_id,
            "deployment_id": d.deploymentID,
            "location_id": d.locationID,
            "location_name": d.locationName,
            **located(d),
            "deployment_start": as_utc(d.deploymentStart),
            "deployment_end": as_utc(d.deploymentEnd),
            "camera_id": d.cameraID,
            "camera_model": d.cameraModel,
            "source": SOURCE,
        }
        for d in package.deployments
    ]


def located(deployment: CamtrapDeployment) -> dict[str, Any]:
    """Coordinates and their uncertainty, or none when the uncertainty spans the Earth (a placeholder such as ours)."""
    if deployment.coordinateUncertainty is not None and deployment.coordinateUncertainty >= ANYWHERE_M:
        return {"latitude": None, "longitude": None, "coordinate_uncertainty": None}
    return {
        "latitude": deployment.latitude,
        "longitude": deployment.longitude,
        "coordinate_uncertainty": deployment.coordinateUncertainty,
    }


def observation_rows(
    drop_id: str, package: CamtrapPackage | None, media: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The package's observations with breedwatch media ids (null where the media row was not ingested)."""
    if package is None:
        return []
    by_path = {row["path"]: row["media_id"] for row in media if row["status"] == "ok"}
    by_path.update({path: row["media_id"] for row in media if row["status"] == "ok" for path in row["duplicate_paths"]})
    media_ids = {m.mediaID: by_path.get(m.filePath.strip()) for m in package.media}
    return [observation_row(drop_id, o, media_ids.get(o.mediaID or "")) for o in package.observations]


def observation_row(drop_id: str, o: CamtrapObservation, media_id: str | None) -> dict[str, Any]:
    """One camtrap_observations row."""
    box = o.box() or (None, None, None, None)
    return {
        "drop_id": drop_id,
        "observation_id": o.observationID,
        "deployment_id": o.deploymentID,
        "media_id": media_id,
        "package_media_id": o.mediaID,
        "event_id": o.eventID,
        "event_start": as_utc(o.eventStart),
        "event_end": as_utc(o.eventEnd),
        "observation_level": o.observationLevel,
        "observation_type": o.observationType,
        "scientific_name": o.scientificName,
        "count": o.count,
        "life_stage": o.lifeStage,
        "sex": o.sex,
        "behavior": o.behavior,
        "individual_id": o.individualID,
        "bbox_x": box[0],
        "bbox_y": box[1],
        "bbox_w": box[2],
        "bbox_h": box[3],
        "classification_method": o.classificationMethod,
        "classified_by": o.classifiedBy,
        "classification_probability": o.classificationProbability,
        "csv_line": o.csv_line,
    }
