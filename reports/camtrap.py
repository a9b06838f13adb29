"""Camtrap DP 1.0.2 export: the rows of deployments, media, observations and encounters, and the package descriptor.

Pure: the task in tasks/camtrap_export.py queries the catalog, places the media files and writes what this builds.
Column lists follow the official table schemas (https://camtrap-dp.tdwg.org/data), in their order.
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any
from zoneinfo import ZoneInfo

from models.individuals import SOLE_CANDIDATE
from schemas.camtrap import ANYWHERE_M, SCHEMA_BASE, ExportSettings

DEPLOYMENT_COLUMNS = (
    "deploymentID",
    "locationID",
    "locationName",
    "latitude",
    "longitude",
    "coordinateUncertainty",
    "deploymentStart",
    "deploymentEnd",
    "setupBy",
    "cameraID",
    "cameraModel",
    "cameraDelay",
    "cameraHeight",
    "cameraDepth",
    "cameraTilt",
    "cameraHeading",
    "detectionDistance",
    "timestampIssues",
    "baitUse",
    "featureType",
    "habitat",
    "deploymentGroups",
    "deploymentTags",
    "deploymentComments",
)
MEDIA_COLUMNS = (
    "mediaID",
    "deploymentID",
    "captureMethod",
    "timestamp",
    "filePath",
    "filePublic",
    "fileName",
    "fileMediatype",
    "exifData",
    "favorite",
    "mediaComments",
)
OBSERVATION_COLUMNS = (
    "observationID",
    "deploymentID",
    "mediaID",
    "eventID",
    "eventStart",
    "eventEnd",
    "observationLevel",
    "observationType",
    "cameraSetupType",
    "scientificName",
    "count",
    "lifeStage",
    "sex",
    "behavior",
    "individualID",
    "individualPositionRadius",
    "individualPositionAngle",
    "individualSpeed",
    "bboxX",
    "bboxY",
    "bboxWidth",
    "bboxHeight",
    "classificationMethod",
    "classifiedBy",
    "classificationTimestamp",
    "classificationProbability",
    "observationTags",
    "observationComments",
)
ENCOUNTERS_FILE = (
    "mating-encounters.csv"  # not encounters.csv: that name is a drop manifest, and exports are read back as drops
)
ENCOUNTER_FIELDS: tuple[tuple[str, str, dict[str, Any], str], ...] = (
    (
        "encounterID",
        "string",
        {"required": True, "unique": True},
        "Identifier of the encounter (encounters.csv of the drop).",
    ),
    (
        "deploymentID",
        "string",
        {"required": False},
        "Deployment of the recording (else of its drop); empty when neither was exported.",
    ),
    (
        "mediaID",
        "string",
        {"required": False},
        "The recording of the encounter in media.csv (empty when it was not exported).",
    ),
    ("maleID", "string", {"required": True}, "Individual ID of the male."),
    ("femaleID", "string", {"required": True}, "Individual ID of the female."),
    ("startedAt", "datetime", {"required": False}, "Start of the encounter, with its UTC offset."),
    ("segmentCount", "integer", {"required": True, "minimum": 0}, "Number of 2 s vocal segments classified."),
    (
        "successProbability",
        "number",
        {"required": False, "minimum": 0, "maximum": 1},
        "P(success): success and failure probabilities summed over every frame of every segment (CGANet, seed 002).",
    ),
    (
        "calibratedProbability",
        "number",
        {"required": False, "minimum": 0, "maximum": 1},
        "successProbability at the model card's calibration temperature; predictedOutcome applies the band to this.",
    ),
    (
        "predictedOutcome",
        "string",
        {"required": True, "enum": ["success", "failure", "unknown"]},
        "The call at the station's abstain band: success, failure, or unknown inside the band.",
    ),
    (
        "recordedOutcome",
        "string",
        {"required": False, "enum": ["success", "failure"]},
        "The outcome keepers recorded, when known.",
    ),
    ("classifiedBy", "string", {"required": False}, "Mating-success model and version (name@vN)."),
)
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
MEDIATYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".wav": "audio/wav",
    ".flac": "audio/flac",
}
EARTH_HALF_CIRCUMFERENCE_M = ANYWHERE_M  # coordinateUncertainty of an unknown location: anywhere on Earth
UNKNOWN_LOCATION = (
    "Location unknown to breedwatch: latitude 0 and longitude 0 are placeholders required by the schema, and "
    "coordinateUncertainty says the point may be anywhere on Earth. Set latitude and longitude in drop.toml."
)


@dataclass
class Built:
    """The rows of one export and the sentences its description owes the reader."""

    deployments: list[dict[str, Any]] = field(default_factory=list)
    media: list[dict[str, Any]] = field(default_factory=list)
    observations: list[dict[str, Any]] = field(default_factory=list)
    encounters: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def local_time(moment: datetime | None, tz: str | None) -> str | None:
    """An instant in the drop's time zone with its offset (2026-03-04T21:00:00+08:00)."""
    if moment is None:
        return None
    return moment.astimezone(ZoneInfo(tz or "UTC")).isoformat(timespec="seconds")


def deployment_of(row: Mapping[str, Any]) -> str:
    """The Camtrap DP deployment of a catalog row: its deployment_id, else its drop."""
    return row.get("deployment_id") or row["drop_id"]


def qualified(drop_id: str, ident: str) -> str:
    """Ids unique across drops (the same file in two drops has the same content hash)."""
    return f"{drop_id}-{ident}"


def first_given(rows: Iterable[Mapping[str, Any]], key: str) -> Any:
    """The first non-null value of a column."""
    return next((row[key] for row in rows if row.get(key) is not None), None)


def camera_name(make: str | None, model: str) -> str:
    """'Make Model', without repeating a make the model already starts with (Canon Canon EOS ...)."""
    return model if not make or model.lower().startswith(make.lower()) else f"{make} {model}"


def deployment_row(
    key: str, media: Sequence[Mapping[str, Any]], known: Sequence[Mapping[str, Any]], tz: str | None
) -> dict[str, Any]:
    """One deployments.csv row from its exported media and what the drops or package said about it."""
    times = [m["captured_at"] for m in media if m.get("captured_at") is not None]
    start = first_given(known, "deployment_start") or min(times)
    end = first_given(known, "deployment_end") or max(times)
    latitude, longitude = first_given(known, "latitude"), first_given(known, "longitude")
    cameras = Counter(camera_name(m.get("camera_make"), m["camera_model"]) for m in media if m.get("camera_model"))
    drops = sorted({m["drop_id"] for m in media} | {k["drop_id"] for k in known})
    comments = [f"breedwatch drop(s): {', '.join(drops)}."]
    if latitude is None or longitude is None:
        comments.append(UNKNOWN_LOCATION)
    return {
        "deploymentID": key,
        "locationID": first_given(known, "location_id"),
        "locationName": first_given(known, "location_name") or first_given(media, "site"),
        "latitude": latitude if latitude is not None and longitude is not None else 0.0,
        "longitude": longitude if latitude is not None and longitude is not None else 0.0,
        "coordinateUncertainty": first_given(known, "coordinate_uncertainty")
        if latitude is not None and longitude is not None
        else EARTH_HALF_CIRCUMFERENCE_M,
        "deploymentStart": local_time(start, tz),
        "deploymentEnd": local_time(end, tz),
        "cameraID": first_given(known, "camera_id"),
        "cameraModel": first_given(known, "camera_model") or (cameras.most_common(1)[0][0] if cameras else None),
        "deploymentComments": " ".join(comments),
    }


def build_deployments(media: Sequence[Mapping[str, Any]], known: Sequence[Mapping[str, Any]], built: Built) -> None:
    """One deployment per deployment id of the exported media (deployments without media are left out)."""
    by_key: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in media:
        by_key[deployment_of(row)].append(row)
    facts: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in known:
        facts[deployment_of(row)].append(row)
    placeholders = []
    for key in sorted(by_key):
        row = deployment_row(key, by_key[key], facts.get(key, []), by_key[key][0].get("timezone"))
        built.deployments.append(row)
        if UNKNOWN_LOCATION in row["deploymentComments"]:
            placeholders.append(key)
    if placeholders:
        built.notes.append(f"Deployments without a known location ({', '.join(placeholders)}): {UNKNOWN_LOCATION}")


def media_row(row: Mapping[str, Any], file_path: str, comment: str | None) -> dict[str, Any]:
    """One media.csv row."""
    suffix = PurePosixPath(row["path"]).suffix.lower()
    return {
        "mediaID": qualified(row["drop_id"], row["media_id"]),
        "deploymentID": deployment_of(row),
        "captureMethod": None,
        "timestamp": local_time(row["captured_at"], row.get("timezone")),
        "filePath": file_path,
        "filePublic": "false",
        "fileName": PurePosixPath(row["path"]).name,
        "fileMediatype": MEDIATYPES.get(suffix, f"{row['kind']}/{suffix.lstrip('.') or 'octet-stream'}"),
        "mediaComments": comment,
    }


def timed_media(media: Sequence[Mapping[str, Any]], built: Built) -> list[Mapping[str, Any]]:
    """The media that can be exported: Camtrap DP requires a timestamp, so media without one are left out and
    counted."""
    untimed = [m for m in media if m.get("captured_at") is None]
    if untimed:
        built.notes.append(
            f"{len(untimed)} media without a capture time were left out, because Camtrap DP requires a timestamp "
            f"(e.g. {untimed[0]['drop_id']}/{untimed[0]['path']})."
        )
    return [m for m in media if m.get("captured_at") is not None]


def clipped_box(row: Mapping[str, Any]) -> tuple[float, float, float, float] | None:
    """The face box clipped to the image (detector boxes may overhang it), or None when nothing is left."""
    if any(row.get(k) is None for k in ("bbox_x", "bbox_y", "bbox_w", "bbox_h")):
        return None
    x0, y0 = max(0.0, row["bbox_x"]), max(0.0, row["bbox_y"])
    x1, y1 = min(1.0, row["bbox_x"] + row["bbox_w"]), min(1.0, row["bbox_y"] + row["bbox_h"])
    if x1 <= x0 or y1 <= y0:
        return None
    return round(x0, 6), round(y0, 6), round(x1 - x0, 6), round(y1 - y0, 6)


def sex_call(face: Mapping[str, Any]) -> tuple[str | None, float | None]:
    """The animal's predicted sex (female or male, never 'unknown') and the posterior probability of that call."""
    sex, p_male = face.get("sex_predicted"), face.get("animal_p_male")
    if sex not in ("female", "male") or p_male is None:
        return None, None
    return sex, round(p_male if sex == "male" else 1 - p_male, 6)


def classified_by(face: Mapping[str, Any]) -> str:
    """The models behind an observation: gender model name@vN and the face detector."""
    parts = []
    if face.get("animal_model_version") or face.get("model_version"):
        parts.append(f"breedwatch gender model {face.get('animal_model_version') or face.get('model_version')}")
    parts.append(
        "face "
        + ("crop by keeper" if face.get("source") == "keeper" else "detector " + str(face.get("detector") or "unknown"))
    )
    return "; ".join(parts)


def observation_comment(face: Mapping[str, Any]) -> str | None:
    """What a reader needs beside the row: the face's own P(male), a keeper-recorded sex, an exclusion."""
    notes = []
    if face.get("face_p_male") is not None:
        notes.append(f"face P(male) {face['face_p_male']:.3f}")
    if face.get("sex_known"):
        notes.append(f"sex recorded by keepers: {face['sex_known']}")
    if face.get("excluded"):
        notes.append(f"face not classified: {face.get('exclude_reason') or 'excluded'}")
    return "; ".join(notes) or None


def human_sex(face: Mapping[str, Any]) -> tuple[str, str, Any] | None:
    """A reviewer's sex for the face (or else its animal) from `breedwatch review`: (sex, reviewer, when), or None."""
    for level in ("face", "animal"):
        if face.get(f"{level}_human_sex") in ("female", "male"):
            return (
                face[f"{level}_human_sex"],
                face.get(f"{level}_reviewer") or "reviewer",
                face.get(f"{level}_reviewed_at"),
            )
    return None


def machine_note(face: Mapping[str, Any]) -> str:
    """What the model said, for an observation a reviewer classified."""
    sex, probability = sex_call(face)
    said = f"{sex} ({probability:.3f})" if sex else "no call (abstain band)"
    return f"machine call {said} by {classified_by(face)}"


def identity_note(face: Mapping[str, Any]) -> str | None:
    """How the individual of a face was established, when not by the registry: the identity net's match, cluster or
    sole candidate (with its similarity), or a reviewer."""
    source, individual = face.get("identity_source"), face.get("individual_id")
    if not individual or source in (None, "registry"):
        return None
    if source == "human":
        return f"individual {individual} named by reviewer {face.get('identity_reviewer') or 'reviewer'}"
    kind = "provisional individual" if face.get("identity_kind") == "provisional" else "registered animal"
    if face.get("identity_established") == SOLE_CANDIDATE:
        kind = "seen once, counted as its sole candidate (not confirmed): registered animal"
    score = face.get("identity_score")
    similarity = f", similarity {score:.3f}" if score is not None else ""
    return f"{kind} {individual} by breedwatch identity model {face.get('identity_model_version')}{similarity}"


def observation_row(face: Mapping[str, Any], media: Mapping[str, Any], species: str | None) -> dict[str, Any]:
    """One observations.csv row for one face: media level, animal, its box, the animal's sex call (a reviewer's
    call, marked human, where `breedwatch review` recorded one)."""
    box = clipped_box(face) or (None, None, None, None)
    sex, probability = sex_call(face)
    moment = local_time(media["captured_at"], media.get("timezone"))
    method, by, when = "machine", classified_by(face), face.get("classified_at")
    comment = observation_comment(face)
    reviewed = human_sex(face)
    if reviewed:
        comment = "; ".join(note for note in (comment, machine_note(face)) if note)
        (sex, by, when), method, probability = reviewed, "human", None
    comment = "; ".join(note for note in (comment, identity_note(face)) if note) or None
    if face.get("identity_source") == "human" and not reviewed:
        method, by = "human", face.get("identity_reviewer") or "reviewer"
        when, probability = face.get("identity_reviewed_at"), None
    return {
        "observationID": qualified(face["drop_id"], face["face_id"]),
        "deploymentID": deployment_of(media),
        "mediaID": qualified(media["drop_id"], media["media_id"]),
        "eventStart": moment,
        "eventEnd": moment,
        "observationLevel": "media",
        "observationType": "animal",
        "scientificName": species,
        "count": 1,
        "sex": sex,
        "individualID": face.get("individual_id") or face.get("animal_id"),
        "bboxX": box[0],
        "bboxY": box[1],
        "bboxWidth": box[2],
        "bboxHeight": box[3],
        "classificationMethod": method,
        "classifiedBy": by,
        "classificationTimestamp": local_time(when, media.get("timezone")),
        "classificationProbability": probability,
        "observationComments": comment,
    }


def build_observations(
    faces: Sequence[Mapping[str, Any]],
    media: Sequence[Mapping[str, Any]],
    species: Mapping[str, str | None],
    built: Built,
) -> None:
    """One observation per face of an exported image, except faces a reviewer ruled not a face."""
    by_id = {(m["drop_id"], m["media_id"]): m for m in media}
    ruled_out = 0
    for face in faces:
        image = by_id.get((face["drop_id"], face["media_id"]))
        if image is None:
            continue
        if face.get("is_face") is False:
            ruled_out += 1
            continue
        built.observations.append(observation_row(face, image, species.get(face["drop_id"])))
    if ruled_out:
        plural = "s" if ruled_out != 1 else ""
        built.notes.append(f"Left out of the observations: {ruled_out} detection{plural} a reviewer ruled not a face.")


def build_encounters(
    encounters: Sequence[Mapping[str, Any]],
    media: Sequence[Mapping[str, Any]],
    timezones: Mapping[str, str | None],
    deployments: Mapping[str, str],
    built: Built,
) -> None:
    """One mating-encounters.csv row per encounter, pointing at its exported recording and deployment."""
    exported = {(m["drop_id"], m["media_id"]): deployment_of(m) for m in media}
    known = {d["deploymentID"] for d in built.deployments}
    for e in encounters:
        recording = (e["drop_id"], e.get("recording_media_id"))
        deployment = exported.get(recording) or deployments.get(e["drop_id"], e["drop_id"])
        built.encounters.append(
            {
                "encounterID": qualified(e["drop_id"], e["encounter_id"]),
                "deploymentID": deployment if deployment in known else None,
                "mediaID": qualified(*recording) if recording in exported else None,
                "maleID": e["male_id"],
                "femaleID": e["female_id"],
                "startedAt": local_time(e.get("started_at"), timezones.get(e["drop_id"])),
                "segmentCount": e.get("n_segments") or 0,
                "successProbability": round(e["p_success"], 6) if e.get("p_success") is not None else None,
                "calibratedProbability": round(e["p_calibrated"], 6) if e.get("p_calibrated") is not None else None,
                "predictedOutcome": e.get("predicted") or "unknown",
                "recordedOutcome": e.get("outcome"),
                "classifiedBy": e.get("model_version"),
            }
        )


def to_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """CSV text with exactly the given columns in order; None is an empty cell."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n", extrasaction="raise")
    writer.writeheader()
    for row in rows:
        writer.writerow({column: "" if row.get(column) is None else row[column] for column in columns})
    return buffer.getvalue()


def encounters_schema() -> dict[str, Any]:
    """Table Schema of the custom encounters resource."""
    fields = []
    for name, kind, constraints, description in ENCOUNTER_FIELDS:
        entry = {"name": name, "type": kind, "description": description, "constraints": constraints}
        if kind == "datetime":
            entry["format"] = TIME_FORMAT
        fields.append(entry)
    return {
        "fields": fields,
        "missingValues": [""],
        "primaryKey": "encounterID",
        "foreignKeys": [
            {"fields": "deploymentID", "reference": {"resource": "deployments", "fields": "deploymentID"}},
            {"fields": "mediaID", "reference": {"resource": "media", "fields": "mediaID"}},
        ],
    }


def resources() -> list[dict[str, Any]]:
    """The three core resources with the official 1.0.2 schemas, and the custom encounters resource."""
    core = [
        {
            "name": name,
            "path": f"{name}.csv",
            "profile": "tabular-data-resource",
            "format": "csv",
            "mediatype": "text/csv",
            "encoding": "utf-8",
            "schema": f"{SCHEMA_BASE}/{name}-table-schema.json",
        }
        for name in ("deployments", "media", "observations")
    ]
    encounters = {
        "name": "encounters",
        "path": ENCOUNTERS_FILE,
        "profile": "tabular-data-resource",
        "format": "csv",
        "mediatype": "text/csv",
        "encoding": "utf-8",
        "schema": encounters_schema(),
        "description": (
            "Custom table, not part of the Camtrap DP model: mating encounters recorded as dual-track audio, with "
            "the probability of success from breedwatch's vocal mating-success classifier (CGANet) and the outcome "
            "keepers recorded. mediaID names the recording in media.csv."
        ),
    }
    return [*core, encounters]


def spatial(deployments: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """GeoJSON of the known deployment locations (placeholders are not locations: an empty collection says so)."""
    points = sorted(
        {(d["longitude"], d["latitude"]) for d in deployments if UNKNOWN_LOCATION not in d["deploymentComments"]}
    )
    if not points:
        return {"type": "GeometryCollection", "geometries": []}
    return {"type": "MultiPoint", "coordinates": [list(p) for p in points]}


def temporal(deployments: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """First and last day of the deployments (local dates)."""
    return {
        "start": min(d["deploymentStart"][:10] for d in deployments),
        "end": max(d["deploymentEnd"][:10] for d in deployments),
    }


def description(built: Built) -> str:
    """The package description: what it holds, how it was classified, and what it could not say."""
    lines = [
        f"Camera-trap and keeper photos processed by breedwatch: {len(built.media)} media "
        f"in {len(built.deployments)} deployments, "
        f"{len(built.observations)} face observations and {len(built.encounters)} mating encounters.",
        "Observations are faces found by breedwatch's face detector (or keeper crops, whose box is the whole image); "
        "sex is the "
        "animal-level call of the gender model from all of the animal's faces (empty inside the abstain band), and "
        "classificationProbability is the posterior probability of that call. Where a keeper corrected or "
        "confirmed the call in breedwatch review, classificationMethod is human, classifiedBy the reviewer and "
        "observationComments gives the machine's call. individualID is the animal a keeper photo names, the "
        "registered animal the identity model matched, or a provisional individual (P-...) it grouped from faces "
        "that match no registered animal; observationComments says which, and a keeper's naming makes the "
        "observation human.",
        "The custom encounters resource holds per-encounter mating success from vocalisations.",
        *built.notes,
    ]
    return "\n\n".join(lines)


def descriptor(built: Built, settings: ExportSettings, species: Iterable[str]) -> dict[str, Any]:
    """datapackage.json of the export (Camtrap DP 1.0.2 profile)."""
    return {
        "profile": f"{SCHEMA_BASE}/camtrap-dp-profile.json",
        "name": "breedwatch-export",
        "id": settings.package_id,
        "created": settings.created,
        "title": settings.title,
        "description": description(built),
        "version": "1",
        "contributors": [{"title": settings.contributor, "role": "contributor"}],
        "sources": [{"title": "breedwatch", "version": settings.software_version or "unknown"}],
        "project": {
            "title": settings.project_title,
            "samplingDesign": settings.sampling_design,
            "captureMethod": [settings.capture_method],
            "individualAnimals": any(o.get("individualID") for o in built.observations),
            "observationLevel": ["media"],
        },
        "spatial": spatial(built.deployments),
        "temporal": temporal(built.deployments),
        "taxonomic": [{"scientificName": name} for name in sorted(set(species))],
        "resources": resources(),
    }
