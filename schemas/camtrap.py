"""Camtrap DP 1.0.2 packages read as drops: the descriptor, the rows of deployments/media/observations, strict parsing.

A structural problem (descriptor not JSON, a core resource or a required column missing) raises ManifestError and
stops the drop; a bad row becomes one problem sentence naming file, line and field, and every other row is kept.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.manifest import ManifestError, check_safe_id, checked_csv_reader, validate_row

DESCRIPTOR = "datapackage.json"
CORE_RESOURCES = ("deployments", "media", "observations")
VERSION = "1.0.2"
SCHEMA_BASE = f"https://raw.githubusercontent.com/tdwg/camtrap-dp/{VERSION}"
MISSING_VALUES = ("", "NA", "NaN", "nan")  # the table schemas' missingValues
BBOX = ("bboxX", "bboxY", "bboxWidth", "bboxHeight")
ANYWHERE_M = 20_037_509  # coordinateUncertainty of half the Earth's circumference: the point may be anywhere


def missing_to_none(data: Any) -> Any:
    """Cells the table schemas declare missing ('', NA, NaN, nan) become None."""
    if isinstance(data, dict):
        return {
            key: None if isinstance(value, str) and value.strip() in MISSING_VALUES else value
            for key, value in data.items()
        }
    return data


def aware(value: datetime | None) -> datetime | None:
    """Camtrap DP timestamps carry their UTC offset; refuse one without."""
    if value is not None and value.tzinfo is None:
        raise ValueError("must carry a UTC offset, e.g. 2021-04-11T20:43:09+01:00 or ...Z")
    return value


class CamtrapRow(BaseModel):
    """Common behaviour of the three core tables' rows."""

    model_config = ConfigDict(extra="ignore")

    csv_line: int | None = Field(default=None, exclude=True, description="Line of the CSV file this row came from.")

    @model_validator(mode="before")
    @classmethod
    def _missing(cls, data: Any) -> Any:
        """Apply the schemas' missingValues before any field is checked."""
        return missing_to_none(data)


class CamtrapDeployment(CamtrapRow):
    """One row of deployments.csv (the columns breedwatch keeps)."""

    deploymentID: str = Field(min_length=1)
    locationID: str | None = None
    locationName: str | None = None
    latitude: float | None = Field(default=None, ge=-90, le=90, allow_inf_nan=False)
    longitude: float | None = Field(default=None, ge=-180, le=180, allow_inf_nan=False)
    coordinateUncertainty: int | None = Field(default=None, ge=1)
    deploymentStart: datetime | None = None
    deploymentEnd: datetime | None = None
    cameraID: str | None = None
    cameraModel: str | None = None

    _aware = field_validator("deploymentStart", "deploymentEnd")(aware)


class CamtrapMedia(CamtrapRow):
    """One row of media.csv (the columns breedwatch keeps)."""

    mediaID: str = Field(min_length=1)
    deploymentID: str = Field(min_length=1)
    timestamp: datetime
    filePath: str = Field(min_length=1)
    fileMediatype: str = Field(pattern=r"^(image|video|audio)/.*$")
    fileName: str | None = None
    captureMethod: Literal["activityDetection", "timeLapse"] | None = None

    _aware = field_validator("timestamp")(aware)


class CamtrapObservation(CamtrapRow):
    """One row of observations.csv (the columns breedwatch keeps)."""

    observationID: str = Field(min_length=1)
    deploymentID: str = Field(min_length=1)
    mediaID: str | None = None
    eventID: str | None = None
    eventStart: datetime | None = None
    eventEnd: datetime | None = None
    observationLevel: Literal["media", "event"] | None = None
    observationType: Literal["animal", "human", "vehicle", "blank", "unknown", "unclassified"] | None = None
    scientificName: str | None = None
    count: int | None = Field(default=None, ge=1)
    lifeStage: Literal["adult", "subadult", "juvenile"] | None = None
    sex: Literal["female", "male"] | None = None
    behavior: str | None = None
    individualID: str | None = None
    bboxX: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    bboxY: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    bboxWidth: float | None = Field(default=None, gt=0, le=1, allow_inf_nan=False)
    bboxHeight: float | None = Field(default=None, gt=0, le=1, allow_inf_nan=False)
    classificationMethod: Literal["human", "machine"] | None = None
    classifiedBy: str | None = None
    classificationProbability: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)

    _aware = field_validator("eventStart", "eventEnd")(aware)

    @field_validator("individualID")
    @classmethod
    def _safe_individual(cls, value: str | None) -> str | None:
        """Individuals become breedwatch animal ids, which become folder names."""
        return None if value is None else check_safe_id(value, "individualID")

    @model_validator(mode="after")
    def _whole_box(self) -> CamtrapObservation:
        """A bounding box has all four of bboxX, bboxY, bboxWidth and bboxHeight, or none."""
        given = [name for name in BBOX if getattr(self, name) is not None]
        if given and len(given) < len(BBOX):
            missing = ", ".join(name for name in BBOX if name not in given)
            raise ValueError(f"a bounding box needs all of {', '.join(BBOX)}; {missing} is empty")
        return self

    def box(self) -> tuple[float, float, float, float] | None:
        """(x, y, width, height) relative to the image, top-left origin, or None."""
        if self.bboxX is None or self.bboxY is None or self.bboxWidth is None or self.bboxHeight is None:
            return None
        return self.bboxX, self.bboxY, self.bboxWidth, self.bboxHeight


@dataclass(frozen=True)
class ExportSettings:
    """What the package says about itself that the catalog cannot know."""

    title: str = "breedwatch export"
    contributor: str = "breedwatch (automated classification)"
    project_title: str = "breedwatch station monitoring"
    sampling_design: str = "targeted"
    capture_method: str = "activityDetection"
    created: str = ""  # RFC 3339 time of the export
    package_id: str = ""
    software_version: str = ""


RowModel = TypeVar("RowModel", bound=CamtrapRow)


@dataclass(frozen=True)
class RowProblem:
    """A row that could not be used: where it is and one sentence saying why."""

    filename: str
    line: int
    sentence: str
    file_path: str | None = None  # media.csv: the file the bad row names, when it names one


def json_line(text: str, exc: json.JSONDecodeError) -> int:
    """The 1-based line of a JSON syntax error."""
    return text.count("\n", 0, exc.pos) + 1


def parse_descriptor(text: str) -> dict[str, Any]:
    """datapackage.json as a dict, naming the line of a syntax error."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(DESCRIPTOR, json_line(text, exc), None, f"is not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise ManifestError(DESCRIPTOR, 1, None, "must be a JSON object with a 'resources' list")
    return data


def is_camtrap_descriptor(data: dict[str, Any]) -> bool:
    """A descriptor that claims Camtrap DP (its profile) or names any of its core resources."""
    resources = data.get("resources") if isinstance(data.get("resources"), list) else []
    names = {r.get("name") for r in resources if isinstance(r, dict)}
    return "camtrap-dp" in str(data.get("profile", "")) or bool(names & set(CORE_RESOURCES))


def resource_paths(data: dict[str, Any]) -> dict[str, str]:
    """The relative CSV path of each core resource; a missing, inline or remote one stops the drop."""
    resources = data.get("resources")
    if not isinstance(resources, list):
        raise ManifestError(DESCRIPTOR, None, "resources", "must be a list of resources")
    by_name = {r.get("name"): r for r in resources if isinstance(r, dict)}
    paths = {}
    for name in CORE_RESOURCES:
        path = by_name.get(name, {}).get("path")
        if name not in by_name:
            raise ManifestError(
                DESCRIPTOR,
                None,
                "resources",
                f"has no '{name}' resource; a Camtrap DP package needs {', '.join(CORE_RESOURCES)}",
            )
        if not isinstance(path, str) or not path.strip():
            raise ManifestError(
                DESCRIPTOR,
                None,
                "resources",
                f"resource '{name}' must give its CSV file as a 'path' inside the package",
            )
        if "://" in path:
            raise ManifestError(
                DESCRIPTOR, None, "resources", f"resource '{name}' points at {path}, which breedwatch does not download"
            )
        paths[name] = path.strip()
    return paths


def csv_rows(text: str, filename: str, row_model: type[CamtrapRow]) -> Iterator[tuple[int, dict[str, str | None]]]:
    """(line, row) of a resource CSV whose header has every column the row model requires."""
    reader = checked_csv_reader(text, filename, row_model)
    for row in reader:
        yield reader.line_num, row


def parse_rows(
    text: str, filename: str, row_model: type[RowModel], key: str
) -> tuple[list[RowModel], list[RowProblem]]:
    """Every valid row of a resource CSV, and one problem per bad or repeated row (the others are kept)."""
    rows: list[RowModel] = []
    problems: list[RowProblem] = []
    seen: dict[str, int] = {}
    for line, cells in csv_rows(text, filename, row_model):
        try:
            if None in cells:
                raise ManifestError(filename, line, None, "row has more cells than the header")
            row = validate_row(cells, row_model, filename, line)
        except ManifestError as error:
            problems.append(RowProblem(filename, line, f"{error}.", (cells.get("filePath") or "").strip() or None))
            continue
        ident = getattr(row, key)
        if ident in seen:
            problems.append(
                RowProblem(
                    filename,
                    line,
                    f"{filename} line {line} field '{key}': {ident!r} already appears on line {seen[ident]}.",
                )
            )
            continue
        seen[ident] = line
        rows.append(row)
    return rows, problems


@dataclass(frozen=True)
class CamtrapPackage:
    """The valid rows of a package's three core tables and one problem per row that was left out."""

    resources: dict[str, str]
    deployments: list[CamtrapDeployment]
    media: list[CamtrapMedia]
    observations: list[CamtrapObservation]
    problems: list[RowProblem] = field(default_factory=list)
