"""Plots and image panels for the report (matplotlib, no display needed)."""

from __future__ import annotations

import base64
import io
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import colormaps  # noqa: E402
from PIL import Image  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay, roc_auc_score, roc_curve  # noqa: E402

CAM_ALPHA = 0.45


def heatmap_overlay(image: Image.Image, cam: np.ndarray, alpha: float = CAM_ALPHA) -> Image.Image:
    """A Grad-CAM map (H x W in [0, 1]) blended over the face crop it explains, as RGB."""
    base = image.convert("RGB")
    heat = Image.fromarray(cam.astype(np.float32)).resize(base.size, Image.BILINEAR)
    colours = colormaps["jet"](np.clip(np.asarray(heat), 0.0, 1.0))[..., :3]
    blended = (1 - alpha) * np.asarray(base, np.float32) / 255.0 + alpha * colours
    return Image.fromarray((np.clip(blended, 0, 1) * 255).astype(np.uint8))


def figure_png(figure: Any) -> bytes:
    """A matplotlib figure as PNG bytes (closed afterwards)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def data_uri(data: bytes, mime: str = "image/png") -> str:
    """Bytes as a data: URI, so the report has no external files or requests."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def thumbnail_uri(path: Path, side: int = 96) -> str | None:
    """A small JPEG data URI of an image file, or None when it cannot be read."""
    try:
        with Image.open(path) as image:
            small = image.convert("RGB")
            small.thumbnail((side, side))
    except OSError:
        return None
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=80)
    return data_uri(buffer.getvalue(), "image/jpeg")


def roc_plot(scores: Sequence[float], labels: Sequence[int], title: str) -> bytes | None:
    """ROC curve with its AUC (scikit-learn), or None unless both classes occur."""
    if len(set(labels)) < 2:
        return None
    fpr, tpr, _ = roc_curve(labels, scores)
    figure, axis = plt.subplots(figsize=(3.2, 3.2))
    axis.plot(fpr, tpr, lw=2, label=f"AUC {roc_auc_score(labels, scores):.2f}")
    axis.plot([0, 1], [0, 1], ls="--", c="grey", lw=1)
    axis.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    axis.legend(loc="lower right")
    return figure_png(figure)


def reliability_plot(bins: Sequence[dict[str, float]], title: str) -> bytes | None:
    """A reliability diagram: each confidence bin's accuracy against its mean confidence (marker area by count), the
    diagonal of perfect calibration; None without bins."""
    if not bins:
        return None
    figure, axis = plt.subplots(figsize=(3.2, 3.2))
    axis.plot([0.5, 1], [0.5, 1], ls="--", c="grey", lw=1)
    axis.scatter([b["confidence"] for b in bins], [b["accuracy"] for b in bins], s=[12 + 6 * b["n"] for b in bins])
    axis.set(xlim=(0.48, 1.02), ylim=(-0.02, 1.02), xlabel="confidence", ylabel="accuracy", title=title)
    return figure_png(figure)


def confusion_plot(matrix: Sequence[Sequence[int]], classes: Sequence[str], title: str) -> bytes:
    """A 2 x 2 confusion matrix with counts (rows: truth, columns: prediction)."""
    figure, axis = plt.subplots(figsize=(3.0, 2.8))
    ConfusionMatrixDisplay(np.asarray(matrix), display_labels=list(classes)).plot(ax=axis, colorbar=False)
    axis.set_title(title)
    return figure_png(figure)


def proportion_series_plot(points: Sequence[dict[str, Any]], ylabel: str) -> bytes | None:
    """Estimates with 95% intervals over time (keys: when, estimate, ci_low, ci_high), or None without points."""
    usable = [p for p in points if p["estimate"] is not None]
    if not usable:
        return None
    figure, axis = plt.subplots(figsize=(6.0, 2.6))
    when = [p["when"] for p in usable]
    estimate = np.array([p["estimate"] for p in usable])
    low, high = np.array([p["ci_low"] for p in usable]), np.array([p["ci_high"] for p in usable])
    axis.errorbar(when, estimate, yerr=[estimate - low, high - estimate], fmt="o-", capsize=3)
    axis.set(ylim=(0, 1), ylabel=ylabel)
    axis.axhline(0.5, ls=":", c="grey", lw=1)
    figure.autofmt_xdate()
    return figure_png(figure)


def attention_plot(series: Sequence[tuple[str, Sequence[float]]]) -> bytes | None:
    """Mean attention weight per frame of each encounter's 2 s segments (seed 002, figure 3), or None without data."""
    if not series:
        return None
    figure, axis = plt.subplots(figsize=(6.0, 2.6))
    for label, weights in series:
        axis.plot(np.arange(len(weights)) / 43.0, weights, lw=1.2, label=label)
    axis.set(xlabel="time in segment (s)", ylabel="attention weight")
    axis.legend(fontsize="small", ncol=2)
    return figure_png(figure)


def mean_attention(rows: list[dict[str, Any]]) -> list[tuple[str, list[float]]]:
    """Each encounter's attention weights averaged over its segments, frame by frame."""
    grouped: dict[str, list[list[float]]] = defaultdict(list)
    for row in rows:
        if row["attention"]:
            grouped[row["encounter_id"]].append(row["attention"])
    return [
        (encounter, np.mean(np.asarray(weights, np.float64), axis=0).tolist())
        for encounter, weights in sorted(grouped.items())
    ]
