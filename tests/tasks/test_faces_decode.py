"""Frames decoded by torchvision (nvjpeg on CUDA; the same code on the CPU here) give the faces Pillow's decoding gives;
keeper photos stored on threads give what one thread gives."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

import tasks.faces as faces_stage
from schemas.config import load_settings
from schemas.home import HomeLayout
from schemas.tables import FACES
from tasks.catalog import query, refresh_views
from tasks.ingest import ingest_drop_dir
from tasks.stages import run_on_drop
from tests.conftest import realfile
from tests.drops import DROP_TOML, camera_jpeg
from tests.models.test_faces import iou


def real_frames_drop(realdata: Path, root: Path) -> Path:
    """Real photos as camera-trap frames: faces, a copy turned by its EXIF tag, a CMYK JPEG and a PNG (not a JPEG)."""
    cam = root / "images" / "cam01"
    cam.mkdir(parents=True)
    (root / "drop.toml").write_text(DROP_TOML)
    shutil.copy(realfile(realdata, "facenet-pytorch/multiface.jpg"), cam / "multiface.jpg")
    shutil.copy(realfile(realdata, "cameratrapai/test_data/african_elephants_cmyk.jpg"), cam / "cmyk.jpg")
    with Image.open(realfile(realdata, "face_recognition/two_people.jpg")) as raw:
        people = raw.convert("RGB")
    people.resize((900, 528)).save(
        cam / "two_people.png"
    )  # another size: a batch holds one size, and one PNG sends its batch to Pillow
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned: the upright picture is the stored one rotated 90 degrees clockwise
    people.transpose(Image.Transpose.ROTATE_90).save(cam / "turned.jpg", quality=95, exif=exif)
    return root


def faces_with(tmp_path: Path, drop: Path, decode: str, name: str) -> list[dict]:
    """Faces rows of the drop in a new home with the given decoder, on the CPU."""
    config = tmp_path / f"{name}.toml"
    config.write_text(f'[faces]\ndevice = "cpu"\ndecode = "{decode}"\nmin_sharpness = 0\n')
    settings = load_settings(config, home=tmp_path / name)
    layout = HomeLayout(tmp_path / name)
    ingested = ingest_drop_dir(drop, layout, "run-1", settings, lambda: None)
    assert ingested.status == "ingested"
    run_on_drop(faces_stage.FACES_STAGE, layout, drop, ingested.drop_id, "run-1", settings, lambda: None)
    refresh_views(layout, settings.view_thresholds())
    return query(
        layout,
        "SELECT m.path, f.bbox_x, f.bbox_y, f.bbox_w, f.bbox_h FROM faces f JOIN media m USING (media_id) "
        "ORDER BY m.path, f.bbox_x",
    ).to_pylist()


def test_torchvision_decoding_finds_the_faces_pillow_finds(
    realdata: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drop = real_frames_drop(realdata, tmp_path / "drop")
    decoded_by_torchvision: list[str] = []
    real = faces_stage.torchvision_frames

    def counting(drop_dir, rows, device):
        frames = real(drop_dir, rows, device)
        if frames is not None:
            decoded_by_torchvision.extend(row["path"] for row in rows)
        return frames

    monkeypatch.setattr(faces_stage, "torchvision_frames", counting)
    pillow = faces_with(tmp_path, drop, "pillow", "pillow")
    assert decoded_by_torchvision == []
    torchvision = faces_with(tmp_path, drop, "torchvision", "torchvision")
    assert sorted(decoded_by_torchvision) == [
        f"images/cam01/{name}" for name in ("cmyk.jpg", "multiface.jpg", "turned.jpg")
    ]  # the PNG: Pillow
    assert [row["path"] for row in torchvision] == [row["path"] for row in pillow]
    assert sum(row["path"].endswith("turned.jpg") for row in pillow) == 2 and len(pillow) >= 8
    for a, b in zip(pillow, torchvision):
        assert iou(corners(a), corners(b)) > 0.95


def corners(row: dict) -> tuple[float, float, float, float]:
    """A faces row's relative box as (x1, y1, x2, y2)."""
    return row["bbox_x"], row["bbox_y"], row["bbox_x"] + row["bbox_w"], row["bbox_y"] + row["bbox_h"]


def test_a_frame_smaller_than_the_smallest_face_is_faceless_not_a_failure(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    camera_jpeg(drop / "images" / "cam01" / "thumb.jpg", 1, size=(18, 15))  # facenet-pytorch's detect_face raised on it
    camera_jpeg(drop / "images" / "cam01" / "frame.jpg", 2)
    (drop / "drop.toml").write_text(DROP_TOML)
    (tmp_path / "c.toml").write_text('[faces]\ndevice = "cpu"\n')
    settings = load_settings(tmp_path / "c.toml", home=tmp_path / "home")
    layout = HomeLayout(tmp_path / "home")
    ingested = ingest_drop_dir(drop, layout, "run-1", settings, lambda: None)
    result = run_on_drop(faces_stage.FACES_STAGE, layout, drop, ingested.drop_id, "run-1", settings, lambda: None)
    assert result.status == "detected" and result.counts["images_without_face"] == 2


def keeper_faces(tmp_path: Path, drop: Path, threads: int) -> tuple[list[dict], dict[str, bytes]]:
    """The drop's keeper faces rows in the order committed, and each crop's bytes, with runtime.io_threads = threads."""
    name = f"threads{threads}"
    config = tmp_path / f"{name}.toml"
    config.write_text(f'[faces]\ndevice = "cpu"\nmin_sharpness = 0\n[runtime]\nio_threads = {threads}\n')
    settings = load_settings(config, home=tmp_path / name)
    layout = HomeLayout(tmp_path / name)
    ingested = ingest_drop_dir(drop, layout, "run-1", settings, lambda: None)
    advanced: list[None] = []
    run_on_drop(
        faces_stage.FACES_STAGE, layout, drop, ingested.drop_id, "run-1", settings, lambda: advanced.append(None)
    )
    assert (
        len(advanced) == len(list((drop / "faces").rglob("*.jpg"))) + 1
    )  # one step per image, keeper photos counted from their threads
    rows = [
        row
        for row in pq.read_table(layout.part(FACES.name, FACES.partition, ingested.drop_id, "faces")).to_pylist()
        if row["source"] == "keeper"
    ]
    return rows, {row["face_id"]: (layout.root / row["crop_path"]).read_bytes() for row in rows}


def test_keeper_photos_stored_on_threads_equal_one_thread_in_their_order(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    (drop / "images" / "cam01").mkdir(parents=True)
    (drop / "drop.toml").write_text(DROP_TOML)
    camera_jpeg(drop / "images" / "cam01" / "IMG_0001.JPG", 1)
    for index in range(12):
        camera_jpeg(
            drop / "faces" / f"A{index % 3:02d}" / f"f{index:02d}.jpg",
            10 + index,
            size=(64 + 8 * index, 64 + 8 * index),
        )
    one_rows, one_crops = keeper_faces(tmp_path, drop, 1)
    four_rows, four_crops = keeper_faces(tmp_path, drop, 4)
    assert len(one_rows) == 12 and one_crops == four_crops
    assert [row["media_id"] for row in four_rows] == [row["media_id"] for row in one_rows]
    assert [{k: v for k, v in row.items() if k != "crop_path"} for row in four_rows] == [
        {k: v for k, v in row.items() if k != "crop_path"} for row in one_rows
    ]


def test_crops_are_flushed_to_disk_once_after_the_last_and_before_the_part(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drop = tmp_path / "drop"
    (drop / "images" / "cam01").mkdir(parents=True)
    (drop / "drop.toml").write_text(DROP_TOML)
    camera_jpeg(drop / "images" / "cam01" / "IMG_0001.JPG", 1)
    for index in range(3):
        camera_jpeg(drop / "faces" / "A01" / f"f{index}.jpg", 20 + index, size=(64, 64))
    events: list[str] = []
    for name, event in (("save_crop", "crop"), ("sync_filesystem", "sync"), ("write_rows", "part")):
        real = getattr(faces_stage, name)
        monkeypatch.setattr(
            faces_stage,
            name,
            lambda *args, _real=real, _event=event, **kwargs: events.append(_event) or _real(*args, **kwargs),
        )
    rows, _ = keeper_faces(tmp_path, drop, 2)
    assert len(rows) == 3 and events == ["crop"] * 3 + ["sync", "part"]
