"""Train and evaluate gender nets on labelled faces from the catalog or from a folder, and store them with model
cards."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from models.gender import gender_net_from_state, predict_probs
from models.gender_training import (
    EpochRecord,
    GenderTrainSettings,
    Item,
    calibrate,
    data_fingerprint,
    eval_batch,
    evaluate_predictions,
    gender_model_card,
    hog_svm_baseline,
    identity_disjoint_split_by_sex,
    image_counts,
    items_of,
    kfold_by_animal,
    train_gender_net,
)
from models.statistics import wilson_interval
from schemas.config import GenderConfig
from schemas.home import HomeLayout
from schemas.manifest import AnimalRow, ManifestError, check_safe_id, parse_csv_manifest
from tasks.catalog import query
from tasks.model_store import load_model, model_label, save_checkpoint

KIND = "gender"
SEXES = {"female": 0, "male": 1}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
LABELLED_FACES_SQL = """
    WITH known AS (
        SELECT animal_id, list_distinct(list(sex)) AS sexes
        FROM animal_manifest WHERE sex IN ('female', 'male') GROUP BY animal_id
    )
    SELECT f.face_id, f.crop_path, f.animal_id, k.sexes
    FROM faces f JOIN known k USING (animal_id)
    WHERE NOT f.excluded AND f.crop_path IS NOT NULL
    ORDER BY f.animal_id, f.face_id
"""


Progress = Callable[[EpochRecord], None]


class TrainingDataError(ValueError):
    """Labelled faces that cannot be used for training, with a sentence saying why."""


@dataclass(frozen=True)
class LabelledFaces:
    """Labelled face images with where they came from."""

    items: list[Item]
    source: str


def open_face(path: Path) -> Image.Image:
    """A face image decoded to RGB, or TrainingDataError naming the file."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError) as error:
        raise TrainingDataError(f"face image {path} cannot be read: {error}") from None


def catalog_faces(home: HomeLayout) -> LabelledFaces:
    """Usable faces (keeper photos and detections) of animals whose sex a drop's animals.csv gives."""
    rows = query(home, LABELLED_FACES_SQL).to_pylist()
    mixed = sorted({row["animal_id"] for row in rows if len(row["sexes"]) > 1})
    if mixed:
        raise TrainingDataError(
            f"animals.csv files disagree on the sex of {', '.join(mixed[:5])}; fix them before training"
        )
    items = [(open_face(home.root / row["crop_path"]), SEXES[row["sexes"][0]], row["animal_id"]) for row in rows]
    return LabelledFaces(items, f"catalog {home.catalog}")


def folder_faces(root: Path, animals_csv: Path | None = None) -> LabelledFaces:
    """Faces from root/<animal_id>/*.jpg with sexes from animals.csv (default: root/animals.csv)."""
    manifest = animals_csv or root / "animals.csv"
    if not manifest.is_file():
        raise TrainingDataError(f"{manifest} does not exist: give animals.csv with animal_id and sex")
    try:
        animals = parse_csv_manifest(manifest.read_text(encoding="utf-8"), str(manifest), AnimalRow, "animal_id")
    except ManifestError as error:
        raise TrainingDataError(str(error)) from None
    sexes = {row.animal_id: SEXES[row.sex] for row in animals if row.sex in SEXES}
    items = []
    for animal_id, label in sorted(sexes.items()):
        folder = root / check_safe_id(animal_id, "animal_id")
        files = sorted(p for p in folder.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
        items += [(open_face(path), label, animal_id) for path in files]
    return LabelledFaces(items, f"folder {root}")


def labelled_faces(home: HomeLayout, folder: Path | None, animals_csv: Path | None) -> LabelledFaces:
    """Training faces from a folder when given, else from the catalog; TrainingDataError when unusable."""
    faces = folder_faces(folder, animals_csv) if folder else catalog_faces(home)
    if not faces.items:
        raise TrainingDataError(
            f"no labelled faces in the {faces.source}: animals need a sex in animals.csv and usable faces"
        )
    if len({label for _, label, _ in faces.items}) < 2:
        raise TrainingDataError(f"the labelled faces in the {faces.source} are all of one sex; training needs both")
    return faces


def recipe(config: GenderConfig) -> GenderTrainSettings:
    """The training recipe from the [gender.train] configuration (blocks are frozen only over pretrained weights)."""
    train = config.train
    return GenderTrainSettings(
        arch=train.arch,
        input_size=train.input_size,
        epochs=train.epochs,
        batch_size=train.batch_size,
        lr=train.lr,
        momentum=train.momentum,
        weight_decay=train.weight_decay,
        lr_step_epochs=train.lr_step_epochs,
        lr_gamma=train.lr_gamma,
        freeze_blocks=frozen_blocks(config),
    )


def frozen_blocks(config: GenderConfig) -> int:
    """Seed 000 freezes the first blocks of a pretrained backbone; randomly initialised blocks must learn, so none
    then."""
    train = config.train
    return train.freeze_blocks if train.arch == "resnet18" and train.backbone_weights is not None else 0


def backbone_state(config: GenderConfig) -> dict[str, Any] | None:
    """Local ResNet18 backbone weights when configured (loaded tensors only)."""
    import torch

    path = config.train.backbone_weights
    if path is None:
        return None
    if not path.is_file():
        raise TrainingDataError(f"backbone weights file {path} does not exist")
    return torch.load(path, map_location="cpu", weights_only=True)


def seed_split(items: list[Item]) -> tuple[list[str], list[str]]:
    """Seed 000's identity-disjoint split within each sex; a sex too small for the rule (one or two animals) still
    gives its least-photographed animal to the test side when it has two, so both sexes are measured."""
    sexes, counts = {animal_id: label for _, label, animal_id in items}, image_counts(items)
    train, test = identity_disjoint_split_by_sex(counts, sexes)
    for label in (0, 1):
        candidates = [a for a in train if sexes[a] == label]
        if len(candidates) >= 2 and not any(sexes[a] == label for a in test):
            smallest = min(candidates, key=lambda a: (counts[a], a))
            train.remove(smallest)
            test.append(smallest)
    if not test:
        raise TrainingDataError(f"only {len(sexes)} labelled animals: a held-out test needs two animals of one sex")
    return train, test


MIN_ANIMALS_FOR_VALIDATION = 5  # per sex on the training side: the seed rule then holds out one and keeps four


@dataclass(frozen=True)
class FitSplit:
    """Animals the net learns from, and those that choose its epoch and temperature (validation, else the test)."""

    fit: list[str]
    select: list[str]
    selected_on: str


def fit_split(items: list[Item], train_ids: list[str], test_ids: list[str]) -> FitSplit:
    """Carve validation animals from the training animals by the seed rule within each sex, so the test animals the
    card's metrics (and the gender ratio's correction) come from never chose the epoch or the temperature; with fewer
    than MIN_ANIMALS_FOR_VALIDATION training animals of a sex, the test animals choose, and the card says so."""
    sexes = {animal_id: label for _, label, animal_id in items}
    if any(sum(sexes[a] == label for a in train_ids) < MIN_ANIMALS_FOR_VALIDATION for label in (0, 1)):
        return FitSplit(
            list(train_ids), list(test_ids), "test animals (too few training animals for a validation split)"
        )
    counts = image_counts(items_of(items, train_ids))
    fit_ids, validation_ids = identity_disjoint_split_by_sex(counts, {a: sexes[a] for a in counts})
    return FitSplit(fit_ids, validation_ids, "validation animals")


def fit(
    items: list[Item],
    train_ids: list[str],
    test_ids: list[str],
    settings: GenderTrainSettings,
    seed: int,
    backbone: dict[str, Any] | None,
    progress: Progress | None = None,
) -> tuple[Any, Any, float, FitSplit]:
    """Train on the fit animals, select the epoch and fit the temperature on the validation animals (see fit_split)."""
    split = fit_split(items, train_ids, test_ids)
    model, history = train_gender_net(
        items_of(items, split.fit), items_of(items, split.select), settings, seed, progress, backbone
    )
    temperature = calibrate(model, items_of(items, split.select))
    return model, history, temperature, split


def split_metrics(
    model: Any, items: list[Item], train_ids: list[str], test_ids: list[str], seed: int
) -> dict[str, Any]:
    """Net and HOG + linear SVM metrics on the test animals of one split, and the net's held-out predictions (for ROC
    plots)."""
    test = items_of(items, test_ids)
    images, labels = eval_batch(test, model.input_size)
    p_male = predict_probs(model, images, precision="fp32").tolist()
    animal_ids = [animal_id for _, _, animal_id in test]
    net = evaluate_predictions(p_male, labels.tolist(), animal_ids)
    train = items_of(items, train_ids)
    hog = hog_svm_baseline(
        [i for i, _, _ in train],
        [y for _, y, _ in train],
        [i for i, _, _ in test],
        labels.tolist(),
        test_animal_ids=animal_ids,
        seed=seed,
    )
    predictions = {"p_male": [round(p, 6) for p in p_male], "label": labels.tolist(), "animal_id": animal_ids}
    return {"net": net, "hog_svm": hog, "test_predictions": predictions}


def train_gender(
    home: HomeLayout,
    config: GenderConfig,
    name: str,
    folder: Path | None = None,
    animals_csv: Path | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Train on the seed split, calibrate, measure on the held-out animals and store a new model version."""
    check_safe_id(name, "model name")
    faces = labelled_faces(home, folder, animals_csv)
    settings, seed = recipe(config), config.train.seed
    train_ids, test_ids = seed_split(faces.items)
    started = time.perf_counter()
    model, history, temperature, split = fit(
        faces.items, train_ids, test_ids, settings, seed, backbone_state(config), progress
    )
    seconds = time.perf_counter() - started
    metrics = split_metrics(model, faces.items, train_ids, test_ids, seed)
    animals = {"train": split.fit, "validation": split.select if split.select != test_ids else [], "test": test_ids}
    card = gender_model_card(
        settings, seed, data_fingerprint(faces.items), animals, history, temperature, card_metrics(metrics)
    )
    card = {
        **card,
        "name": name,
        "source": faces.source,
        "n_faces": len(faces.items),
        "train_seconds": seconds,
        "selected_on": split.selected_on,
    }
    version, path = save_checkpoint(home.model_dir(KIND, name), model.state_dict(), card)
    return {**card, "version": version, "path": str(path), "label": f"{name}@v{version}"}


def error_rates(net_metrics: dict[str, Any]) -> dict[str, Any]:
    """Per-animal sensitivity (males called male) and specificity (females called female) among the held-out animals
    the abstain band decided, as the animals view counts them; None for a sex with no decided animal."""
    decided = [row for row in net_metrics["animals"] if row["decision"] != "unknown"]
    males = [row["decision"] == "male" for row in decided if row["label"] == 1]
    females = [row["decision"] == "female" for row in decided if row["label"] == 0]
    se, sp = wilson_interval(sum(males), len(males)), wilson_interval(sum(females), len(females))
    return {
        "sensitivity": se.estimate,
        "specificity": sp.estimate,
        "decided_males": len(males),
        "decided_females": len(females),
        "males_called_male": sum(males),
        "females_called_female": sum(females),
        "sensitivity_ci": [se.ci_low, se.ci_high] if se.n else None,
        "specificity_ci": [sp.ci_low, sp.ci_high] if sp.n else None,
        "level": "animal, decided by the abstain band",
        "interval": "Wilson 95%",
    }


def card_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """Card metrics: the net's per-image and per-animal figures on top (with the rates the gender ratio corrects
    for)."""
    net = metrics["net"]
    rates = error_rates(net)
    per_animal = {
        **net["per_animal"],
        **{k: v for k, v in rates.items() if k in ("sensitivity", "specificity") and v is not None},
    }
    return {"per_image": net["per_image"], "per_animal": per_animal, "rates": rates, **metrics}


def evaluation_splits(items: list[Item], config: GenderConfig, folds: int | None) -> list[tuple[list[str], list[str]]]:
    """The seed split, or k folds by animal stratified by sex."""
    if not folds:
        return [seed_split(items)]
    sexes = {animal_id: label for _, label, animal_id in items}
    if min(sum(v == s for v in sexes.values()) for s in (0, 1)) < folds:
        raise TrainingDataError(f"{folds}-fold evaluation needs at least {folds} labelled animals of each sex")
    return kfold_by_animal(sorted(sexes), folds, config.train.seed, sexes)


def evaluate_gender(
    home: HomeLayout,
    config: GenderConfig,
    folder: Path | None = None,
    animals_csv: Path | None = None,
    folds: int | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Train the configured recipe on each split and measure it and HOG + SVM on the held-out animals."""
    faces = labelled_faces(home, folder, animals_csv)
    settings, seed, backbone = recipe(config), config.train.seed, backbone_state(config)
    results = []
    for train_ids, test_ids in evaluation_splits(faces.items, config, folds):
        model, history, temperature, split = fit(faces.items, train_ids, test_ids, settings, seed, backbone, progress)
        results.append(
            {
                "train": split.fit,
                "validation": split.select if split.select != test_ids else [],
                "test": test_ids,
                "selected_on": split.selected_on,
                "temperature": temperature,
                "best_epoch": history.best_epoch,
                **split_metrics(model, faces.items, train_ids, test_ids, seed),
            }
        )
    return {
        "source": faces.source,
        "n_faces": len(faces.items),
        "n_animals": len(image_counts(faces.items)),
        "arch": settings.arch,
        "input_size": settings.input_size,
        "epochs": settings.epochs,
        "splits": results,
        "summary": summarise_splits(results),
    }


def summarise_splits(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Mean and standard deviation over splits of the headline metrics, for the net and the baseline."""
    keys = (
        ("per_image", "accuracy"),
        ("per_image", "roc_auc"),
        ("per_image", "f1"),
        ("per_image", "ece"),
        ("per_animal", "accuracy"),
        ("per_animal", "roc_auc"),
        ("per_animal", "coverage"),
        ("per_animal", "accuracy_decided"),
    )
    summary: dict[str, dict[str, Any]] = {}
    for model_key in ("net", "hog_svm"):
        for level, metric in keys:
            values = [r[model_key][level].get(metric) for r in results]
            values = [v for v in values if v is not None]
            summary.setdefault(model_key, {})[f"{level}.{metric}"] = (
                {"mean": float(np.mean(values)), "std": float(np.std(values)), "n": len(values)} if values else None
            )
    return summary


def load_gender_model(home: HomeLayout, ref: str) -> tuple[Any, dict[str, Any]]:
    """A stored gender net in eval mode with its model card (weights loaded with weights_only=True)."""
    state, card = load_model(home, KIND, ref)
    return gender_net_from_state(state, card["arch"], int(card["input_size"])), {**card, "label": model_label(card)}
