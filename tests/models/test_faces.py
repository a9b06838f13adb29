"""Face detection presets, batching, crops and quality (pure functions, real photos where available)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from facenet_pytorch import MTCNN
from PIL import ExifTags, Image, ImageFilter, ImageOps
from scipy import ndimage

from models.faces import (
    DetectorSettings,
    build_mtcnn,
    crop_face,
    crop_sharpness,
    detect_faces,
    exclusion_reason,
    group_by_size,
    relative_box,
    sharpness,
    square_box,
    upright_rgb,
    upright_tensor,
)
from models.synthetic.animals import draw_animals
from models.synthetic.faces import FacePose, render_face_rgba
from schemas.config import FacesConfig
from tests.conftest import realfile

HUMAN_PHOTOS = [
    "facenet-pytorch/multiface.jpg",
    "face_recognition/obama.jpg",
    "face_recognition/biden.jpg",
    "face_recognition/two_people.jpg",
]


def iou(a, b) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def human_detector():
    """The mtcnn-human preset on the CPU."""
    return build_mtcnn(DetectorSettings(), None, torch.device("cpu"))


@pytest.mark.parametrize("relative", HUMAN_PHOTOS)
def test_human_preset_matches_facenet_pytorch(realdata, human_detector, relative):
    with Image.open(realfile(realdata, relative)) as raw:
        image = upright_rgb(raw)
    ours = detect_faces(human_detector, [np.asarray(image)])[0]
    reference, _ = MTCNN(keep_all=True).detect(image)
    assert reference is not None and len(ours) == len(reference) > 0
    for box in reference:
        assert max(iou(box, found.box) for found in ours) > 0.95


def test_batched_detection_equals_one_at_a_time(realdata, human_detector):
    with Image.open(realfile(realdata, "face_recognition/two_people.jpg")) as raw:
        image = np.asarray(upright_rgb(raw))
    flipped = np.ascontiguousarray(image[:, ::-1])
    single = [detect_faces(human_detector, [img])[0] for img in (image, flipped)]
    batched = detect_faces(human_detector, [image, flipped])
    for one, many in zip(single, batched):
        assert len(one) == len(many)
        for a, b in zip(one, many):
            assert iou(a.box, b.box) > 0.99 and abs(a.score - b.score) < 1e-4


def test_exif_rotated_photo_gives_boxes_on_the_upright_image(realdata, human_detector, tmp_path):
    source = realfile(realdata, "face_recognition/obama.jpg")
    with Image.open(source) as raw:
        upright = upright_rgb(raw)
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what a camera stores before orientation 6 rotates it back
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    rotated_file = tmp_path / "rotated.jpg"
    stored.save(rotated_file, exif=exif, quality=95)
    with Image.open(rotated_file) as raw:
        decoded = upright_rgb(raw)
    assert decoded.size == upright.size
    expected = detect_faces(human_detector, [np.asarray(upright)])[0]
    found = detect_faces(human_detector, [np.asarray(decoded)])[0]
    assert len(found) == len(expected) >= 1
    assert iou(found[0].box, expected[0].box) > 0.9


@pytest.mark.parametrize("orientation", [None, 1])
def test_upright_rgb_frame_is_the_decoded_image_and_outlives_its_file(tmp_path, orientation):
    pixels = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    exif = Image.Exif()
    if orientation is not None:
        exif[ExifTags.Base.Orientation] = orientation
    path = tmp_path / "frame.png"  # lossless, so the pixels must come back exactly
    Image.fromarray(pixels).save(path, exif=exif)
    with Image.open(path) as raw:
        image = upright_rgb(raw)
        assert image is raw  # already upright 8-bit RGB: no copy
    assert image.mode == "RGB" and np.array_equal(np.asarray(image), pixels)  # decoded before the file closed


def test_real_rotated_camera_trap_frame_is_decoded_upright(realdata):
    with Image.open(realfile(realdata, "cameratrapai/test_data/african_elephants_with_exif_orientation.jpg")) as raw:
        assert raw.size == (1536, 2048)
        assert upright_rgb(raw).size == (2048, 1536)


@pytest.mark.parametrize(
    ("mode", "maker"),
    [
        ("L", lambda: Image.new("L", (40, 30), 128)),
        ("CMYK", lambda: Image.new("CMYK", (40, 30), (0, 255, 255, 0))),
        ("RGBA", lambda: Image.new("RGBA", (40, 30), (255, 0, 0, 0))),
        ("I;16", lambda: Image.fromarray(np.full((30, 40), 65535, dtype=np.uint16))),
        ("P", lambda: Image.new("P", (40, 30), 3)),
    ],
)
def test_every_mode_becomes_8_bit_rgb(mode, maker):
    image = maker()
    assert image.mode == mode
    converted = upright_rgb(image)
    assert converted.mode == "RGB" and converted.size == (40, 30)
    if mode == "I;16":
        assert np.asarray(converted).min() == 255  # full-scale 16-bit stays full scale
    if mode == "RGBA":
        assert tuple(np.asarray(converted)[0, 0]) == (255, 255, 255)  # transparent pixels become white


def test_group_by_size_batches_only_equal_sizes():
    sizes = [("a", (1280, 720)), ("b", (1920, 1080)), ("c", (1280, 720)), ("d", (1280, 720))]
    batches = group_by_size(sizes, batch_size=2)
    assert batches == [["a", "c"], ["d"], ["b"]]


def test_square_box_with_margin_and_relative_box():
    assert square_box((10, 20, 30, 60), 0.5) == (-10.0, 10.0, 50.0, 70.0)
    assert relative_box((-5, 10, 50, 120), 100, 100) == (0.0, 0.1, 0.5, 0.9)


def test_crop_is_square_resized_and_aligned():
    image = Image.new("RGB", (200, 100), "white")
    crop = crop_face(image, (50, 20, 90, 80), [(60, 40), (80, 50), (70, 55), (62, 70), (78, 70)], 0.2, 64, True)
    assert crop.size == (64, 64)


def test_quality_gate_reasons():
    assert exclusion_reason(20, 50, 0.99, 32, 5, 0.9).startswith("face is 20 px")
    assert "sharpness" in exclusion_reason(64, 1, 0.99, 32, 5, 0.9)
    assert "score" in exclusion_reason(64, 50, 0.5, 32, 5, 0.9)
    assert exclusion_reason(64, 50, None, 32, 5, 0.9) is None
    flat = Image.new("RGB", (32, 32), "gray")
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    assert sharpness(flat) == 0.0 < sharpness(noisy)


def framed_panda_face(side: int) -> tuple[Image.Image, tuple[float, float, float, float]]:
    """A generated panda face of `side` pixels pasted on a gray frame, and its box."""
    identity = draw_animals(np.random.default_rng(3), 4)[0]
    face = render_face_rgba(identity, FacePose(1.0, 1.0, 0.0), side)
    frame = Image.new("RGB", (2 * side, 2 * side), (90, 110, 80))
    frame.paste(face, (side // 2, side // 2), face)
    return frame, (side / 2, side / 2, 1.5 * side, 1.5 * side)


def test_crop_sharpness_does_not_depend_on_the_faces_size_in_pixels() -> None:
    config = FacesConfig()
    seen = {}
    for side in (48, 96, 384):
        frame, box = framed_panda_face(side)
        crop = crop_face(frame, box, None, config.margin, config.crop_size, False)
        seen[side] = crop_sharpness(crop, config.sharpness_px)
        blurred = crop_face(frame.filter(ImageFilter.GaussianBlur(side / 16)), box, None, config.margin, 448, False)
        assert crop_sharpness(blurred, config.sharpness_px) < config.min_sharpness < seen[side]
    assert seen[384] < 1.5 * seen[96]  # a face under the nets' input side does hold less detail (48 px: 0.4x)
    small = crop_face(*framed_panda_face(48), None, config.margin, config.crop_size, False)
    assert sharpness(small) < 5.0  # measured on the upsampled 448 px crop, the old gate called a sharp face blurred


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (37, 52), (448, 448)])
def test_sharpness_is_scipys_laplacian_variance_to_the_last_bit(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(shape[0])
    edges = np.zeros(shape, np.uint8)
    edges[:, : shape[1] // 2] = 255  # the extremes, where int16 sums must not overflow
    for pixels in (rng.integers(0, 256, (*shape, 3), dtype=np.uint8), np.stack([edges] * 3, axis=-1)):
        image = Image.fromarray(pixels)
        expected = float(ndimage.laplace(np.asarray(image.convert("L"), dtype=np.float32)).var())
        assert sharpness(image) == expected


@pytest.mark.parametrize("orientation", range(1, 9))
def test_upright_tensor_turns_like_pillows_exif_transpose(orientation: int) -> None:
    pixels = np.random.default_rng(orientation).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.info["exif"] = exif.tobytes()
    expected = np.asarray(ImageOps.exif_transpose(image))
    turned = upright_tensor(torch.from_numpy(pixels).permute(2, 0, 1), orientation).permute(1, 2, 0).numpy()
    assert turned.shape == expected.shape and (turned == expected).all()
