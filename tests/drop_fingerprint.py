"""A sample drop's fingerprint that holds across CPUs: its text files cell by cell, and its drawn media decoded to
coarse summaries (8 x 8 grey block means of each image, quarter-second RMS of each audio channel), compared within
tolerances. Drawn pixels and samples follow the CPU's float paths, so byte digests differ by CPU kind; a change to
what is drawn moves these summaries far beyond the tolerances.

Re-record the stored fingerprint (only when the generator is meant to change):
    .venv/bin/python -m tests.drop_fingerprint
"""

from __future__ import annotations

import csv
import io
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
from PIL import Image

REFERENCE = Path(__file__).with_name("data") / "sample_drop_seed0_4.json"
BLOCKS = 8  # an image is summarised as BLOCKS x BLOCKS grey block means
RMS_BLOCK_S = 0.25
TEXT_ATOL = 1e-3  # a numeric cell may differ by this much (the last printed digit of a drawn float)
IMAGE_ATOL = 4.0  # grey levels (0-255) a block mean may differ by (JPEG of a drawing a few pixels off)
AUDIO_ATOL = 1e-3  # RMS (full scale 1.0) a quarter second may differ by
MEDIA_SUFFIXES = (".jpg", ".wav")


def image_summary(path: Path) -> dict[str, Any]:
    """An image's size and its grey block means."""
    with Image.open(path) as image:
        grey = np.asarray(image.convert("L"), dtype=np.float64)
    rows, cols = (np.array_split(np.arange(n), BLOCKS) for n in grey.shape)
    means = [[round(float(grey[np.ix_(r, c)].mean()), 2) for c in cols] for r in rows]
    return {"size": [grey.shape[1], grey.shape[0]], "blocks": means}


def audio_summary(path: Path) -> dict[str, Any]:
    """A recording's length, rate and per-channel RMS of each quarter second."""
    samples, rate = soundfile.read(path, dtype="float64", always_2d=True)
    step = max(1, int(rate * RMS_BLOCK_S))
    rms = [
        [round(float(np.sqrt(np.mean(samples[i : i + step, ch] ** 2))), 6) for i in range(0, len(samples), step)]
        for ch in range(samples.shape[1])
    ]
    return {"frames": len(samples), "rate": rate, "rms": rms}


def drop_fingerprint(root: Path) -> dict[str, Any]:
    """Every file of a drop: text files' contents, images' and recordings' decoded summaries, by relative path."""
    fingerprint: dict[str, Any] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        name = path.relative_to(root).as_posix()
        if path.suffix == ".jpg":
            fingerprint[name] = image_summary(path)
        elif path.suffix == ".wav":
            fingerprint[name] = audio_summary(path)
        else:
            fingerprint[name] = {"text": path.read_text(encoding="utf-8")}
    return fingerprint


def text_differences(name: str, seen: str, stored: str) -> list[str]:
    """Where a text file differs from the stored one beyond a numeric cell's tolerance."""
    delimiter = "\t" if name.endswith(".txt") else ","
    seen_rows = list(csv.reader(io.StringIO(seen), delimiter=delimiter))
    stored_rows = list(csv.reader(io.StringIO(stored), delimiter=delimiter))
    if len(seen_rows) != len(stored_rows):
        return [f"{name}: {len(seen_rows)} lines, stored {len(stored_rows)}"]
    found = []
    for line, (a_row, b_row) in enumerate(zip(seen_rows, stored_rows), start=1):
        if len(a_row) != len(b_row):
            found.append(f"{name} line {line}: {len(a_row)} cells, stored {len(b_row)}")
            continue
        for a, b in zip(a_row, b_row):
            if a != b and not numbers_within(a, b, TEXT_ATOL):
                found.append(f"{name} line {line}: {a!r}, stored {b!r}")
    return found


def numbers_within(a: str, b: str, atol: float) -> bool:
    """Whether two cells are both numbers no further apart than atol."""
    try:
        return abs(float(a) - float(b)) <= atol
    except ValueError:
        return False


def media_differences(name: str, seen: dict[str, Any], stored: dict[str, Any]) -> list[str]:
    """Where a decoded image or recording differs from the stored summary beyond the tolerance."""
    if "blocks" in stored:
        if seen["size"] != stored["size"]:
            return [f"{name}: {seen['size']}, stored {stored['size']}"]
        gap = float(np.max(np.abs(np.asarray(seen["blocks"]) - np.asarray(stored["blocks"]))))
        return [f"{name}: a grey block mean is {gap:.2f} off"] if gap > IMAGE_ATOL else []
    if (seen["frames"], seen["rate"]) != (stored["frames"], stored["rate"]):
        return [f"{name}: {seen['frames']} frames at {seen['rate']} Hz, stored {stored['frames']} at {stored['rate']}"]
    gap = float(np.max(np.abs(np.asarray(seen["rms"]) - np.asarray(stored["rms"]))))
    return [f"{name}: a quarter second's RMS is {gap:.5f} off"] if gap > AUDIO_ATOL else []


def fingerprint_differences(seen: dict[str, Any], stored: dict[str, Any]) -> list[str]:
    """Every way a drop's fingerprint differs from the stored one beyond the tolerances (empty: the same drop)."""
    found = [f"{name}: missing" for name in sorted(set(stored) - set(seen))]
    found += [f"{name}: not in the stored drop" for name in sorted(set(seen) - set(stored))]
    for name in sorted(set(seen) & set(stored)):
        if "text" in stored[name]:
            found += text_differences(name, seen[name]["text"], stored[name]["text"])
        else:
            found += media_differences(name, seen[name], stored[name])
    return found


def record() -> None:
    """Write the stored fingerprint of the seed-0, 4-animal default drop."""
    from tasks.sample_drop import write_sample_drop

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "drop"
        write_sample_drop(root, seed=0, n_animals=4)
        REFERENCE.parent.mkdir(exist_ok=True)
        REFERENCE.write_text(json.dumps(drop_fingerprint(root), indent=0, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {REFERENCE}", file=sys.stderr)


if __name__ == "__main__":
    record()
