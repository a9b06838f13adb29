"""Synthetic camera-trap frames: faces pasted at random places and scales on a background, lit by day or in
infrared, with their true boxes."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from models.synthetic.animals import AnimalIdentity
from models.synthetic.backgrounds import draw_background, draw_occluder
from models.synthetic.faces import FACE_BOX_FRACTION, face_extent, prepared_face
from models.synthetic.photometry import finish_photo
from models.synthetic.plan import CameraSpec, DropPlan, FramePlan, population
from models.synthetic.streams import STREAM_NIGHT_SCENE, STREAM_SCENE, item_rng


@dataclass(frozen=True)
class FaceBox:
    """True face box of one animal in a frame, in pixels (top-left origin)."""

    animal_id: str
    x: int
    y: int
    w: int
    h: int


def overlaps(box: tuple[int, int, int, int], others: list[FaceBox], margin: int) -> bool:
    """Whether a (left, top, right, bottom) box comes within `margin` pixels of any placed face box."""
    left, top, right, bottom = box
    return any(
        left < o.x + o.w + margin and o.x < right + margin and top < o.y + o.h + margin and o.y < bottom + margin
        for o in others
    )


def place_face(
    rng: np.random.Generator, extent: tuple[int, int, int, int], width: int, height: int, placed: list[FaceBox]
) -> tuple[int, int] | None:
    """Paste offset keeping the face inside the frame and apart from the others, or None."""
    left, top, right, bottom = extent
    if right - left >= width or bottom - top >= height:
        return None
    for _ in range(30):
        x = int(rng.integers(-left, width - right + 1))
        y = int(rng.integers(-top, height - bottom + 1))
        if not overlaps((x + left, y + top, x + right, y + bottom), placed, 8):
            return x, y
    return None


def paste_scene_face(
    rng: np.random.Generator, scene: Image.Image, identity: AnimalIdentity, placed: list[FaceBox]
) -> FaceBox | None:
    """Paste one face at a random place and scale (box about 48 to 360 px); return its true box."""
    box_side = math.exp(rng.uniform(math.log(48), math.log(min(360, 0.5 * scene.height))))
    face = prepared_face(rng, identity, round(box_side / FACE_BOX_FRACTION), (0.55, 1.15), float(rng.uniform(-20, 20)))
    extent = face_extent(face)
    offset = place_face(rng, extent, scene.width, scene.height, placed)
    if offset is None:
        return None
    scene.paste(face, offset, face)
    left, top, right, bottom = extent
    box = FaceBox(identity.animal_id, offset[0] + left, offset[1] + top, right - left, bottom - top)
    if rng.random() < 0.1:
        draw_occluder(rng, scene, (box.x, box.y, box.x + box.w, box.y + box.h))
    return box


def vignette(width: int, height: int, strength: float) -> np.ndarray:
    """Radial fall-off of light towards the corners, 1 in the centre."""
    xs = ((np.arange(width, dtype=np.float32) - width / 2) / (width / 2)) ** 2
    ys = ((np.arange(height, dtype=np.float32)[:, None] - height / 2) / (height / 2)) ** 2
    return 1.0 - strength * np.clip((xs + ys) / 2, 0, 1)


def scene_lighting(rng: np.random.Generator, scene: Image.Image, infrared: bool) -> Image.Image:
    """Whole-frame light: dusk colour and vignette, or an infrared grayscale look at night."""
    rgb = np.asarray(scene, np.float32)
    if infrared:
        gray = rgb @ np.array([0.25, 0.6, 0.15], np.float32)
        gray = (
            255
            * (gray / 255) ** rng.uniform(0.75, 1.15)
            * vignette(scene.width, scene.height, float(rng.uniform(0.3, 0.6)))
        )
        gray = gray * rng.uniform(0.8, 1.15)
        image = Image.fromarray(np.clip(gray, 0, 255).astype(np.uint8), "L")
        return finish_photo(rng, image, float(rng.uniform(0.3, 1.2)), float(rng.uniform(3.0, 8.0)))
    light = vignette(scene.width, scene.height, float(rng.uniform(0.0, 0.35)))[..., None]
    rgb = rgb * light * (rng.uniform(0.55, 1.1) * rng.uniform(0.93, 1.07, size=3)).astype(np.float32)
    image = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    return finish_photo(rng, image, float(rng.uniform(0.0, 1.0)), float(rng.uniform(1.5, 5.0)))


def compose_scene(
    rng: np.random.Generator, camera: CameraSpec, frame: FramePlan, animals: tuple[AnimalIdentity, ...]
) -> tuple[Image.Image, tuple[FaceBox, ...]]:
    """A camera-trap frame (RGB by day, L by night) and the true boxes of the faces pasted in it."""
    scene = draw_background(rng, camera.width, camera.height)
    by_id = {a.animal_id: a for a in animals}
    placed: list[FaceBox] = []
    for animal_id in frame.animal_ids:
        box = paste_scene_face(rng, scene, by_id[animal_id], placed)
        if box is not None:
            placed.append(box)
    return scene_lighting(rng, scene, frame.infrared), tuple(placed)


def scene_rng(plan: DropPlan, frame: FramePlan) -> np.random.Generator:
    """A frame's generator: the first night keeps the drop's scene stream, each later night has its own."""
    if plan.night == 0:
        return item_rng(plan.seed, STREAM_SCENE, frame.serial)
    return item_rng(plan.seed, STREAM_NIGHT_SCENE, plan.night, frame.serial)


def scene_frame(plan: DropPlan, frame: FramePlan) -> tuple[Image.Image, tuple[FaceBox, ...]]:
    """Render one planned camera-trap frame with its true face boxes."""
    camera = next(c for c in plan.cameras if c.camera_id == frame.camera_id)
    return compose_scene(scene_rng(plan, frame), camera, frame, population(plan))
