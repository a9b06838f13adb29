"""Synthetic keeper photos: a known animal's face filling most of a square frame."""

from __future__ import annotations

import numpy as np
from PIL import Image

from models.synthetic.animals import AnimalIdentity
from models.synthetic.backgrounds import draw_background, draw_occluder
from models.synthetic.faces import FACE_BOX_FRACTION, face_extent, prepared_face
from models.synthetic.photometry import adjust_photometry, finish_photo
from models.synthetic.plan import DropPlan, KeeperPhotoPlan
from models.synthetic.streams import STREAM_KEEPER, item_rng

KEEPER_PHOTO_SIZE = 320


def compose_keeper_photo(
    rng: np.random.Generator, identity: AnimalIdentity, size: int = KEEPER_PHOTO_SIZE
) -> Image.Image:
    """A keeper's photo cropped to the face: the face fills most of a square RGB frame."""
    photo = draw_background(rng, size, size)
    canvas = round(size * float(rng.uniform(0.70, 0.78)) / FACE_BOX_FRACTION)
    tilt = float(np.clip(rng.normal(0.0, 8.0), -20.0, 20.0))
    face = prepared_face(rng, identity, canvas, (0.85, 1.1), tilt)
    left, top, right, bottom = face_extent(face)
    jitter = rng.uniform(-0.03, 0.03, size=2) * size
    x = int(round((size - (right + left)) / 2 + jitter[0]))
    y = int(round((size - (bottom + top)) / 2 + jitter[1]))
    photo.paste(face, (x, y), face)
    if rng.random() < 0.15:
        draw_occluder(rng, photo, (x + left, y + top, x + right, y + bottom))
    photo = adjust_photometry(rng, photo, (0.75, 1.15), (0.85, 1.15), 0.04)
    return finish_photo(rng, photo, float(rng.uniform(0.0, 1.3)), float(rng.uniform(1.0, 6.0)))


def keeper_photo(plan: DropPlan, photo: KeeperPhotoPlan, size: int = KEEPER_PHOTO_SIZE) -> Image.Image:
    """Render one planned keeper photo (square, `size` pixels)."""
    identity = next(a for a in plan.animals if a.animal_id == photo.animal_id)
    return compose_keeper_photo(item_rng(plan.seed, STREAM_KEEPER, photo.serial), identity, size)
