"""Manifests: strict parsing, errors naming file, line and field."""

from __future__ import annotations

import pytest

from schemas.manifest import AnimalRow, EncounterRow, ManifestError, parse_csv_manifest, parse_drop_toml

ANIMALS = "animal_id,sex,birth_date,name\nA01,female,2015-08-01,Mei\nA02,M,,\nA03,,,\n"
ENCOUNTERS = (
    "encounter_id,recording,male_id,female_id,started_at,outcome\n"
    "E01,audio/E01.wav,A02,A01,2026-03-04T21:00:00+08:00,success\n"
    "E02,audio/E02.wav,A02,A01,,\n"
)


def test_animals_parse_with_lenient_sex_words():
    rows = parse_csv_manifest(ANIMALS, "animals.csv", AnimalRow, "animal_id")
    assert [(r.animal_id, r.sex) for r in rows] == [("A01", "female"), ("A02", "male"), ("A03", None)]
    assert rows[0].birth_date.isoformat() == "2015-08-01"


def test_encounters_parse():
    rows = parse_csv_manifest(ENCOUNTERS, "encounters.csv", EncounterRow, "encounter_id")
    assert rows[0].outcome == "success" and rows[1].outcome is None
    assert rows[0].started_at.utcoffset().total_seconds() == 8 * 3600


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        ("animal_id,sex\nA01,female\nA02,boar\n", 3, "sex"),
        ("animal_id,sex\nA01,female\nA01,male\n", 3, "animal_id"),
        ("animal_id,sex,birth_date\nA01,female,yesterday\n", 2, "birth_date"),
        ("animal_id,sex\nA 01,female\n", 2, "animal_id"),
        ("name,sex\nMei,female\n", 1, "animal_id"),
        ("animal_id,sex\nA01,female,extra\n", 2, None),
    ],
)
def test_bad_animals_name_line_and_field(text, line, field):
    with pytest.raises(ManifestError) as error:
        parse_csv_manifest(text, "animals.csv", AnimalRow, "animal_id")
    assert (error.value.filename, error.value.line, error.value.field) == ("animals.csv", line, field)
    assert str(error.value).startswith(f"animals.csv line {line}")


def test_bad_encounter_recording_and_outcome():
    bad_path = ENCOUNTERS.replace("audio/E02.wav", "../E02.wav")
    with pytest.raises(ManifestError) as error:
        parse_csv_manifest(bad_path, "encounters.csv", EncounterRow, "encounter_id")
    assert (error.value.line, error.value.field) == (3, "recording")
    bad_outcome = ENCOUNTERS.replace("success", "maybe")
    with pytest.raises(ManifestError) as error:
        parse_csv_manifest(bad_outcome, "encounters.csv", EncounterRow, "encounter_id")
    assert (error.value.line, error.value.field) == (2, "outcome")


def test_drop_toml_errors_name_the_line():
    assert parse_drop_toml('site = "Wolong"\ntimezone = "Asia/Shanghai"\n').site == "Wolong"
    with pytest.raises(ManifestError) as error:
        parse_drop_toml('site = "Wolong"\ntimezone = "Asia/Nowhere"\n')
    assert (error.value.line, error.value.field) == (2, "timezone")
    with pytest.raises(ManifestError) as error:
        parse_drop_toml('site = "Wolong"\nspecies = \n')
    assert error.value.line == 2
    with pytest.raises(ManifestError) as error:
        parse_drop_toml('site = "Wolong"\ncamera = "x"\n')
    assert (error.value.line, error.value.field) == (2, "camera")
