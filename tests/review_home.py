"""A small home with predictions written straight into the lake (no nets run), for the review queue and app tests."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from PIL import Image

from schemas.config import Settings
from schemas.home import HomeLayout
from schemas.tables import (
    ANIMALS_MANIFEST,
    DROPS,
    ENCOUNTER_MANIFEST,
    FACES,
    GENDER_PREDICTIONS,
    MATING_PREDICTIONS,
    MEDIA,
)
from tasks.catalog import refresh_views
from tasks.lake import write_rows

DROP = "d1"
GENDER = "panda-gender@v1"
DETECTOR = "mtcnn-panda@v1"
# (frame, animal, P(male)) of one detected face per frame: A01 is registered female but looks male, A02's faces
# disagree, the camera-trap faces of no known animal range from sure to a coin toss.
FACES_P_MALE: tuple[tuple[str, str | None, float], ...] = (
    ("cam01/IMG_0001.JPG", None, 0.52),
    ("cam01/IMG_0002.JPG", None, 0.45),
    ("cam01/IMG_0003.JPG", None, 0.97),
    ("cam01/IMG_0004.JPG", None, 0.03),
    ("cam01/IMG_0005.JPG", None, 0.61),
    ("A01/p1.jpg", "A01", 0.91),
    ("A01/p2.jpg", "A01", 0.88),
    ("A02/p1.jpg", "A02", 0.9),
    ("A02/p2.jpg", "A02", 0.1),
)
BOX = (0.25, 0.2, 0.4, 0.5)


def media_id_of(path: str) -> str:
    """A stable media id from a frame's path (the lake uses the content hash; any stable hex does here)."""
    return hashlib.sha256(path.encode()).hexdigest()[:20]


def crop_jpeg(path: Path, shade: int) -> str:
    """A small grey crop JPEG, returned as a path relative to the home."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 64), (shade, 120, 255 - shade)).save(path, quality=90)
    return path.as_posix()


FaceTable = tuple[tuple[str, str | None, float], ...]


def face_rows(
    home: HomeLayout, detector: str = DETECTOR, box: tuple[float, ...] = BOX, table: FaceTable = FACES_P_MALE
) -> list[dict[str, Any]]:
    """One faces row per frame of the table with its crop written under the home."""
    faces = []
    for index, (path, animal, p_male) in enumerate(table):
        media_id = media_id_of(path)
        face_id = f"{media_id}-f0"
        crop = crop_jpeg(home.crop(DROP, face_id), int(255 * p_male))
        x, y, w, h = box
        faces.append(
            {
                "face_id": face_id,
                "media_id": media_id,
                "drop_id": DROP,
                "animal_id": animal,
                "source": "detector",
                "bbox_x": x + 0.01 * index,
                "bbox_y": y,
                "bbox_w": w,
                "bbox_h": h,
                "score": 0.99,
                "excluded": False,
                "crop_path": str(Path(crop).relative_to(home.root)),
                "detector": detector,
                "run_id": "r1",
            }
        )
    return faces


def gender_rows(
    faces: list[dict[str, Any]], model_version: str = GENDER, table: FaceTable = FACES_P_MALE
) -> list[dict[str, Any]]:
    """The gender prediction of each face, from the table its rows were made from."""
    p_of = {media_id_of(path): p for path, _, p in table}
    return [
        {
            "face_id": face["face_id"],
            "media_id": face["media_id"],
            "drop_id": DROP,
            "animal_id": face["animal_id"],
            "p_male": p_of[face["media_id"]],
            "label": "male" if p_of[face["media_id"]] >= 0.5 else "female",
            "model_version": model_version,
            "run_id": "r1",
        }
        for face in faces
    ]


EMPTY_FRAMES = ("cam01/IMG_0006.JPG", "cam01/IMG_0007.JPG")  # frames of a face-yielding camera with no face found


def write_frames(drop_folder: Path, paths: list[str]) -> None:
    """Small JPEG frames at the given paths of a drop folder."""
    for index, path in enumerate(paths):
        target = drop_folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (160, 120), (40 + 10 * index, 90, 60)).save(target, quality=85)


def write_review_home(root: Path, drop_folder: Path | None = None, extra_faces: FaceTable = ()) -> HomeLayout:
    """A home holding one drop's media, faces with crops, gender and mating predictions, and a fresh catalog; with a
    drop folder, the frames are written there as files and two frames of cam01 have no face (EMPTY_FRAMES); extra
    faces (frame, animal, P(male)) join FACES_P_MALE."""
    home = HomeLayout(root)
    table = FACES_P_MALE + tuple(extra_faces)
    paths = [p for p, _, _ in table] + (list(EMPTY_FRAMES) if drop_folder else [])
    media = [
        {"media_id": media_id_of(p), "drop_id": DROP, "path": f"images/{p}", "sha256": media_id_of(p) + "0" * 44}
        for p in paths
    ]
    media = [{**m, "kind": "image", "status": "ok", "width": 160, "height": 120} for m in media]
    write_rows(home, MEDIA, DROP, "ingest", media)
    drop = {"drop_id": DROP, "timezone": "UTC", "site": "Test Station"}
    if drop_folder:
        write_frames(drop_folder, [m["path"] for m in media])
        drop["source"] = str(drop_folder)
    write_rows(home, DROPS, DROP, "ingest", [drop])
    write_rows(
        home,
        ANIMALS_MANIFEST,
        DROP,
        "ingest",
        [{"drop_id": DROP, "animal_id": "A01", "sex": "female"}, {"drop_id": DROP, "animal_id": "A02"}],
    )
    write_rows(
        home,
        ENCOUNTER_MANIFEST,
        DROP,
        "ingest",
        [
            {"drop_id": DROP, "encounter_id": "E01", "male_id": "A02", "female_id": "A01"},
            {"drop_id": DROP, "encounter_id": "E02", "male_id": "A02", "female_id": "A01"},
        ],
    )
    faces = face_rows(home, table=table)
    write_rows(home, FACES, DROP, "faces", faces)
    write_rows(home, GENDER_PREDICTIONS, DROP, "gender", gender_rows(faces, table=table))
    mating = [
        {"segment_id": f"{e}-s0", "drop_id": DROP, "encounter_id": e, "p_success": p, "frame_p_success": [p] * 86}
        for e, p in (("E01", 0.52), ("E02", 0.9))
    ]
    mating = [{**m, "temperature": 1.0, "model_version": "cganet@v1", "run_id": "r1"} for m in mating]
    write_rows(home, MATING_PREDICTIONS, DROP, "mating", mating)
    refresh_views(home, Settings().view_thresholds())
    return home
