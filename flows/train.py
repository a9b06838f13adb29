"""Training and evaluation flows: wiring only."""

from __future__ import annotations

from typing import Any

from prefect import flow

from tasks.nightly import resolve_home
from tasks.training import (
    evaluate_detector_task,
    evaluate_gender_task,
    evaluate_identity_task,
    evaluate_mating_task,
    retrain_task,
    train_detector_task,
    train_gender_task,
    train_identity_task,
    train_mating_task,
)


@flow(name="train-detector", log_prints=True)
def train_detector_flow(
    annotations: str,
    images_root: str,
    name: str = "mtcnn-panda",
    seed: int = 0,
    all_images: str | None = None,
    home: str | None = None,
    config_file: str | None = None,
) -> dict[str, Any]:
    """Fine-tune a species face detector and store it in the home's model store."""
    home_dir = resolve_home(home, config_file)
    return train_detector_task(home_dir, annotations, images_root, name, seed, all_images)


@flow(name="evaluate-detector", log_prints=True)
def evaluate_detector_flow(
    detector: str,
    annotations: str,
    images_root: str,
    all_images: str | None = None,
    unannotated_faceless: bool = False,
    home: str | None = None,
    config_file: str | None = None,
) -> dict[str, Any]:
    """Measure a face detector on a labelled set."""
    home_dir = resolve_home(home, config_file)
    return evaluate_detector_task(home_dir, detector, annotations, images_root, all_images, unannotated_faceless)


@flow(name="train-gender", log_prints=True)
def train_gender_flow(
    name: str | None = None,
    folder: str | None = None,
    animals_csv: str | None = None,
    home: str | None = None,
    config_file: str | None = None,
) -> dict[str, Any]:
    """Train the seed-000 gender net on the station's labelled animals and store it in the model store."""
    home_dir = resolve_home(home, config_file)
    return train_gender_task(home_dir, config_file, name, folder, animals_csv)


@flow(name="evaluate-gender", log_prints=True)
def evaluate_gender_flow(
    folder: str | None = None,
    animals_csv: str | None = None,
    folds: int | None = None,
    home: str | None = None,
    config_file: str | None = None,
) -> dict[str, Any]:
    """Measure the gender recipe on held-out animals, next to the HOG + linear SVM baseline."""
    home_dir = resolve_home(home, config_file)
    return evaluate_gender_task(home_dir, config_file, folder, animals_csv, folds)


@flow(name="train-identity", log_prints=True)
def train_identity_flow(
    name: str | None = None,
    faces: list[str] | None = None,
    archives: list[str] | None = None,
    home: str | None = None,
    config_file: str | None = None,
) -> dict[str, Any]:
    """Train the identity net on faces of known animals and store it with its thresholds in the model store."""
    home_dir = resolve_home(home, config_file)
    return train_identity_task(home_dir, config_file, name, faces or [], archives or [])


@flow(name="evaluate-identity", log_prints=True)
def evaluate_identity_flow(
    model: str | None = None,
    faces: list[str] | None = None,
    archives: list[str] | None = None,
    home: str | None = None,
    config_file: str | None = None,
) -> dict[str, Any]:
    """Measure a stored identity net: open set, closed set, camera-trap faces against keeper photos."""
    home_dir = resolve_home(home, config_file)
    return evaluate_identity_task(home_dir, config_file, model, faces or [], archives or [])


@flow(name="train-mating", log_prints=True)
def train_mating_flow(
    name: str = "cganet",
    folder: str | None = None,
    seed: int | None = None,
    epochs: int | None = None,
    home: str | None = None,
    config_file: str | None = None,
) -> dict[str, Any]:
    """Train the mating-success CGANet on labelled encounters and store it in the home's model store."""
    home_dir = resolve_home(home, config_file)
    return train_mating_task(home_dir, config_file, name, folder, seed, epochs)


@flow(name="evaluate-mating", log_prints=True)
def evaluate_mating_flow(
    folder: str | None = None,
    group_by: str | None = None,
    folds: int | None = None,
    epochs: int | None = None,
    seed: int | None = None,
    model: str | None = None,
    home: str | None = None,
    config_file: str | None = None,
) -> dict[str, Any]:
    """Cross-validate CGANet, SVM and FLDA on labelled encounters, folds grouped by pair by default."""
    home_dir = resolve_home(home, config_file)
    return evaluate_mating_task(home_dir, config_file, folder, group_by, folds, epochs, seed, model)


@flow(name="retrain", log_prints=True)
def retrain_flow(kind: str, home: str | None = None, config_file: str | None = None) -> dict[str, Any]:
    """Retrain a model with the keepers' corrections and promote it only when it is not worse on held-out data."""
    home_dir = resolve_home(home, config_file)
    return retrain_task(home_dir, config_file, kind)
