"""One repeat of the bench: the pipeline, the naive way and the bound on a fresh home, the audio path again in further
rounds, and the comparison of their results."""

from __future__ import annotations

import resource
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from schemas.bench import BenchOptions
from schemas.config import Settings
from tasks.bench.audio import drop_segments
from tasks.bench.bound import bound_audio, bound_detect, bound_gender, fastest
from tasks.bench.checks import compare
from tasks.bench.image import classified_crops
from tasks.bench.naive import run_naive
from tasks.bench.scratch import AUDIO_STAGES, IMAGE_STAGES, prepare_scratch, time_pipeline
from tasks.faces import KEEPER_FOLDER, drop_media


@dataclass
class Repeat:
    """Samples of seconds per timed part of each way (one per way, the audio pipeline and bound one per round), the
    bound's seconds of each net in each way it tried (precision, layout), and the results compared, of one repeat."""

    image: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    audio: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    ways: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    counts: dict[str, float] = field(default_factory=dict)


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
