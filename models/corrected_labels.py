"""Training labels from keepers' corrections beside the registry's (pure).

Which wins: a keeper's correction over a registry value (animals.csv, encounters.csv), as in the catalog views; a
face-level correction over its animal's sex. Undo is applied before rows get here (the `live_corrections` view), and
the latest live row per target wins. A face whose correction contradicts its animal's sex is trained on as a group of
its own ("face:<drop>/<face>"), so an animal's faces keep one sex and the split by animal stays honest; so is a face of
no known animal that a keeper sexed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

FACE_GROUP = "face:"


class LabelConflictError(ValueError):
    """The registry gives an animal two sexes and no keeper has settled which."""


@dataclass(frozen=True)
class FaceLabel:
    """One training face: its sex, the group the split keeps together, and where the sex came from."""

    sex: str
    group: str
    source: str  # face_correction | animal_correction | registry


def animal_sex(row: dict[str, Any]) -> tuple[str | None, str | None]:
    """(sex, source) of a face's animal: a keeper's animal-level correction, else the registry's single sex."""
    if row.get("animal_human"):
        return row["animal_human"], "animal_correction"
    sexes = row.get("sexes") or []
    if len(sexes) > 1:
        raise LabelConflictError(
            f"animals.csv files disagree on the sex of {row['animal_id']}; "
            "fix them or set its sex in 'breedwatch review'"
        )
    return (sexes[0], "registry") if sexes else (None, None)


def face_label(row: dict[str, Any]) -> FaceLabel | None:
    """The label of one face row (face_id, drop_id, animal_id, sexes, animal_human, face_human, not_face), or None
    when it has none or a keeper said it is not a face."""
    if row.get("not_face"):
        return None
    sex, source = animal_sex(row) if row.get("animal_id") else (None, None)
    face_sex = row.get("face_human")
    if face_sex:
        own = row.get("animal_id") if row.get("animal_id") and face_sex == sex else None
        return FaceLabel(face_sex, own or f"{FACE_GROUP}{row['drop_id']}/{row['face_id']}", "face_correction")
    return FaceLabel(sex, row["animal_id"], str(source)) if sex else None


def gender_corrections_used(rows: list[dict[str, Any]], labels: list[FaceLabel | None]) -> dict[str, int]:
    """How many corrections the labels used, by kind: face sexes, animal sexes (those overriding the registry apart),
    and faces left out as not a face."""
    kept = [(row, label) for row, label in zip(rows, labels) if label is not None]
    animal_rows = {row["animal_id"]: row for row, label in kept if label.source == "animal_correction"}
    sources = Counter(label.source for _, label in kept)
    return {
        "face_sex": sources["face_correction"],
        "animal_sex": len(animal_rows),
        "animal_sex_over_registry": sum(
            bool(row.get("sexes")) and row["animal_human"] not in row["sexes"] for row in animal_rows.values()
        ),
        "not_a_face": sum(bool(row.get("not_face")) for row in rows),
    }


def training_groups(groups: list[str]) -> tuple[list[str], list[str]]:
    """(animal groups, single-face groups): only animals are held out; sexed faces of their own only train."""
    unique = sorted(set(groups))
    return [g for g in unique if not g.startswith(FACE_GROUP)], [g for g in unique if g.startswith(FACE_GROUP)]
