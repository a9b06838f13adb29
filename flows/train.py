"""Training and evaluation flows: wiring only."""

from __future__ import annotations

from typing import Any

from prefect import flow

from tasks.nightly import resolve_home
from tasks.training import evaluate_detector_task, train_detector_task


@flow(name="train-detector", log_prints=True)
def train_detector_flow(
    annotations: str, images_root: str, name: str = "mtcnn-panda", seed: int = 0,
    all_images: str | None = None, home: str | None = None, config_file: str | None = None,
) -> dict[str, Any]:
    """Fine-tune a species face detector and store it in the home's model store."""
    home_dir = resolve_home(home, config_file)
    return train_detector_task(home_dir, annotations, images_root, name, seed, all_images)


@flow(name="evaluate-detector", log_prints=True)
def evaluate_detector_flow(
    detector: str, annotations: str, images_root: str, all_images: str | None = None,
    home: str | None = None, config_file: str | None = None,
) -> dict[str, Any]:
    """Measure a face detector on a labelled set."""
    home_dir = resolve_home(home, config_file)
    return evaluate_detector_task(home_dir, detector, annotations, images_root, all_images)
