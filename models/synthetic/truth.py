"""A sample drop's ground truth read back: its annotated camera-trap faces with the animal each one shows."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class TruthFace:
    """One annotated camera-trap face: frame, camera, time, animal shown, whether it is registered, box in pixels."""

    path: str
    camera_id: str
    captured_at: datetime
    animal_id: str
    registered: bool
    x: int
    y: int
    w: int
    h: int
    width: int
    height: int


def csv_rows(text: str) -> list[dict[str, str]]:
    """Rows of a CSV text as dictionaries keyed by its header."""
    return list(csv.DictReader(io.StringIO(text)))


def registered_by_id(animals_csv: str) -> dict[str, bool]:
    """Whether each animal of truth/animals.csv is registered; a drop without the column registers them all."""
    return {row["animal_id"]: row.get("registered", "true") == "true" for row in csv_rows(animals_csv)}


def truth_faces(boxes_csv: str, frames_csv: str, animals_csv: str) -> tuple[TruthFace, ...]:
    """Every face box of truth/boxes.csv with its frame's camera and time and its animal's registration, in file
    order; the texts are those of truth/boxes.csv, truth/frames.csv and truth/animals.csv."""
    frames = {row["path"]: row for row in csv_rows(frames_csv)}
    registered = registered_by_id(animals_csv)
    return tuple(
        TruthFace(
            path=row["path"],
            camera_id=frames[row["path"]]["camera_id"],
            captured_at=datetime.fromisoformat(frames[row["path"]]["captured_at"]),
            animal_id=row["animal_id"],
            registered=registered[row["animal_id"]],
            **{key: int(row[key]) for key in ("x", "y", "w", "h", "width", "height")},
        )
        for row in csv_rows(boxes_csv)
    )
