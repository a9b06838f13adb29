"""Train and evaluate gender nets on labelled faces from the catalog or from a folder, and store them with model
cards."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from models.gender import gender_net_from_state
from models.gender_training import (
    Item,
    Progress,
    TrainingDataError,
    card_metrics,
    data_fingerprint,
    evaluation_splits,
    fit,
    gender_model_card,
    image_counts,
    recipe,
    seed_split,
    split_metrics,
    summarise_splits,
)
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
    SELECT f.face_id, f.crop_path, f.animal_id, f.source, k.sexes
    FROM faces f JOIN known k USING (animal_id)
    WHERE NOT f.excluded AND f.crop_path IS NOT NULL
    ORDER BY f.animal_id, f.face_id
"""


@dataclass(frozen=True)
class LabelledFaces:
    """Labelled face images with where they came from, and each face's source (keeper photo or detector crop)."""

    items: list[Item]
    source: str
    face_sources: list[str]


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
    return LabelledFaces(items, f"catalog {home.catalog}", [row["source"] for row in rows])


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
    return LabelledFaces(items, f"folder {root}", ["keeper"] * len(items))  # a folder of photos: keeper photos


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


def backbone_state(config: GenderConfig) -> dict[str, Any] | None:
    """Local ResNet18 backbone weights when configured (loaded tensors only)."""
    import torch

    path = config.train.backbone_weights
    if path is None:
        return None
    if not path.is_file():
        raise TrainingDataError(f"backbone weights file {path} does not exist")
    return torch.load(path, map_location="cpu", weights_only=True)


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
    metrics = split_metrics(model, faces.items, train_ids, test_ids, seed, faces.face_sources)
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
                **split_metrics(model, faces.items, train_ids, test_ids, seed, faces.face_sources),
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


def load_gender_model(home: HomeLayout, ref: str) -> tuple[Any, dict[str, Any]]:
    """A stored gender net in eval mode with its model card (weights loaded with weights_only=True)."""
    state, card = load_model(home, KIND, ref)
    return gender_net_from_state(state, card["arch"], int(card["input_size"])), {**card, "label": model_label(card)}
