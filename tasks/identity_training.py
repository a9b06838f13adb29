"""Train and evaluate identity nets on labelled faces (keeper photo folders, annotated sample archives, the catalog),
and store them with model cards."""

from __future__ import annotations

import csv
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from models.faces import crop_face, upright_rgb
from models.gender_training import Progress, TrainingDataError
from models.identity import identity_net_from_state
from models.identity_training import (
    IdentityFace,
    IdentityTrainSettings,
    animal_sides,
    data_fingerprint,
    embed_faces,
    event_respecting_sides,
    face_events,
    identity_metrics,
    identity_model_card,
    thresholds,
    train_identity_net,
)
from models.media_checks import parse_exif_time
from models.promotion import promotion_decision
from schemas.config import FacesConfig, IdentityConfig, IdentityTrainConfig
from schemas.home import HomeLayout
from tasks.catalog import query
from tasks.model_store import load_model, model_label, store_version, stored_card
from tasks.probe import read_exif

KIND = "identity"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
KEEPER_CAMERA = "keeper"
# Usable faces with an identity: a registered animal's (keeper photos, images/<animal_id>/ frames), or one a keeper
# confirmed in the review app (a live face correction of field 'identity'; the latest wins).
IDENTIFIED_FACES_SQL = """
    WITH confirmed AS (
        SELECT drop_id, target_id AS face_id, human_value AS animal_id
        FROM live_corrections
        WHERE target_kind = 'face' AND field = 'identity' AND coalesce(human_value, '') <> ''
        QUALIFY row_number() OVER (PARTITION BY drop_id, target_id ORDER BY created_at DESC, correction_id DESC) = 1
    )
    SELECT f.face_id, f.drop_id, f.crop_path, f.source, coalesce(c.animal_id, f.animal_id) AS animal_id,
           m.path, epoch(m.captured_at) AS captured_s, c.animal_id IS NOT NULL AS confirmed
    FROM faces f
    JOIN media m ON m.media_id = f.media_id AND m.drop_id = f.drop_id
    LEFT JOIN confirmed c ON c.drop_id = f.drop_id AND c.face_id = f.face_id
    WHERE NOT f.excluded AND f.crop_path IS NOT NULL AND coalesce(c.animal_id, f.animal_id) IS NOT NULL
    ORDER BY f.drop_id, f.face_id
"""


@dataclass(frozen=True)
class IdentityData:
    """Labelled faces and, in words, where they came from."""

    faces: list[IdentityFace]
    sources: list[str]


def open_image(path: Path) -> Image.Image:
    """An image decoded upright to RGB, or TrainingDataError naming the file."""
    try:
        with Image.open(path) as image:
            return upright_rgb(image)
    except (OSError, UnidentifiedImageError) as error:
        raise TrainingDataError(f"image {path} cannot be read: {error}") from None


def photo_time(path: Path) -> float | None:
    """A photo's EXIF capture time in epoch seconds (None without one)."""
    with Image.open(path) as image:
        exif, exif_ifd = read_exif(image)
    taken = exif_ifd.get(ExifTags.Base.DateTimeOriginal) or exif.get(ExifTags.Base.DateTime)
    offset = exif_ifd.get(ExifTags.Base.OffsetTimeOriginal)
    moment = parse_exif_time(str(taken) if taken else None, str(offset) if offset else None, "UTC")
    return moment.timestamp() if moment else None


def folder_faces(root: Path, prefix: str = "") -> list[IdentityFace]:
    """Keeper photos root/<animal_id>/*.jpg, each animal named prefix + its folder's name."""
    faces = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            animal = prefix + folder.name
            faces.append(IdentityFace(open_image(path), animal, "keeper", keeper_camera(animal), photo_time(path)))
    return faces


def keeper_camera(animal_id: str) -> str:
    """The 'camera' of an animal's keeper photos: one per animal, so photo sessions of different animals never chain
    into one event."""
    return f"{KEEPER_CAMERA}:{animal_id}"


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV file with a header."""
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def archive_frames(root: Path, prefix: str, faces_config: FacesConfig, crop_px: int) -> list[IdentityFace]:
    """Camera-trap faces of a sample archive: each box of truth/boxes.csv of at least the faces stage's minimum size,
    cropped as that stage crops (square, its margin), with the frame's camera and time from truth/frames.csv."""
    frames = {row["path"]: row for row in read_rows(root / "truth" / "frames.csv")}
    boxes = [row for row in read_rows(root / "truth" / "boxes.csv") if row["animal_id"]]
    faces, opened = [], {}
    for row in boxes:
        x, y, w, h = (float(row[key]) for key in ("x", "y", "w", "h"))
        if max(w, h) < faces_config.min_face_px:
            continue
        if row["path"] not in opened:
            opened = {row["path"]: open_image(root / row["path"])}  # boxes.csv lists a frame's faces together
        crop = crop_face(opened[row["path"]], (x, y, x + w, y + h), None, faces_config.margin, crop_px, False)
        frame = frames.get(row["path"], {})
        moment = datetime.fromisoformat(frame["captured_at"]).timestamp() if frame.get("captured_at") else None
        camera = f"{prefix}{frame.get('camera_id') or Path(row['path']).parent.name}"
        faces.append(IdentityFace(crop, prefix + row["animal_id"], "camera", camera, moment))
    return faces


def archive_faces(root: Path, faces_config: FacesConfig, crop_px: int) -> list[IdentityFace]:
    """A sample archive's keeper photos (faces/) and annotated camera-trap faces (truth/boxes.csv); its animals are
    named '<archive folder>/<animal_id>', since every archive draws its own animals."""
    if not (root / "truth" / "boxes.csv").is_file():
        raise TrainingDataError(
            f"{root} has no truth/boxes.csv: give a sample archive written by breedwatch sample-drop"
        )
    prefix = f"{root.name}/"
    return folder_faces(root / "faces", prefix) + archive_frames(root, prefix, faces_config, crop_px)


def catalog_faces(home: HomeLayout) -> list[IdentityFace]:
    """Usable faces of registered animals and faces whose identity a keeper confirmed, from the catalog."""
    rows = query(home, IDENTIFIED_FACES_SQL).to_pylist()
    return [
        IdentityFace(
            open_image(home.root / row["crop_path"]),
            row["animal_id"],
            "keeper" if row["source"] == "keeper" else "camera",
            keeper_camera(row["animal_id"])
            if row["source"] == "keeper"
            else f"{row['drop_id']}:{Path(row['path']).parent.as_posix()}",
            row["captured_s"],
        )
        for row in rows
    ]


def crop_size(train: IdentityTrainConfig) -> int:
    """Side of camera-trap crops kept in memory: twice the net's input, at least 128 px."""
    return max(128, 2 * train.input_size)


def labelled_data(
    home: HomeLayout,
    train: IdentityTrainConfig,
    faces_dirs: Sequence[Path],
    archives: Sequence[Path],
    faces_config: FacesConfig | None = None,
) -> IdentityData:
    """Faces from the given folders and archives, else from the catalog; TrainingDataError without two animals."""
    faces_config = faces_config or FacesConfig()
    faces: list[IdentityFace] = []
    sources = []
    for folder in faces_dirs:
        faces += folder_faces(folder)
        sources.append(f"folder {folder}")
    for archive in archives:
        faces += archive_faces(archive, faces_config, crop_size(train))
        sources.append(f"archive {archive}")
    if not faces_dirs and not archives:
        faces = catalog_faces(home)
        sources.append(f"catalog {home.catalog}")
    if len({f.animal_id for f in faces}) < 2:
        raise TrainingDataError(f"the {', '.join(sources)} hold faces of fewer than two animals")
    return IdentityData(faces, sources)


def recipe(train: IdentityTrainConfig) -> IdentityTrainSettings:
    """The training recipe from the [identity.train] configuration."""
    return IdentityTrainSettings(
        arch=train.arch,
        input_size=train.input_size,
        embedding_dim=train.embedding_dim,
        epochs=train.epochs,
        batch_size=train.batch_size,
        lr=train.lr,
        loss_lr=train.loss_lr,
        weight_decay=train.weight_decay,
        loss=train.loss,
        margin_deg=train.margin_deg,
        scale=train.scale,
        patience=train.patience,
    )


def split_faces(data: IdentityData, train: IdentityTrainConfig) -> dict[str, list[IdentityFace]]:
    """Faces by side (train, validation, test): animals dealt by the configured shares, events kept whole."""
    ids = [f.animal_id for f in data.faces]
    try:
        sides = animal_sides(ids, train.validation_share, train.test_share, train.seed)
    except ValueError as error:
        raise TrainingDataError(str(error)) from None
    placed = event_respecting_sides(ids, face_events(data.faces), sides)
    return {side: [f for f, s in zip(data.faces, placed) if s == side] for side in ("train", "validation", "test")}


def fit_identity(
    config: IdentityConfig, name: str, data: IdentityData, progress: Progress | None
) -> tuple[Any, dict[str, Any]]:
    """Train on the training animals, pick the epoch and thresholds on the validation animals, measure on the test
    animals; the model and its card (not stored)."""
    import torch

    train, settings = config.train, recipe(config.train)
    parts = split_faces(data, train)
    started = time.perf_counter()
    threads = torch.get_num_threads()
    try:
        if train.threads:
            torch.set_num_threads(train.threads)
        model, history = train_identity_net(parts["train"], parts["validation"], settings, train.seed, progress)
    finally:
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - started
    chosen = thresholds(embed_faces(model, parts["validation"], settings.input_size), parts["validation"])
    if chosen["match_threshold"] is None:
        raise TrainingDataError("the validation animals have no query faces, so no match threshold can be chosen")
    measured = parts["test"] or parts["validation"]
    metrics = identity_metrics(embed_faces(model, measured, settings.input_size), measured, chosen["match_threshold"])
    split = {side: sorted({f.animal_id for f in faces}) for side, faces in parts.items()}
    card = identity_model_card(settings, train.seed, data_fingerprint(data.faces), split, history, chosen, metrics)
    return model, {
        **card,
        "name": name,
        "source": "; ".join(data.sources),
        "n_faces": len(data.faces),
        "n_faces_by_side": {side: len(faces) for side, faces in parts.items()},
        "n_faces_left_out": len(data.faces) - sum(len(faces) for faces in parts.values()),
        "measured_on": "test animals" if parts["test"] else "validation animals (no test share)",
        "train_seconds": seconds,
        "code_version": code_version(),
    }


def code_version() -> str:
    """The package's code version as runs record it."""
    from tasks.runs import code_version as version

    return version()


def store_identity(home: HomeLayout, model: Any, card: dict[str, Any]) -> dict[str, Any]:
    """Store a trained net as the next version of its name; its card with version, path and label."""
    return store_version(home, KIND, model.state_dict(), card)


def train_identity(
    home: HomeLayout,
    config: IdentityConfig,
    name: str,
    faces_dirs: Sequence[Path] = (),
    archives: Sequence[Path] = (),
    progress: Progress | None = None,
    faces_config: FacesConfig | None = None,
) -> dict[str, Any]:
    """Train an identity net on labelled faces, choose its thresholds, measure it and store a new version."""
    from schemas.manifest import check_safe_id

    check_safe_id(name, "model name")
    data = labelled_data(home, config.train, faces_dirs, archives, faces_config)
    model, card = fit_identity(config, name, data, progress)
    return store_identity(home, model, card)


def load_identity_model(home: HomeLayout, ref: str) -> tuple[Any, dict[str, Any]]:
    """A stored identity net in eval mode with its model card (weights loaded with weights_only=True); the card has
    label, arch, input_size, embedding_dim, match_threshold and cluster_threshold."""
    state, card = load_model(home, KIND, ref)
    model = identity_net_from_state(state, card["arch"], int(card["input_size"]), int(card["embedding_dim"]))
    return model, {**card, "label": model_label(card)}


def evaluate_identity(
    home: HomeLayout,
    config: IdentityConfig,
    ref: str | None = None,
    faces_dirs: Sequence[Path] = (),
    archives: Sequence[Path] = (),
    faces_config: FacesConfig | None = None,
) -> dict[str, Any]:
    """Measure a stored identity net (default: the configured one) on labelled faces at its card's match threshold:
    open set, closed set and camera-trap faces against keeper photos; plus the thresholds this data would choose."""
    reference = ref or config.model
    if stored_card(home, KIND, reference) is None:
        raise TrainingDataError(f"there is no identity model {reference!r} in the store; train one first")
    model, card = load_identity_model(home, reference)
    data = labelled_data(home, config.train, faces_dirs, archives, faces_config)
    embeddings = embed_faces(model, data.faces, int(card["input_size"]))
    seen = set(card.get("split", {}).get("train", [])) & {f.animal_id for f in data.faces}
    return {
        "model": card["label"],
        "source": "; ".join(data.sources),
        "match_threshold": card["match_threshold"],
        "cluster_threshold": card["cluster_threshold"],
        "animals_seen_in_training": sorted(seen),
        **identity_metrics(embeddings, data.faces, float(card["match_threshold"])),
        "thresholds_on_this_data": thresholds(np.asarray(embeddings), data.faces),
    }


def identity_confirmations(home: HomeLayout) -> int:
    """How many of the catalog's labelled faces a keeper named in the review app (live identity corrections)."""
    sql = f"SELECT count(*) AS n FROM ({IDENTIFIED_FACES_SQL}) WHERE confirmed"
    return int(query(home, sql).to_pylist()[0]["n"])


def retrain_identity(home: HomeLayout, config: IdentityConfig, progress: Progress | None = None) -> dict[str, Any]:
    """Train a new version of the configured identity net on the catalog's identities (keepers' namings included),
    measure it and the version in use on the new version's held-out animals that the version in use never trained on,
    and store it promoted only when it is not worse there."""
    name = config.model.partition("@")[0]
    current = stored_card(home, KIND, name)
    if current is None:
        raise TrainingDataError(
            f"there is no identity model {name!r} in the store to compare with; train one with 'breedwatch train "
            "identity'"
        )
    data = labelled_data(home, config.train, [], [])
    parts = split_faces(data, config.train)
    model, card = fit_identity(config, name, data, progress)
    trained_on = set(current.get("split", {}).get("train", []))
    compared = [face for face in parts["test"] or parts["validation"] if face.animal_id not in trained_on]
    in_use, in_use_card = load_identity_model(home, model_label(current))
    before = identity_metrics(
        embed_faces(in_use, compared, int(in_use_card["input_size"])), compared, float(current["match_threshold"])
    )
    after = identity_metrics(
        embed_faces(model, compared, int(card["input_size"])), compared, float(card["match_threshold"])
    )
    held_out = sorted({face.animal_id for face in compared})
    promotion = promotion_decision(KIND, model_label(current), before, after, held_out)
    used = {"identity_confirmations": identity_confirmations(home)}
    return store_identity(home, model, {**card, "promotion": promotion, "corrections_used": used})
