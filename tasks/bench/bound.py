"""The bench's model-only bound: the same forward passes on inputs already in memory, in every way the hardware runs
natively, the fastest of them counted."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from models.audio_features import TorchMFCC
from models.execution import LAYOUTS, Way, candidate_precisions
from models.faces import detect_faces, group_by_size
from models.gender import crop_pixels, folded_copy, gender_net_from_state, normalised_pixels, predict_logits
from models.mating_training import predict_segments
from tasks.bench.audio import read_window
from tasks.bench.scratch import GENDER_MODEL, MATING_MODEL, Scratch, timed
from tasks.devices import batch_size_on, cpu_threads
from tasks.execution import read_hardware, way_of
from tasks.faces import load_face_detector, open_upright
from tasks.gender_training import KIND as GENDER_KIND
from tasks.mating import load_mating_model
from tasks.model_store import load_model, model_label
from tasks.quantized import int8_cganet, int8_crop_net


def load_pixels(path: Path, size: int) -> torch.Tensor:
    """One stored crop's uint8 pixels, as the pipeline loads them."""
    with Image.open(path) as image:
        return crop_pixels(image, size)


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Consecutive slices of at most `size` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def bound_detect(scratch: Scratch, scenes: list[dict[str, Any]], device: torch.device) -> float:
    """Seconds of batched MTCNN on same-size images already decoded in memory (decoding not timed), threaded as the
    pipeline."""
    mtcnn = load_face_detector(scratch.layout, scratch.settings.faces).mtcnn
    by_id = {row["media_id"]: row for row in scenes}
    total = 0.0
    for batch in group_by_size(
        [(row["media_id"], (row["width"], row["height"])) for row in scenes],
        batch_size_on(device, scratch.settings.faces),
    ):
        arrays = [np.asarray(open_upright(scratch.drop_dir / by_id[key]["path"])) for key in batch]
        with cpu_threads(device, scratch.settings.faces.cpu_threads):
            total += timed(lambda: detect_faces(mtcnn, arrays))[0]
    return total


def bound_ways(device: torch.device, batch_size: int) -> list[Way]:
    """Every way the bound tries: each precision this hardware runs natively in each layout (int8 too on a CPU), at the
    pipeline's batch size and threads (emulated bf16 on a CPU without AVX512_BF16 or AMX is not a way to run fast)."""
    threads = torch.get_num_threads() if device.type == "cpu" else None
    return [
        Way(precision, layout, batch_size, threads)
        for precision in candidate_precisions(read_hardware(device), int8=True)
        for layout in LAYOUTS
    ]


def fastest(seconds: dict[str, float]) -> float:
    """The bound: the fewest seconds of any way tried."""
    return min(seconds.values())


def bound_gender(scratch: Scratch, crops: list[Path], device: torch.device) -> dict[str, float]:
    """Seconds of the gender net's batched forward passes (BatchNorm folded, as the pipeline runs it) on crops already
    in memory, in each way the hardware offers (label -> seconds)."""
    state, card = load_model(scratch.layout, GENDER_KIND, GENDER_MODEL)
    model = folded_copy(gender_net_from_state(state, card["arch"], int(card["input_size"])))
    cpu = device.type == "cpu"
    quantized = int8_crop_net(scratch.layout, GENDER_KIND, model_label(card), model)[0] if cpu else model
    batch_size = way_of(scratch.settings.gender, device).batch_size
    batches = [
        normalised_pixels(torch.stack([load_pixels(path, model.input_size) for path in paths]).to(device))
        for paths in chunks(crops, batch_size)
    ]
    seconds: dict[str, float] = {}
    for way in bound_ways(device, batch_size):
        net = quantized if way.precision == "int8" else model
        with cpu_threads(device, way.threads):
            seconds[way.label()] = sum(
                timed(lambda: predict_logits(net, batch, device, way.precision, way.layout))[0] for batch in batches
            )
    return seconds


def bound_audio(
    scratch: Scratch, segments: list[dict[str, Any]], device: torch.device
) -> tuple[dict[str, float], dict[str, float]]:
    """Seconds of batched torch MFCC on windows in memory and of batched CGANet on features in memory (the fastest
    way the hardware offers), and CGANet's seconds in each way (label -> seconds)."""
    mfcc = TorchMFCC().to(device)
    model, _ = load_mating_model(scratch.layout, f"{MATING_MODEL}@v1", device)
    seconds = {"mfcc": 0.0}
    features: list[torch.Tensor] = []
    for batch in chunks(segments, scratch.settings.audio.feature_batch):
        windows = torch.from_numpy(np.stack([read_window(scratch, s) for s in batch])).to(device)
        with torch.inference_mode():
            spent, computed = timed(lambda: mfcc(windows))
        seconds["mfcc"] += spent
        features.append(computed)
    inputs = torch.cat(features) if features else torch.zeros((0, 2, 86, 40), device=device)
    batch_size = way_of(scratch.settings.mating, device).batch_size
    ways: dict[str, float] = {}
    quantized = int8_cganet(scratch.layout, f"{MATING_MODEL}@v1", model)[0] if device.type == "cpu" else model
    for way in bound_ways(device, batch_size):
        net = quantized if way.precision == "int8" else model
        with cpu_threads(device, way.threads):
            ways[way.label()] = sum(
                timed(lambda: predict_segments(net, batch, device, way.precision, way.layout).p_success)[0]
                for batch in inputs.split(batch_size)
            )
    return {**seconds, "cganet": fastest(ways)}, ways
