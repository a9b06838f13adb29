"""MFCC features of 2 s stereo vocal windows: librosa reference and a batched torch twin (pure, no disk).

The feature of one segment is a float32 array of shape (2, 86, 40): channel, frame, coefficient. Each
channel is computed exactly as ``librosa.feature.mfcc`` computes a mono signal at 44.1 kHz with n_fft 2048,
hop 1024 and librosa's defaults otherwise (hann window, centred frames zero-padded, 128 slaney mel bands,
power_to_db with ref 1.0, amin 1e-10 and an 80 dB floor below the channel's own loudest value, DCT-II
ortho). librosa gives 87 frames for 88,200 samples; the 80 dB floor is taken over all 87 and the first 86
are kept. ``TorchMFCC`` is the batched (CPU or GPU) implementation the pipeline uses; ``librosa_mfcc`` is
the reference it is tested against.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import librosa
import numpy as np
import scipy.fft
import scipy.signal
import torch

from models.segments import Window

SR = 44_100
N_FFT = 2048
HOP = 1024
N_MELS = 128  # librosa.feature.melspectrogram's default
N_MFCC = 40
N_FRAMES = 86
WINDOW_S = 2.0
WINDOW_SAMPLES = int(round(WINDOW_S * SR))  # 88,200
TOP_DB = 80.0
AMIN = 1e-10
FEATURE_VERSION = "mfcc40-sr44100-nfft2048-hop1024-86f-peak1-v1"


def sample_range(samples: np.ndarray, start_s: float, end_s: float, rate: int) -> tuple[int, int]:
    """First and past-last sample index of [start_s, end_s) in a (frames, 2) recording; refuses an empty cut."""
    if samples.ndim != 2 or samples.shape[1] != 2:
        raise ValueError(f"expected samples shaped (frames, 2), got {samples.shape}")
    first = max(int(round(start_s * rate)), 0)
    last = min(int(round(end_s * rate)), samples.shape[0])
    if last <= first:
        duration = samples.shape[0] / rate
        raise ValueError(f"segment {start_s:.3f}-{end_s:.3f} s holds no samples of a {duration:.3f} s recording")
    return first, last


def cut_and_pad_into(out: np.ndarray, samples: np.ndarray, start_s: float, end_s: float, rate: int) -> None:
    """Samples [start_s, end_s) written channel-first into out (2, length): longer cuts keep their first `length`,
    shorter ones repeat."""
    first, last = sample_range(samples, start_s, end_s, rate)
    cut = samples[first:last].T
    length = out.shape[1]
    for done in range(0, length, cut.shape[1]):
        take = min(cut.shape[1], length - done)
        out[:, done : done + take] = cut[:, :take]


def peak_normalise_into(window: np.ndarray) -> None:
    """Divide a float32 window in place by its largest |sample| so that becomes 1.0; silence stays zeros.

    The float32 quotient equals the float64 product it replaced (sample * (1 / peak), rounded) in every value: a
    quotient of two float32s never lies within the float64 path's error of a float32 rounding midpoint. It takes no
    float64 copy (67 windows cut, padded and normalised: 31 -> 7 ms)."""
    top = max(-float(window.min()), float(window.max())) if window.size else 0.0
    if not np.isfinite(top):
        raise ValueError("window holds non-finite samples (NaN or infinity)")
    if top == 0.0:
        window.fill(0.0)
        return
    np.divide(window, np.float32(top), out=window)


def peak_normalise(window: np.ndarray) -> np.ndarray:
    """A float32 copy of a window scaled by one factor so the largest |sample| is 1.0; silence stays zeros."""
    normalised = np.array(window, dtype=np.float32)
    peak_normalise_into(normalised)
    return normalised


def write_window(out: np.ndarray, samples: np.ndarray, start_s: float, end_s: float, rate: int = SR) -> None:
    """One model input window written into out (2, round(2 s * rate)) float32: cut, copy-padded by repetition, peak
    1.0, with no temporary copies (a batch of windows is filled slot by slot)."""
    cut_and_pad_into(out, samples, start_s, end_s, rate)
    peak_normalise_into(out)


def segment_window(samples: np.ndarray, start_s: float, end_s: float, rate: int = SR) -> np.ndarray:
    """One model input window (2, round(2 s * rate)) float32: cut, copy-padded by repetition, peak 1.0."""
    window = np.empty((2, int(round(WINDOW_S * rate))), dtype=np.float32)
    write_window(window, samples, start_s, end_s, rate)
    return window


def segment_windows(samples: np.ndarray, spans: list[tuple[float, float]], rate: int = SR) -> np.ndarray:
    """Model windows (n, 2, round(2 s * rate)) float32 for (start_s, end_s) spans of one recording."""
    windows = np.empty((len(spans), 2, int(round(WINDOW_S * rate))), dtype=np.float32)
    for window, (start, end) in zip(windows, spans):
        write_window(window, samples, start, end, rate)
    return windows


def librosa_mfcc(window: np.ndarray, sr: int = SR) -> np.ndarray:
    """The reference feature (2, 86, 40) float32: librosa.feature.mfcc on each channel as a mono signal."""
    channels = [
        librosa.feature.mfcc(
            y=np.ascontiguousarray(channel, dtype=np.float32), sr=sr, n_mfcc=N_MFCC, n_fft=N_FFT, hop_length=HOP
        )[:, :N_FRAMES].T
        for channel in window
    ]
    return np.stack(channels).astype(np.float32)


def relative_error(actual: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per segment max |actual - reference| / max |reference| over its 2x86x40 values (shape (B,))."""
    actual = np.asarray(actual, dtype=np.float64).reshape(-1, 2 * N_FRAMES * N_MFCC)
    reference = np.asarray(reference, dtype=np.float64).reshape(-1, 2 * N_FRAMES * N_MFCC)
    scale = np.maximum(np.abs(reference).max(axis=1), np.finfo(np.float64).tiny)
    return np.abs(actual - reference).max(axis=1) / scale


class TorchMFCC(torch.nn.Module):
    """Batched librosa-equivalent MFCC: (B, 2, N) float32 on any device to (B, 2, 86, 40) float32.

    Every step runs in `compute_dtype`; the output is float32. The mel filterbank is librosa's own float32 slaney
    matrix, the window scipy's periodic hann (as librosa uses), the DCT scipy's type-II ortho matrix, so only rounding
    differs from the reference: about 4e-7 relative in float32 (the default: librosa itself computes in float32),
    1e-7 in float64, against the 1e-4 contract. On CUDA float32 needs TF32 matmuls left off (PyTorch's default).
    On the CPU the windows go through in chunks of `cpu_chunk`: a 64-window batch's spectrum is 181 MB in float32,
    which the allocator maps afresh on every call, while 8 windows' stay in the heap and in cache (2 cores, 64
    windows: 0.26 s in one float64 call, 0.08 s in chunks of 8, 0.044 s in float32 chunks of 8).
    """

    def __init__(self, sr: int = SR, compute_dtype: torch.dtype = torch.float32, cpu_chunk: int = 8) -> None:
        super().__init__()
        if cpu_chunk < 1:
            raise ValueError(f"cpu_chunk must be at least 1, got {cpu_chunk}")
        self.compute_dtype = compute_dtype
        self.cpu_chunk = cpu_chunk
        mel = librosa.filters.mel(sr=sr, n_fft=N_FFT, n_mels=N_MELS).astype(np.float64)  # float32 values, exact
        dct = scipy.fft.dct(np.eye(N_MELS), type=2, norm="ortho", axis=0)[:N_MFCC]
        window = scipy.signal.get_window("hann", N_FFT, fftbins=True)
        self.register_buffer("mel_basis", torch.from_numpy(mel).to(compute_dtype), persistent=False)
        self.register_buffer("dct_matrix", torch.from_numpy(dct).to(compute_dtype), persistent=False)
        self.register_buffer("window", torch.from_numpy(window).to(compute_dtype), persistent=False)

    def power_spectrogram(self, signals: torch.Tensor) -> torch.Tensor:
        """|STFT|^2 of (M, N) mono signals, centred and zero-padded as librosa 0.11: (M, 1025, frames)."""
        spectrum = torch.stft(
            signals,
            n_fft=N_FFT,
            hop_length=HOP,
            window=self.window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )
        return spectrum.real.square() + spectrum.imag.square()

    def log_mel(self, power: torch.Tensor) -> torch.Tensor:
        """power_to_db(mel power, ref=1, amin=1e-10, top_db=80) with the floor per signal: (M, 128, frames)."""
        mel = torch.matmul(self.mel_basis, power)
        db = 10.0 * torch.log10(torch.clamp(mel, min=AMIN))
        floor = db.amax(dim=(-2, -1), keepdim=True) - TOP_DB
        return torch.maximum(db, floor)

    def cepstra(self, signals: torch.Tensor) -> torch.Tensor:
        """MFCCs of (M, N) mono signals as (M, 40, all frames) in compute_dtype (every step is per signal)."""
        return torch.matmul(self.dct_matrix, self.log_mel(self.power_spectrogram(signals.to(self.compute_dtype))))

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """MFCCs of a batch of stereo windows (B, 2, N) as (B, 2, 86, 40) float32, channels independent."""
        if windows.ndim != 3 or windows.shape[1] != 2:
            raise ValueError(f"expected windows shaped (B, 2, N), got {tuple(windows.shape)}")
        batch, channels, length = windows.shape
        if batch == 0:
            return torch.zeros((0, channels, N_FRAMES, N_MFCC), dtype=torch.float32, device=windows.device)
        signals = windows.reshape(batch * channels, length)
        parts = signals.split(self.cpu_chunk * channels) if signals.device.type == "cpu" else (signals,)
        cepstra = torch.cat([self.cepstra(part) for part in parts])
        frames = cepstra[..., :N_FRAMES].transpose(-1, -2)
        return frames.reshape(batch, channels, -1, N_MFCC).to(torch.float32).contiguous()


def window_batches(pairs: Iterable[tuple[Window, np.ndarray]], size: int) -> Iterator[tuple[list[Window], np.ndarray]]:
    """Windows in batches of `size` across recordings (a few calls per recording would otherwise make batches of a
    handful) with their peak-normalised (B, 2, 88200) samples, cut from each call straight into one array that every
    batch reuses: use a batch before asking for the next."""
    samples = np.empty((size, 2, WINDOW_SAMPLES), dtype=np.float32)
    batch: list[Window] = []
    for window, call in pairs:
        write_window(
            samples[len(batch)],
            call,
            window.row["start_s"] - window.call.start_s,
            window.row["end_s"] - window.call.start_s,
        )
        batch.append(window)
        if len(batch) == size:
            yield batch, samples
            batch = []
    if batch:
        yield batch, samples[: len(batch)]
