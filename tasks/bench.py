"""`breedwatch bench`: the pipeline's image and audio stages against the naive way and the model-only bound, in one
process.

On one generated drop (tasks.sample_drop) in a scratch folder, each repeat ingests the drop into a fresh home and times
(a) the pipeline's own stages as the nightly flow runs them (faces, gender, segments, mating), (b) the naive way
(per-image MTCNN.detect, per-face fp32 gender net in default layout, per-segment librosa MFCC and CGANet one segment
at a time) and (c) the model-only bound (the same forward passes on tensors already in memory, in the fastest way this
hardware offers: every native precision in each memory layout, each way's rate reported). How the pipeline's nets run
is chosen once before the repeats, as a nightly run chooses it at its start. The audio path takes under half a
second, so its pipeline stages and bound are timed `audio_rounds` times per repeat, each round on a fresh home. The
pipeline's stored results are compared with the naive way's. Models are randomly initialised (weights do not change
speed) and nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import resource
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch
from facenet_pytorch import MTCNN
from PIL import Image

from models.audio_features import TorchMFCC, librosa_mfcc, segment_window
from models.bench_checks import (
    BF16_PROB_TOLERANCE,
    Box,
    box_check,
    even_sample,
    mating_tolerance,
    median_seconds,
    mfcc_check,
    rates,
    scale,
    value_check,
)
from models.execution import LAYOUTS, Way, candidate_precisions, native_bf16
from models.faces import STAGES, crop_face, detect_faces, group_by_size, relative_box
from models.gender import (
    build_gender_net,
    calibrated_probs,
    crop_pixels,
    folded_copy,
    gender_net_from_state,
    normalised_pixels,
    predict_logits,
    preprocess,
)
from models.mating_training import MatingTrainSettings, build_mating_model, predict_segments
from schemas.bench import QUICK_ANIMALS, BenchOptions
from schemas.config import FacesConfig, Settings
from schemas.home import HomeLayout
from schemas.tables import FACES, GENDER_PREDICTIONS, MATING_PREDICTIONS, SEGMENT_FEATURES, SEGMENTS
from tasks.audio import read_span
from tasks.devices import batch_size_on, choose_device, cpu_threads, retain_freed_memory
from tasks.execution import Execution, read_hardware, resolve_execution, way_of
from tasks.faces import (
    FACES_STAGE,
    HUMAN_PRESET,
    KEEPER_FOLDER,
    detector_label,
    drop_media,
    load_face_detector,
    open_upright,
)
from tasks.gender import GENDER_STAGE
from tasks.gender_training import KIND as GENDER_KIND
from tasks.ingest import ingest_drop_dir
from tasks.lake import write_json_atomic
from tasks.mating import KIND as MATING_KIND
from tasks.mating import MATING_STAGE, load_mating_model
from tasks.model_store import load_detector, load_model, parse_model_ref, save_checkpoint
from tasks.runs import new_run_id
from tasks.sample_drop import write_sample_drop
from tasks.segments import SEGMENTS_STAGE, drop_recordings
from tasks.stages import DropStage, run_on_drop

GENDER_MODEL = "bench-gender"
MATING_MODEL = "bench-cganet"
EXTRA_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class Scratch:
    """One repeat's fresh home with the drop ingested, the settings the stages run with, and the run id."""

    layout: HomeLayout
    drop_dir: Path
    drop_id: str
    run_id: str
    settings: Settings


@dataclass
class Repeat:
    """Samples of seconds per timed part of each way (one per way, the audio pipeline and bound one per round), the
    bound's seconds of each net in each way it tried (precision, layout), and the results compared, of one repeat."""

    image: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    audio: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    ways: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    counts: dict[str, float] = field(default_factory=dict)


def timed(work: Callable[[], Any]) -> tuple[float, Any]:
    """Wall seconds of one call and what it returned (CUDA work is waited for)."""
    start = time.perf_counter()
    result = work()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def bench_detector(station: HomeLayout, config: FacesConfig) -> str:
    """The station's configured face detector when its home stores it ('name@vN'), else facenet-pytorch's human
    preset."""
    if config.detector == HUMAN_PRESET:
        return HUMAN_PRESET
    try:
        return detector_label(station, config)
    except (OSError, ValueError):
        return HUMAN_PRESET


def bench_settings(base: Settings, home: Path, detector: str) -> Settings:
    """The station's settings on a scratch home: its detector (or the human preset), the bench's stored models, no
    Grad-CAM."""
    return base.model_copy(
        update={
            "home": home,
            "faces": base.faces.model_copy(update={"detector": detector}),
            "gender": base.gender.model_copy(update={"model": GENDER_MODEL, "gradcam_faces": 0}),
            "mating": base.mating.model_copy(update={"model": MATING_MODEL}),
        }
    )


def store_detector(station: HomeLayout, layout: HomeLayout, detector: str) -> None:
    """Copy the station's stored detector version into the scratch home (nothing for the human preset)."""
    if detector == HUMAN_PRESET:
        return
    name, version = parse_model_ref(detector)
    shutil.copytree(
        station.detector_dir(name) / f"v{version}", layout.detector_dir(name) / f"v{version}", dirs_exist_ok=True
    )


def store_models(layout: HomeLayout, options: BenchOptions) -> None:
    """Store a randomly initialised ResNet18 gender net and CGANet (weights do not change speed) in the scratch home."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(options.seed)
        gender = build_gender_net("resnet18", options.gender_size)
    card = {
        "name": GENDER_MODEL,
        "arch": "resnet18",
        "input_size": options.gender_size,
        "note": "random weights (bench)",
    }
    save_checkpoint(layout.model_dir(GENDER_KIND, GENDER_MODEL), gender.state_dict(), card)
    mating = build_mating_model(MatingTrainSettings(filters=options.cganet_filters), options.seed)
    save_checkpoint(
        layout.model_dir(MATING_KIND, MATING_MODEL),
        mating.state_dict(),
        {"name": MATING_MODEL, "temperature": 1.0, "note": "random weights (bench)"},
    )


def write_drop(folder: Path, options: BenchOptions) -> Path:
    """The generated sample drop (only its first `frames` camera-trap frames when set), plus any extra photos under
    images/extra."""
    drop = folder / "bench-drop"
    write_sample_drop(drop, options.seed, options.animals)
    if options.frames is not None:
        for frame in sorted(p for p in (drop / "images").rglob("*") if p.is_file())[options.frames :]:
            frame.unlink()
    if options.extra_images is not None:
        photos = sorted(
            p for p in options.extra_images.rglob("*") if p.suffix.lower() in EXTRA_SUFFIXES and p.is_file()
        )
        for index, photo in enumerate(photos):
            target = drop / "images" / "extra" / f"{index:04d}{photo.suffix.lower()}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(photo, target)
    return drop


def prepare_scratch(folder: Path, drop_dir: Path, base: Settings, options: BenchOptions) -> Scratch:
    """A fresh home with the bench's models and the station's detector stored and the drop ingested (not timed)."""
    layout = HomeLayout(folder)
    detector = bench_detector(HomeLayout(base.home), base.faces)
    settings = bench_settings(base, folder, detector)
    store_models(layout, options)
    store_detector(HomeLayout(base.home), layout, detector)
    run_id = new_run_id(datetime.now(UTC))
    result = ingest_drop_dir(drop_dir, layout, run_id, settings, lambda: None)
    if result.status == "failed":
        raise ValueError(f"the bench drop could not be ingested: {result.message}")
    return Scratch(layout, drop_dir, result.drop_id, run_id, settings)


IMAGE_STAGES = {"faces": FACES_STAGE, "gender": GENDER_STAGE}
AUDIO_STAGES = {"segments": SEGMENTS_STAGE, "mating": MATING_STAGE}


def time_pipeline(scratch: Scratch, stages: dict[str, DropStage]) -> dict[str, float]:
    """Seconds of each of the given per-drop stages of the nightly flow, run in order on the scratch home."""
    seconds: dict[str, float] = {}
    for name, stage in stages.items():
        seconds[name], result = timed(
            lambda: run_on_drop(
                stage, scratch.layout, scratch.drop_dir, scratch.drop_id, scratch.run_id, scratch.settings
            )
        )
        if result.status not in ("detected", "predicted", "segmented"):
            raise RuntimeError(f"the {name} stage did not run in the bench ({result.status}): {result.message}")
    return seconds


def lake_rows(scratch: Scratch, spec: Any, stage: str, columns: list[str]) -> list[dict[str, Any]]:
    """Rows of one committed part of the scratch drop."""
    return pq.read_table(
        scratch.layout.part(spec.name, spec.partition, scratch.drop_id, stage), columns=columns
    ).to_pylist()


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


# ---------------------------------------------------------------- the naive way


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


def load_pixels(path: Path, size: int) -> torch.Tensor:
    """One stored crop's uint8 pixels, as the pipeline loads them."""
    with Image.open(path) as image:
        return crop_pixels(image, size)


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


def drop_segments(scratch: Scratch) -> list[dict[str, Any]]:
    """The pipeline's segment windows with their recording path and call span."""
    paths = {row["media_id"]: row["path"] for row in drop_recordings(scratch.layout, scratch.drop_id)}
    columns = ["segment_id", "media_id", "start_s", "end_s", "call_start_s", "call_end_s"]
    return [{**row, "path": paths[row["media_id"]]} for row in lake_rows(scratch, SEGMENTS, "segments", columns)]


def read_window(scratch: Scratch, segment: dict[str, Any]) -> np.ndarray:
    """One segment's peak-normalised (2, 88200) window, read from its call as the pipeline reads it."""
    call = read_span(
        scratch.drop_dir / segment["path"],
        segment["call_start_s"],
        segment["call_end_s"],
        scratch.settings.audio.channel_pair,
    )
    return segment_window(
        call.samples, segment["start_s"] - segment["call_start_s"], segment["end_s"] - segment["call_start_s"]
    )


def naive_audio(
    scratch: Scratch, segments: list[dict[str, Any]], device: torch.device
) -> tuple[dict[str, float], dict[str, np.ndarray], dict[str, float]]:
    """Per segment: read, librosa MFCC, then CGANet on that one segment; seconds of each part and the results."""
    model, _ = load_mating_model(scratch.layout, f"{MATING_MODEL}@v1", device)
    features: dict[str, np.ndarray] = {}
    p_success: dict[str, float] = {}
    seconds = {"mfcc": 0.0, "cganet": 0.0}
    for segment in segments:
        spent, features[segment["segment_id"]] = timed(lambda: librosa_mfcc(read_window(scratch, segment)))
        seconds["mfcc"] += spent
        x = torch.from_numpy(features[segment["segment_id"]][None]).to(device)
        with torch.inference_mode():
            spent, output = timed(lambda: model(x).p_success.float().cpu())
        seconds["cganet"] += spent
        p_success[segment["segment_id"]] = float(output[0])
    return seconds, features, p_success


# ---------------------------------------------------------------- the model-only bound


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
    """Every way the bound tries: each precision this hardware runs natively in each layout, at the pipeline's batch
    size and threads (emulated bf16 on a CPU without AVX512_BF16 or AMX is not a way to run fast)."""
    threads = torch.get_num_threads() if device.type == "cpu" else None
    return [
        Way(precision, layout, batch_size, threads)
        for precision in candidate_precisions(read_hardware(device))
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
    batch_size = way_of(scratch.settings.gender, device).batch_size
    batches = [
        normalised_pixels(torch.stack([load_pixels(path, model.input_size) for path in paths]).to(device))
        for paths in chunks(crops, batch_size)
    ]
    seconds: dict[str, float] = {}
    for way in bound_ways(device, batch_size):
        with cpu_threads(device, way.threads):
            seconds[way.label()] = sum(
                timed(lambda: predict_logits(model, batch, device, way.precision, way.layout))[0] for batch in batches
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
    for way in bound_ways(device, batch_size):
        with cpu_threads(device, way.threads):
            ways[way.label()] = sum(
                timed(lambda: predict_segments(model, batch, device, way.precision, way.layout).p_success)[0]
                for batch in inputs.split(batch_size)
            )
    return {**seconds, "cganet": fastest(ways)}, ways


# ---------------------------------------------------------------- one repeat and the summary


def stored_results(scratch: Scratch) -> tuple[dict[str, float], dict[str, np.ndarray], dict[str, float]]:
    """The pipeline's committed P(male) per face, MFCC per segment and p_success per segment."""
    p_male = {
        r["face_id"]: r["p_male"] for r in lake_rows(scratch, GENDER_PREDICTIONS, "gender", ["face_id", "p_male"])
    }
    rows = lake_rows(scratch, SEGMENT_FEATURES, "segments", ["segment_id", "mfcc"])
    mfcc = {r["segment_id"]: np.asarray(r["mfcc"], np.float32).reshape(2, 86, 40) for r in rows}
    p_success = {
        r["segment_id"]: r["p_success"]
        for r in lake_rows(scratch, MATING_PREDICTIONS, "mating", ["segment_id", "p_success"])
    }
    return p_male, mfcc, p_success


@dataclass(frozen=True)
class NaiveRun:
    """The naive way's seconds per part (scaled up from its sample to the whole drop) and its results."""

    image: dict[str, float]
    audio: dict[str, float]
    boxes: dict[str, list[Box]]
    p_male: dict[str, float]
    mfcc: dict[str, np.ndarray]
    p_success: dict[str, float]
    sampled: dict[str, int]


def run_naive(
    scratch: Scratch,
    images: list[dict[str, Any]],
    crops: dict[str, Path],
    segments: list[dict[str, Any]],
    limit: int | None,
    device: torch.device,
) -> NaiveRun:
    """The naive way on at most `limit` evenly spread images, faces and segments; times scaled to every item."""
    some_images, some_faces, some_segments = (
        even_sample(images, limit),
        even_sample(list(crops), limit),
        even_sample(segments, limit),
    )
    detect_s, boxes = naive_detect(scratch, some_images, device)
    gender_s, p_male = naive_gender(scratch, {face_id: crops[face_id] for face_id in some_faces}, device)
    audio_s, mfcc, p_success = naive_audio(scratch, some_segments, device)
    return NaiveRun(
        image={
            "detect": scale(detect_s, len(images), len(some_images)),
            "gender": scale(gender_s, len(crops), len(some_faces)),
        },
        audio={part: scale(value, len(segments), len(some_segments)) for part, value in audio_s.items()},
        boxes=boxes,
        p_male=p_male,
        mfcc=mfcc,
        p_success=p_success,
        sampled={
            "images": len(some_images),
            "faces": len(some_faces),
            "segments": len(some_segments),
            "scene_media_ids": [r["media_id"] for r in some_images if not r["path"].startswith(KEEPER_FOLDER)],
        },
    )


def compare(naive: NaiveRun, scratch: Scratch, device: torch.device) -> dict[str, dict[str, Any]]:
    """The pipeline's stored results on the naive way's items against the naive way's."""
    p_male, mfcc, p_success = stored_results(scratch)
    boxes = {key: value for key, value in pipeline_boxes(scratch).items() if key in naive.sampled["scene_media_ids"]}
    return {
        "boxes": box_check(naive.boxes, boxes),
        "gender": value_check(naive.p_male, {k: p_male[k] for k in naive.p_male if k in p_male}, BF16_PROB_TOLERANCE),
        "mfcc": mfcc_check(naive.mfcc, {k: mfcc[k] for k in naive.mfcc if k in mfcc}),
        "mating": value_check(
            naive.p_success,
            {k: p_success[k] for k in naive.p_success if k in p_success},
            mating_tolerance(way_of(scratch.settings.mating, device).precision),
        ),
    }


def audio_round(
    folder: Path, drop_dir: Path, base: Settings, options: BenchOptions, device: torch.device
) -> tuple[dict[str, float], tuple[dict[str, float], dict[str, float]]]:
    """One more sample of the short audio path: seconds of the audio stages and of the audio bound (with CGANet's
    seconds per way) on a fresh home."""
    scratch = prepare_scratch(folder, drop_dir, base, options)
    pipeline = time_pipeline(scratch, AUDIO_STAGES)
    return pipeline, bound_audio(scratch, drop_segments(scratch), device)


def run_repeat(folder: Path, drop_dir: Path, base: Settings, options: BenchOptions, device: torch.device) -> Repeat:
    """Pipeline, naive way and bound on a fresh home, with the comparisons of their results; the audio stages and bound
    again on a fresh home for each further audio round."""
    scratch = prepare_scratch(folder, drop_dir, base, options)
    image_s, audio_s = time_pipeline(scratch, IMAGE_STAGES), time_pipeline(scratch, AUDIO_STAGES)
    pipeline_rss = peak_rss_mb()
    images = drop_media(scratch.layout, scratch.drop_id)
    scenes = [row for row in images if not row["path"].startswith(KEEPER_FOLDER)]
    crops, segments = classified_crops(scratch), drop_segments(scratch)
    naive = run_naive(scratch, images, crops, segments, options.naive_limit, device)
    rounds = [(audio_s, bound_audio(scratch, segments, device))]
    rounds += [
        audio_round(folder.parent / f"{folder.name}-audio-{index}", drop_dir, base, options, device)
        for index in range(1, options.audio_rounds)
    ]
    gender_ways = bound_gender(scratch, list(crops.values()), device)
    return Repeat(
        image={
            "pipeline": [image_s],
            "naive": [naive.image],
            "bound": [{"detect": bound_detect(scratch, scenes, device), "gender": fastest(gender_ways)}],
        },
        audio={
            "pipeline": [stages for stages, _ in rounds],
            "naive": [naive.audio],
            "bound": [bound for _, (bound, _) in rounds],
        },
        ways={"gender": [gender_ways], "cganet": [ways for _, (_, ways) in rounds]},
        checks=compare(naive, scratch, device),
        counts={
            "images": len(images),
            "scene_images": len(scenes),
            "faces_classified": len(crops),
            "segments": len(segments),
            "segment_audio_s": sum(s["end_s"] - s["start_s"] for s in segments),
            "pipeline_peak_rss_mb": pipeline_rss,
            **{f"naive_{key}": value for key, value in naive.sampled.items() if key != "scene_media_ids"},
        },
    )


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


RELEVANT_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")


def describe_device(device: torch.device) -> str:
    """The device in words: the GPU's name, or the CPU model, its vector and bf16 flags and torch's threads."""
    hardware = read_hardware(device)
    if device.type == "cuda":
        return f"cuda: {hardware.gpu_name} (compute {hardware.gpu_capability})"
    flags = " ".join(flag for flag in RELEVANT_FLAGS if flag in hardware.cpu_flags) or "no AVX2"
    return (
        f"cpu: {hardware.cpu_model} ({flags}; torch dispatch {hardware.cpu_capability}"
        f"{', oneDNN capped at ' + hardware.onednn_max_isa if hardware.onednn_max_isa else ''}; "
        f"{'native' if native_bf16(hardware) else 'no native'} bf16), {hardware.cores} cores, "
        f"{torch.get_num_threads()} torch threads"
    )


def ways_summary(repeats: list[Repeat], net: str, items: int) -> dict[str, Any]:
    """Items per second of one net in each way the bound tried (medians over every sample), and the best rate of each
    precision."""
    samples = [sample for r in repeats for sample in r.ways.get(net, [])]
    if not samples:
        return {"ways": {}, "precisions": {}}
    per_s = {label: items / max(value, 1e-9) for label, value in median_seconds(samples).items() if label != "total"}
    precisions: dict[str, float] = {}
    for label, rate in per_s.items():
        precision = label.split()[0]
        precisions[precision] = max(rate, precisions.get(precision, 0.0))
    return {"ways": per_s, "precisions": precisions}


def way_summary(repeats: list[Repeat], kind: str, items: int) -> dict[str, Any]:
    """Median seconds per way and part over every sample of every repeat, the three rates, the two ratios and the
    number of samples of one path (image or audio)."""
    samples = {
        way: [sample for r in repeats for sample in getattr(r, kind)[way]] for way in ("pipeline", "naive", "bound")
    }
    seconds = {way: median_seconds(timings) for way, timings in samples.items()}
    return {
        **rates(items, seconds),
        "items": items,
        "seconds": seconds,
        "samples": {way: len(t) for way, t in samples.items()},
    }


def summarise(repeats: list[Repeat], device: torch.device, options: BenchOptions) -> dict[str, Any]:
    """The bench's JSON: device, peak RSS, the image and audio paths, and whether results equal the naive way's."""
    counts, checks = repeats[0].counts, repeats[-1].checks
    image = {
        **way_summary(repeats, "image", int(counts["images"])),
        "checks": {k: checks[k] for k in ("boxes", "gender")},
        "bound_gender": ways_summary(repeats, "gender", int(counts["faces_classified"])),
    }
    audio = way_summary(repeats, "audio", int(counts["segments"]))
    audio = {
        **audio,
        "realtime_x": counts["segment_audio_s"] / max(audio["seconds"]["pipeline"]["total"], 1e-9),
        "checks": {k: checks[k] for k in ("mfcc", "mating")},
        "bound_cganet": ways_summary(repeats, "cganet", int(counts["segments"])),
    }
    return {
        "device": describe_device(device),
        "peak_rss_mb": peak_rss_mb(),
        "pipeline_peak_rss_mb": counts["pipeline_peak_rss_mb"],
        "image": image,
        "audio": audio,
        "results_equal_naive": all(check["passed"] for check in checks.values()),
        "drop": {
            **{k: v for k, v in counts.items() if k != "pipeline_peak_rss_mb"},
            "animals": options.animals,
            "seed": options.seed,
        },
        "repeats": len(repeats),
        "audio_rounds": options.audio_rounds,
        "warmup": options.warmup,
        "gender_input_size": options.gender_size,
        "cganet_filters": options.cganet_filters,
        "torch": torch.__version__,
        "date": datetime.now(UTC).date().isoformat(),
    }


def run_bench(
    base: Settings, options: BenchOptions, folder: Path, report: Callable[[str], None] = lambda _: None
) -> dict[str, Any]:
    """Generate the drop in `folder` and run every repeat there; the summary of the median repeat timings."""
    if options.repeat < 1 or options.audio_rounds < 1:
        raise ValueError(f"repeat and audio rounds must be at least 1, got {options.repeat} and {options.audio_rounds}")
    if options.extra_images is not None and not options.extra_images.is_dir():
        raise ValueError(f"extra images folder {options.extra_images} does not exist")
    device = choose_device(base.faces.device)
    retained = retain_freed_memory(base.runtime.retain_freed_mb)  # before any way runs: all three share the allocator
    report(f"writing a sample drop of {options.animals} animals")
    drop_dir = write_drop(folder, options)
    report("choosing how the nets run on this machine (measured once, not timed)")
    execution = place_nets(folder / "placement", base, options)
    for line in execution.lines():
        report(f"  {line}")
    base = base.model_copy(update={"gender": execution.settings.gender, "mating": execution.settings.mating})
    if options.warmup:
        report(f"warming up on a drop of {QUICK_ANIMALS} animals (untimed)")
        warm_up(folder / "warmup", drop_dir, base, options, device)
    repeats = []
    for index in range(options.repeat):
        report(f"repeat {index + 1} of {options.repeat}: pipeline, naive way, model-only bound")
        repeats.append(run_repeat(folder / f"home-{index}", drop_dir, base, options, device))
    return {
        **summarise(repeats, device, options),
        "retain_freed_mb": base.runtime.retain_freed_mb if retained else 0,
        "execution": execution.lines(),
    }


def place_nets(folder: Path, base: Settings, options: BenchOptions) -> Execution:
    """How the bench's nets run on this machine, chosen once on a placement home as the nightly run chooses at its start
    (what the station's settings leave to 'auto' is measured there), for every repeat."""
    layout = HomeLayout(folder)
    store_models(layout, options)
    return resolve_execution(layout, bench_settings(base, folder, HUMAN_PRESET))


def warm_up(folder: Path, drop_dir: Path, base: Settings, options: BenchOptions, device: torch.device) -> None:
    """Run every way once, untimed, on a small drop (the timed drop itself when it is that small already): the
    process's first-call costs (lazy imports, librosa's mel filters: 0.7 s; the nets' first kernels for each input
    size) are paid once per nightly process, not per drop, so no repeat pays them."""
    small = warmup_options(options)
    run_repeat(
        folder / "home",
        drop_dir if small == options else write_drop(folder, small),
        base,
        replace(small, audio_rounds=1),
        device,
    )


def warmup_options(options: BenchOptions) -> BenchOptions:
    """The warm-up's drop: the timed drop's cameras, frames and extra photos on 4 animals, so that every way has seen
    every image size (MTCNN's kernels are prepared per pyramid level size: a photo's first detection 10-60 ms
    slower)."""
    return replace(options, animals=QUICK_ANIMALS)


@contextlib.contextmanager
def bench_folder(workdir: Path | None) -> Iterator[Path]:
    """The scratch folder: a new temporary one removed afterwards, or the given one (new or empty), kept."""
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="breedwatch-bench-") as folder:
            yield Path(folder)
        return
    if workdir.exists() and any(workdir.iterdir()):
        raise ValueError(f"bench folder {workdir} is not empty; give a new or empty folder")
    workdir.mkdir(parents=True, exist_ok=True)
    yield workdir


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    """Write the bench's JSON atomically."""
    write_json_atomic(path, summary)
