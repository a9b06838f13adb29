"""Synthetic panda faces: an animal's fixed markings and face geometry, drawn on a transparent canvas, then posed,
grained and lit."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from models.synthetic.animals import RGB, AnimalIdentity
from models.synthetic.backgrounds import ellipse_points, smooth_noise
from models.synthetic.photometry import adjust_photometry
from models.synthetic.streams import STREAM_MARKINGS, item_rng

MAX_RENDER_SIZE = 768
FACE_BOX_FRACTION = 0.6
BLACK_FUR: RGB = (24, 21, 21)


@dataclass(frozen=True)
class FacePose:
    """Per-image pose nuisance of one face: slight yaw/pitch squeeze and the matching feature shift."""

    squeeze_x: float
    squeeze_y: float
    feature_shift: float


@dataclass(frozen=True)
class Markings:
    """Stable per-animal marks: eye-patch outline wobble, faint smudges, and a fur-shade field seed."""

    wobble_left: tuple[tuple[int, float, float], ...]
    wobble_right: tuple[tuple[int, float, float], ...]
    smudges: tuple[tuple[float, float, float, float], ...]
    field_seed: int


@dataclass(frozen=True)
class FaceGeometry:
    """Pixel geometry of one face drawing on the render canvas."""

    cx: float
    cy: float
    rx: float
    ry: float
    ear_dx: float
    ear_dy: float
    ear_r: float
    patch_dx: float
    patch_dy: float
    patch_a: float
    patch_b: float
    shift: float


def draw_wobble(rng: np.random.Generator) -> tuple[tuple[int, float, float], ...]:
    """Outline wobble of one eye patch: (harmonic, amplitude, phase) for harmonics 2 to 4."""
    return tuple((k, float(rng.normal(0, 0.10)), float(rng.uniform(0, 2 * np.pi))) for k in (2, 3, 4))


def animal_markings(identity: AnimalIdentity) -> Markings:
    """The animal's fixed marks, drawn from its own marking seed."""
    rng = item_rng(identity.marking_seed, STREAM_MARKINGS)
    left, right = draw_wobble(rng), draw_wobble(rng)
    smudges = tuple(
        (
            float(rng.uniform(-0.6, 0.6)),
            float(rng.uniform(-0.7, 0.5)),
            float(rng.uniform(0.1, 0.3)),
            float(rng.uniform(0.12, 0.35)),
        )
        for _ in range(int(rng.integers(1, 4)))
    )
    return Markings(left, right, smudges, int(rng.integers(0, 2**31)))


def draw_pose(rng: np.random.Generator) -> FacePose:
    """Per-image pose nuisance: small yaw and pitch."""
    yaw = float(rng.uniform(-1, 1))
    return FacePose(1.0 - 0.05 * abs(yaw), float(rng.uniform(0.95, 1.04)), 0.07 * yaw)


def face_geometry(identity: AnimalIdentity, pose: FacePose, size: int) -> FaceGeometry:
    """Pixel geometry of the face on a square canvas; the head is centred a little below the middle."""
    ry = 0.245 * size * pose.squeeze_y
    rx = 0.245 * size * identity.head_aspect * pose.squeeze_x
    patch_a = 0.17 * ry * identity.patch_scale
    return FaceGeometry(
        cx=size / 2,
        cy=0.54 * size,
        rx=rx,
        ry=ry,
        ear_dx=identity.ear_spacing * rx,
        ear_dy=-0.80 * ry,
        ear_r=identity.ear_size * ry,
        patch_dx=identity.patch_spacing * rx,
        patch_dy=-0.05 * ry,
        patch_a=patch_a,
        patch_b=patch_a * identity.patch_elongation,
        shift=pose.feature_shift * rx,
    )


def marking_field(marks: Markings, g: FaceGeometry, size: int) -> np.ndarray:
    """Multiplicative fur shade (per animal, in face coordinates): smudges, mottling and rounded shading."""
    small, k = size // 4, 4.0
    mottle = 1.0 + 0.12 * smooth_noise(item_rng(marks.field_seed, STREAM_MARKINGS), small, small, small / 7)
    smudge_layer = Image.new("L", (small, small), 0)
    draw = ImageDraw.Draw(smudge_layer)
    cx, cy, rx, ry = g.cx / k, g.cy / k, g.rx / k, g.ry / k
    for x, y, r, strength in marks.smudges:
        draw.ellipse(
            [cx + (x - r) * rx, cy + (y - r) * ry, cx + (x + r) * rx, cy + (y + r) * ry], fill=int(255 * strength)
        )
    smudges = np.asarray(smudge_layer.filter(ImageFilter.GaussianBlur(0.12 * ry)), np.float32) / 255
    yy, xx = np.mgrid[0:small, 0:small].astype(np.float32)
    shading = 1.0 - 0.14 * np.clip(((xx - cx) / rx) ** 2 + ((yy - cy + 0.2 * ry) / ry) ** 2, 0, 1.5)
    field = (mottle * (1 - smudges) * shading).astype(np.float32)
    return np.asarray(Image.fromarray(field).resize((size, size), Image.Resampling.BICUBIC))


def draw_head(colour: Image.Image, alpha: Image.Image, identity: AnimalIdentity, g: FaceGeometry) -> None:
    """Black ears behind a cream head; the alpha mask covers both."""
    for side in (-1, 1):
        ear = [
            g.cx + side * g.ear_dx - g.ear_r,
            g.cy + g.ear_dy - g.ear_r,
            g.cx + side * g.ear_dx + g.ear_r,
            g.cy + g.ear_dy + g.ear_r,
        ]
        ImageDraw.Draw(colour).ellipse(ear, fill=BLACK_FUR)
        ImageDraw.Draw(alpha).ellipse(ear, fill=255)
    head = ellipse_points(g.cx, g.cy, g.rx, g.ry, exponent=2.3, n=120)
    ImageDraw.Draw(colour).polygon(head, fill=identity.fur_tint)
    ImageDraw.Draw(alpha).polygon(head, fill=255)
    muzzle_tint = tuple(min(255, c + 12) for c in identity.fur_tint)
    m = identity.muzzle_scale
    ImageDraw.Draw(colour).polygon(
        ellipse_points(g.cx + 0.8 * g.shift, g.cy + 0.45 * g.ry, 0.36 * g.ry * m, 0.27 * g.ry * m, exponent=2.2),
        fill=muzzle_tint,
    )


def draw_eye_patches(draw: ImageDraw.ImageDraw, identity: AnimalIdentity, marks: Markings, g: FaceGeometry) -> None:
    """Tilted, slightly asymmetric teardrop patches with the eyes inside."""
    for side, wobble in ((-1, marks.wobble_left), (1, marks.wobble_right)):
        grow = 1 + side * identity.patch_asymmetry
        px, py = g.cx + side * g.patch_dx + g.shift, g.cy + g.patch_dy
        draw.polygon(
            ellipse_points(px, py, g.patch_a * grow, g.patch_b * grow, -side * identity.patch_tilt_deg, wobble),
            fill=BLACK_FUR,
        )
        ex, ey, er = px - side * 0.12 * g.patch_a, py - 0.25 * g.patch_b, 0.045 * g.ry
        draw.ellipse([ex - er * 1.35, ey - er * 1.35, ex + er * 1.35, ey + er * 1.35], fill=(75, 58, 44))
        draw.ellipse([ex - er, ey - er, ex + er, ey + er], fill=(12, 9, 8))
        gr = 0.32 * er
        draw.ellipse(
            [ex - 0.4 * er - gr, ey - 0.4 * er - gr, ex - 0.4 * er + gr, ey - 0.4 * er + gr], fill=(235, 235, 230)
        )


def draw_nose_and_mouth(draw: ImageDraw.ImageDraw, g: FaceGeometry, muzzle_scale: float) -> None:
    """Black nose (sized with the muzzle) above a small mouth."""
    nx, ny, u = g.cx + g.shift, g.cy + 0.30 * g.ry, g.ry * muzzle_scale
    draw.polygon(ellipse_points(nx, ny, 0.14 * u, 0.085 * u, exponent=2.6), fill=(18, 16, 16))
    draw.ellipse([nx - 0.05 * u, ny - 0.05 * u, nx - 0.01 * u, ny - 0.03 * u], fill=(90, 88, 88))
    line = max(2, int(0.02 * g.ry))
    draw.line([(nx, ny + 0.07 * u), (nx, ny + 0.19 * u)], fill=(45, 38, 36), width=line)
    draw.line(
        [(nx - 0.12 * u, ny + 0.24 * u), (nx, ny + 0.19 * u), (nx + 0.12 * u, ny + 0.24 * u)],
        fill=(45, 38, 36),
        width=line,
        joint="curve",
    )


def render_face_rgba(identity: AnimalIdentity, pose: FacePose, size: int) -> Image.Image:
    """One panda face on a transparent square canvas of `size` pixels (drawn 1.5 times larger, then reduced)."""
    work = int(np.clip(1.5 * size, 128, MAX_RENDER_SIZE)) // 4 * 4
    g = face_geometry(identity, pose, work)
    marks = animal_markings(identity)
    colour = Image.new("RGB", (work, work), identity.fur_tint)
    alpha = Image.new("L", (work, work), 0)
    draw_head(colour, alpha, identity, g)
    shaded = np.asarray(colour, np.float32) * marking_field(marks, g, work)[..., None]
    colour = Image.fromarray(np.clip(shaded, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(colour)
    draw_eye_patches(draw, identity, marks, g)
    draw_nose_and_mouth(draw, g, identity.muzzle_scale)
    face = colour.convert("RGBA")
    face.putalpha(alpha)
    return face.resize((size, size), Image.Resampling.LANCZOS)


def add_fur_grain(rng: np.random.Generator, face: Image.Image, strength: float) -> Image.Image:
    """Fine multiplicative fur grain, new for every image."""
    rgba = np.asarray(face, np.float32).copy()
    grain = smooth_noise(rng, face.width, face.height, 1.5)
    rgba[..., :3] *= (1 + strength * grain)[..., None]
    return Image.fromarray(np.clip(rgba, 0, 255).astype(np.uint8), "RGBA")


def prepared_face(
    rng: np.random.Generator, identity: AnimalIdentity, canvas: int, gain: tuple[float, float], tilt_deg: float
) -> Image.Image:
    """A posed, grained, lit and tilted face, ready to paste with its own alpha."""
    face = render_face_rgba(identity, draw_pose(rng), canvas)
    face = add_fur_grain(rng, face, float(rng.uniform(0.02, 0.07)))
    face = adjust_photometry(rng, face, gain, (0.8, 1.15), 0.03)
    return face.rotate(tilt_deg, Image.Resampling.BICUBIC, expand=True, fillcolor=(*identity.fur_tint, 0))


def face_extent(face: Image.Image) -> tuple[int, int, int, int]:
    """Bounding box (left, top, right, bottom) of the solid part of a face's alpha."""
    box = face.getchannel("A").point(lambda v: 255 if v > 127 else 0).getbbox()
    return box if box else (0, 0, face.width, face.height)
