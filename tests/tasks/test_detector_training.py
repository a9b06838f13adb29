"""Detector training on disk: annotation loaders and their errors, images, split, a small fine-tuning run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.annotations import AnnotationError, AnnotationSet, split_images
from models.detector_training import TrainingSettings, box_iou
from models.faces import detect_faces, upright_rgb
from schemas.config import FacesConfig
from schemas.home import HomeLayout
from tasks.detector_training import (
    evaluate_detector,
    load_annotations,
    load_image,
    load_images,
    read_image_list,
    sample_drop_sources,
    train_detector_on_sample_drop,
)
from tasks.faces import load_face_detector
from tasks.model_store import load_detector
from tasks.sample_drop import write_sample_drop
from tests.conftest import realfile

SMALL = TrainingSettings(
    epochs=(2, 2, 2), crops_per_face=12, near_negatives_per_face=4, negatives_per_image=24, hard_negatives_per_image=24
)


def write(path: Path, text: str) -> Path:
    """Write a small text file, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def picture(path: Path, size: tuple[int, int] = (200, 100)) -> Path:
    """A small grey JPEG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 90, 90)).save(path)
    return path


# ---- CSV --------------------------------------------------------------------------------------------


def test_csv_in_pixels(tmp_path: Path) -> None:
    found = load_annotations(
        write(tmp_path / "boxes.csv", "path,x,y,w,h,animal_id\na/1.jpg,10,20,30,40,A1\na/2.jpg,1,2,3,4,A2\n")
    )
    assert [(f.image, f.box, f.relative, f.where) for f in found.faces] == [
        ("a/1.jpg", (10.0, 20.0, 30.0, 40.0), False, "boxes.csv line 2"),
        ("a/2.jpg", (1.0, 2.0, 3.0, 4.0), False, "boxes.csv line 3"),
    ]
    assert found.images() == ["a/1.jpg", "a/2.jpg"] and found.faceless == ()


def test_csv_relative_when_every_value_is_at_most_one(tmp_path: Path) -> None:
    found = load_annotations(write(tmp_path / "rel.csv", "path,x,y,w,h\n1.jpg,0.1,0.2,0.3,0.4\n2.jpg,0,0,1,1\n"))
    assert all(f.relative for f in found.faces)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("path,x,y,w\n1.jpg,1,2,3\n", r"boxes.csv line 1: missing column\(s\) h"),
        ("path,x,y,w,h\n1.jpg,1,2,3,4\n2.jpg,1,2,abc,4\n", r"boxes.csv line 3: field 'w' is 'abc', not a number"),
        ("path,x,y,w,h\n1.jpg,1,2,3,4\n2.jpg,1,2,3,0\n", r"boxes.csv line 3: field 'h' is 0; a box needs a positive"),
        ("path,x,y,w,h\n ,1,2,3,4\n", r"boxes.csv line 2: field 'path' is empty"),
        ("path,x,y,w,h\n1.jpg,1,nan,3,4\n", r"boxes.csv line 2: field 'y' is 'nan', not a finite number"),
        ("path,x,y,w,h\n1.jpg,1,2,3\n", r"boxes.csv line 2: field 'h' is empty"),
    ],
)
def test_csv_errors_name_file_line_and_field(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(AnnotationError, match=message):
        load_annotations(write(tmp_path / "boxes.csv", text))


# ---- COCO -------------------------------------------------------------------------------------------


COCO = {
    "images": [
        {"id": 1, "file_name": "cam/1.jpg", "width": 200, "height": 100},
        {"id": 2, "file_name": "cam/2.jpg", "width": 200, "height": 100},
    ],
    "annotations": [{"id": 7, "image_id": 1, "bbox": [10, 20, 30, 40], "category_id": 1}],
    "categories": [{"id": 1, "name": "panda face"}],
}


def test_coco_boxes_and_faceless_images(tmp_path: Path) -> None:
    found = load_annotations(write(tmp_path / "faces.json", json.dumps(COCO, indent=2)))
    assert [(f.image, f.box, f.relative) for f in found.faces] == [("cam/1.jpg", (10.0, 20.0, 30.0, 40.0), False)]
    assert found.faceless == ("cam/2.jpg",)


def test_coco_error_names_the_line_of_the_annotation(tmp_path: Path) -> None:
    bad = {**COCO, "annotations": [COCO["annotations"][0], {"id": 8, "image_id": 2, "bbox": [1, 2, 3]}]}
    path = write(tmp_path / "faces.json", json.dumps(bad, indent=2))
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if '"id": 8' in text) - 1
    with pytest.raises(AnnotationError, match=rf"faces.json line {line} \(annotations\[1\]\): field 'bbox' must be"):
        load_annotations(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"annotations": [{"image_id": 9, "bbox": [1, 2, 3, 4]}]}, r"annotations\[0\]\): field 'image_id' is 9"),
        ({"annotations": [{"image_id": 1, "bbox": [1, 2, "x", 4]}]}, r"field 'bbox\[2\]' is 'x', not a number"),
        ({"images": [{"id": 1}]}, r"images\[0\]\): an image needs fields 'id' and 'file_name'"),
        ({"images": None}, r"needs the lists 'images' and 'annotations'"),
    ],
)
def test_coco_errors(tmp_path: Path, change: dict, message: str) -> None:
    with pytest.raises(AnnotationError, match=message):
        load_annotations(write(tmp_path / "faces.json", json.dumps({**COCO, **change}, indent=1)))


def test_coco_invalid_json_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match=r"faces.json line 3: not valid JSON"):
        load_annotations(write(tmp_path / "faces.json", '{\n "images": [],\n "annotations": [,]\n}'))


# ---- Camtrap DP -------------------------------------------------------------------------------------


MEDIA = (
    "mediaID,deploymentID,timestamp,filePath,fileMediatype,fileName\n"
    "m1,d1,2026-03-01T10:00:00Z,media/a.jpg,image/jpeg,a.jpg\n"
    "m2,d1,2026-03-01T10:00:00Z,https://example.org/x/file,image/jpeg,b.jpg\n"
    "m3,d1,2026-03-01T10:00:00Z,media/c.jpg,image/jpeg,c.jpg\n"
)
OBSERVATIONS_HEADER = "observationID,deploymentID,mediaID,observationType,bboxX,bboxY,bboxWidth,bboxHeight\n"


def camtrap(tmp_path: Path, rows: str) -> Path:
    """A Camtrap DP folder with media.csv and the given observation rows."""
    write(tmp_path / "pkg" / "media.csv", MEDIA)
    write(tmp_path / "pkg" / "datapackage.json", "{}")
    write(tmp_path / "pkg" / "observations.csv", OBSERVATIONS_HEADER + rows)
    return tmp_path / "pkg"


def test_camtrap_relative_boxes_blanks_and_urls(tmp_path: Path) -> None:
    package = camtrap(
        tmp_path,
        "o1,d1,m1,animal,0.1,0.2,0.3,0.4\no2,d1,m2,animal,0.5,0.5,0.25,0.25\no3,d1,m3,blank,,,,\no4,d1,,animal,,,,\n",
    )
    for given in (package, package / "datapackage.json", package / "observations.csv"):
        found = load_annotations(given)
        assert [(f.image, f.box, f.relative, f.where) for f in found.faces] == [
            ("media/a.jpg", (0.1, 0.2, 0.3, 0.4), True, "observations.csv line 2"),
            ("b.jpg", (0.5, 0.5, 0.25, 0.25), True, "observations.csv line 3"),
        ]
        assert found.faceless == ("media/c.jpg",)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            "o1,d1,m1,animal,0.1,0.2,1.3,0.4\n",
            r"observations.csv line 2 field 'bboxWidth': Input should be less than or equal to 1",
        ),
        (
            "o1,d1,m1,animal,0.1,0.2,0.3,0.4\no2,d1,m1,animal,0.1,,0.3,0.4\n",
            r"observations.csv line 3: a bounding box needs all of .*; bboxY is empty",
        ),
        (
            "o1,d1,m9,animal,0.1,0.2,0.3,0.4\n",
            r"observations.csv line 2 field 'mediaID': 'm9' is not in media.csv",
        ),
        (
            "o1,d1,m1,animal,0.1,zero,0.3,0.4\n",
            r"observations.csv line 2 field 'bboxY': Input should be a valid number",
        ),
    ],
)
def test_camtrap_errors(tmp_path: Path, rows: str, message: str) -> None:
    with pytest.raises(AnnotationError, match=message):
        load_annotations(camtrap(tmp_path, rows))


def test_camtrap_package_needs_media(tmp_path: Path) -> None:
    write(tmp_path / "pkg" / "observations.csv", OBSERVATIONS_HEADER)
    with pytest.raises(AnnotationError, match="has no media.csv"):
        load_annotations(tmp_path / "pkg")


def test_real_camtrap_dp_example(realdata: Path) -> None:
    found = load_annotations(realfile(realdata, "camtrap-dp/observations.csv"))
    assert len(found.faces) > 0 and all(f.relative and 0 <= min(f.box) and max(f.box) <= 1 for f in found.faces)
    assert all(f.where.startswith("observations.csv line ") for f in found.faces)


def test_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match="unknown annotation format"):
        load_annotations(write(tmp_path / "boxes.txt", "x"))


# ---- images and split -------------------------------------------------------------------------------


def test_images_get_pixel_boxes_clipped_to_the_frame(tmp_path: Path) -> None:
    picture(tmp_path / "img" / "a.jpg")
    found = load_annotations(write(tmp_path / "rel.csv", "path,x,y,w,h\na.jpg,0.5,0.5,0.75,0.25\n"))
    image = load_images(found, tmp_path / "img")[0]
    assert image.rgb.shape == (100, 200, 3)
    assert image.boxes.tolist() == [[100.0, 50.0, 200.0, 75.0]]
    assert len(image.sha256) == 64


def test_image_errors_name_the_annotation_line(tmp_path: Path) -> None:
    picture(tmp_path / "img" / "a.jpg")
    write(tmp_path / "secret.jpg", "not for you")
    cases = {
        "path,x,y,w,h\nmissing.jpg,1,2,3,4\n": r"boxes.csv line 2: image 'missing.jpg' is not in",
        "path,x,y,w,h\na.jpg,1,2,3,4\n../secret.jpg,1,2,3,4\n": r"boxes.csv line 3: image '../secret.jpg' lies outside",
        "path,x,y,w,h\na.jpg,500,20,30,40\n": r"boxes.csv line 2: the box lies outside the 200x100 image",
    }
    for text, message in cases.items():
        found = load_annotations(write(tmp_path / "boxes.csv", text))
        with pytest.raises(AnnotationError, match=message):
            load_images(found, tmp_path / "img")


def test_undecodable_image(tmp_path: Path) -> None:
    write(tmp_path / "img" / "a.jpg", "garbage")
    found = load_annotations(write(tmp_path / "boxes.csv", "path,x,y,w,h\na.jpg,1,2,3,4\n"))
    with pytest.raises(AnnotationError, match=r"boxes.csv line 2: image 'a.jpg' cannot be decoded"):
        load_image(tmp_path / "img", "a.jpg", list(found.faces))


def test_faceless_images_from_a_list(tmp_path: Path) -> None:
    found = load_annotations(write(tmp_path / "boxes.csv", "path,x,y,w,h\na.jpg,1,2,3,4\n"))
    frames = read_image_list(write(tmp_path / "frames.csv", "path,n_faces\na.jpg,1\nb.jpg,0\n"))
    assert found.with_faceless(frames).faceless == ("b.jpg",)


def test_split_is_seeded_and_holds_out_a_fifth() -> None:
    paths = [f"images/cam0{i % 3}/IMG_{i:04d}.jpg" for i in range(30)]
    train, held, by = split_images(paths, seed=0)
    assert (len(held), by) == (6, "image") and not set(train) & set(held) and sorted(train + held) == sorted(paths)
    assert split_images(paths, seed=0) == (train, held, by)
    assert split_images(paths, seed=1)[1] != held


def test_split_keeps_cameras_together_when_there_are_enough() -> None:
    paths = [f"images/cam{i % 10:02d}/IMG_{i:04d}.jpg" for i in range(40)]
    train, held, by = split_images(paths, seed=0)
    assert by == "folder"
    assert not {Path(p).parent for p in train} & {Path(p).parent for p in held}
    assert 0 < len(held) < len(paths)


def test_split_needs_two_images() -> None:
    with pytest.raises(AnnotationError, match="at least 2"):
        split_images(["a.jpg"], seed=0)


# ---- fine-tuning on a small sample drop -------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[HomeLayout, Path, dict]:
    """A small sample drop and a detector fine-tuned on it with small settings."""
    root = tmp_path_factory.mktemp("detector")
    drop = root / "drop"
    write_sample_drop(drop, seed=3, n_animals=8)
    home = HomeLayout(root / "home")
    return home, drop, train_detector_on_sample_drop(home, drop, name="panda-test", seed=0, settings=SMALL)


def test_fine_tuning_raises_held_out_recall(trained: tuple[HomeLayout, Path, dict]) -> None:
    _, _, card = trained
    metrics = card["metrics"]
    assert metrics["n_faces"] > 0 and metrics["iou_threshold"] == 0.5
    assert metrics["recall"] > metrics["human_baseline"]["recall"]
    assert metrics["recall"] >= 0.5


def test_card_describes_data_split_and_settings(trained: tuple[HomeLayout, Path, dict]) -> None:
    home, drop, card = trained
    _, stored = load_detector(home, "panda-test")
    assert stored["version"] == card["version"] == 1
    for field in (
        "name",
        "thresholds",
        "min_face_size",
        "factor",
        "base",
        "data_fingerprint",
        "split",
        "metrics",
        "train_seconds",
        "settings",
        "code_version",
    ):
        assert field in stored, field
    frames = read_image_list(drop / "truth" / "frames.csv")
    assert sorted(stored["split"]["train"] + stored["split"]["held_out"]) == sorted(frames)
    assert stored["split"]["seed"] == 0 and len(stored["data_fingerprint"]) == 64
    assert stored["settings"]["epochs"] == [2, 2, 2]


def test_checkpoint_loads_back_and_detects(trained: tuple[HomeLayout, Path, dict]) -> None:
    home, drop, card = trained
    detector = load_face_detector(home, FacesConfig(detector="panda-test@v1", device="cpu"))
    assert detector.label == "panda-test@v1"
    with (drop / "truth" / "boxes.csv").open(newline="") as handle:
        row = next(r for r in csv.DictReader(handle) if r["path"] in card["split"]["train"])
    with Image.open(drop / row["path"]) as opened:
        found = detect_faces(detector.mtcnn, [np.asarray(upright_rgb(opened))])[0]
    truth = [float(row["x"]), float(row["y"]), float(row["x"]) + float(row["w"]), float(row["y"]) + float(row["h"])]
    assert any(box_iou(np.array([d.box]), np.array([truth]))[0, 0] >= 0.5 for d in found)


def test_evaluate_on_the_held_out_split_repeats_the_card(
    trained: tuple[HomeLayout, Path, dict], tmp_path: Path
) -> None:
    home, drop, card = trained
    held = card["split"]["held_out"]
    with (drop / "truth" / "boxes.csv").open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["path"] in held]
    boxes = write(
        tmp_path / "held.csv",
        "path,x,y,w,h\n" + "".join(f"{r['path']},{r['x']},{r['y']},{r['w']},{r['h']}\n" for r in rows),
    )
    frames = write(tmp_path / "frames.csv", "path\n" + "".join(f"{p}\n" for p in held))
    tuned = evaluate_detector(home, "panda-test", boxes, drop, frames)
    human = evaluate_detector(home, "mtcnn-human", boxes, drop, frames)
    assert (tuned["detector"], human["detector"]) == ("panda-test@v1", "mtcnn-human")
    assert (tuned["n_images"], tuned["n_faces"]) == (len(held), len(rows))
    for got, expected in ((tuned, card["metrics"]), (human, card["metrics"]["human_baseline"])):
        assert {k: got[k] for k in ("recall", "precision", "mean_iou", "tp", "fp", "fn")} == {
            k: expected[k] for k in ("recall", "precision", "mean_iou", "tp", "fp", "fn")
        }
    assert len(tuned["errors"]) == sum(1 for e in tuned["errors"] if e["missed"] or e["false_positives"])


def test_sample_drop_sources(trained: tuple[HomeLayout, Path, dict]) -> None:
    _, drop, card = trained
    sources = sample_drop_sources(drop)
    assert all(path.exists() for path in sources.values())
    assert card["split"]["n_train"] + card["split"]["n_held_out"] == len(read_image_list(sources["all_images"]))


def test_training_refuses_the_preset_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must be letters"):
        train_detector_on_sample_drop(HomeLayout(tmp_path), tmp_path, name="mtcnn-human")


def test_annotation_set_images_are_sorted() -> None:
    assert AnnotationSet(Path("x"), (), ("b.jpg", "a.jpg")).images() == ["a.jpg", "b.jpg"]
