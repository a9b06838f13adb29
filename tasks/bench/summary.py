"""The bench's summary: the device in words, medians, rates and ratios of each path over every repeat, the bound's
ways, and the JSON written atomically."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from models.bench.rates import median_seconds, rates
from models.execution import native_bf16
from schemas.bench import BenchOptions
from tasks.bench.repeat import Repeat, peak_rss_mb
from tasks.execution import read_hardware
from tasks.lake import write_json_atomic

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


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    """Write the bench's JSON atomically."""
    write_json_atomic(path, summary)
