"""Plots and image panels for the report (matplotlib, no display needed)."""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from PIL import Image

CAM_ALPHA = 0.45


def heatmap_overlay(image: Image.Image, cam: np.ndarray, alpha: float = CAM_ALPHA) -> Image.Image:
    """A Grad-CAM map (H x W in [0, 1]) blended over the face crop it explains, as RGB."""
    base = image.convert("RGB")
    heat = Image.fromarray(cam.astype(np.float32)).resize(base.size, Image.BILINEAR)
    colours = colormaps["jet"](np.clip(np.asarray(heat), 0.0, 1.0))[..., :3]
    blended = (1 - alpha) * np.asarray(base, np.float32) / 255.0 + alpha * colours
    return Image.fromarray((np.clip(blended, 0, 1) * 255).astype(np.uint8))
