"""The bench's scratch homes and its timer: the generated drop, the stored random-weight nets and the station's
detector, the ingested drop, the pipeline's stages timed on it and its committed rows read back."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import torch

from models.gender import build_gender_net
from models.mating_training import MatingTrainSettings, build_mating_model
from schemas.bench import BenchOptions
from schemas.config import FacesConfig, Settings
from schemas.home import HomeLayout
from tasks.faces import FACES_STAGE, HUMAN_PRESET, detector_label
from tasks.gender import GENDER_STAGE
from tasks.gender_training import KIND as GENDER_KIND
from tasks.ingest import ingest_drop_dir
from tasks.mating import KIND as MATING_KIND
from tasks.mating import MATING_STAGE
from tasks.model_store import parse_model_ref, save_checkpoint, version_folder
from tasks.runs import new_run_id
from tasks.sample_drop import write_sample_drop
from tasks.segments import SEGMENTS_STAGE
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
        version_folder(station.detector_dir(name), version),
        version_folder(layout.detector_dir(name), version),
        dirs_exist_ok=True,
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


def store_int8_cache(placement: HomeLayout, layout: HomeLayout) -> None:
    """Copy the placement home's quantized nets (tasks.quantized), so no timed stage quantizes: a station's home keeps
    them from its first night."""
    source = placement.execution_cache.parent / "int8"
    if source.is_dir():
        shutil.copytree(source, layout.execution_cache.parent / "int8", dirs_exist_ok=True)


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
    if options.placement is not None:
        store_int8_cache(HomeLayout(options.placement), layout)
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
