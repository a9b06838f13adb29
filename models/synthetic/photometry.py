"""What light and the camera do to a rendered image: brightness, contrast and colour cast, lens blur and sensor
noise."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter


def adjust_photometry(
    rng: np.random.Generator, image: Image.Image, gain: tuple[float, float], contrast: tuple[float, float], cast: float
) -> Image.Image:
    """Random brightness, contrast and colour cast of the colour channels (alpha kept)."""
    pixels = np.asarray(image, np.float32).copy()
    rgb = pixels[..., :3]
    mean = rgb.mean()
    rgb = (rgb - mean) * rng.uniform(*contrast) + mean
    rgb = rgb * rng.uniform(*gain) * rng.uniform(1 - cast, 1 + cast, size=3)
    pixels[..., :3] = np.clip(rgb, 0, 255)
    return Image.fromarray(pixels.astype(np.uint8), image.mode)


def finish_photo(rng: np.random.Generator, image: Image.Image, blur: float, noise_sd: float) -> Image.Image:
    """Lens blur and (luminance) sensor noise."""
    if blur > 0.05:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    pixels = np.asarray(image, np.float32)
    noise = noise_sd * rng.standard_normal(pixels.shape[:2], dtype=np.float32)
    pixels = pixels + (noise[..., None] if pixels.ndim == 3 else noise)
    return Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8), image.mode)
