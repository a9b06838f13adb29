"""The gender stage: calibrated P(male) for every usable face crop of a drop, batched on the best device, plus
Grad-CAM."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from models.execution import Way
from models.gender import (
    calibrated_probs,
    crop_pixels,
    folded_copy,
    grad_cam,
    gradcam_sample,
    normalised_pixels,
    predict_logits,
    prediction_rows,
    preprocess,
)
from models.training import POSITIVE_AT
from reports.plots import heatmap_overlay
from schemas.config import GenderConfig, IdentityConfig, Settings
from schemas.home import HomeLayout
from schemas.tables import FACES, GENDER_PREDICTIONS
from tasks.devices import choose_device, cpu_threads, halve_on_oom
from tasks.execution import resolve_execution, way_of
from tasks.faces import STAGE as FACES_STAGE_NAME
from tasks.gender_training import KIND, load_gender_model
from tasks.lake import read_marker, read_part, write_bytes_atomic, write_rows
from tasks.model_store import NO_MODEL_LABEL, label_in_use
from tasks.prefetch import prefetched_batches
from tasks.quantized import int8_crop_net
from tasks.stages import NO_MODEL, Computed, DropStage, StageRun

STAGE = "gender"
GENDER_VERSION = "1"
MIN_FACES_PER_WORKER = 64


class CropDataset(Dataset):
    """Face crops on disk as size x size x 3 uint8 pixels (normalised a batch at a time on the device), decoded in
    DataLoader workers on CUDA."""

    def __init__(self, paths: list[Path], size: int) -> None:
        """Remember the crop files and the classifier's input size."""
        self.paths, self.size = paths, size

    def __len__(self) -> int:
        """Number of crops."""
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        """One crop's size x size x 3 uint8 pixels."""
        with Image.open(self.paths[index]) as image:
            return crop_pixels(image, self.size)


def usable_faces(home: HomeLayout, drop_id: str) -> list[dict[str, Any]]:
    """Faces of a drop that passed the quality gate, from its committed faces part."""
    part = home.part(FACES.name, FACES.partition, drop_id, "faces")
    if not part.exists():
        return []
    columns = ["face_id", "media_id", "animal_id", "source", "crop_path", "excluded"]
    return [row for row in read_part(part, FACES, columns).to_pylist() if not row["excluded"] and row["crop_path"]]


def model_in_use(home: HomeLayout, config: GenderConfig) -> str:
    """The name@vN the configured gender model resolves to, or 'none' when none is stored."""
    return label_in_use(home, KIND, config.model)


def depends(home: HomeLayout, settings: Settings) -> str:
    """What the predictions of a drop depend on besides its faces: the model version and the Grad-CAM sample size."""
    return f"{model_in_use(home, settings.gender)}:{settings.gender.gradcam_faces}"


def crop_batches(
    paths: list[Path], size: int, config: GenderConfig | IdentityConfig, device: torch.device, batch_size: int
) -> Iterator[torch.Tensor]:
    """Batches of crops, decoded by worker processes on CUDA when the drop is large enough to repay starting them, else
    by a thread one batch ahead of the forward passes on CUDA and in turn on the CPU (where the net, not decoding, is
    the bottleneck: starting two workers cost 10 s against 0.3 s of decoding 178 crops on a 2-core server)."""
    large = len(paths) >= MIN_FACES_PER_WORKER * max(config.loader_workers, 1)
    workers = config.loader_workers if device.type == "cuda" and large else 0
    if not workers:
        yield from prefetched_batches(
            CropDataset(paths, size).__getitem__, range(len(paths)), batch_size, device.type == "cuda"
        )
        return
    loader = DataLoader(
        CropDataset(paths, size),
        batch_size=batch_size,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        multiprocessing_context="forkserver" if workers else None,
    )
    yield from loader


def over_crop_batches(
    model: torch.nn.Module,
    paths: list[Path],
    config: GenderConfig | IdentityConfig,
    advance: Callable[[], None],
    run_batch: Callable[[torch.nn.Module, torch.Tensor, torch.device, Way], list[Any]],
    quantized: Callable[[torch.nn.Module], torch.nn.Module] | None = None,
) -> list[Any]:
    """run_batch's results for every crop, in batches on the chosen device in the configured way (precision, layout,
    batch size, threads), by the net with BatchNorm folded into its convolutions, made int8 by `quantized` when the
    way is int8 (a batch that runs out of GPU memory is halved); one result per crop, in order."""
    device = choose_device(config.device)
    way = way_of(config, device)
    folded = folded_copy(model)
    if way.precision == "int8":
        if quantized is None:
            raise ValueError("precision 'int8' is offered for the gender net and CGANet only")
        folded = quantized(folded)
    results: list[Any] = []
    with cpu_threads(device, way.threads):
        for batch in crop_batches(paths, model.input_size, config, device, way.batch_size):
            results += halve_on_oom(lambda part: run_batch(folded, part, device, way), batch)
            for _ in range(len(batch)):
                advance()
    return results


def predict_p_male(
    model: torch.nn.Module,
    paths: list[Path],
    config: GenderConfig,
    advance: Callable[[], None],
    quantized: Callable[[torch.nn.Module], torch.nn.Module] | None = None,
) -> list[float]:
    """Calibrated P(male) of each crop, batched on the hardware's way (over_crop_batches; `quantized` makes the
    folded net int8)."""
    return over_crop_batches(model, paths, config, advance, batch_p_male, quantized)


def batch_p_male(model: torch.nn.Module, pixels: torch.Tensor, device: torch.device, way: Way) -> list[float]:
    """Calibrated P(male) of one batch of crops' uint8 pixels, normalised on the device (preprocess's values) and run
    in the given way."""
    logits = predict_logits(
        model, normalised_pixels(pixels.to(device, non_blocking=True)), device, way.precision, way.layout
    )
    return calibrated_probs(model, logits).tolist()


def save_gradcam(home: HomeLayout, drop_id: str, model: Any, row: dict[str, Any]) -> str:
    """Grad-CAM of one face for its predicted class, blended over the crop and stored as PNG; its home-relative path."""
    with Image.open(home.root / row["crop_path"]) as crop:
        image = crop.convert("RGB")
    model.float().to("cpu")
    cam = grad_cam(model, preprocess(image, model.input_size), 1 if row["p_male"] >= POSITIVE_AT else 0)
    buffer = io.BytesIO()
    heatmap_overlay(image, cam).save(buffer, format="PNG")
    path = home.lake / "gradcam" / f"drop={drop_id}" / f"{row['face_id']}.png"
    write_bytes_atomic(path, buffer.getvalue())
    return path.relative_to(home.root).as_posix()


def predict_gender_of(run: StageRun) -> Computed:
    """Calibrated P(male) for every usable face of one drop, with Grad-CAM for a sample; nothing without a model."""
    home, drop_id = run.home, run.drop_id
    config, faces = run.settings.gender, usable_faces(home, drop_id)
    if model_in_use(home, config) == NO_MODEL_LABEL:
        write_rows(home, GENDER_PREDICTIONS, drop_id, STAGE, [])
        return Computed(
            NO_MODEL, {"gender_predictions": 0}, NO_MODEL_LABEL, f"no gender model '{config.model}' is stored"
        )
    config = resolve_execution(home, run.settings, sections=("gender",)).settings.gender
    model, card = load_gender_model(home, config.model)
    label = card["label"]
    p_male = predict_p_male(
        model,
        [home.root / f["crop_path"] for f in faces],
        config,
        run.advance,
        lambda folded: int8_crop_net(home, KIND, label, folded)[0],
    )
    rows = prediction_rows(faces, p_male, drop_id, run.run_id, label)
    crops = {face["face_id"]: face["crop_path"] for face in faces}
    for row in gradcam_sample(rows, config.gradcam_faces):
        row["gradcam_path"] = save_gradcam(home, drop_id, model, {**row, "crop_path": crops[row["face_id"]]})
    write_rows(home, GENDER_PREDICTIONS, drop_id, STAGE, rows)
    return Computed("predicted", {"gender_predictions": len(rows)}, label)


def committed_usable_faces(home: HomeLayout, drop_id: str, ingested: dict[str, int]) -> int:
    """The gender stage's work total: the usable faces the drop's faces stage committed."""
    marker = read_marker(home, drop_id, FACES_STAGE_NAME) or {"counts": {}}
    return int(marker["counts"].get("faces", 0)) - int(marker["counts"].get("faces_excluded", 0))


GENDER_STAGE = DropStage(
    STAGE, (FACES_STAGE_NAME,), GENDER_VERSION, depends, predict_gender_of, "gender", committed_usable_faces
)
