"""The bench's image path: the pipeline's detected boxes and classified crops, and the naive way (per-image
facenet-pytorch MTCNN.detect, per-face fp32 gender net in default layout)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from facenet_pytorch import MTCNN
from PIL import Image

from models.bench.checks import Box
from models.faces import STAGES, crop_face, relative_box
from models.gender import calibrated_probs, gender_net_from_state, preprocess
from schemas.tables import FACES, GENDER_PREDICTIONS
from tasks.bench.scratch import GENDER_MODEL, Scratch, lake_rows, timed
from tasks.faces import HUMAN_PRESET, KEEPER_FOLDER, open_upright
from tasks.gender_training import KIND as GENDER_KIND
from tasks.model_store import load_detector, load_model


def pipeline_boxes(scratch: Scratch) -> dict[str, list[Box]]:
    """The pipeline's detected face boxes per scene image (relative x, y, w, h)."""
    rows = lake_rows(scratch, FACES, "faces", ["media_id", "source", "bbox_x", "bbox_y", "bbox_w", "bbox_h"])
    boxes: dict[str, list[Box]] = {}
    for row in rows:
        if row["source"] == "detector":
            boxes.setdefault(row["media_id"], []).append((row["bbox_x"], row["bbox_y"], row["bbox_w"], row["bbox_h"]))
    return boxes


def classified_crops(scratch: Scratch) -> dict[str, Path]:
    """Crop file of every face the pipeline's gender stage classified."""
    faces = {r["face_id"]: r["crop_path"] for r in lake_rows(scratch, FACES, "faces", ["face_id", "crop_path"])}
    predicted = lake_rows(scratch, GENDER_PREDICTIONS, "gender", ["face_id"])
    return {row["face_id"]: scratch.layout.root / faces[row["face_id"]] for row in predicted}


def naive_detect(
    scratch: Scratch, images: list[dict[str, Any]], device: torch.device
) -> tuple[float, dict[str, list[Box]]]:
    """Decode, facenet-pytorch MTCNN.detect one image at a time and crop each face, as a user's loop would."""
    mtcnn = naive_mtcnn(scratch, device)
    config = scratch.settings.faces
    boxes: dict[str, list[Box]] = {}

    def loop() -> None:
        for row in images:
            image = open_upright(scratch.drop_dir / row["path"])
            if row["path"].startswith(KEEPER_FOLDER):
                crop_face(
                    image, (0.0, 0.0, float(image.width), float(image.height)), None, 0.0, config.crop_size, False
                )
                continue
            found, _ = mtcnn.detect(image)
            for box in found if found is not None else []:
                crop_face(image, tuple(float(v) for v in box), None, config.margin, config.crop_size, False)
                boxes.setdefault(row["media_id"], []).append(
                    relative_box(tuple(float(v) for v in box), image.width, image.height)
                )

    seconds, _ = timed(loop)
    return seconds, boxes


def naive_mtcnn(scratch: Scratch, device: torch.device) -> MTCNN:
    """facenet-pytorch's MTCNN as shipped (its own cascade, one image per call) with the pipeline's detector: the human
    preset, or the stored detector's P-, R- and O-Net weights, thresholds, smallest face and pyramid factor."""
    detector = scratch.settings.faces.detector
    if detector == HUMAN_PRESET:
        return MTCNN(keep_all=True, device=device).eval()
    state, card = load_detector(scratch.layout, detector)
    mtcnn = MTCNN(
        keep_all=True,
        thresholds=list(card["thresholds"]),
        min_face_size=int(card["min_face_size"]),
        factor=float(card["factor"]),
        device=device,
    )
    for stage in STAGES:
        getattr(mtcnn, stage).load_state_dict(state[stage])
    return mtcnn.eval()


def load_crop(path: Path, size: int) -> torch.Tensor:
    """One stored crop as the classifier's normalised input."""
    with Image.open(path) as image:
        return preprocess(image, size)


def naive_gender(scratch: Scratch, crops: dict[str, Path], device: torch.device) -> tuple[float, dict[str, float]]:
    """P(male) of each crop, decoded and classified one face at a time by the fp32 net in default (contiguous)
    layout."""
    state, card = load_model(scratch.layout, GENDER_KIND, GENDER_MODEL)
    model = gender_net_from_state(state, card["arch"], int(card["input_size"])).to(device)
    probabilities: dict[str, float] = {}

    def loop() -> None:
        for face_id, path in crops.items():
            x = load_crop(path, model.input_size).unsqueeze(0).to(device)
            with torch.inference_mode():
                probabilities[face_id] = float(calibrated_probs(model, model(x).float().cpu())[0])

    seconds, _ = timed(loop)
    return seconds, probabilities
