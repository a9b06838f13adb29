"""The drop manifests (drop.toml, animals.csv, encounters.csv): their row models and strict parsing."""

from __future__ import annotations

import csv
import io
import re
import tomllib
from datetime import date, datetime
from typing import Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

Sex = Literal["female", "male"]
Outcome = Literal["success", "failure"]
TOML_POSITION = re.compile(r"\s*\(at line (\d+), column \d+\)")
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
SEX_WORDS = {"female": "female", "f": "female", "male": "male", "m": "male", "": None, "unknown": None}
OUTCOME_WORDS = {"success": "success", "failure": "failure", "": None, "unknown": None}


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the file, line and field."""

    def __init__(self, filename: str, line: int | None, field: str | None, problem: str) -> None:
        self.filename, self.line, self.field, self.problem = filename, line, field, problem
        where = filename + (f" line {line}" if line is not None else "")
        what = f" field {field!r}" if field else ""
        super().__init__(f"{where}{what}: {problem}")


def check_safe_id(value: str, what: str) -> str:
    """Accept ids made of letters, digits, '_', '-' and '.' (they become folder and file names)."""
    value = value.strip()
    if not SAFE_ID.match(value):
        raise ValueError(f"{what} {value!r} must be 1-64 letters, digits, '_', '-' or '.'")
    return value


class DropInfo(BaseModel):
    """drop.toml: where and what a drop is."""

    model_config = ConfigDict(extra="forbid")

    site: str | None = None
    deployment_id: str | None = None
    timezone: str | None = None
    species: str | None = None
    notes: str | None = None
    latitude: float | None = Field(
        default=None,
        ge=-90,
        le=90,
        allow_inf_nan=False,
        description="WGS84 decimal degrees of the deployment (Camtrap DP export).",
    )
    longitude: float | None = Field(
        default=None, ge=-180, le=180, allow_inf_nan=False, description="WGS84 decimal degrees of the deployment."
    )
    location_name: str | None = None

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        """Reject time zones the IANA database does not know."""
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class AnimalRow(BaseModel):
    """One row of animals.csv."""

    model_config = ConfigDict(extra="ignore")

    csv_line: int | None = Field(default=None, exclude=True, description="Line of the CSV file this row came from.")

    animal_id: str
    sex: Sex | None = None
    birth_date: date | None = None
    name: str | None = None

    @field_validator("animal_id")
    @classmethod
    def _safe(cls, value: str) -> str:
        """Animal ids become folder names."""
        return check_safe_id(value, "animal_id")

    @field_validator("sex", mode="before")
    @classmethod
    def _sex_word(cls, value: object) -> object:
        """Accept female/male/f/m in any case; empty or 'unknown' means not known."""
        word = str(value or "").strip().lower()
        if word not in SEX_WORDS:
            raise ValueError(f"sex {value!r} must be female, male or empty")
        return SEX_WORDS[word]

    @field_validator("birth_date", "name", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        """Treat an empty cell as missing."""
        return None if isinstance(value, str) and not value.strip() else value


class EncounterRow(BaseModel):
    """One row of encounters.csv."""

    model_config = ConfigDict(extra="ignore")

    csv_line: int | None = Field(default=None, exclude=True, description="Line of the CSV file this row came from.")

    encounter_id: str
    recording: str
    male_id: str
    female_id: str
    started_at: datetime | None = None
    outcome: Outcome | None = None

    @field_validator("encounter_id", "male_id", "female_id")
    @classmethod
    def _safe(cls, value: str, info: object) -> str:
        """Ids become file names and join keys."""
        return check_safe_id(value, getattr(info, "field_name", "id"))

    @field_validator("recording")
    @classmethod
    def _under_audio(cls, value: str) -> str:
        """Recordings are relative paths under audio/."""
        value = value.strip().replace("\\", "/")
        if not value.startswith("audio/") or ".." in value.split("/"):
            raise ValueError(f"recording {value!r} must be a path under audio/")
        return value

    @field_validator("outcome", mode="before")
    @classmethod
    def _outcome_word(cls, value: object) -> object:
        """Accept success/failure in any case; empty means not known."""
        word = str(value or "").strip().lower()
        if word not in OUTCOME_WORDS:
            raise ValueError(f"outcome {value!r} must be success, failure or empty")
        return OUTCOME_WORDS[word]

    @field_validator("started_at", mode="before")
    @classmethod
    def _empty_time(cls, value: object) -> object:
        """Treat an empty cell as missing."""
        return None if isinstance(value, str) and not value.strip() else value


RowModel = TypeVar("RowModel", bound=BaseModel)


def checked_csv_reader(text: str, filename: str, row_model: type[BaseModel]) -> csv.DictReader:
    """A CSV reader with stripped header names, once the header has every column the row model requires."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [name.strip() for name in (reader.fieldnames or [])]
    reader.fieldnames = header
    for name, field in row_model.model_fields.items():
        if field.is_required() and name not in header:
            raise ManifestError(filename, 1, name, "required column is missing from the header")
    return reader


def parse_csv_manifest(text: str, filename: str, row_model: type[RowModel], key: str) -> list[RowModel]:
    """Parse a CSV manifest strictly; the first bad cell raises ManifestError with its line and field."""
    reader = checked_csv_reader(text, filename, row_model)
    rows: list[RowModel] = []
    seen: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if None in row:
            raise ManifestError(filename, line, None, "row has more cells than the header")
        rows.append(validate_row(row, row_model, filename, line))
        ident = getattr(rows[-1], key)
        if ident in seen:
            raise ManifestError(filename, line, key, f"{ident!r} already appears on line {seen[ident]}")
        seen[ident] = line
    return rows


def validate_row(row: dict[str, str | None], row_model: type[RowModel], filename: str, line: int) -> RowModel:
    """Validate one CSV row, naming the first offending field."""
    cells = {name: (value or "").strip() for name, value in row.items() if name and name != "csv_line"}
    try:
        return row_model.model_validate({**cells, "csv_line": line})
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else None
        raise ManifestError(filename, line, field, readable_message(error["msg"])) from None


def readable_message(message: str) -> str:
    """Drop pydantic's 'Value error, ' prefix from a validator's own sentence."""
    return message.removeprefix("Value error, ")


def parse_drop_toml(text: str, filename: str = "drop.toml") -> DropInfo:
    """Parse drop.toml, naming the line of a syntax error or of an invalid field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = TOML_POSITION.search(str(exc))
        line = int(found.group(1)) if found else None
        message = TOML_POSITION.sub("", str(exc)).strip()
        raise ManifestError(filename, line, None, f"is not valid TOML ({message})") from None
    try:
        return DropInfo.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else None
        raise ManifestError(filename, line_of_key(text, field), field, readable_message(error["msg"])) from None


def line_of_key(text: str, key: str | None) -> int | None:
    """The 1-based line where a top-level TOML key is assigned, if any."""
    if key is None:
        return None
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.match(line):
            return number
    return None
