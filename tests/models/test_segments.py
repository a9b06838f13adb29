"""Vocal segments: Raven selection tables (real and broken), energy/onset detection, 2 s windows."""

from __future__ import annotations

import numpy as np
import pytest

from models.segments import (
    BEGIN,
    END,
    RowProblem,
    Segment,
    VadSettings,
    detect_vocal_segments,
    parse_raven_table,
    windows_for_segment,
)
from tests.conftest import realfile

HEADER = "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\tNotes"
RATE = 44_100


def table(*rows: str, header: str = HEADER) -> str:
    return "\n".join((header, *rows)) + "\n"


# ---- real Raven tables ---------------------------------------------------------------------------------


def test_real_crowsetta_table_over_its_full_recording(realdata) -> None:
    text = realfile(realdata, "crowsetta/Recording_1_Segment_07.Table.1.selections.txt").read_text()
    segments, problems = parse_raven_table(text, 300.0, "Recording_1_Segment_07.Table.1.selections.txt")
    assert problems == [] and len(segments) == 279
    first = segments[0]
    assert (first.selection, first.source, first.low_hz, first.high_hz) == (1, "raven", 1340.5, 2899.9)
    assert first.start_s == pytest.approx(0.178095911) and first.end_s == pytest.approx(3.390418452)


def test_real_crowsetta_table_against_the_10_s_snippet(realdata) -> None:
    """The table covers the full 5 min segment; only rows ending inside the 10 s snippet are usable."""
    text = realfile(realdata, "crowsetta/Recording_1_Segment_07.Table.1.selections.txt").read_text()
    segments, problems = parse_raven_table(text, 10.0, "snippet.selections.txt")
    assert len(segments) == 9 and all(s.end_s <= 10.0 for s in segments)
    assert len(problems) == 270 and problems[0].line == 11 and problems[0].field == BEGIN
    assert "past the end" in problems[0].reason and "line 11" in problems[0].reason
    assert len({p.line for p in problems}) == 270


@pytest.mark.parametrize(
    "relative, expected",
    [
        ("opensoundscape/MSD-0003_20180427_2minstart00.Table.1.selections.txt", 10),  # extra columns, short rows
        ("opensoundscape/raven_with_Annotation_col.txt", 1),  # no newline after its one row
        ("opensoundscape/EmptyExample.Table.1.selections.txt", 0),  # header only
        ("crowsetta/Recording_1_Segment_02.Table.1.selections.txt", 6),  # CRLF line ends
    ],
)
def test_other_real_tables(realdata, relative: str, expected: int) -> None:
    segments, problems = parse_raven_table(realfile(realdata, relative).read_text(), 300.0, relative)
    assert problems == [] and len(segments) == expected
    assert all(s.end_s > s.start_s and s.selection is not None for s in segments)


# ---- generated tables ----------------------------------------------------------------------------------


def test_bad_rows_are_rejected_one_by_one_with_their_line_numbers() -> None:
    text = table(
        "1\tSpectrogram 1\t1\t0.5\t1.0\t100\t2000\tgood",  # line 2
        "2\tSpectrogram 1\t1\tabc\t1.0\t100\t2000",  # 3: not a number
        "",  # 4: blank, skipped
        "3\tSpectrogram 1\t1\t2.0\t1.5\t100\t2000",  # 5: end before start
        "4\tSpectrogram 1\t1\t-1\t1.5",  # 6: negative
        "5\tSpectrogram 1\t1\t9\t10.5",  # 7: end past the file
        "6\tSpectrogram 1\t1\t10.5\t11",  # 8: begins past the file
        "7\tSpectrogram 1\t1\t1\tnan",  # 9: not finite
        "8\tSpectrogram 1\t1\t1",  # 10: no end
        "9\tSpectrogram 1\t1\t3\t3",  # 11: zero length
        "10\tSpectrogram 1\t1\t4\t5\tlow\t2000",  # 12: bad frequency
        "11\tSpectrogram 1\t1\t6\t7.5\t\t",  # 13: good, no band
    )
    segments, problems = parse_raven_table(text, 10.0, "enc.selections.txt")
    assert [(s.selection, s.start_s, s.end_s, s.low_hz) for s in segments] == [
        (1, 0.5, 1.0, 100.0),
        (11, 6.0, 7.5, None),
    ]
    assert [(p.line, p.field) for p in problems] == [
        (3, BEGIN),
        (5, END),
        (6, BEGIN),
        (7, END),
        (8, BEGIN),
        (9, END),
        (10, END),
        (11, END),
        (12, "Low Freq (Hz)"),
    ]
    assert all(p.reason.startswith(f"enc.selections.txt line {p.line}: ") and p.reason.endswith(".") for p in problems)
    assert "'abc', not a number" in problems[0].reason


def test_an_end_just_past_the_file_is_clipped() -> None:
    segments, problems = parse_raven_table(table("1\tSpectrogram 1\t1\t9.0\t10.03"), 10.0, "t.txt")
    assert problems == [] and segments == [Segment(9.0, 10.0, "raven", 1)]


def test_one_row_per_view_or_channel_gives_one_segment() -> None:
    text = table(
        "1\tSpectrogram 1\t1\t1.0\t2.0\t100\t900",
        "1\tWaveform 1\t1\t1.0\t2.0\t100\t900",
        "1\tSpectrogram 1\t2\t1.0\t2.0\t100\t900",
        "2\tSpectrogram 1\t1\t1.5\t2.5\t300\t900",
    )
    segments, problems = parse_raven_table(text, 5.0, "t.txt")
    assert problems == [] and [(s.start_s, s.end_s) for s in segments] == [(1.0, 2.0), (1.5, 2.5)]


def test_header_without_time_columns_rejects_the_table() -> None:
    segments, problems = parse_raven_table("Selection\tBegin Time (s)\tEnd\n1\t2\t3\n", 10.0, "t.txt")
    reason = "t.txt line 1: the header has no 'End Time (s)' column, so the table was not used."
    assert segments == [] and problems == [RowProblem(1, END, reason)]
    assert parse_raven_table("", 10.0, "t.txt")[1][0].line == 1


def test_utf8_bom_and_minimal_columns_are_accepted() -> None:
    segments, problems = parse_raven_table("\ufeffBegin Time (s)\tEnd Time (s)\n0.5\t1.5\n", 2.0, "t.txt")
    assert problems == [] and segments == [Segment(0.5, 1.5, "raven")]


# ---- automatic detection -------------------------------------------------------------------------------


def stereo_with_calls(calls: list[tuple[float, float]], seconds: float = 10.0, seed: int = 0) -> np.ndarray:
    """Noise at about -50 dBFS with frequency-modulated calls (left louder than right) at known times."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    samples = rng.normal(0, 0.003, (t.size, 2))
    for start, end in calls:
        inside = (t >= start) & (t < end)
        ramp = np.minimum(1.0, np.minimum(t[inside] - start, end - t[inside]) / 0.01)
        wave = ramp * np.sin(2 * np.pi * np.cumsum(600 + 300 * np.sin(2 * np.pi * 3 * t[inside])) / RATE)
        samples[inside] += np.outer(wave, [0.3, 0.1])
    return samples.astype(np.float32)


def test_detector_finds_calls_in_noise_at_known_times() -> None:
    calls = [(1.0, 1.5), (3.0, 4.2), (6.0, 6.3), (7.5, 9.8)]
    segments = detect_vocal_segments(stereo_with_calls(calls), RATE)
    assert len(segments) == len(calls) and all(s.source == "auto" for s in segments)
    for found, (start, end) in zip(segments, calls):
        assert found.start_s == pytest.approx(start, abs=0.1) and found.end_s == pytest.approx(end, abs=0.1)


def test_detector_merges_short_gaps_drops_blips_and_splits_long_calls() -> None:
    settings = VadSettings(merge_gap_s=0.3, min_duration_s=0.15, max_segment_s=3.0)
    samples = stereo_with_calls([(1.0, 1.4), (1.6, 2.0), (4.0, 4.05), (5.0, 9.0)])
    spans = [(s.start_s, s.end_s) for s in detect_vocal_segments(samples, RATE, settings)]
    assert len(spans) == 3
    assert spans[0] == pytest.approx((1.0, 2.0), abs=0.1)
    assert spans[1][0] == pytest.approx(5.0, abs=0.1) and spans[2][1] == pytest.approx(9.0, abs=0.1)
    assert spans[1][1] == spans[2][0] and spans[1][1] - spans[1][0] <= 3.0


def test_detector_on_silence_and_on_noise_alone_finds_nothing() -> None:
    assert detect_vocal_segments(np.zeros((5 * RATE, 2), np.float32), RATE) == []
    assert detect_vocal_segments(stereo_with_calls([], seconds=5.0), RATE) == []


# ---- 2 s windows ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "start, end, expected",
    [
        (1.0, 1.5, [(1.0, 1.5)]),  # short: one, copy-padded later
        (0.0, 2.0, [(0.0, 2.0)]),  # exactly one window
        (0.0, 4.0, [(0.0, 2.0), (2.0, 4.0)]),  # exact multiple
        (0.0, 5.2, [(0.0, 2.0), (2.0, 4.0), (4.0, 5.2)]),  # tail of 1.2 s >= 50 %: kept
        (0.0, 4.9, [(0.0, 2.0), (2.0, 4.0)]),  # tail of 0.9 s < 50 %: dropped
        (10.0, 13.0, [(10.0, 12.0), (12.0, 13.0)]),  # tail of exactly 50 %: kept
    ],
)
def test_windows_for_segment(start: float, end: float, expected: list[tuple[float, float]]) -> None:
    windows = windows_for_segment(start, end)
    assert len(windows) == len(expected)
    assert np.allclose(np.array(windows), np.array(expected), atol=1e-9)
