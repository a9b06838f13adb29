"""Vocal segments of a stereo recording: Raven Pro selection tables, energy/onset detection, 2 s windows (pure).

A segment is a time range over both channels. Raven tables name them by hand (View and Channel are
ignored, and rows repeating a time range, one per view or channel, give one segment); without a table
``detect_vocal_segments`` finds them. ``windows_for_segment`` turns one segment into the 2 s model windows:
a segment up to 2 s long gives one window (copy-padded later by ``audio_features.segment_window``); a
longer one gives consecutive 2 s windows from its start, and its last partial piece is kept (and
copy-padded) only when it is at least half a window long, otherwise dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from schemas.config import AudioConfig

SegmentSource = Literal["raven", "auto"]
BEGIN = "Begin Time (s)"
END = "End Time (s)"
SELECTION = "Selection"
LOW_FREQ = "Low Freq (Hz)"
HIGH_FREQ = "High Freq (Hz)"
NUMERIC_COLUMNS = (SELECTION, BEGIN, END, LOW_FREQ, HIGH_FREQ)
END_TOLERANCE_S = 0.05  # an end this little past the file (rounding in Raven) is clipped, beyond it rejected
TIME_DECIMALS = 6  # identical time ranges (one row per view or channel) are those equal to the microsecond


@dataclass(frozen=True)
class Segment:
    """A vocal time range over both channels, with its Raven selection id and band when known."""

    start_s: float
    end_s: float
    source: SegmentSource
    selection: int | None = None
    low_hz: float | None = None
    high_hz: float | None = None

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return self.end_s - self.start_s


@dataclass(frozen=True)
class RowProblem:
    """One rejected table row: its 1-based line number, the offending column and one readable sentence."""

    line: int
    field: str
    reason: str


@dataclass(frozen=True)
class VadSettings:
    """Energy/onset detector: frame length, threshold above the noise floor, duration and gap limits."""

    frame_s: float = 0.02
    threshold_db: float = 12.0
    noise_percentile: float = 20.0
    min_duration_s: float = 0.15
    merge_gap_s: float = 0.3
    max_segment_s: float = 10.0
    onset_backtrack_s: float = 0.1


def parse_raven_table(text: str, duration_s: float, filename: str) -> tuple[list[Segment], list[RowProblem]]:
    """Segments from a tab-separated Raven selection table, and one problem per rejected row."""
    lines = text.lstrip("\ufeff").splitlines()
    if not lines:
        return [], [RowProblem(1, BEGIN, f"{filename} line 1: the table is empty (no header), so it was not used.")]
    header = [name.strip().lower() for name in lines[0].split("\t")]
    missing = [name for name in (BEGIN, END) if name.lower() not in header]
    if missing:
        reason = f"{filename} line 1: the header has no '{missing[0]}' column, so the table was not used."
        return [], [RowProblem(1, missing[0], reason)]
    columns = {name: header.index(name.lower()) for name in NUMERIC_COLUMNS if name.lower() in header}
    segments: dict[tuple[float, float], Segment] = {}
    problems: list[RowProblem] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        result = parse_raven_row(line.split("\t"), columns, duration_s, f"{filename} line {number}")
        if isinstance(result, Segment):
            segments.setdefault((round(result.start_s, TIME_DECIMALS), round(result.end_s, TIME_DECIMALS)), result)
        else:
            problems.append(RowProblem(number, result[0], result[1]))
    return list(segments.values()), problems


def parse_raven_row(
    cells: list[str], columns: dict[str, int], duration_s: float, where: str
) -> Segment | tuple[str, str]:
    """One row as a Segment, or (column, reason) when it is rejected."""
    values: dict[str, float | None] = {}
    for name, index in columns.items():
        text = cells[index].strip() if index < len(cells) else ""
        number = parse_number(text)
        if number is None and (text or name in (BEGIN, END)):
            shown = f"'{text}'" if text else "empty"
            return name, f"{where}: {name} is {shown}, not a number; row skipped."
        values[name] = number
    problem = check_times(values[BEGIN], values[END], duration_s, where)
    if problem is not None:
        return problem
    selection = values.get(SELECTION)
    return Segment(
        start_s=float(values[BEGIN]),
        end_s=min(float(values[END]), duration_s),
        source="raven",
        selection=int(selection) if selection is not None and selection.is_integer() else None,
        low_hz=values.get(LOW_FREQ),
        high_hz=values.get(HIGH_FREQ),
    )


def parse_number(text: str) -> float | None:
    """A finite float from a table cell, or None."""
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def check_times(begin: float, end: float, duration_s: float, where: str) -> tuple[str, str] | None:
    """(column, reason) when a begin/end pair cannot be a segment of a `duration_s` long recording."""
    if begin < 0:
        return BEGIN, f"{where}: {BEGIN} {begin:g} is negative; row skipped."
    if begin >= duration_s:
        return BEGIN, f"{where}: {BEGIN} {begin:g} is past the end of the {duration_s:.3f} s recording; row skipped."
    if end <= begin:
        return END, f"{where}: {END} {end:g} is not after {BEGIN} {begin:g}; row skipped."
    if end > duration_s + END_TOLERANCE_S:
        return END, f"{where}: {END} {end:g} is past the end of the {duration_s:.3f} s recording; row skipped."
    return None


def frame_energy_db(samples: np.ndarray, hop: int) -> np.ndarray:
    """Mean power of both channels per non-overlapping frame of `hop` samples, in dB (silence -200)."""
    n_frames = max(samples.shape[0] // hop, 1)
    power = np.square(samples[: n_frames * hop].astype(np.float64)).mean(axis=1)
    power = np.pad(power, (0, n_frames * hop - power.shape[0]))
    return 10.0 * np.log10(np.maximum(power.reshape(n_frames, hop).mean(axis=1), 1e-20))


def active_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Half-open (first, last) frame ranges where `mask` is true."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def merge_runs(runs: list[tuple[int, int]], gap: int) -> list[tuple[int, int]]:
    """Join runs separated by at most `gap` frames."""
    merged: list[tuple[int, int]] = []
    for first, last in runs:
        if merged and first - merged[-1][1] <= gap:
            merged[-1] = (merged[-1][0], last)
        else:
            merged.append((first, last))
    return merged


def backtrack_to_onsets(runs: list[tuple[int, int]], onsets: np.ndarray, reach: int) -> list[tuple[int, int]]:
    """Move each run's start back to the latest detected onset at most `reach` frames before it."""
    moved = []
    for first, last in runs:
        candidates = onsets[(onsets <= first) & (onsets >= first - reach)]
        moved.append((int(candidates.max()) if candidates.size else first, last))
    return moved


def onset_frames(samples: np.ndarray, hop: int, delta_std: float = 2.0) -> np.ndarray:
    """Frames where the spectral flux of the two-channel mean peaks above its median + `delta_std` std."""
    mono = samples.astype(np.float64).mean(axis=1)
    n_frames = mono.shape[0] // hop
    top = float(np.max(np.abs(mono))) if mono.size else 0.0
    if n_frames < 3 or top == 0.0:
        return np.zeros(0, dtype=int)
    frames = mono[: n_frames * hop].reshape(n_frames, hop) * (np.hanning(hop) / top)
    magnitude = np.log1p(100.0 * np.abs(np.fft.rfft(frames, axis=1)))
    flux = np.concatenate(([0.0], np.maximum(np.diff(magnitude, axis=0), 0.0).sum(axis=1)))
    peak = (flux[1:-1] > flux[:-2]) & (flux[1:-1] >= flux[2:])
    strong = flux[1:-1] > np.median(flux) + delta_std * flux.std()
    return np.flatnonzero(peak & strong) + 1


def detect_vocal_segments(samples: np.ndarray, rate: int, settings: VadSettings = VadSettings()) -> list[Segment]:
    """Vocal segments where frame energy rises `threshold_db` above the noise floor, starts set at onsets."""
    if samples.ndim != 2 or samples.shape[1] != 2:
        raise ValueError(f"expected samples shaped (frames, 2), got {samples.shape}")
    hop = max(int(round(settings.frame_s * rate)), 1)
    energy = frame_energy_db(samples, hop)
    floor = np.percentile(energy, settings.noise_percentile)
    runs = merge_runs(active_runs(energy > floor + settings.threshold_db), int(settings.merge_gap_s * rate / hop))
    runs = backtrack_to_onsets(runs, onset_frames(samples, hop), int(round(settings.onset_backtrack_s * rate / hop)))
    duration = samples.shape[0] / rate
    segments = []
    for first, last in runs:
        start, end = first * hop / rate, min(last * hop / rate, duration)
        if end - start >= settings.min_duration_s:
            segments.extend(Segment(a, b, source="auto") for a, b in split_long(start, end, settings.max_segment_s))
    return segments


def split_long(start_s: float, end_s: float, max_s: float) -> list[tuple[float, float]]:
    """(start, end) cut into equal consecutive pieces of at most `max_s` seconds."""
    pieces = max(math.ceil((end_s - start_s) / max_s - 1e-9), 1)
    bounds = np.linspace(start_s, end_s, pieces + 1)
    return [(float(a), float(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def windows_for_segment(
    start_s: float, end_s: float, window_s: float = 2.0, min_last_fraction: float = 0.5
) -> list[tuple[float, float]]:
    """Model windows of a segment: one if it fits in `window_s`, else consecutive ones, a short tail dropped."""
    length = end_s - start_s
    if length <= window_s + 1e-9:
        return [(start_s, end_s)]
    whole = int(math.floor(length / window_s + 1e-9))
    windows = [(start_s + k * window_s, start_s + (k + 1) * window_s) for k in range(whole)]
    tail_start = start_s + whole * window_s
    if end_s - tail_start >= min_last_fraction * window_s - 1e-9:
        windows.append((tail_start, end_s))
    return windows


@dataclass(frozen=True)
class Window:
    """One 2 s model input: where it lies in the recording and the call it comes from."""

    row: dict[str, Any]
    call: Segment


def vad_settings(config: AudioConfig) -> VadSettings:
    """The automatic detector's settings from the configuration."""
    return VadSettings(
        frame_s=config.vad_frame_s,
        threshold_db=config.vad_threshold_db,
        noise_percentile=config.vad_noise_percentile,
        min_duration_s=config.vad_min_duration_s,
        merge_gap_s=config.vad_merge_gap_s,
        max_segment_s=config.vad_max_segment_s,
    )


def window_rows(
    drop_id: str, media: dict[str, Any], encounter_id: str | None, calls: list[Segment], config: AudioConfig
) -> list[Window]:
    """One segment row per 2 s window of every call."""
    windows: list[Window] = []
    for call in calls:
        for start, end in windows_for_segment(call.start_s, call.end_s, 2.0, config.min_last_window_fraction):
            row = {
                "segment_id": f"{media['media_id']}-s{len(windows):04d}",
                "media_id": media["media_id"],
                "drop_id": drop_id,
                "encounter_id": encounter_id,
                "start_s": start,
                "end_s": end,
                "call_start_s": call.start_s,
                "call_end_s": call.end_s,
                "padded": (end - start) < 2.0 - 1e-9,
                "source": call.source,
                "selection": call.selection,
                "flags": [],
            }
            windows.append(Window(row, call))
    return windows
