"""`breedwatch retrain detector`: keepers' boxes (drawn, fixed, ruled out, empty frames confirmed) join the detector's
own training images, and the new version is measured beside the one in use on the latter's held-out images."""

from __future__ import annotations

import csv
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from models.annotations import AnnotationError, corrected_frame_boxes
from schemas.config import FacesConfig, Settings
from schemas.home import HomeLayout
from schemas.tables import CORRECTIONS, DROPS, FACES, MEDIA
from tasks.catalog import refresh_views
from tasks.detector_training import retrain_detector, train_detector_on_sample_drop, with_f1
from tasks.lake import write_rows
from tasks.model_store import load_detector
from tasks.sample_drop import write_sample_drop
from tests.tasks.test_detector_training import SMALL

DROP = "night-1"
WRONG_BOX = (0.0, 0.0, 0.1, 0.1)


def test_keepers_boxes_fix_replace_drop_and_add_detections() -> None:
    detected = {"f0": (0.1, 0.1, 0.2, 0.2), "f1": (0.5, 0.5, 0.2, 0.2), "f2": (0.7, 0.1, 0.2, 0.2)}
    marks = [
        {"annotation": "fixed", "face_id": "f0", "box": [0.12, 0.1, 0.25, 0.2]},
        {"annotation": "not_a_face", "face_id": "f1", "box": [0.5, 0.5, 0.2, 0.2]},
        {"annotation": "not_a_face", "face_id": None, "box": [0.71, 0.11, 0.2, 0.2]},  # by its box: IoU 0.82
        {"annotation": "drawn", "face_id": None, "box": [0.3, 0.6, 0.1, 0.1]},
    ]
    assert corrected_frame_boxes(detected, marks) == [(0.12, 0.1, 0.25, 0.2), (0.3, 0.6, 0.1, 0.1)]
    assert corrected_frame_boxes({}, [{"annotation": "no_face", "face_id": None, "box": None}]) == []


def frames_of(drop: Path) -> tuple[dict[str, str], str]:
    """A frame with a true face (its first box, relative) and a frame with none, from a sample drop's truth."""
    with (drop / "truth" / "boxes.csv").open() as handle:
        first = next(csv.DictReader(handle))
    with (drop / "truth" / "frames.csv").open() as handle:
        empty = next(row["path"] for row in csv.DictReader(handle) if row["n_faces"] == "0")
    return first, empty


def correction(target_kind: str, target_id: str, media_id: str, field: str, value: str, box=None) -> dict:
    """One live corrections row."""
    return {
        "correction_id": f"{target_id}-{field}",
        "action": "set",
        "target_kind": target_kind,
        "target_id": target_id,
        "drop_id": DROP,
        "media_id": media_id,
        **dict(zip(("bbox_x", "bbox_y", "bbox_w", "bbox_h"), box or (None,) * 4)),
        "field": field,
        "machine_value": None,
        "human_value": value,
        "reviewer": "kim",
        "created_at": datetime(2026, 12, 2, tzinfo=UTC),
    }


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory: pytest.TempPathFactory) -> tuple[HomeLayout, dict]:
    """A detector trained on a sample drop (small recipe), and a night's catalog in which a keeper drew the face the
    detector missed on one frame, ruled a false detection there not a face, and confirmed another frame empty."""
    root = tmp_path_factory.mktemp("retrain-detector")
    drop = root / "archive"
    write_sample_drop(drop, seed=3, n_animals=8)
    home = HomeLayout(root / "home")
    card = train_detector_on_sample_drop(home, drop, name="panda-test", seed=0, settings=SMALL)
    face, empty = frames_of(drop)
    width, height = int(face["width"]), int(face["height"])
    drawn = (
        f"[{int(face['x']) / width}, {int(face['y']) / height}, {int(face['w']) / width}, {int(face['h']) / height}]"
    )
    media = [
        {"media_id": "m-face", "drop_id": DROP, "path": face["path"], "kind": "image", "status": "ok"},
        {"media_id": "m-empty", "drop_id": DROP, "path": empty, "kind": "image", "status": "ok"},
    ]
    write_rows(home, MEDIA, DROP, "ingest", media)
    write_rows(home, DROPS, DROP, "ingest", [{"drop_id": DROP, "source": str(drop), "timezone": "UTC"}])
    box = dict(zip(("bbox_x", "bbox_y", "bbox_w", "bbox_h"), WRONG_BOX))
    wrong = {"face_id": "m-face-f0", "media_id": "m-face", "drop_id": DROP, "source": "detector", **box}
    write_rows(home, FACES, DROP, "faces", [{**wrong, "excluded": False, "detector": "panda-test@v1"}])
    rows = [
        correction("frame", "m-face", "m-face", "box", drawn),
        correction("face", "m-face-f0", "m-face", "is_face", "false", WRONG_BOX),
        correction("frame", "m-empty", "m-empty", "box", "none"),
    ]
    for row in rows:
        write_rows(home, CORRECTIONS, "2026-12-02", row["correction_id"], [row])
    refresh_views(home, Settings().view_thresholds())
    return home, card


def test_a_retrain_learns_from_the_keepers_boxes_and_is_compared_on_the_same_held_out_images(reviewed) -> None:
    home, first = reviewed
    card = retrain_detector(home, FacesConfig(detector="panda-test"))
    assert card["version"] == 2 and card["corrections_used"] == {"drawn": 1, "no_face": 1, "not_a_face": 1}
    assert card["corrected_frames"] == 2 and card["settings"] == first["settings"], "the version in use's recipe"
    assert sum(path.startswith(f"corrections/{DROP}/") for path in card["split"]["train"]) == 2
    promotion = card["promotion"]
    assert promotion["held_out"] == sorted(first["split"]["held_out"]) and promotion["metric"] == "f1"
    assert promotion["current_value"] == with_f1(first["metrics"])["f1"], "the same images, the same evaluation"
    assert promotion["new_value"] == card["metrics"]["f1"]
    _, in_use = load_detector(home, "panda-test")
    assert in_use["version"] == (2 if promotion["promoted"] else 1)
    assert load_detector(home, "panda-test@v2")[1]["promotion"] == promotion


def test_a_retrain_needs_a_trained_detector_and_keepers_boxes(reviewed, tmp_path: Path) -> None:
    home, _ = reviewed
    with pytest.raises(AnnotationError, match="human-face preset"):
        retrain_detector(home, FacesConfig(detector="mtcnn-human"))
    empty = HomeLayout(tmp_path / "home")
    shutil.copytree(home.models, empty.models)  # the same detector, in a home no keeper has reviewed
    refresh_views(empty, Settings().view_thresholds())
    with pytest.raises(AnnotationError, match="no keeper has drawn"):
        retrain_detector(empty, FacesConfig(detector="panda-test@v1"))
