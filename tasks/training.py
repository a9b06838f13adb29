"""Prefect tasks that train and evaluate models from labelled data on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from schemas.home import HomeLayout
from tasks.detector_training import evaluate_detector, train_detector


def optional_path(value: str | None) -> Path | None:
    """A Path, or None when no value was given."""
    return Path(value) if value else None


@task(name="train-detector", cache_policy=NO_CACHE)
def train_detector_task(home: str, annotations: str, images_root: str, name: str, seed: int, all_images: str | None) -> dict[str, Any]:
    """Fine-tune MTCNN's three stages on annotated faces and store a new detector version."""
    card = train_detector(HomeLayout(Path(home)), Path(annotations), Path(images_root), name, seed, all_images=optional_path(all_images))
    return {key: value for key, value in card.items() if key not in ("split", "training")}


@task(name="evaluate-detector", cache_policy=NO_CACHE)
def evaluate_detector_task(home: str, ref: str, annotations: str, images_root: str, all_images: str | None) -> dict[str, Any]:
    """Recall, precision and mean IoU of a detector on a labelled set."""
    return evaluate_detector(HomeLayout(Path(home)), ref, Path(annotations), Path(images_root), optional_path(all_images))
