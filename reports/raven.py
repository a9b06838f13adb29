"""Raven Pro selection tables of predicted segments: tab-separated, one row per channel of each 2 s window."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

RAVEN_COLUMNS = ("Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)", "High Freq (Hz)")
EXTRA_COLUMNS = ("P Success", "P Success Calibrated", "Segment", "Encounter", "Model")
VIEW = "Spectrogram 1"
CHANNELS = (1, 2)


@dataclass(frozen=True)
class PredictedWindow:
    """One predicted 2 s window of a recording: times, band, probabilities and where it comes from."""

    start_s: float
    end_s: float
    low_hz: float
    high_hz: float
    p_success: float
    p_calibrated: float
    segment_id: str
    encounter_id: str | None
    model_version: str


def clean_cell(value: object) -> str:
    """A table cell: text without tabs or line breaks (they would split the row), empty for None."""
    if value is None:
        return ""
    return " ".join(str(value).replace("\t", " ").split())


def selection_rows(windows: Sequence[PredictedWindow]) -> list[list[str]]:
    """Rows of the table: windows in time order, numbered from 1, each on Channel 1 and Channel 2 (one selection
    spanning both channels, as a segment is a time range over both)."""
    rows = []
    for number, w in enumerate(sorted(windows, key=lambda w: (w.start_s, w.end_s, w.segment_id)), start=1):
        extra = [f"{w.p_success:.4f}", f"{w.p_calibrated:.4f}", w.segment_id, w.encounter_id, w.model_version]
        for channel in CHANNELS:
            cells = [number, VIEW, channel, f"{w.start_s:.6f}", f"{w.end_s:.6f}", f"{w.low_hz:.1f}", f"{w.high_hz:.1f}"]
            rows.append([clean_cell(c) for c in (*cells, *extra)])
    return rows


def raven_selection_table(windows: Sequence[PredictedWindow]) -> str:
    """The whole selection table as text (header, then one line per row, Unix line ends)."""
    lines = ["\t".join(RAVEN_COLUMNS + EXTRA_COLUMNS)] + ["\t".join(row) for row in selection_rows(windows)]
    return "\n".join(lines) + "\n"
