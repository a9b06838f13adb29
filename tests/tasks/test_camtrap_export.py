"""breedwatch export camtrap-dp: the package validates against the official Camtrap DP 1.0.2 schemas and says true
things.

Validation: datapackage.json against camtrap-dp-profile.json with jsonschema. The profile $refs two remote schemas that
cannot be fetched offline: the Frictionless Data Package schema, for which frictionless's own Data Package profile
(`Package.metadata_profile`) stands in, and GeoJSON, for which frictionless's bundled GeoJSON schema is used. Formats
are checked where jsonschema can (date, date-time, email; 'uri' needs rfc3987, which is not installed). The CSVs:
frictionless validates every row against the official table schemas (types, formats, required, enum, pattern, ranges,
unique and foreign keys) as one package with the custom encounters resource.
"""

from __future__ import annotations

import csv
import importlib.resources
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4
from typer.testing import CliRunner

from schemas.config import load_settings
from schemas.home import HomeLayout
from schemas.tables import FACES, GENDER_PREDICTIONS, MATING_PREDICTIONS, RUNS
from tasks.catalog import query, refresh_views
from tasks.ingest import ingest_drop_dir
from tasks.lake import write_rows
from tests.conftest import realfile
from tests.drops import write_small_drop

frictionless = pytest.importorskip("frictionless")

DATA_PACKAGE_URI = "https://specs.frictionlessdata.io/schemas/data-package.json"
GEOJSON_URIS = (
    "http://json.schemastore.org/geojson.json",
    "https://raw.githubusercontent.com/fge/sample-json-schemas/master/geojson/geojson.json",
)
CORE = ("deployments", "media", "observations")


def profile_errors(package: Path, schemas: Path) -> list[str]:
    """Every way datapackage.json breaks the Camtrap DP profile (empty when it conforms)."""
    profile = json.loads((schemas / "camtrap-dp-profile.json").read_text())
    geojson = json.loads((importlib.resources.files("frictionless") / "assets/profiles/geojson.json").read_text())
    registry = Registry().with_resources(
        [
            (
                DATA_PACKAGE_URI,
                Resource.from_contents(frictionless.Package.metadata_profile, default_specification=DRAFT4),
            )
        ]
        + [(uri, Resource.from_contents(geojson, default_specification=DRAFT4)) for uri in GEOJSON_URIS]
    )
    validator = jsonschema.Draft4Validator(profile, registry=registry, format_checker=jsonschema.FormatChecker())
    document = json.loads((package / "datapackage.json").read_text())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def table_errors(package: Path, schemas: Path) -> list[str]:
    """Every cell, row and key error of the CSVs against the official table schemas and the encounters schema."""
    descriptor = json.loads((package / "datapackage.json").read_text())
    resources = []
    for spec in descriptor["resources"]:
        schema = (
            json.loads((schemas / f"{spec['name']}-table-schema.json").read_text())
            if spec["name"] in CORE
            else spec["schema"]
        )
        resources.append(
            frictionless.Resource(
                name=spec["name"], path=spec["path"], schema=frictionless.Schema.from_descriptor(schema)
            )
        )
    report = frictionless.Package(resources=resources, basepath=str(package)).validate()
    return [f"{r.name}: {e.message}" for r in report.tasks for e in r.errors]


def official_schemas(realdata: Path) -> Path:
    """The official schemas folder (the test skips without it)."""
    return realfile(realdata, "camtrap-dp/schemas/camtrap-dp-profile.json").parent


def read_csv(path: Path) -> list[dict[str, str]]:
    """A CSV as a list of dicts."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def face(
    media_id: str, index: int, animal: str | None, box: tuple[float, float, float, float], source: str = "detector"
) -> dict[str, Any]:
    """A faces row."""
    return {
        "face_id": f"{media_id}-f{index}",
        "media_id": media_id,
        "drop_id": "drop-1",
        "animal_id": animal,
        "source": source,
        "bbox_x": box[0],
        "bbox_y": box[1],
        "bbox_w": box[2],
        "bbox_h": box[3],
        "score": 0.99,
        "excluded": False,
        "detector": "mtcnn-panda@v1",
        "run_id": "run-1",
    }


def prediction(row: dict[str, Any], p_male: float) -> dict[str, Any]:
    """A gender_predictions row for a face."""
    return {
        "face_id": row["face_id"],
        "media_id": row["media_id"],
        "drop_id": "drop-1",
        "animal_id": row["animal_id"],
        "p_male": p_male,
        "label": "male" if p_male >= 0.5 else "female",
        "model_version": "panda-gender@v1",
        "run_id": "run-1",
    }


def station(tmp_path: Path, located: bool) -> HomeLayout:
    """A home with one ingested small drop, faces, gender and mating predictions, and a refreshed catalog."""
    drop = write_small_drop(tmp_path / "drop-1")
    if located:
        with open(drop / "drop.toml", "a") as handle:
            handle.write(
                'latitude = 30.83\nlongitude = 103.32\nlocation_name = "Panda Valley enclosure 3"\n'
                'species = "Ailuropoda melanoleuca"\n'
            )
    home = HomeLayout(tmp_path / "home")
    settings = load_settings(None, home=home.root)
    assert ingest_drop_dir(drop, home, "run-1", settings, lambda: None).status == "ingested"
    refresh_views(home, settings.view_thresholds())
    media = {m["path"]: m for m in query(home, "SELECT path, media_id FROM media WHERE status = 'ok'").to_pylist()}
    faces = [
        face(media["faces/A01/f1.jpg"]["media_id"], 0, "A01", (0.0, 0.0, 1.0, 1.0), "keeper"),
        face(media["images/A02/p1.jpg"]["media_id"], 0, "A02", (0.2, 0.1, 0.5, 0.6)),
        face(media["images/cam01/IMG_0000.JPG"]["media_id"], 0, None, (-0.05, 0.9, 0.2, 0.2)),
    ]  # overhangs the frame
    write_rows(home, FACES, "drop-1", "faces", faces)
    write_rows(
        home,
        GENDER_PREDICTIONS,
        "drop-1",
        "gender",
        [prediction(faces[0], 0.1), prediction(faces[1], 0.95), prediction(faces[2], 0.6)],
    )
    write_rows(
        home,
        MATING_PREDICTIONS,
        "drop-1",
        "mating",
        [
            {
                "segment_id": "s1",
                "media_id": media["audio/E01.wav"]["media_id"],
                "drop_id": "drop-1",
                "encounter_id": "E01",
                "p_success": 0.8,
                "frame_p_success": [0.8] * 86,
                "attention": [1 / 86] * 86,
                "temperature": 1.0,
                "model_version": "cganet@v1",
                "run_id": "run-1",
            }
        ],
    )
    write_rows(
        home,
        RUNS,
        "run-1",
        "run",
        [{"run_id": "run-1", "started_at": datetime(2026, 3, 5, 2, tzinfo=UTC), "status": "completed"}],
    )
    refresh_views(home, settings.view_thresholds())
    return home


def export(home: HomeLayout, out: Path, *extra: str) -> Any:
    """Run the CLI command."""
    from flows.cli import app

    return CliRunner().invoke(app, ["export", "camtrap-dp", str(out), "--home", str(home.root), *extra])


def test_export_validates_against_the_official_schemas_and_says_true_things(realdata: Path, tmp_path: Path) -> None:
    schemas = official_schemas(realdata)
    home = station(tmp_path, located=True)
    out = tmp_path / "package"
    result = export(home, out)
    assert result.exit_code == 0, result.output
    assert profile_errors(out, schemas) == []
    assert table_errors(out, schemas) == []
    deployment = read_csv(out / "deployments.csv")[0]
    assert (deployment["deploymentID"], deployment["latitude"], deployment["longitude"]) == ("dep-1", "30.83", "103.32")
    assert deployment["locationName"] == "Panda Valley enclosure 3"
    media = {m["fileName"]: m for m in read_csv(out / "media.csv")}
    assert (
        media["IMG_0000.JPG"]["timestamp"] == "2026-03-04T21:00:00+08:00"
    )  # EXIF time in the drop's zone, offset kept
    assert media["E01.wav"]["fileMediatype"] == "audio/wav"
    assert (out / media["p1.jpg"]["filePath"]).read_bytes() == (
        tmp_path / "drop-1" / "images" / "A02" / "p1.jpg"
    ).read_bytes()
    observations = {o["individualID"] or "none": o for o in read_csv(out / "observations.csv")}
    assert {o["sex"] for o in observations.values()} == {"female", "male", ""}
    a02 = observations["A02"]
    assert (a02["sex"], a02["classificationMethod"]) == ("male", "machine")
    posterior = query(home, "SELECT p_male FROM animals WHERE animal_id = ?", ["A02"]).to_pylist()[0]["p_male"]
    assert "panda-gender@v1" in a02["classifiedBy"] and float(a02["classificationProbability"]) == pytest.approx(
        posterior, abs=1e-6
    )
    assert (a02["bboxX"], a02["bboxY"], a02["bboxWidth"], a02["bboxHeight"]) == ("0.2", "0.1", "0.5", "0.6")
    a01 = query(home, "SELECT p_male FROM animals WHERE animal_id = ?", ["A01"]).to_pylist()[0]["p_male"]
    assert observations["A01"]["sex"] == "female"  # probability of the stated sex: 1 - P(male)
    assert float(observations["A01"]["classificationProbability"]) == pytest.approx(1 - a01, abs=1e-6)
    unknown = observations["none"]
    assert unknown["sex"] == "" and unknown["classificationProbability"] == ""
    assert (unknown["bboxX"], unknown["bboxWidth"], unknown["bboxHeight"]) == (
        "0.0",
        "0.15",
        "0.1",
    )  # clipped to the frame
    encounter = read_csv(out / "mating-encounters.csv")[0]
    assert (
        encounter["maleID"],
        encounter["femaleID"],
        encounter["predictedOutcome"],
        encounter["recordedOutcome"],
    ) == ("A02", "A01", "success", "success")
    assert encounter["mediaID"] == media["E01.wav"]["mediaID"]
    assert (encounter["successProbability"], encounter["calibratedProbability"], encounter["deploymentID"]) == (
        "0.8",
        "0.8",
        "dep-1",
    )
    descriptor = json.loads((out / "datapackage.json").read_text())
    assert descriptor["spatial"] == {"type": "MultiPoint", "coordinates": [[103.32, 30.83]]}
    assert descriptor["taxonomic"] == [{"scientificName": "Ailuropoda melanoleuca"}]


def test_an_unknown_location_is_a_documented_placeholder(realdata: Path, tmp_path: Path) -> None:
    schemas = official_schemas(realdata)
    home = station(tmp_path, located=False)
    out = tmp_path / "package"
    assert export(home, out, "--media", "reference").exit_code == 0
    assert profile_errors(out, schemas) == [] and table_errors(out, schemas) == []
    deployment = read_csv(out / "deployments.csv")[0]
    assert (deployment["latitude"], deployment["longitude"], deployment["coordinateUncertainty"]) == (
        "0.0",
        "0.0",
        "20037509",
    )
    assert "placeholders" in deployment["deploymentComments"]
    descriptor = json.loads((out / "datapackage.json").read_text())
    assert "Deployments without a known location (dep-1)" in descriptor["description"]
    assert descriptor["spatial"] == {"type": "GeometryCollection", "geometries": []}
    assert read_csv(out / "media.csv")[0]["filePath"].startswith("file:///")
    assert not (out / "media").exists()


def test_the_checker_catches_a_broken_package(realdata: Path, tmp_path: Path) -> None:
    """The validation above can fail: the same export with a bad sex, a time without offset and no profile field."""
    schemas = official_schemas(realdata)
    home = station(tmp_path, located=True)
    out = tmp_path / "package"
    assert export(home, out).exit_code == 0
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    text = (broken / "observations.csv").read_text().replace(",male,", ",unknown,")
    (broken / "observations.csv").write_text(text)
    media = (broken / "media.csv").read_text().replace("+08:00", "")
    (broken / "media.csv").write_text(media)
    descriptor = json.loads((broken / "datapackage.json").read_text())
    del descriptor["project"]
    descriptor["temporal"]["start"] = "March 2026"
    (broken / "datapackage.json").write_text(json.dumps(descriptor))
    errors = table_errors(broken, schemas)
    assert any("observations" in e and "sex" in e for e in errors)
    assert any("media" in e and "timestamp" in e for e in errors)
    problems = profile_errors(broken, schemas)
    assert any("'project' is a required property" in p for p in problems)
    assert any("temporal/start" in p for p in problems)


def test_the_official_example_passes_the_same_checks(realdata: Path) -> None:
    package = realfile(realdata, "camtrap-dp/datapackage.json").parent
    schemas = official_schemas(realdata)
    assert profile_errors(package, schemas) == []
    descriptor = json.loads((package / "datapackage.json").read_text())
    resources = [
        frictionless.Resource(
            name=n,
            path=f"{n}.csv",
            schema=frictionless.Schema.from_descriptor(json.loads((schemas / f"{n}-table-schema.json").read_text())),
        )
        for n in CORE
    ]
    report = frictionless.Package(resources=resources, basepath=str(package)).validate()
    assert report.valid and len(descriptor["resources"]) == 4


def test_export_refuses_a_folder_with_files_and_an_empty_catalog(tmp_path: Path) -> None:
    home = HomeLayout(tmp_path / "home")
    refresh_views(home)
    result = export(home, tmp_path / "out")
    assert result.exit_code == 1 and "no ingested media with a capture time" in result.output
    assert not (tmp_path / "out").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("keep me")
    result = export(home, tmp_path / "full")
    assert result.exit_code == 1 and "not an empty folder" in result.output
    assert (tmp_path / "full" / "x.txt").read_text() == "keep me"


def test_an_export_reads_back_as_a_drop(tmp_path: Path) -> None:
    """Round trip: the package is a valid Camtrap DP drop; placeholder coordinates do not come back as a location."""
    home = station(tmp_path, located=False)
    out = tmp_path / "package"
    assert export(home, out).exit_code == 0
    exported = read_csv(out / "observations.csv")
    back = HomeLayout(tmp_path / "home-2")
    result = ingest_drop_dir(out, back, "run-2", load_settings(None, home=back.root), lambda: None)
    refresh_views(back)
    assert result.status == "ingested" and result.counts["rejected"] == 0
    assert result.counts["images"] + result.counts["audio"] == len(read_csv(out / "media.csv"))
    boxes = query(
        back, "SELECT observation_id, bbox_x, bbox_w, individual_id FROM camtrap_observations ORDER BY observation_id"
    ).to_pylist()
    assert [(b["observation_id"], b["bbox_x"], b["bbox_w"], b["individual_id"]) for b in boxes] == sorted(
        (o["observationID"], float(o["bboxX"]), float(o["bboxWidth"]), o["individualID"] or None) for o in exported
    )
    assert query(back, "SELECT latitude, longitude FROM deployments").to_pylist() == [
        {"latitude": None, "longitude": None}
    ]


def test_reviewed_calls_are_exported_as_human_classifications(realdata: Path, tmp_path: Path) -> None:
    """A reviewer's sex is the observation's, marked classificationMethod human and classifiedBy the reviewer, with
    the machine's call in the comment; a detection ruled not a face is left out, and the package says so."""
    from tasks.review import record_review

    schemas = official_schemas(realdata)
    home = station(tmp_path, located=True)
    timing = {"seconds_spent": 3.0, "keystrokes": 1}
    record_review(home, "animal::A02", "f", "kim", timing, "2026-12-02", 0.05)
    camera_face = query(home, "SELECT face_id FROM face_calls WHERE animal_id IS NULL").to_pylist()[0]["face_id"]
    record_review(home, f"face:drop-1:{camera_face}", "n", "lee", timing, "2026-12-02", 0.05)
    out = tmp_path / "package"
    result = export(home, out)
    assert result.exit_code == 0, result.output
    assert profile_errors(out, schemas) == [] and table_errors(out, schemas) == []
    observations = {o["individualID"]: o for o in read_csv(out / "observations.csv")}
    assert set(observations) == {"A01", "A02"}, "the detection ruled not a face is left out"
    a02 = observations["A02"]
    assert (a02["sex"], a02["classificationMethod"], a02["classifiedBy"]) == ("female", "human", "kim")
    assert a02["classificationProbability"] == "" and a02["classificationTimestamp"].startswith("2026-")
    assert "machine call male" in a02["observationComments"] and "panda-gender@v1" in a02["observationComments"]
    assert observations["A01"]["classificationMethod"] == "machine"
    described = json.loads((out / "datapackage.json").read_text())["description"]
    assert "Left out of the observations: 1 detection a reviewer ruled not a face." in described
