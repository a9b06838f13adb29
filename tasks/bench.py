"""`breedwatch bench`: the pipeline's image and audio stages against the naive way and the model-only bound, in one process.

On one generated drop (tasks.sample_drop) in a scratch folder, each repeat ingests the drop into a fresh home and times
(a) the pipeline's own stages as the nightly flow runs them (faces, gender, segments, mating), (b) the naive way
(per-image MTCNN.detect, per-face fp32 gender net in default layout, per-segment librosa MFCC and CGANet one segment
at a time) and (c) the model-only bound (the same forward passes on tensors already in memory, at the pipeline's
precision). The audio path takes under half a second, so its pipeline stages and bound are timed `audio_rounds` times
per repeat, each round on a fresh home. The pipeline's stored results are compared with the naive way's. Models are
randomly initialised (weights do not change speed) and nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
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
    median_seconds,
    mating_tolerance,
    mfcc_check,
    rates,
    scale,
    value_check,
)
from models.faces import DetectorSettings, build_mtcnn, crop_face, detect_faces, group_by_size, relative_box
from models.gender import (
    SEED_INPUT_SIZE,
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
from models.precision import resolved_precision
from schemas.config import Settings
from schemas.home import HomeLayout
from schemas.tables import FACES, GENDER_PREDICTIONS, MATING_PREDICTIONS, SEGMENT_FEATURES, SEGMENTS
from tasks.audio import read_span
from tasks.devices import batch_size_on, choose_device, cpu_threads, retain_freed_memory
from tasks.faces import HUMAN_PRESET, KEEPER_FOLDER, detect_drop_faces, drop_media, open_upright
from tasks.gender import predict_drop_gender
from tasks.gender_training import KIND as GENDER_KIND
from tasks.ingest import ingest_drop_dir
from tasks.lake import write_json_atomic
from tasks.mating import KIND as MATING_KIND
from tasks.mating import load_mating_model, predict_drop_mating
from tasks.model_store import load_model, save_checkpoint
from tasks.runs import new_run_id
from tasks.sample_drop import write_sample_drop
from tasks.segments import drop_recordings, segment_drop_audio

GENDER_MODEL = "bench-gender"
MATING_MODEL = "bench-cganet"
EXTRA_SUFFIXES = (".jpg", ".jpeg", ".png")
QUICK_ANIMALS = 4
QUICK_NAIVE_LIMIT = 12


@dataclass(frozen=True)
class BenchOptions:
    """What to bench: drop size and seed, repeats, model sizes (defaults are the production nets), extra photos, frames kept,
    how many images, faces and segments the naive way is timed on (all when None; its rate is scaled to the drop),
    whether an untimed warm-up runs first, and how many times per repeat the audio stages and bound are timed."""

    animals: int = 12
    seed: int = 0
    repeat: int = 3
    gender_size: int = SEED_INPUT_SIZE
    cganet_filters: int = 128
    extra_images: Path | None = None
    frames: int | None = None
    naive_limit: int | None = None
    warmup: bool = True
    audio_rounds: int = 5


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
    """Samples of seconds per timed part of each way (one per way, the audio pipeline and bound one per round), and
    the results compared, of one repeat."""

    image: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    audio: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    counts: dict[str, float] = field(default_factory=dict)


def timed(work: Callable[[], Any]) -> tuple[float, Any]:
    """Wall seconds of one call and what it returned (CUDA work is waited for)."""
    start = time.perf_counter()
    result = work()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def bench_settings(base: Settings, home: Path) -> Settings:
    """The station's settings on a scratch home: human MTCNN preset, the bench's stored models, no Grad-CAM."""
    return base.model_copy(update={
        "home": home,
        "faces": base.faces.model_copy(update={"detector": HUMAN_PRESET}),
        "gender": base.gender.model_copy(update={"model": GENDER_MODEL, "gradcam_faces": 0}),
        "mating": base.mating.model_copy(update={"model": MATING_MODEL}),
    })


def store_models(layout: HomeLayout, options: BenchOptions) -> None:
    """Store a randomly initialised ResNet18 gender net and CGANet (weights do not change speed) in the scratch home."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(options.seed)
        gender = build_gender_net("resnet18", options.gender_size)
    card = {"name": GENDER_MODEL, "arch": "resnet18", "input_size": options.gender_size, "note": "random weights (bench)"}
    save_checkpoint(layout.model_dir(GENDER_KIND, GENDER_MODEL), gender.state_dict(), card)
    mating = build_mating_model(MatingTrainSettings(filters=options.cganet_filters), options.seed)
    save_checkpoint(layout.model_dir(MATING_KIND, MATING_MODEL), mating.state_dict(),
                    {"name": MATING_MODEL, "temperature": 1.0, "note": "random weights (bench)"})


def write_drop(folder: Path, options: BenchOptions) -> Path:
    """The generated sample drop (only its first `frames` camera-trap frames when set), plus any extra photos under images/extra."""
    drop = folder / "bench-drop"
    write_sample_drop(drop, options.seed, options.animals)
    if options.frames is not None:
        for frame in sorted(p for p in (drop / "images").rglob("*") if p.is_file())[options.frames:]:
            frame.unlink()
    if options.extra_images is not None:
        photos = sorted(p for p in options.extra_images.rglob("*") if p.suffix.lower() in EXTRA_SUFFIXES and p.is_file())
        for index, photo in enumerate(photos):
            target = drop / "images" / "extra" / f"{index:04d}{photo.suffix.lower()}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(photo, target)
    return drop


def prepare_scratch(folder: Path, drop_dir: Path, base: Settings, options: BenchOptions) -> Scratch:
    """A fresh home with the bench's models stored and the drop ingested (not timed)."""
    layout = HomeLayout(folder)
    settings = bench_settings(base, folder)
    store_models(layout, options)
    run_id = new_run_id(datetime.now(timezone.utc))
    result = ingest_drop_dir(drop_dir, layout, run_id, settings, lambda: None)
    if result.status == "failed":
        raise ValueError(f"the bench drop could not be ingested: {result.message}")
    return Scratch(layout, drop_dir, result.drop_id, run_id, settings)


IMAGE_STAGES = {"faces": detect_drop_faces, "gender": predict_drop_gender}
AUDIO_STAGES = {"segments": segment_drop_audio, "mating": predict_drop_mating}


def time_pipeline(scratch: Scratch, stages: dict[str, Callable[..., dict[str, Any]]]) -> dict[str, float]:
    """Seconds of each of the given per-drop stages of the nightly flow, run in order on the scratch home."""
    seconds: dict[str, float] = {}
    for name, stage in stages.items():
        seconds[name], result = timed(lambda: stage(scratch.layout, scratch.drop_dir, scratch.drop_id, scratch.run_id, scratch.settings, lambda: None))
        if result["status"] not in ("detected", "predicted", "segmented"):
            raise RuntimeError(f"the {name} stage did not run in the bench ({result['status']}): {result.get('message', '')}")
    return seconds


def lake_rows(scratch: Scratch, spec: Any, stage: str, columns: list[str]) -> list[dict[str, Any]]:
    """Rows of one committed part of the scratch drop."""
    return pq.read_table(scratch.layout.part(spec.name, spec.partition, scratch.drop_id, stage), columns=columns).to_pylist()


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


def naive_detect(scratch: Scratch, images: list[dict[str, Any]], device: torch.device) -> tuple[float, dict[str, list[Box]]]:
    """Decode, facenet-pytorch MTCNN.detect one image at a time and crop each face, as a user's loop would."""
    mtcnn = MTCNN(keep_all=True, device=device).eval()  # facenet-pytorch as shipped: its human preset
    config = scratch.settings.faces
    boxes: dict[str, list[Box]] = {}

    def loop() -> None:
        for row in images:
            image = open_upright(scratch.drop_dir / row["path"])
            if row["path"].startswith(KEEPER_FOLDER):
                crop_face(image, (0.0, 0.0, float(image.width), float(image.height)), None, 0.0, config.crop_size, False)
                continue
            found, _ = mtcnn.detect(image)
            for box in found if found is not None else []:
                crop_face(image, tuple(float(v) for v in box), None, config.margin, config.crop_size, False)
                boxes.setdefault(row["media_id"], []).append(relative_box(tuple(float(v) for v in box), image.width, image.height))

    seconds, _ = timed(loop)
    return seconds, boxes


def load_crop(path: Path, size: int) -> torch.Tensor:
    """One stored crop as the classifier's normalised input."""
    with Image.open(path) as image:
        return preprocess(image, size)


def load_pixels(path: Path, size: int) -> torch.Tensor:
    """One stored crop's uint8 pixels, as the pipeline loads them."""
    with Image.open(path) as image:
        return crop_pixels(image, size)


def naive_gender(scratch: Scratch, crops: dict[str, Path], device: torch.device) -> tuple[float, dict[str, float]]:
    """P(male) of each crop, decoded and classified one face at a time by the fp32 net in default (contiguous) layout."""
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
    call = read_span(scratch.drop_dir / segment["path"], segment["call_start_s"], segment["call_end_s"], scratch.settings.audio.channel_pair)
    return segment_window(call.samples, segment["start_s"] - segment["call_start_s"], segment["end_s"] - segment["call_start_s"])


def naive_audio(scratch: Scratch, segments: list[dict[str, Any]], device: torch.device) -> tuple[dict[str, float], dict[str, np.ndarray], dict[str, float]]:
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
        yield items[start:start + size]


def bound_detect(scratch: Scratch, scenes: list[dict[str, Any]], device: torch.device) -> float:
    """Seconds of batched MTCNN on same-size images already decoded in memory (decoding not timed), threaded as the pipeline."""
    mtcnn = build_mtcnn(DetectorSettings(), None, device)
    by_id = {row["media_id"]: row for row in scenes}
    total = 0.0
    for batch in group_by_size([(row["media_id"], (row["width"], row["height"])) for row in scenes], batch_size_on(device, scratch.settings.faces)):
        arrays = [np.asarray(open_upright(scratch.drop_dir / by_id[key]["path"])) for key in batch]
        with cpu_threads(device, scratch.settings.faces.cpu_threads):
            total += timed(lambda: detect_faces(mtcnn, arrays))[0]
    return total


def bound_gender(scratch: Scratch, crops: list[Path], device: torch.device) -> float:
    """Seconds of the gender net's batched forward passes at the pipeline's precision, batch size and BatchNorm folding
    on crops already in memory as the net's channels_last input."""
    state, card = load_model(scratch.layout, GENDER_KIND, GENDER_MODEL)
    model = folded_copy(gender_net_from_state(state, card["arch"], int(card["input_size"])))
    config = scratch.settings.gender
    precision = resolved_precision(config.precision, device)
    total = 0.0
    for paths in chunks(crops, batch_size_on(device, config)):
        batch = normalised_pixels(torch.stack([load_pixels(path, model.input_size) for path in paths]).to(device))
        total += timed(lambda: predict_logits(model, batch, device, precision))[0]
    return total


def bound_audio(scratch: Scratch, segments: list[dict[str, Any]], device: torch.device) -> dict[str, float]:
    """Seconds of batched torch MFCC on windows in memory and of batched CGANet on features in memory."""
    mfcc = TorchMFCC().to(device)
    model, _ = load_mating_model(scratch.layout, f"{MATING_MODEL}@v1", device)
    seconds = {"mfcc": 0.0, "cganet": 0.0}
    features: list[torch.Tensor] = []
    for batch in chunks(segments, scratch.settings.audio.feature_batch):
        windows = torch.from_numpy(np.stack([read_window(scratch, s) for s in batch])).to(device)
        with torch.inference_mode():
            spent, computed = timed(lambda: mfcc(windows))
        seconds["mfcc"] += spent
        features.append(computed)
    inputs = torch.cat(features) if features else torch.zeros((0, 2, 86, 40), device=device)
    precision = resolved_precision(scratch.settings.mating.precision, device)
    for batch in inputs.split(scratch.settings.mating.batch_size):
        seconds["cganet"] += timed(lambda: predict_segments(model, batch, device, precision).p_success)[0]
    return seconds


# ---------------------------------------------------------------- one repeat and the summary


def stored_results(scratch: Scratch) -> tuple[dict[str, float], dict[str, np.ndarray], dict[str, float]]:
    """The pipeline's committed P(male) per face, MFCC per segment and p_success per segment."""
    p_male = {r["face_id"]: r["p_male"] for r in lake_rows(scratch, GENDER_PREDICTIONS, "gender", ["face_id", "p_male"])}
    rows = lake_rows(scratch, SEGMENT_FEATURES, "segments", ["segment_id", "mfcc"])
    mfcc = {r["segment_id"]: np.asarray(r["mfcc"], np.float32).reshape(2, 86, 40) for r in rows}
    p_success = {r["segment_id"]: r["p_success"] for r in lake_rows(scratch, MATING_PREDICTIONS, "mating", ["segment_id", "p_success"])}
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


def run_naive(scratch: Scratch, images: list[dict[str, Any]], crops: dict[str, Path], segments: list[dict[str, Any]],
              limit: int | None, device: torch.device) -> NaiveRun:
    """The naive way on at most `limit` evenly spread images, faces and segments; times scaled to every item."""
    some_images, some_faces, some_segments = even_sample(images, limit), even_sample(list(crops), limit), even_sample(segments, limit)
    detect_s, boxes = naive_detect(scratch, some_images, device)
    gender_s, p_male = naive_gender(scratch, {face_id: crops[face_id] for face_id in some_faces}, device)
    audio_s, mfcc, p_success = naive_audio(scratch, some_segments, device)
    return NaiveRun(
        image={"detect": scale(detect_s, len(images), len(some_images)), "gender": scale(gender_s, len(crops), len(some_faces))},
        audio={part: scale(value, len(segments), len(some_segments)) for part, value in audio_s.items()},
        boxes=boxes, p_male=p_male, mfcc=mfcc, p_success=p_success,
        sampled={"images": len(some_images), "faces": len(some_faces), "segments": len(some_segments),
                 "scene_media_ids": [r["media_id"] for r in some_images if not r["path"].startswith(KEEPER_FOLDER)]},
    )


def compare(naive: NaiveRun, scratch: Scratch, device: torch.device) -> dict[str, dict[str, Any]]:
    """The pipeline's stored results on the naive way's items against the naive way's."""
    p_male, mfcc, p_success = stored_results(scratch)
    boxes = {key: value for key, value in pipeline_boxes(scratch).items() if key in naive.sampled["scene_media_ids"]}
    return {"boxes": box_check(naive.boxes, boxes),
            "gender": value_check(naive.p_male, {k: p_male[k] for k in naive.p_male if k in p_male}, BF16_PROB_TOLERANCE),
            "mfcc": mfcc_check(naive.mfcc, {k: mfcc[k] for k in naive.mfcc if k in mfcc}),
            "mating": value_check(naive.p_success, {k: p_success[k] for k in naive.p_success if k in p_success},
                                  mating_tolerance(resolved_precision(scratch.settings.mating.precision, device)))}


def audio_round(folder: Path, drop_dir: Path, base: Settings, options: BenchOptions, device: torch.device) -> tuple[dict[str, float], dict[str, float]]:
    """One more sample of the short audio path: seconds of the audio stages and of the audio bound on a fresh home."""
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
    rounds += [audio_round(folder.parent / f"{folder.name}-audio-{index}", drop_dir, base, options, device) for index in range(1, options.audio_rounds)]
    return Repeat(
        image={"pipeline": [image_s], "naive": [naive.image],
               "bound": [{"detect": bound_detect(scratch, scenes, device), "gender": bound_gender(scratch, list(crops.values()), device)}]},
        audio={"pipeline": [stages for stages, _ in rounds], "naive": [naive.audio], "bound": [bound for _, bound in rounds]},
        checks=compare(naive, scratch, device),
        counts={"images": len(images), "scene_images": len(scenes), "faces_classified": len(crops), "segments": len(segments),
                "segment_audio_s": sum(s["end_s"] - s["start_s"] for s in segments), "pipeline_peak_rss_mb": pipeline_rss,
                **{f"naive_{key}": value for key, value in naive.sampled.items() if key != "scene_media_ids"}},
    )


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def describe_device(device: torch.device) -> str:
    """The device in words: the GPU's name, or the CPU model and how many cores torch may use."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        model = names[0] if names else model
    return f"cpu: {model}, {len(os.sched_getaffinity(0))} cores, {torch.get_num_threads()} torch threads"


def way_summary(repeats: list[Repeat], kind: str, items: int) -> dict[str, Any]:
    """Median seconds per way and part over every sample of every repeat, the three rates, the two ratios and the
    number of samples of one path (image or audio)."""
    samples = {way: [sample for r in repeats for sample in getattr(r, kind)[way]] for way in ("pipeline", "naive", "bound")}
    seconds = {way: median_seconds(timings) for way, timings in samples.items()}
    return {**rates(items, seconds), "items": items, "seconds": seconds, "samples": {way: len(t) for way, t in samples.items()}}


def summarise(repeats: list[Repeat], device: torch.device, options: BenchOptions) -> dict[str, Any]:
    """The bench's JSON: device, peak RSS, the image and audio paths, and whether results equal the naive way's."""
    counts, checks = repeats[0].counts, repeats[-1].checks
    image = {**way_summary(repeats, "image", int(counts["images"])), "checks": {k: checks[k] for k in ("boxes", "gender")}}
    audio = way_summary(repeats, "audio", int(counts["segments"]))
    audio = {**audio, "realtime_x": counts["segment_audio_s"] / max(audio["seconds"]["pipeline"]["total"], 1e-9),
             "checks": {k: checks[k] for k in ("mfcc", "mating")}}
    return {
        "device": describe_device(device), "peak_rss_mb": peak_rss_mb(),
        "pipeline_peak_rss_mb": counts["pipeline_peak_rss_mb"],
        "image": image, "audio": audio,
        "results_equal_naive": all(check["passed"] for check in checks.values()),
        "drop": {**{k: v for k, v in counts.items() if k != "pipeline_peak_rss_mb"}, "animals": options.animals, "seed": options.seed},
        "repeats": len(repeats), "audio_rounds": options.audio_rounds, "warmup": options.warmup, "gender_input_size": options.gender_size, "cganet_filters": options.cganet_filters,
        "torch": torch.__version__, "date": datetime.now(timezone.utc).date().isoformat(),
    }


def run_bench(base: Settings, options: BenchOptions, folder: Path, report: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Generate the drop in `folder` and run every repeat there; the summary of the median repeat timings."""
    if options.repeat < 1 or options.audio_rounds < 1:
        raise ValueError(f"repeat and audio rounds must be at least 1, got {options.repeat} and {options.audio_rounds}")
    if options.extra_images is not None and not options.extra_images.is_dir():
        raise ValueError(f"extra images folder {options.extra_images} does not exist")
    device = choose_device(base.faces.device)
    retained = retain_freed_memory(base.runtime.retain_freed_mb)  # before any way runs: all three share the allocator
    report(f"writing a sample drop of {options.animals} animals")
    drop_dir = write_drop(folder, options)
    if options.warmup:
        report(f"warming up on a drop of {QUICK_ANIMALS} animals (untimed)")
        warm_up(folder / "warmup", drop_dir, base, options, device)
    repeats = []
    for index in range(options.repeat):
        report(f"repeat {index + 1} of {options.repeat}: pipeline, naive way, model-only bound")
        repeats.append(run_repeat(folder / f"home-{index}", drop_dir, base, options, device))
    return {**summarise(repeats, device, options), "retain_freed_mb": base.runtime.retain_freed_mb if retained else 0}


def warm_up(folder: Path, drop_dir: Path, base: Settings, options: BenchOptions, device: torch.device) -> None:
    """Run every way once, untimed, on a small drop (the timed drop itself when it is that small already): the
    process's first-call costs (lazy imports, librosa's mel filters: 0.7 s; the nets' first kernels for each input
    size) are paid once per nightly process, not per drop, so no repeat pays them."""
    small = warmup_options(options)
    run_repeat(folder / "home", drop_dir if small == options else write_drop(folder, small), base, replace(small, audio_rounds=1), device)


def warmup_options(options: BenchOptions) -> BenchOptions:
    """The warm-up's drop: the timed drop's cameras, frames and extra photos on 4 animals, so that every way has seen
    every image size (MTCNN's kernels are prepared per pyramid level size: a photo's first detection 10-60 ms slower)."""
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
