"""Camtrap DP packages as drops: the real example package and small generated ones, good and malformed."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from schemas.config import load_settings
from schemas.home import HomeLayout
from tasks.catalog import query, refresh_views
from tasks.detector_training import load_camtrap_annotations
from tasks.ingest import ingest_drop_dir
from tests.conftest import realfile
from tests.drops import camera_jpeg

MEDIA_HEADER = (
    "mediaID,deploymentID,captureMethod,timestamp,filePath,filePublic,fileName,fileMediatype,exifData,favorite,"
    "mediaComments"
)
OBS_HEADER = (
    "observationID,deploymentID,mediaID,eventID,eventStart,eventEnd,observationLevel,observationType,scientificName,"
    "count,sex,individualID,bboxX,bboxY,bboxWidth,bboxHeight,classificationMethod,classifiedBy,classificationProbability"
)
DEPLOYMENTS = (
    "deploymentID,locationID,locationName,latitude,longitude,deploymentStart,deploymentEnd\n"
    "dep-a,loc-1,Panda Valley,30.83,103.32,2026-03-01T08:00:00+08:00,2026-03-10T08:00:00+08:00\n"
)


def descriptor(resources: tuple[str, ...] = ("deployments", "media", "observations")) -> str:
    """A minimal Camtrap DP descriptor naming the given core resources."""
    return json.dumps(
        {
            "profile": "https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0.2/camtrap-dp-profile.json",
            "resources": [
                {
                    "name": name,
                    "path": f"{name}.csv",
                    "profile": "tabular-data-resource",
                    "schema": f"https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0.2/{name}-table-schema.json",
                }
                for name in resources
            ],
        },
        indent=2,
    )


def write_package(root: Path, media: list[str], observations: list[str], deployments: str = DEPLOYMENTS) -> Path:
    """A package drop: datapackage.json, the three CSVs, and a JPEG for every local media/ path named."""
    root.mkdir(parents=True)
    (root / "datapackage.json").write_text(descriptor())
    (root / "deployments.csv").write_text(deployments)
    (root / "media.csv").write_text("\n".join([MEDIA_HEADER, *media]) + "\n")
    (root / "observations.csv").write_text("\n".join([OBS_HEADER, *observations]) + "\n")
    for index, row in enumerate(media):
        path = row.split(",")[4]
        if path.endswith(".jpg") and "missing" not in path:
            camera_jpeg(root / path, index, size=(200, 150))
        elif path.startswith("media/") and "missing" not in path:
            (root / path).write_bytes(b"\x00\x00\x00\x18ftypmp42")
    return root


GOOD_MEDIA = [
    "m1,dep-a,activityDetection,2026-03-04T21:00:00+08:00,media/m1.jpg,false,m1.jpg,image/jpeg,,,",
    "m2,dep-a,activityDetection,2026-03-04T21:00:05+08:00,media/m2.jpg,false,m2.jpg,image/jpeg,,,",
    "m3,dep-a,timeLapse,2026-03-05T02:00:00Z,https://example.org/m3.jpg,true,m3.jpg,image/jpeg,,,",
]
GOOD_OBS = [
    (
        "o1,dep-a,m1,e1,2026-03-04T13:00:00Z,2026-03-04T13:00:00Z,media,animal,Ailuropoda melanoleuca,1,female,Mei,"
        "0.1,0.2,0.3,0.4,human,keeper,"
    ),
    (
        "o2,dep-a,m2,e1,2026-03-04T13:00:05Z,2026-03-04T13:00:05Z,media,animal,Ailuropoda melanoleuca,1,,,"
        "0.5,0.5,0.25,0.25,machine,md5,0.9"
    ),
    "o3,dep-a,m3,e2,2026-03-04T18:00:00Z,2026-03-04T18:00:00Z,media,blank,,,,,,,,,human,keeper,",
]


def ingest(drop: Path, tmp_path: Path) -> tuple[HomeLayout, object]:
    """Ingest one drop into a fresh home and refresh the catalog."""
    home = HomeLayout(tmp_path / "home")
    settings = load_settings(None, home=home.root)
    result = ingest_drop_dir(drop, home, "run-1", settings, lambda: None)
    refresh_views(home)
    return home, result


def rows(home: HomeLayout, sql: str, params: list[object] | None = None) -> list[dict]:
    """Query the catalog as a list of dicts."""
    return query(home, sql, params).to_pylist()


def test_a_generated_package_is_ingested_with_times_deployments_individuals_and_boxes(tmp_path: Path) -> None:
    home, result = ingest(write_package(tmp_path / "pkg", GOOD_MEDIA, GOOD_OBS), tmp_path)
    assert result.status == "ingested" and result.counts["images"] == 2
    media = rows(home, "SELECT path, captured_at, deployment_id, site, animal_id, status FROM media ORDER BY path")
    assert [m["path"] for m in media] == ["media/m1.jpg", "media/m2.jpg"]
    assert media[0]["captured_at"] == datetime(2026, 3, 4, 13, 0, tzinfo=UTC)  # the package's offset, not EXIF
    assert (media[0]["deployment_id"], media[0]["site"], media[0]["animal_id"]) == ("dep-a", "Panda Valley", "Mei")
    assert media[1]["animal_id"] is None
    observations = rows(
        home,
        "SELECT observation_id, media_id, individual_id, sex, bbox_x, bbox_y, bbox_w, bbox_h, "
        "classification_probability "
        "FROM camtrap_observations ORDER BY observation_id",
    )
    assert [o["observation_id"] for o in observations] == ["o1", "o2", "o3"]
    assert (observations[0]["bbox_x"], observations[0]["bbox_h"], observations[0]["individual_id"]) == (0.1, 0.4, "Mei")
    assert observations[0]["media_id"] is not None and observations[2]["media_id"] is None  # m3 is remote
    assert rows(home, "SELECT animal_id, sex FROM animal_manifest") == [{"animal_id": "Mei", "sex": "female"}]
    deployment = rows(
        home, "SELECT deployment_id, location_name, latitude, longitude, deployment_start FROM deployments"
    )[0]
    assert (deployment["latitude"], deployment["longitude"]) == (30.83, 103.32)
    assert deployment["deployment_start"] == datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
    rejects = rows(home, "SELECT path, reason FROM rejects")
    assert (
        len(rejects) == 1
        and "1 rows of media.csv name files by URL" in rejects[0]["reason"]
        and "lines 4" in rejects[0]["reason"]
    )


def test_the_package_drop_feeds_detector_training(tmp_path: Path) -> None:
    drop = write_package(tmp_path / "pkg", GOOD_MEDIA, GOOD_OBS)
    faces = load_camtrap_annotations(drop / "datapackage.json").faces
    assert sorted((f.image, f.box) for f in faces) == [
        ("media/m1.jpg", (0.1, 0.2, 0.3, 0.4)),
        ("media/m2.jpg", (0.5, 0.5, 0.25, 0.25)),
    ]


def test_bad_rows_are_rejected_one_sentence_each_and_lose_nothing_else(tmp_path: Path) -> None:
    media = GOOD_MEDIA[:2] + [
        "m4,dep-a,,2026-03-04T21:00:00,media/m4.jpg,false,,image/jpeg,,,",  # no UTC offset
        "m5,dep-a,,2026-03-04T21:00:00Z,media/missing.jpg,false,,image/jpeg,,,",
        "m6,dep-a,,2026-03-04T21:00:00Z,media/m6.mp4,false,,video/mp4,,,",
        "m1,dep-a,,2026-03-04T21:00:00Z,media/m1.jpg,false,,image/jpeg,,,",  # repeated mediaID
    ]
    observations = GOOD_OBS[:2] + [
        "o7,dep-a,m2,e1,2026-03-04T13:00:05Z,2026-03-04T13:00:05Z,media,animal,,1,,,1.2,0.5,0.25,0.25,machine,md5,0.9",
        "o8,dep-a,m2,e1,2026-03-04T13:00:05Z,2026-03-04T13:00:05Z,media,animal,,1,,,0.2,0.5,0.25,,machine,md5,0.9",
    ]
    home, result = ingest(write_package(tmp_path / "pkg", media, observations), tmp_path)
    assert result.status == "ingested" and result.counts["images"] == 2
    reasons = sorted(r["reason"] for r in rows(home, "SELECT reason FROM rejects"))
    assert any(r.startswith("media.csv line 4 field 'timestamp': must carry a UTC offset") for r in reasons)
    assert "media.csv line 5 field 'filePath': media/missing.jpg is not in the package." in reasons
    assert any(r.startswith("media.csv line 6 field 'fileMediatype': video/mp4 is a video") for r in reasons)
    assert "media.csv line 7 field 'mediaID': 'm1' already appears on line 2." in reasons
    assert any(
        r.startswith("observations.csv line 4 field 'bboxX': Input should be less than or equal to 1") for r in reasons
    )
    assert any(
        r.startswith("observations.csv line 5: a bounding box needs all of") and "bboxHeight is empty" in r
        for r in reasons
    )
    assert len(reasons) == 6
    assert [o["observation_id"] for o in rows(home, "SELECT observation_id FROM camtrap_observations ORDER BY 1")] == [
        "o1",
        "o2",
    ]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda root: (root / "datapackage.json").write_text('{\n  "resources": [\n    {"name": "media",,}\n  ]\n}'),
            "datapackage.json line 3: is not valid JSON",
        ),
        (
            lambda root: (root / "datapackage.json").write_text(descriptor(("deployments", "observations"))),
            "datapackage.json field 'resources': has no 'media' resource",
        ),
        (
            lambda root: (root / "media.csv").write_text(
                "mediaID,deploymentID,filePath,fileMediatype\nm1,dep-a,media/m1.jpg,image/jpeg\n"
            ),
            "media.csv line 1 field 'timestamp': required column is missing from the header",
        ),
        (
            lambda root: (root / "observations.csv").unlink(),
            "datapackage.json field 'resources': names observations.csv, which is not in the package",
        ),
    ],
)
def test_a_malformed_package_stops_the_drop_with_one_sentence(tmp_path: Path, damage, message: str) -> None:
    drop = write_package(tmp_path / "pkg", GOOD_MEDIA, GOOD_OBS)
    damage(drop)
    home, result = ingest(drop, tmp_path)
    assert result.status == "failed" and message in result.message
    reject = rows(home, "SELECT stage, reason FROM rejects")
    assert len(reject) == 1 and reject[0]["stage"] == "manifest" and message in reject[0]["reason"]
    assert rows(home, "SELECT count(*) AS n FROM media") == [{"n": 0}]


def test_a_datapackage_json_that_is_not_camtrap_dp_is_ignored(tmp_path: Path) -> None:
    drop = tmp_path / "plain"
    camera_jpeg(drop / "images" / "cam01" / "a.jpg", 1)
    (drop / "datapackage.json").write_text(
        json.dumps({"name": "other", "resources": [{"name": "weather", "path": "w.csv"}]})
    )
    home, result = ingest(drop, tmp_path)
    assert result.status == "ingested" and result.counts["images"] == 1


def test_the_official_example_package_is_ingested(realdata: Path, tmp_path: Path) -> None:
    package = realfile(realdata, "camtrap-dp/datapackage.json").parent
    with open(package / "media.csv", newline="", encoding="utf-8") as handle:
        media = list(csv.DictReader(handle))
    local = [m for m in media if "://" not in m["filePath"]]
    with open(package / "observations.csv", newline="", encoding="utf-8") as handle:
        observations = list(csv.DictReader(handle))
    home, result = ingest(package, tmp_path)
    assert result.status == "ingested" and result.counts["images"] == len(local) == 10
    stored = {m["path"]: m for m in rows(home, "SELECT path, captured_at, deployment_id, width, status FROM media")}
    for row in local:
        assert stored[row["filePath"]]["status"] == "ok"
        assert stored[row["filePath"]]["captured_at"] == datetime.fromisoformat(row["timestamp"])
        assert stored[row["filePath"]]["deployment_id"] == row["deploymentID"]
    assert rows(home, "SELECT count(*) AS n FROM deployments") == [{"n": 4}]
    kept = rows(
        home, "SELECT count(*) AS n, count(media_id) AS with_media, count(bbox_x) AS boxes FROM camtrap_observations"
    )[0]
    with_local_media = {m["mediaID"] for m in local}
    assert kept["n"] == len(observations)
    assert kept["with_media"] == sum(o["mediaID"] in with_local_media for o in observations)
    assert kept["boxes"] == sum(bool(o["bboxX"]) for o in observations)
    rejects = rows(home, "SELECT reason FROM rejects")
    assert len(rejects) == 1 and rejects[0]["reason"].startswith(
        f"{len(media) - len(local)} rows of media.csv name files by URL"
    )


def test_drop_toml_location_becomes_the_deployment_row_and_bad_coordinates_are_named(tmp_path: Path) -> None:
    from schemas.manifest import ManifestError, parse_drop_toml
    from tests.drops import write_small_drop

    drop = write_small_drop(tmp_path / "drop-1", bad_file=False)
    with open(drop / "drop.toml", "a") as handle:
        handle.write('latitude = 30.83\nlongitude = 103.32\nlocation_name = "Enclosure 3"\n')
    home, result = ingest(drop, tmp_path)
    assert result.status == "ingested"
    assert rows(home, "SELECT deployment_id, location_name, latitude, longitude, source FROM deployments") == [
        {
            "deployment_id": "dep-1",
            "location_name": "Enclosure 3",
            "latitude": 30.83,
            "longitude": 103.32,
            "source": "drop.toml",
        }
    ]
    with pytest.raises(
        ManifestError, match=r"drop.toml line 2 field 'longitude': Input should be less than or equal to 180"
    ):
        parse_drop_toml("latitude = 30.8\nlongitude = 203.3\n")
