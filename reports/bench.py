"""Terminal renderings of `breedwatch bench`: the throughput table and the equality statements."""

from __future__ import annotations

from typing import Any

from rich.table import Table

WAYS = (("pipeline", "pipeline (nightly stages)"), ("naive", "naive way"), ("bound", "model-only bound"))
UNITS = {"image": "images/s", "audio": "segments/s"}


def seconds_text(parts: dict[str, float]) -> str:
    """Median seconds of each timed part, e.g. 'faces 3.1 + gender 1.2'."""
    return " + ".join(f"{name} {value:.2f}" for name, value in parts.items() if name != "total")


def bench_table(summary: dict[str, Any]) -> Table:
    """One row per path and way: items per second, median seconds by part, the pipeline's ratio to it."""
    table = Table(title=f"breedwatch bench on {summary['device']} ({summary['repeats']} repeat(s), medians)")
    for column in ("path", "way", "rate", "seconds (median, by part)", "pipeline / this"):
        table.add_column(column, justify="right" if column in ("rate", "pipeline / this") else "left")
    for path in ("image", "audio"):
        result = summary[path]
        for way, label in WAYS:
            ratio = {"pipeline": "1.00", "naive": f"{result['vs_naive']:.2f}", "bound": f"{result['vs_bound']:.2f}"}[
                way
            ]
            table.add_row(
                path, label, f"{result[f'{way}_per_s']:.2f} {UNITS[path]}", seconds_text(result["seconds"][way]), ratio
            )
    return table


def check_lines(summary: dict[str, Any]) -> list[str]:
    """One sentence per comparison of the pipeline's results with the naive way's (one over nothing fails)."""
    image, audio = summary["image"]["checks"], summary["audio"]["checks"]
    boxes, gender, mfcc, mating = image["boxes"], image["gender"], audio["mfcc"], audio["mating"]
    iou = (
        "no face found by either way, so nothing was compared (add photos with --extra-images, or configure a "
        "trained detector)"
        if boxes["min_iou"] is None
        else f"lowest IoU {boxes['min_iou']:.4f} (must be above {boxes['threshold']})"
    )
    return [
        f"face boxes: {boxes['boxes_pipeline']} by the pipeline, {boxes['boxes_naive']} by per-image MTCNN on "
        f"{boxes['images']} images; {iou}: {verdict(boxes['passed'])}",
        f"gender: {gender['n']} faces, largest |P(male) batched in the chosen way - fp32 one at a time| "
        f"{gender['max_abs_diff']:.2e} (tolerance {gender['tolerance']}{of_precision(gender)}): "
        f"{verdict(gender['passed'])}",
        f"MFCC: {mfcc['n']} segments, largest relative error of torch against librosa {mfcc['max_relative_error']:.2e} "
        f"(tolerance {mfcc['tolerance']}): {verdict(mfcc['passed'])}",
        f"mating: {mating['n']} segments, largest |p_success batched - one at a time on librosa MFCC| "
        f"{mating['max_abs_diff']:.2e} (tolerance {mating['tolerance']}{of_precision(mating)}): "
        f"{verdict(mating['passed'])}",
    ]


def of_precision(check: dict[str, Any]) -> str:
    """' for int8' etc.: the precision whose tolerance a probability check used (nothing when not recorded)."""
    return f" for {check['precision']}" if check.get("precision") else ""


def bound_lines(summary: dict[str, Any]) -> list[str]:
    """The model-only bound's rate of each net in each way it tried, and the way the pipeline ran."""
    lines = []
    for path, net, unit in (("image", "gender", "faces/s"), ("audio", "cganet", "segments/s")):
        ways = summary[path].get(f"bound_{net}", {}).get("ways", {})
        if ways:
            tried = ", ".join(f"{label} {rate:.1f}" for label, rate in sorted(ways.items(), key=lambda item: -item[1]))
            lines.append(f"bound, {net} net ({unit}): {tried}")
    return lines + [f"pipeline: {line}" for line in summary.get("execution", [])]


def verdict(passed: bool) -> str:
    """'equal' or 'FAILED'."""
    return "equal" if passed else "FAILED"


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """Audio real-time factor, peak memory and the overall verdict."""
    audio, drop = summary["audio"], summary["drop"]
    sample = (
        f"naive way timed on {drop['naive_images']} of {drop['images']} images, {drop['naive_faces']} of "
        f"{drop['faces_classified']} faces and {drop['naive_segments']} of {drop['segments']} segments (its rate is "
        "scaled to the whole drop); results compared on those items"
    )
    return [
        sample,
        samples_line(summary),
        "timed after an untimed warm-up run of every way"
        if summary.get("warmup")
        else "timed without a warm-up: the first repeat pays the process's first-call costs",
        f"audio: {audio['realtime_x']:.0f}x real time on {summary['drop']['segment_audio_s']:.0f} s of segment audio",
        (
            f"peak RSS: {summary['peak_rss_mb']:.0f} MiB "
            f"(after the pipeline stages: {summary['pipeline_peak_rss_mb']:.0f} MiB)"
        ),
        allocator_line(summary.get("retain_freed_mb", 0)),
        "results equal the naive way's"
        if summary["results_equal_naive"]
        else "CHECKS FAILED: results differ from the naive way's, or a check compared nothing",
    ]


def samples_line(summary: dict[str, Any]) -> str:
    """How many timings each way's medians are taken over."""
    image, audio = summary["image"]["samples"], summary["audio"]["samples"]
    return (
        f"medians of {image['pipeline']} timing(s) of each image way; of {audio['pipeline']} of the audio pipeline and "
        f"bound ({summary['audio_rounds']} round(s) per repeat, each on a fresh home) "
        f"and {audio['naive']} of the audio naive way"
    )


def allocator_line(retained_mb: int) -> str:
    """How the C allocator ran for all three ways."""
    if retained_mb:
        return (
            f"allocator (all three ways): glibc malloc keeping up to {retained_mb} MiB freed (runtime.retain_freed_mb)"
        )
    return "allocator (all three ways): the C library's defaults"
