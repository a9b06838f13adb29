"""Small audio-only drops with labelled encounters for the mating tests (tones: success high, failure low)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 44_100
SECONDS = 8.0
CALLS = ((1.0, 2.5), (3.5, 5.0), (5.5, 7.0))
RAVEN_HEADER = "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\n"
TINY_CONFIG = "[mating.train]\nepochs = 2\nfilters = 4\nhidden = 4\nbatch_size = 8\nthreads = 1\n"


def encounter_audio(seed: int, outcome: str) -> np.ndarray:
    """Stereo float32 noise with three calls: harmonic 900 Hz for success, rough 300 Hz for failure, else 600 Hz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(SECONDS * RATE)) / RATE
    base = {"success": 900.0, "failure": 300.0}.get(outcome, 600.0) * rng.uniform(0.9, 1.1)
    tone = np.sin(2 * np.pi * base * t) + 0.5 * np.sin(2 * np.pi * 2 * base * t)
    if outcome == "failure":
        tone += 0.8 * rng.standard_normal(t.size)
    gate = np.zeros(t.size)
    for start, end in CALLS:
        gate[(t >= start) & (t < end)] = 1.0
    call = 0.3 * gate * tone
    noise = 0.01 * rng.standard_normal((t.size, 2))
    return (noise + np.stack([call, 0.6 * call], axis=1)).astype(np.float32)


def raven_table(calls: tuple[tuple[float, float], ...] = CALLS, extra_rows: str = "") -> str:
    """A Raven selection table naming the calls, plus any extra (bad) rows."""
    rows = "".join(f"{i}\tSpectrogram 1\t1\t{a}\t{b}\t100\t4000\n" for i, (a, b) in enumerate(calls, start=1))
    return RAVEN_HEADER + rows + extra_rows


def write_encounter_drop(root: Path, encounters: list[tuple[str, str, str, str]], seed: int = 0) -> Path:
    """A drop of one recording, Raven table and encounters.csv row per (encounter_id, male, female, outcome or "")."""
    (root / "audio").mkdir(parents=True)
    lines = ["encounter_id,recording,male_id,female_id,started_at,outcome"]
    for index, (encounter_id, male, female, outcome) in enumerate(encounters):
        truth = outcome or ("success" if index % 2 == 0 else "failure")
        sf.write(
            root / "audio" / f"{encounter_id}.wav", encounter_audio(seed * 1000 + index, truth), RATE, subtype="PCM_16"
        )
        (root / "audio" / f"{encounter_id}.selections.txt").write_text(raven_table())
        lines.append(
            f"{encounter_id},audio/{encounter_id}.wav,{male},{female},2024-04-0{1 + index % 9}T10:00:00+08:00,{outcome}"
        )
    (root / "encounters.csv").write_text("\n".join(lines) + "\n")
    return root


def six_pairs(unlabelled: int = 0) -> list[tuple[str, str, str, str]]:
    """Six encounters of six pairs, alternating success and failure; the last `unlabelled` have no outcome."""
    rows = [(f"E{i + 1:02d}", f"M{i + 1}", f"F{i + 1}", "success" if i % 2 == 0 else "failure") for i in range(6)]
    return [(e, m, f, "" if i >= 6 - unlabelled else o) for i, (e, m, f, o) in enumerate(rows)]
