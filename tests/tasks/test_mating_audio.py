"""Reading the spans of calls: a start whose first sample rounds up is not lost, one open file serves every span, and
integer PCM read as integers equals libsndfile's float conversion."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from models.channels import PIPELINE_RATE, pick_channels, resample_to_pipeline
from tasks.audio import RESAMPLE_PAD_S, read_float32, read_span, read_spans


def test_span_whose_first_sample_rounds_up_is_read_whole(tmp_path):
    path = tmp_path / "E10.wav"
    samples = (0.1 * np.random.default_rng(0).standard_normal((44_100 * 6, 2))).astype(np.float32)
    sf.write(path, samples, 44_100, subtype="FLOAT")
    start, end = 1.835, 4.588  # 1.835 * 44100 = 80923.5: round() gives 80924, one sample after the start
    recording = read_span(path, start, end)
    assert recording.samples.shape == (round((end - start) * 44_100), 2)
    assert np.array_equal(recording.samples, samples[80_924 : 80_924 + recording.samples.shape[0]])


def span_by_sf_read(path, start_s, end_s, pair):
    """The span as the stage read it before files were opened once: sf.info, then sf.read(start, stop) of the padded
    span."""
    info = sf.info(str(path))
    pad = RESAMPLE_PAD_S if info.samplerate != PIPELINE_RATE else 0.0
    first = max(int(round((start_s - pad) * info.samplerate)), 0)
    last = min(int(round((end_s + pad) * info.samplerate)), info.frames)
    data, rate = sf.read(str(path), start=first, stop=last, dtype="float32", always_2d=True)
    resampled, _ = resample_to_pipeline(pick_channels(data, pair)[0], rate)
    offset = max(int(round((start_s - first / rate) * PIPELINE_RATE)), 0)
    return resampled[offset : offset + int(round((end_s - start_s) * PIPELINE_RATE))]


def test_spans_of_one_file_opened_once_equal_sf_read_of_each(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    files = {"stereo.wav": (2, 44_100), "mono.wav": (1, 44_100), "four.wav": (4, 44_100), "resampled.wav": (2, 48_000)}
    spans = [(0.0, 0.7), (1.835, 2.9), (2.5, 3.0), (2.95, 3.5), (3.2, 3.4)]  # overlapping, past the end, after it
    for name, (channels, rate) in files.items():
        sf.write(
            tmp_path / name, (0.1 * rng.standard_normal((rate * 3, channels))).astype(np.float32), rate, subtype="FLOAT"
        )
        pair = (0, 3) if channels == 4 else (0, 1)
        opened: list[str] = []
        real = sf.SoundFile
        monkeypatch.setattr(sf, "SoundFile", lambda path, *a, **k: opened.append(path) or real(path, *a, **k))
        spans_read = list(read_spans(tmp_path / name, spans, pair))
        monkeypatch.setattr(sf, "SoundFile", real)
        assert len(opened) == 1, name
        for (start, end), recording in zip(spans, spans_read, strict=True):
            assert np.array_equal(recording.samples, span_by_sf_read(tmp_path / name, start, end, pair)), (name, start)
            assert recording.source_rate == rate and recording.source_channels == channels
        assert spans_read[3].samples.shape[0] < round(0.55 * 44_100) and spans_read[4].samples.shape[0] == 0
        assert read_span(tmp_path / name, *spans[1], pair).samples.tolist() == spans_read[1].samples.tolist()


@pytest.mark.parametrize(
    "fmt, subtype",
    [
        ("WAV", "PCM_16"),
        ("FLAC", "PCM_16"),
        ("WAV", "PCM_24"),
        ("FLAC", "PCM_24"),
        ("WAV", "PCM_32"),
        ("WAV", "PCM_U8"),
        ("FLAC", "PCM_S8"),
        ("WAV", "FLOAT"),
    ],
)
def test_integer_pcm_read_as_integers_equals_libsndfile_float_conversion(tmp_path, fmt, subtype):
    samples = np.random.default_rng(2).uniform(-1.0, 1.0, (44_100 * 2, 2))
    samples[:3] = [[1.0, -1.0], [-1.0, 1.0], [0.0, -0.0]]  # full scale both ways
    path = tmp_path / f"r.{fmt.lower()}"
    sf.write(path, samples, 44_100, subtype=subtype, format=fmt)
    with sf.SoundFile(str(path)) as handle:
        handle.seek(1_000)
        ours = read_float32(handle, 50_000)
        handle.seek(1_000)
        libsndfile = handle.read(50_000, dtype="float32", always_2d=True)
    assert ours.dtype == np.float32 and ours.shape == (50_000, 2)
    assert np.array_equal(ours, libsndfile)
