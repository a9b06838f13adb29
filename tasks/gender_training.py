"""Train and evaluate gender nets on labelled faces from the catalog or from a folder, and store them with model
cards."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from models.corrected_labels import LabelConflictError, face_label, gender_corrections_used, training_groups
from models.gender import gender_net_from_state
from models.gender_training import (
    Item,
    Progress,
    TrainingDataError,
    TrunkInit,
    card_metrics,
    data_fingerprint,
    evaluation_splits,
    fit,
    gender_model_card,
    held_out_crops,
    image_counts,
    recipe,
    seed_split,
    split_metrics,
    summarise_splits,
)
from models.promotion import promotion_decision
from schemas.config import GenderConfig
from schemas.home import HomeLayout
from schemas.manifest import AnimalRow, ManifestError, check_safe_id, parse_csv_manifest
from tasks.catalog import query
from tasks.model_store import load_model, model_label, store_version, stored_card

KIND = "gender"
SEXES = {"female": 0, "male": 1}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
# Usable faces with every word on their sex: the registry's sexes of their animal, a keeper's animal-level and
# face-level corrections (the catalog views' latest live rows, undo applied), and whether a keeper said "not a face".
LABELLED_FACES_SQL = """
    WITH registry AS (
        SELECT animal_id, list_sort(list_distinct(list(sex))) AS sexes
        FROM animal_manifest WHERE sex IN ('female', 'male') GROUP BY animal_id
    ), animal_human AS (
        SELECT animal_id, sex FROM animals WHERE sex_source = 'human'
    ), face_human AS (
        SELECT drop_id, face_id, any_value(sex) FILTER (WHERE sex_source = 'human') AS sex,
               bool_or(NOT is_face) AS not_face
        FROM face_calls GROUP BY drop_id, face_id
    )
    SELECT f.face_id, f.drop_id, f.crop_path, f.animal_id, f.source, r.sexes, a.sex AS animal_human,
           h.sex AS face_human, coalesce(h.not_face, false) AS not_face
    FROM faces f
    LEFT JOIN registry r ON r.animal_id = f.animal_id
    LEFT JOIN animal_human a ON a.animal_id = f.animal_id
    LEFT JOIN face_human h ON h.drop_id = f.drop_id AND h.face_id = f.face_id
    WHERE NOT f.excluded AND f.crop_path IS NOT NULL
      AND (r.sexes IS NOT NULL OR a.sex IS NOT NULL OR h.sex IS NOT NULL OR h.not_face)
    ORDER BY f.animal_id NULLS LAST, f.drop_id, f.face_id
"""


@dataclass(frozen=True)
class LabelledFaces:
    """Labelled face images with where they came from, and each face's source (keeper photo or detector crop)."""

    items: list[Item]
    source: str
    face_sources: list[str]
    corrections: dict[str, int] = field(default_factory=dict)


def open_face(path: Path) -> Image.Image:
    """A face image decoded to RGB, or TrainingDataError naming the file."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError) as error:
        raise TrainingDataError(f"face image {path} cannot be read: {error}") from None


def catalog_faces(home: HomeLayout) -> LabelledFaces:
    """Usable faces (keeper photos and detections) labelled by keepers' corrections or, without one, by the sex a
    drop's animals.csv gives their animal (models/corrected_labels.py says which wins)."""
    rows = query(home, LABELLED_FACES_SQL).to_pylist()
    try:
        labels = [face_label(row) for row in rows]
    except LabelConflictError as error:
        raise TrainingDataError(str(error)) from None
    items = [
        (open_face(home.root / row["crop_path"]), SEXES[label.sex], label.group)
        for row, label in zip(rows, labels)
        if label is not None
    ]
    sources = [row["source"] for row, label in zip(rows, labels) if label is not None]
    return LabelledFaces(items, f"catalog {home.catalog}", sources, gender_corrections_used(rows, labels))


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


@dataclass(frozen=True)
class IdentityInit:
    """The stored identity net whose trunk initialises the gender net: as configured, as resolved, and its weights."""

    ref: str
    label: str
    trunk: TrunkInit


def identity_init(home: HomeLayout, config: GenderConfig, identity_model: str) -> IdentityInit | None:
    """The identity net `[gender.train] init` names ('identity@vN': the configured identity model's name; or
    'name@vN'), or None when unset; TrainingDataError when it is not stored or not of the gender net's arch."""
    ref = config.train.init
    if ref is None:
        return None
    name, _, version = ref.partition("@")
    resolved = f"{identity_model.partition('@')[0] if name == 'identity' else name}@{version}"
    if stored_card(home, "identity", resolved) is None:
        raise TrainingDataError(f"gender.train.init names {ref!r}, but no identity model {resolved} is stored")
    state, card = load_model(home, "identity", resolved)
    if card["arch"] != config.train.arch:
        raise TrainingDataError(
            f"gender.train.init {resolved} is a {card['arch']} identity net; it cannot initialise a "
            f"{config.train.arch} gender net"
        )
    return IdentityInit(ref, model_label(card), TrunkInit(state, card["arch"]))


def held_out_split(items: list[Item]) -> tuple[list[str], list[str]]:
    """The seed split over animals; faces that keepers sexed as groups of their own only train."""
    animals, faces = training_groups([group for _, _, group in items])
    train_ids, test_ids = seed_split([item for item in items if item[2] in set(animals)])
    return train_ids + faces, test_ids


def fit_and_card(
    config: GenderConfig,
    name: str,
    faces: LabelledFaces,
    train_ids: list[str],
    test_ids: list[str],
    progress: Progress | None,
    init: IdentityInit | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Train on the training animals (the trunk from an identity net when given), calibrate, measure on the test
    animals; the model and its card (not stored)."""
    settings, seed = recipe(config), config.train.seed
    started = time.perf_counter()
    model, history, temperature, split = fit(
        faces.items, train_ids, test_ids, settings, seed, backbone_state(config), progress, init and init.trunk
    )
    seconds = time.perf_counter() - started
    metrics = split_metrics(model, faces.items, train_ids, test_ids, seed, faces.face_sources)
    animals = {"train": split.fit, "validation": split.select if split.select != test_ids else [], "test": test_ids}
    card = gender_model_card(
        settings, seed, data_fingerprint(faces.items), animals, history, temperature, card_metrics(metrics)
    )
    return model, {
        **card,
        "name": name,
        "source": faces.source,
        "n_faces": len(faces.items),
        "corrections_used": faces.corrections,
        "train_seconds": seconds,
        "selected_on": split.selected_on,
        "init": {"ref": init.ref, "identity_model": init.label} if init else None,
    }


def store_gender(
    home: HomeLayout, model: Any, card: dict[str, Any], faces: LabelledFaces, test_ids: list[str]
) -> dict[str, Any]:
    """Store a trained net as the next version of its name, with some of its test animals' faces (int8's check set);
    its card with version, path and label."""
    check = held_out_crops(faces.items, test_ids, int(model.input_size))
    return store_version(home, KIND, model.state_dict(), card, check)


def train_gender(
    home: HomeLayout,
    config: GenderConfig,
    name: str,
    folder: Path | None = None,
    animals_csv: Path | None = None,
    progress: Progress | None = None,
    identity_model: str = "panda-identity",
) -> dict[str, Any]:
    """Train on the seed split (the trunk from the identity net `[gender.train] init` names, if any; `identity_model`
    is the configured identity model 'identity@vN' refers to), calibrate, measure on the held-out animals and store a
    new model version."""
    check_safe_id(name, "model name")
    init = identity_init(home, config, identity_model)
    faces = labelled_faces(home, folder, animals_csv)
    train_ids, test_ids = held_out_split(faces.items)
    model, card = fit_and_card(config, name, faces, train_ids, test_ids, progress, init)
    return store_gender(home, model, card, faces, test_ids)


def retrain_gender(home: HomeLayout, config: GenderConfig, progress: Progress | None = None) -> dict[str, Any]:
    """Train a new version of the configured model on the catalog's labels (keepers' corrections included), measure it
    and the version in use on the latter's held-out animals, and store it promoted only when it is not worse there."""
    name = config.model.partition("@")[0]
    current = stored_card(home, KIND, name)
    if current is None:
        raise TrainingDataError(
            f"there is no gender model {name!r} in the store to compare with; train one with 'breedwatch train gender'"
        )
    faces = labelled_faces(home, None, None)
    groups = {group for _, _, group in faces.items}
    test_ids = [animal for animal in current["split"]["test"] if animal in groups]
    if not test_ids:
        raise TrainingDataError(
            f"none of {model_label(current)}'s held-out animals ({', '.join(current['split']['test'])}) has labelled "
            "faces now, so the two versions cannot be compared"
        )
    train_ids = sorted(groups - set(current["split"]["test"]))
    model, card = fit_and_card(config, name, faces, train_ids, test_ids, progress)
    in_use, _ = load_gender_model(home, model_label(current))
    before = card_metrics(
        split_metrics(in_use, faces.items, train_ids, test_ids, config.train.seed, faces.face_sources)
    )
    before = {key: value for key, value in before.items() if key in ("per_image", "per_animal")}
    promotion = promotion_decision(KIND, model_label(current), before, card["metrics"], test_ids)
    return store_gender(home, model, {**card, "promotion": promotion}, faces, test_ids)


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
