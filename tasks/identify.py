"""The identify stage: a unit-length identity embedding for every usable face of a drop, batched on the way the
hardware runs the identity net fastest (who each face is is decided over the whole home, in tasks/individuals.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from models.identity import embed_pixels
from schemas.config import IdentityConfig, Settings
from schemas.home import HomeLayout
from schemas.tables import FACE_EMBEDDINGS
from tasks.execution import resolve_execution
from tasks.faces import STAGE as FACES_STAGE_NAME
from tasks.gender import committed_usable_faces, over_crop_batches, usable_faces
from tasks.identity_training import KIND, load_identity_model
from tasks.lake import write_rows
from tasks.model_store import NO_MODEL_LABEL, label_in_use
from tasks.stages import NO_MODEL, Computed, DropStage, StageRun

STAGE = "identify"
IDENTIFY_VERSION = "1"


def depends(home: HomeLayout, settings: Settings) -> str:
    """What a drop's embeddings depend on besides its faces: the identity model version."""
    return label_in_use(home, KIND, settings.identity.model)


def embed_crops(
    model: torch.nn.Module, paths: list[Path], config: IdentityConfig, advance: Callable[[], None]
) -> list[list[float]]:
    """The unit-length embedding of each crop, batched on the hardware's way (over_crop_batches)."""
    return over_crop_batches(
        model, paths, config, advance, lambda net, pixels, device, way: embed_pixels(net, pixels, device, way).tolist()
    )


def embed_faces_of(run: StageRun) -> Computed:
    """Identity embeddings of every usable face of one drop; nothing without a stored identity model."""
    home, drop_id = run.home, run.drop_id
    config, faces = run.settings.identity, usable_faces(home, drop_id)
    if label_in_use(home, KIND, config.model) == NO_MODEL_LABEL:
        write_rows(home, FACE_EMBEDDINGS, drop_id, STAGE, [])
        return Computed(
            NO_MODEL, {"face_embeddings": 0}, NO_MODEL_LABEL, f"no identity model '{config.model}' is stored"
        )
    config = resolve_execution(home, run.settings, sections=("identity",)).settings.identity
    model, card = load_identity_model(home, config.model)
    vectors = embed_crops(model, [home.root / face["crop_path"] for face in faces], config, run.advance)
    rows = [
        {
            "face_id": face["face_id"],
            "media_id": face["media_id"],
            "drop_id": drop_id,
            "animal_id": face["animal_id"],
            "source": face["source"],
            "embedding": vector,
            "model_version": card["label"],
            "run_id": run.run_id,
        }
        for face, vector in zip(faces, vectors)
    ]
    write_rows(home, FACE_EMBEDDINGS, drop_id, STAGE, rows)
    return Computed("embedded", {"face_embeddings": len(rows)}, card["label"])


IDENTIFY_STAGE = DropStage(
    STAGE, (FACES_STAGE_NAME,), IDENTIFY_VERSION, depends, embed_faces_of, "identity", committed_usable_faces
)
