"""Prefect tasks that train and evaluate models from labelled data on disk."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from models.training import EpochRecord
from schemas.config import load_settings
from schemas.home import HomeLayout
from tasks.detector_training import evaluate_detector, retrain_detector, train_detector
from tasks.gender_training import evaluate_gender, retrain_gender, train_gender
from tasks.identity_training import evaluate_identity, retrain_identity, train_identity
from tasks.mating_training import evaluate_mating_data, retrain_mating, train_mating


def optional_path(value: str | None) -> Path | None:
    """A Path, or None when no value was given."""
    return Path(value) if value else None


@task(name="train-detector", cache_policy=NO_CACHE)
def train_detector_task(
    home: str, annotations: str, images_root: str, name: str, seed: int, all_images: str | None
) -> dict[str, Any]:
    """Fine-tune MTCNN's three stages on annotated faces and store a new detector version."""
    card = train_detector(
        HomeLayout(Path(home)), Path(annotations), Path(images_root), name, seed, all_images=optional_path(all_images)
    )
    return {key: value for key, value in card.items() if key not in ("split", "training")}


@task(name="evaluate-detector", cache_policy=NO_CACHE)
def evaluate_detector_task(
    home: str, ref: str, annotations: str, images_root: str, all_images: str | None, unannotated_faceless: bool = False
) -> dict[str, Any]:
    """Recall, precision and mean IoU of a detector on a labelled set."""
    return evaluate_detector(
        HomeLayout(Path(home)),
        ref,
        Path(annotations),
        Path(images_root),
        optional_path(all_images),
        unannotated_faceless,
    )


@task(name="train-gender", cache_policy=NO_CACHE)
def train_gender_task(
    home: str, config_file: str | None, name: str | None, folder: str | None, animals_csv: str | None
) -> dict[str, Any]:
    """Train a gender net on labelled faces (catalog or folder) and store a new version with its model card."""
    settings = load_settings(optional_path(config_file), home=home)
    config = settings.gender
    card = train_gender(
        HomeLayout(Path(home)),
        config,
        name or config.model.partition("@")[0],
        optional_path(folder),
        optional_path(animals_csv),
        epoch_logger(every=1),
        settings.identity.model,
    )
    return {key: value for key, value in card.items() if key != "training"}


@task(name="evaluate-gender", cache_policy=NO_CACHE)
def evaluate_gender_task(
    home: str, config_file: str | None, folder: str | None, animals_csv: str | None, folds: int | None
) -> dict[str, Any]:
    """Identity-disjoint evaluation of the configured gender recipe against HOG + linear SVM."""
    config = load_settings(optional_path(config_file), home=home).gender
    return evaluate_gender(
        HomeLayout(Path(home)), config, optional_path(folder), optional_path(animals_csv), folds, epoch_logger(every=5)
    )


def epoch_logger(every: int = 10) -> Callable[[EpochRecord], None]:
    """Log the first epoch and every `every`-th one of a training run (CGANet or gender net)."""
    logger = get_run_logger()

    def log(record: EpochRecord) -> None:
        """One line per logged epoch: loss, accuracies, learning rate, seconds."""
        if record.epoch == 1 or record.epoch % every == 0:
            val = "n/a" if record.val_accuracy is None else f"{record.val_accuracy:.3f}"
            logger.info(
                "epoch %d: loss %.4f, train accuracy %.3f, validation accuracy %s, lr %g, %.1f s",
                record.epoch,
                record.train_loss,
                record.train_accuracy,
                val,
                record.lr,
                record.seconds,
            )

    return log


@task(name="train-identity", cache_policy=NO_CACHE)
def train_identity_task(
    home: str, config_file: str | None, name: str | None, faces: list[str], archives: list[str]
) -> dict[str, Any]:
    """Train an identity net on labelled faces (folders and archives, else the catalog) and store a new version."""
    settings = load_settings(optional_path(config_file), home=home)
    card = train_identity(
        HomeLayout(Path(home)),
        settings.identity,
        name or settings.identity.model.partition("@")[0],
        [Path(folder) for folder in faces],
        [Path(archive) for archive in archives],
        epoch_logger(every=5),
        settings.faces,
    )
    return {key: value for key, value in card.items() if key != "training"}


@task(name="evaluate-identity", cache_policy=NO_CACHE)
def evaluate_identity_task(
    home: str, config_file: str | None, model: str | None, faces: list[str], archives: list[str]
) -> dict[str, Any]:
    """Open-set and closed-set re-identification metrics of a stored identity net on labelled faces."""
    settings = load_settings(optional_path(config_file), home=home)
    return evaluate_identity(
        HomeLayout(Path(home)),
        settings.identity,
        model,
        [Path(folder) for folder in faces],
        [Path(archive) for archive in archives],
        settings.faces,
    )


@task(name="train-mating", cache_policy=NO_CACHE)
def train_mating_task(
    home: str, config_file: str | None, name: str, folder: str | None, seed: int | None, epochs: int | None
) -> dict[str, Any]:
    """Train CGANet on the labelled encounters and store a new mating model version; returns its card."""
    settings = load_settings(optional_path(config_file), home=home)
    card = train_mating(HomeLayout(Path(home)), settings, name, optional_path(folder), seed, epochs, epoch_logger())
    return {**card, "training": {key: value for key, value in card["training"].items() if key != "epochs"}}


@task(name="evaluate-mating", cache_policy=NO_CACHE)
def evaluate_mating_task(
    home: str,
    config_file: str | None,
    folder: str | None,
    group_by: str | None,
    folds: int | None,
    epochs: int | None,
    seed: int | None,
    model: str | None,
) -> dict[str, Any]:
    """Grouped k-fold CGANet, SVM and FLDA metrics on the labelled encounters (and a stored model's, when named)."""
    settings = load_settings(optional_path(config_file), home=home)
    log = epoch_logger(every=50)
    return evaluate_mating_data(
        HomeLayout(Path(home)),
        settings,
        optional_path(folder),
        group_by,
        folds,
        epochs,
        seed,
        model,
        progress=lambda fold, record: log(record),
    )


@task(name="retrain", cache_policy=NO_CACHE)
def retrain_task(home: str, config_file: str | None, kind: str) -> dict[str, Any]:
    """Train a new version of a kind's configured model with keepers' corrections as labels and store it promoted, or
    as a candidate when it is worse than the version in use on the same held-out data; returns its card."""
    settings = load_settings(optional_path(config_file), home=home)
    layout = HomeLayout(Path(home))
    if kind == "gender":
        card = retrain_gender(layout, settings.gender, epoch_logger(every=1))
    elif kind == "mating":
        card = retrain_mating(layout, settings, progress=epoch_logger())
    elif kind == "detector":
        card = retrain_detector(layout, settings.faces)
    elif kind == "identity":
        card = retrain_identity(layout, settings.identity, epoch_logger(every=5))
    else:
        raise ValueError(f"there is no {kind} model to retrain (gender, mating, detector or identity)")
    return {key: value for key, value in card.items() if key not in ("training", "test_predictions")}
