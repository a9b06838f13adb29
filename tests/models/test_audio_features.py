"""MFCC features: 2 s windows, peak normalisation, and TorchMFCC against librosa on generated and real audio."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import soundfile
import torch

from models.audio_features import (
    N_FRAMES,
    N_MFCC,
    SR,
    WINDOW_SAMPLES,
    TorchMFCC,
    librosa_mfcc,
    peak_normalise,
    relative_error,
    segment_window,
    segment_windows,
    write_window,
)
from models.segments import windows_for_segment
from tests.conftest import realfile

MAX_RELATIVE = 1e-4  # the contract: max |torch - librosa| / max |librosa| per segment
# and every value within rtol 1e-4 + this: float32 rounding of values near 1,000 is 1.2e-4, and the float32 DCT of
# log-mel values up to ~630 moved one small coefficient by 8.4e-4 on an Intel Xeon with AMX (5e-4 held on a Zen 5)
ELEMENT_ATOL = 2e-3
REAL_STEREO_44K = (
    "librosa-test-data/test1_44100.wav",  # PCM 16-bit with a LIST chunk before its data
    "librosa-data/456440__inspectorj__bird-whistling-robin-single-13.hq.ogg",  # Ogg Vorbis stereo
)


@pytest.fixture(scope="module")
def torch_mfcc() -> TorchMFCC:
    return TorchMFCC()


def assert_matches_librosa(batch: np.ndarray, features: np.ndarray) -> None:
    """Every segment of `batch` (B, 2, N) has `features` equal to librosa's within the contract."""
    reference = np.stack([librosa_mfcc(window) for window in batch])
    assert features.shape == reference.shape == (len(batch), 2, N_FRAMES, N_MFCC)
    assert np.all(np.isfinite(features))
    assert relative_error(features, reference).max() <= MAX_RELATIVE
    np.testing.assert_allclose(features, reference, rtol=MAX_RELATIVE, atol=ELEMENT_ATOL)


def run(torch_mfcc: TorchMFCC, batch: np.ndarray) -> np.ndarray:
    return torch_mfcc(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))).numpy()


def tone(freq: float, seconds: float = 2.0, amplitude: float = 1.0) -> np.ndarray:
    t = np.arange(int(round(seconds * SR))) / SR
    return amplitude * np.sin(2 * np.pi * freq * t)


# ---- windows and normalisation ------------------------------------------------------------------------


def test_window_is_two_seconds_of_float32_with_unit_peak() -> None:
    samples = np.random.default_rng(0).normal(0, 0.1, (5 * SR, 2)).astype(np.float32)
    window = segment_window(samples, 1.0, 3.0, SR)
    assert window.shape == (2, WINDOW_SAMPLES) and window.dtype == np.float32
    assert np.max(np.abs(window)) == pytest.approx(1.0, abs=1e-7)


def test_peak_normalisation_keeps_the_channel_level_ratio() -> None:
    left = tone(440, amplitude=0.2)
    samples = np.stack([left, 0.05 * left], axis=1).astype(np.float32)
    window = segment_window(samples, 0.0, 2.0, SR)
    assert np.max(np.abs(window[0])) == pytest.approx(1.0, abs=1e-7)
    assert np.max(np.abs(window[1])) == pytest.approx(0.05, rel=1e-5)
    np.testing.assert_allclose(window[1], 0.05 * window[0], atol=1e-7)


def test_silence_stays_zeros_without_nan() -> None:
    window = segment_window(np.zeros((3 * SR, 2), np.float32), 0.5, 1.0, SR)
    assert window.shape == (2, WINDOW_SAMPLES) and not np.any(window)


def test_non_finite_samples_are_refused() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        peak_normalise(np.array([[0.0, np.nan], [1.0, 0.0]]))


def test_short_segment_is_copy_padded_by_repetition() -> None:
    samples = np.random.default_rng(1).uniform(-0.5, 0.5, (SR, 2)).astype(np.float32)
    window = segment_window(samples, 0.25, 0.55, SR)
    cut = samples[int(0.25 * SR) : int(round(0.55 * SR))].T
    scale = 1.0 / np.max(np.abs(cut))
    length = cut.shape[1]
    for k in range(WINDOW_SAMPLES // length):
        np.testing.assert_allclose(window[:, k * length : (k + 1) * length], cut * scale, rtol=1e-6)
    tail = WINDOW_SAMPLES % length
    np.testing.assert_allclose(window[:, -tail:], cut[:, :tail] * scale, rtol=1e-6)


def test_long_cut_keeps_its_first_two_seconds() -> None:
    samples = np.random.default_rng(2).uniform(-1, 1, (4 * SR, 2)).astype(np.float32)
    window = segment_window(samples, 0.5, 3.9, SR)
    head = samples[SR // 2 : SR // 2 + WINDOW_SAMPLES].T
    np.testing.assert_allclose(window, head / np.max(np.abs(head)), rtol=1e-6)


@pytest.mark.parametrize("bounds", [(2.0, 2.0), (3.5, 4.0), (1.0, 0.5)])
def test_empty_segment_is_refused(bounds: tuple[float, float]) -> None:
    with pytest.raises(ValueError, match="no samples"):
        segment_window(np.zeros((3 * SR, 2), np.float32), *bounds, SR)


def test_no_spans_give_an_empty_batch() -> None:
    assert segment_windows(np.zeros((SR, 2), np.float32), [], SR).shape == (0, 2, WINDOW_SAMPLES)


def float64_window(samples: np.ndarray, start_s: float, end_s: float) -> np.ndarray:
    """The window as first specified: float32 cut tiled to 2 s, times 1 / peak in float64, rounded to float32."""
    first, last = int(round(start_s * SR)), min(int(round(end_s * SR)), len(samples))
    cut = np.ascontiguousarray(samples[first:last].T, dtype=np.float32)
    tiled = np.tile(cut, (1, -(-WINDOW_SAMPLES // cut.shape[1])))[:, :WINDOW_SAMPLES]
    return (tiled.astype(np.float64) * (1.0 / float(np.max(np.abs(tiled))))).astype(np.float32)


def test_windows_written_in_place_equal_the_float64_scaling_bit_for_bit() -> None:
    rng = np.random.default_rng(11)
    slot = np.full((2, WINDOW_SAMPLES), np.nan, np.float32)  # a reused batch slot holds the last batch's values
    for index in range(40):
        seconds = rng.uniform(0.3, 4.0)
        samples = (rng.standard_normal((int(seconds * SR), 2)) * rng.uniform(1e-4, 1.0, 2)).astype(np.float32)
        if index % 2:  # 16-bit PCM values, as most recordings hold
            samples = (np.round(samples / np.abs(samples).max() * 32767) / 32768).astype(np.float32)
        start = rng.uniform(0.0, seconds / 2)
        end = min(start + 2.0, seconds)
        write_window(slot, samples, start, end)
        np.testing.assert_array_equal(slot, float64_window(samples, start, end))


def test_silence_written_into_a_used_slot_leaves_only_zeros() -> None:
    slot = np.full((2, WINDOW_SAMPLES), 7.0, np.float32)
    write_window(slot, np.zeros((SR, 2), np.float32), 0.2, 0.4)
    assert not np.any(slot)


def test_non_finite_samples_written_into_a_slot_are_refused() -> None:
    samples = np.zeros((SR, 2), np.float32)
    samples[100, 1] = np.inf
    with pytest.raises(ValueError, match="non-finite"):
        write_window(np.zeros((2, WINDOW_SAMPLES), np.float32), samples, 0.0, 0.5)


def test_mono_samples_are_refused() -> None:
    with pytest.raises(ValueError, match=r"\(frames, 2\)"):
        segment_window(np.zeros(3 * SR, np.float32), 0.0, 1.0, SR)


# ---- TorchMFCC against librosa -------------------------------------------------------------------------


def test_random_noise_at_different_channel_levels(torch_mfcc: TorchMFCC) -> None:
    rng = np.random.default_rng(3)
    levels = [(1.0, 1.0), (1.0, 0.1), (1.0, 1e-3), (1e-4, 1.0)]
    batch = np.stack(
        [peak_normalise(rng.standard_normal((2, WINDOW_SAMPLES)) * np.array(lv)[:, None]) for lv in levels]
    )
    assert_matches_librosa(batch, run(torch_mfcc, batch))


def test_tones_and_chirps(torch_mfcc: TorchMFCC) -> None:
    t = np.arange(WINDOW_SAMPLES) / SR
    chirp = np.sin(2 * np.pi * (300 * t + 900 * t**2))
    batch = np.stack(
        [
            np.stack([tone(440), 0.01 * tone(3000)]),
            np.stack([chirp, chirp]),
            np.stack([tone(150) + 0.3 * tone(6000), np.zeros(WINDOW_SAMPLES)]),
        ]
    ).astype(np.float32)
    assert_matches_librosa(batch, run(torch_mfcc, batch))


def test_silence(torch_mfcc: TorchMFCC) -> None:
    batch = np.zeros((2, 2, WINDOW_SAMPLES), np.float32)
    features = run(torch_mfcc, batch)
    assert_matches_librosa(batch, features)
    assert features[0, 0, 0, 0] == pytest.approx(
        -100.0 * np.sqrt(128), rel=1e-5
    )  # -100 dB in all 128 bands (float32 sums)


def test_short_copy_padded_clip(torch_mfcc: TorchMFCC) -> None:
    samples = np.stack([tone(700, 1.0, 0.3), tone(700, 1.0, 0.1)], axis=1)
    samples += np.random.default_rng(4).normal(0, 0.01, samples.shape)
    batch = segment_window(samples.astype(np.float32), 0.1, 0.45, SR)[None]
    assert_matches_librosa(batch, run(torch_mfcc, batch))


def test_floor_is_per_channel_as_in_a_mono_call() -> None:
    window = peak_normalise(np.stack([tone(440), 1e-3 * tone(440) + 1e-6]).astype(np.float32))
    two_channel_call = librosa.feature.mfcc(y=window, sr=SR, n_mfcc=N_MFCC, n_fft=2048, hop_length=1024)
    mono_calls = librosa_mfcc(window)
    np.testing.assert_allclose(two_channel_call[0, :, :N_FRAMES].T, mono_calls[0], rtol=1e-5, atol=1e-4)
    assert np.abs(two_channel_call[1, :, :N_FRAMES].T - mono_calls[1]).max() > 1.0


def test_batch_equals_one_at_a_time(torch_mfcc: TorchMFCC) -> None:
    batch = np.stack([peak_normalise(w) for w in np.random.default_rng(5).standard_normal((5, 2, WINDOW_SAMPLES))])
    together = run(torch_mfcc, batch)
    alone = np.concatenate([run(torch_mfcc, batch[i : i + 1]) for i in range(len(batch))])
    np.testing.assert_allclose(together, alone, rtol=1e-6, atol=1e-5)


def test_cpu_chunks_give_the_batch_result() -> None:
    batch = np.stack([peak_normalise(w) for w in np.random.default_rng(8).standard_normal((5, 2, WINDOW_SAMPLES))])
    chunked = run(TorchMFCC(cpu_chunk=2), batch)  # chunks of 2, 2 and 1 windows
    np.testing.assert_array_equal(chunked, run(TorchMFCC(cpu_chunk=5), batch))
    with pytest.raises(ValueError, match="cpu_chunk"):
        TorchMFCC(cpu_chunk=0)


def test_float64_compute_also_meets_the_contract() -> None:
    batch = np.stack([peak_normalise(w) for w in np.random.default_rng(6).standard_normal((3, 2, WINDOW_SAMPLES))])
    features = run(TorchMFCC(compute_dtype=torch.float64), batch)
    reference = np.stack([librosa_mfcc(window) for window in batch])
    assert relative_error(features, reference).max() <= MAX_RELATIVE


def test_wrong_input_shape_is_refused(torch_mfcc: TorchMFCC) -> None:
    with pytest.raises(ValueError, match=r"\(B, 2, N\)"):
        torch_mfcc(torch.zeros(2, WINDOW_SAMPLES))
    assert torch_mfcc(torch.zeros(0, 2, WINDOW_SAMPLES)).shape == (0, 2, N_FRAMES, N_MFCC)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_gpu_matches_librosa() -> None:
    batch = np.stack([peak_normalise(w) for w in np.random.default_rng(7).standard_normal((4, 2, WINDOW_SAMPLES))])
    for dtype in (torch.float64, torch.float32):
        features = TorchMFCC(compute_dtype=dtype).cuda()(torch.from_numpy(batch).cuda()).cpu().numpy()
        reference = np.stack([librosa_mfcc(window) for window in batch])
        assert relative_error(features, reference).max() <= MAX_RELATIVE


@pytest.mark.parametrize("relative", REAL_STEREO_44K)
def test_real_stereo_recordings(realdata, torch_mfcc: TorchMFCC, relative: str) -> None:
    samples, rate = soundfile.read(realfile(realdata, relative), dtype="float32", always_2d=True)
    assert rate == SR and samples.shape[1] == 2
    duration = samples.shape[0] / rate
    spans = windows_for_segment(0.0, duration) + [(0.3, 0.8), (duration - 0.6, duration)]
    batch = segment_windows(samples, spans, rate)
    assert_matches_librosa(batch, run(torch_mfcc, batch))
