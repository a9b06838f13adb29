"""Synthetic textures and backgrounds: noise fields, (super)ellipse outlines, vegetation, gradients, rocks and
bamboo occluders."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from models.synthetic.animals import RGB


def smooth_noise(rng: np.random.Generator, width: int, height: int, cell: float) -> np.ndarray:
    """Zero-mean unit-variance noise with features of about `cell` pixels, shape (height, width)."""
    grid = rng.standard_normal((int(height / cell) + 3, int(width / cell) + 3)).astype(np.float32)
    field = np.asarray(Image.fromarray(grid).resize((width, height), Image.Resampling.BICUBIC))
    return (field - field.mean()) / (field.std() + 1e-6)


def fractal_noise(rng: np.random.Generator, width: int, height: int, cells: tuple[float, ...]) -> np.ndarray:
    """Sum of smooth noises at several feature sizes, coarse ones weighted more, unit variance."""
    total = np.zeros((height, width), np.float32)
    for k, cell in enumerate(cells):
        total += smooth_noise(rng, width, height, max(cell, 1.0)) / (1.6**k)
    return total / total.std()


def palette_blend(field: np.ndarray, dark: RGB, light: RGB) -> np.ndarray:
    """Map a noise field to colours between two RGB endpoints, as float array (h, w, 3) in 0..255."""
    t = np.clip(0.5 + 0.22 * field, 0.0, 1.0)[..., None]
    low = np.array(dark, np.float32)
    return t * (np.array(light, np.float32) - low) + low


def ellipse_points(
    cx: float,
    cy: float,
    rx: float,
    ry: float,
    angle_deg: float = 0.0,
    wobble: tuple[tuple[int, float, float], ...] = (),
    exponent: float = 2.0,
    n: int = 72,
) -> list[tuple[float, float]]:
    """Polygon of a rotated (super)ellipse whose radius wobbles by the given (harmonic, amplitude, phase)."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    radius = 1 + sum(a * np.cos(k * t + p) for k, a, p in wobble)
    x = rx * np.sign(np.cos(t)) * np.abs(np.cos(t)) ** (2 / exponent) * radius
    y = ry * np.sign(np.sin(t)) * np.abs(np.sin(t)) ** (2 / exponent) * radius
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    return [(cx + c * xi - s * yi, cy + s * xi + c * yi) for xi, yi in zip(x, y)]


def draw_bamboo(
    rng: np.random.Generator, draw: ImageDraw.ImageDraw, width: int, height: int, n_stalks: int, scale: float
) -> None:
    """Draw near-vertical bamboo stalks with nodes and a few leaves."""
    for _ in range(n_stalks):
        x0 = float(rng.uniform(-0.1, 1.1)) * width
        lean = float(rng.uniform(-0.25, 0.25)) * height
        stalk = int(rng.uniform(4, 22) * scale)
        green = (int(rng.integers(70, 150)), int(rng.integers(110, 175)), int(rng.integers(40, 90)))
        draw.line([(x0, height * 1.05), (x0 + lean, -0.05 * height)], fill=green, width=max(2, stalk))
        for y in np.arange(rng.uniform(0, 0.2), 1.0, rng.uniform(0.12, 0.3)) * height:
            x = x0 + lean * (1 - y / height)
            draw.line([(x - stalk * 0.6, y), (x + stalk * 0.6, y)], fill=(60, 80, 35), width=max(1, stalk // 4))
        for _ in range(int(rng.integers(1, 5))):
            y = float(rng.uniform(0, height))
            x = x0 + lean * (1 - y / height)
            leaf = ellipse_points(x + rng.uniform(-3, 3) * stalk, y, 3.5 * stalk, 0.8 * stalk, rng.uniform(-60, 60))
            draw.polygon(leaf, fill=(int(rng.integers(40, 110)), int(rng.integers(100, 160)), 40))


def vegetation_background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """Dense green-brown foliage texture with bamboo stalks."""
    scale = max(width, height) / 1280
    field = fractal_noise(rng, width, height, (width / 6, width / 24, 12 * scale, 3))
    soil = smooth_noise(rng, width, height, width / 5)[..., None]
    rgb = palette_blend(field, (22, 38, 16), (110, 145, 62))
    earth = 0.35 * np.clip(soil, 0, 1)
    rgb = rgb * (1 - earth) + np.array([95, 75, 50], np.float32) * earth
    image = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    draw_bamboo(rng, ImageDraw.Draw(image), width, height, int(rng.integers(4, 14)), scale)
    return image


def natural_tone(rng: np.random.Generator) -> np.ndarray:
    """An earthy, leafy or stony RGB colour (float32)."""
    grey = float(rng.uniform(50, 190))
    return np.array([grey + rng.uniform(-10, 25), grey + rng.uniform(-5, 22), grey + rng.uniform(-30, 8)], np.float32)


def gradient_background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A soft two-colour gradient (sky, wall or ground) with grain."""
    angle = float(rng.uniform(0, 2 * np.pi))
    xs = np.cos(angle) * np.arange(width, dtype=np.float32) / width
    ys = np.sin(angle) * np.arange(height, dtype=np.float32)[:, None] / height
    t = xs + ys
    t = ((t - t.min()) / (t.max() - t.min() + 1e-6))[..., None]
    a, b = natural_tone(rng), natural_tone(rng)
    grain = fractal_noise(rng, width, height, (width / 8, 6, 2))[..., None] * float(rng.uniform(4, 14))
    rgb = a * (1 - t) + b * t + grain
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def rock_background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """Earth ground with scattered grey and brown rocks."""
    field = fractal_noise(rng, width, height, (width / 5, width / 30, 4))
    image = Image.fromarray(np.clip(palette_blend(field, (70, 58, 42), (150, 130, 100)), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(6, 24))):
        r = float(rng.uniform(0.03, 0.18)) * width
        grey = int(rng.integers(70, 180))
        tone = (grey, grey + int(rng.integers(-8, 8)), grey - int(rng.integers(0, 20)))
        wobble = tuple((k, float(rng.uniform(0, 0.12)), float(rng.uniform(0, 6.3))) for k in (2, 3, 5))
        draw.polygon(
            ellipse_points(
                rng.uniform(0, width), rng.uniform(0, height), r, r * rng.uniform(0.4, 0.9), rng.uniform(0, 180), wobble
            ),
            fill=tone,
        )
    texture = fractal_noise(rng, width, height, (20, 5, 2))[..., None] * 10
    return Image.fromarray(np.clip(np.asarray(image, np.float32) + texture, 0, 255).astype(np.uint8))


def draw_background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A random synthetic background: vegetation, gradient or rocks."""
    kind = int(rng.choice(3, p=[0.5, 0.2, 0.3]))
    makers = (vegetation_background, gradient_background, rock_background)
    return makers[kind](rng, width, height)


def draw_occluder(rng: np.random.Generator, image: Image.Image, box: tuple[int, int, int, int]) -> None:
    """A bamboo stalk or leaf cluster across part of a face box."""
    left, top, right, bottom = box
    size = max(right - left, bottom - top)
    draw = ImageDraw.Draw(image)
    x = float(rng.uniform(left, right))
    green = (int(rng.integers(60, 140)), int(rng.integers(100, 170)), int(rng.integers(30, 80)))
    if rng.random() < 0.5:
        draw.line(
            [(x, top - size), (x + rng.uniform(-0.4, 0.4) * size, bottom + size)],
            fill=green,
            width=max(2, int(rng.uniform(0.06, 0.16) * size)),
        )
        return
    for _ in range(int(rng.integers(2, 6))):
        y = float(rng.uniform(top, bottom))
        draw.polygon(
            ellipse_points(x + rng.uniform(-0.2, 0.2) * size, y, 0.3 * size, 0.07 * size, rng.uniform(-70, 70)),
            fill=green,
        )
