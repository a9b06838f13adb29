"""Synthetic encounter recordings: each call type's waveform, placed on two microphones in room noise, as 16-bit
stereo PCM."""

from __future__ import annotations

import numpy as np
from scipy import fft, signal

from models.synthetic.calls import CallSegment
from models.synthetic.plan import DropPlan, EncounterPlan
from models.synthetic.streams import STREAM_AUDIO, item_rng

SAMPLE_RATE = 44100


def harmonic_stack(phase: np.ndarray, n_harmonics: int, rolloff: float) -> np.ndarray:
    """Sum of harmonics of a running phase with 1/k**rolloff amplitudes."""
    phase32 = phase.astype(np.float32)
    out = np.zeros_like(phase32)
    for k in range(1, max(1, n_harmonics) + 1):
        out += np.sin(k * phase32) * np.float32(k**-rolloff)
    return out.astype(np.float64)


def band_noise(rng: np.random.Generator, n: int, low: float, high: float) -> np.ndarray:
    """Unit-RMS Gaussian noise band-passed between low and high Hz."""
    sos = signal.butter(2, [low, min(high, 0.45 * SAMPLE_RATE)], "bandpass", fs=SAMPLE_RATE, output="sos")
    noise = signal.sosfilt(sos, rng.standard_normal(n + 2048))[2048:]
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12)


def wander(rng: np.random.Generator, n: int, rate_hz: float) -> np.ndarray:
    """Smooth zero-mean random wandering of unit scale, changing about `rate_hz` times per second."""
    knots = rng.standard_normal(int(n / SAMPLE_RATE * rate_hz) + 4)
    return np.interp(np.arange(n), np.linspace(0, n, len(knots)), knots)


def running_phase(freq: np.ndarray) -> np.ndarray:
    """Phase (radians) of an oscillator following the instantaneous frequency track."""
    return 2 * np.pi * np.cumsum(freq) / SAMPLE_RATE


def bleat(rng: np.random.Generator, n: int, call: CallSegment) -> np.ndarray:
    """Harmonic bleat with vibrato and a rise-fall contour."""
    t = np.arange(n) / SAMPLE_RATE
    vibrato = 1 + rng.uniform(0.015, 0.045) * np.sin(2 * np.pi * rng.uniform(4, 8) * t + rng.uniform(0, 6.3))
    contour = 1 + 0.06 * np.sin(np.pi * t / t[-1]) + 0.02 * call.harshness * wander(rng, n, 30)
    freq = call.f0_hz * vibrato * contour
    tone = harmonic_stack(running_phase(freq), int(9000 / (call.f0_hz * 1.15)), 1.3)
    return tone + 0.3 * call.harshness * band_noise(rng, n, call.f0_hz, 6000)


def chirp(rng: np.random.Generator, n: int, call: CallSegment) -> np.ndarray:
    """A bout of short rising sweeps."""
    out = np.zeros(n)
    n_sweeps = max(1, min(4, int(n / SAMPLE_RATE / 0.22)))
    slot = n // n_sweeps
    for k in range(n_sweeps):
        m = int(slot * rng.uniform(0.55, 0.9))
        rise = np.geomspace(call.f0_hz, call.f0_hz * rng.uniform(1.8, 2.8), m)
        sweep = harmonic_stack(running_phase(rise), 2, 1.5) * signal.windows.tukey(m, 0.4)
        out[k * slot : k * slot + m] += sweep
    return out


def moan(rng: np.random.Generator, n: int, call: CallSegment) -> np.ndarray:
    """Low, rough, slowly falling harmonic moan."""
    t = np.arange(n) / SAMPLE_RATE
    freq = call.f0_hz * (1.05 - 0.1 * t / t[-1]) * (1 + 0.02 * wander(rng, n, 12))
    roughness = 1 + (0.2 + 0.5 * call.harshness) * np.sin(2 * np.pi * rng.uniform(25, 60) * t)
    tone = harmonic_stack(running_phase(freq), int(3500 / call.f0_hz), 1.0) * roughness
    return tone + 0.6 * call.harshness * band_noise(rng, n, 150, 3000)


def roar(rng: np.random.Generator, n: int, call: CallSegment) -> np.ndarray:
    """Loud, noisy low call with subharmonics."""
    freq = call.f0_hz * (1 + 0.06 * wander(rng, n, 25))
    phase = running_phase(freq)
    tone = harmonic_stack(phase, int(4000 / call.f0_hz), 0.9) + 0.5 * np.sin(phase / 2)
    noise_share = 0.25 + 0.35 * call.harshness
    return (1 - noise_share) * tone + noise_share * 1.2 * band_noise(rng, n, 150, 4000)


def bark(rng: np.random.Generator, n: int, call: CallSegment) -> np.ndarray:
    """One to four short broadband bursts over a low buzz."""
    out = np.zeros(n)
    n_bursts = max(1, min(4, int(n / SAMPLE_RATE / 0.25)))
    slot = n // n_bursts
    for k in range(n_bursts):
        m = int(slot * rng.uniform(0.4, 0.8))
        decay = np.exp(-np.arange(m) / (m * rng.uniform(0.2, 0.4)))
        buzz = harmonic_stack(running_phase(np.full(m, call.f0_hz)), 8, 1.0)
        out[k * slot : k * slot + m] += (2.0 * band_noise(rng, m, 250, 5500) + 0.6 * buzz) * decay
    return out


def synthesize_call(rng: np.random.Generator, call: CallSegment) -> np.ndarray:
    """Mono waveform of one call, unit peak, exactly as long as its segment."""
    n = max(16, int(round((call.end_s - call.start_s) * SAMPLE_RATE)))
    makers = {"bleat": bleat, "chirp": chirp, "moan": moan, "roar": roar, "bark": bark}
    wave = makers[call.call_type](rng, n, call) * signal.windows.tukey(n, float(rng.uniform(0.15, 0.4)))
    return wave / (np.max(np.abs(wave)) + 1e-12)


def place_call(rng: np.random.Generator, track: np.ndarray, wave: np.ndarray, call: CallSegment) -> None:
    """Add a call to both microphones: louder and earlier near the caller, delayed and duller far away."""
    near = 0 if call.caller == "male" else 1
    start = int(round(call.start_s * SAMPLE_RATE))
    delay = int(round(rng.uniform(0.002, 0.012) * SAMPLE_RATE))
    level = float(rng.uniform(0.4, 1.0))
    far_wave = signal.sosfilt(signal.butter(1, rng.uniform(2500, 6000), fs=SAMPLE_RATE, output="sos"), wave)
    track[start : start + len(wave), near] += level * wave
    far_end = min(len(track), start + delay + len(wave))
    track[start + delay : far_end, 1 - near] += level * rng.uniform(0.3, 0.7) * far_wave[: far_end - start - delay]


def colored_noise(rng: np.random.Generator, n: int, exponent: float, count: int) -> np.ndarray:
    """`count` independent unit-RMS noises, shape (count, n), with a 1/f**exponent power spectrum above 20 Hz."""
    size = fft.next_fast_len(n, real=True)
    parts = rng.standard_normal((2, count, size // 2 + 1), dtype=np.float32)
    freqs = fft.rfftfreq(size, 1 / SAMPLE_RATE)
    shape = (np.where(freqs < 20, 0.0, 1.0) / np.maximum(freqs, 20.0) ** (exponent / 2)).astype(np.float32)
    noise = fft.irfft((parts[0] + 1j * parts[1]) * shape, size, axis=-1)[:, :n]
    return noise / np.sqrt(np.mean(noise.astype(np.float64) ** 2, axis=1, keepdims=True))


def background(rng: np.random.Generator, n: int, rms: float) -> np.ndarray:
    """Two-microphone pink/brown room noise, partly shared, with occasional non-vocal clicks."""
    shared, near_male, near_female = colored_noise(rng, n, float(rng.uniform(1.0, 2.0)), 3)
    noise = np.stack([shared + near_male, shared + near_female], axis=1) * (0.7 * rms)
    for _ in range(int(rng.poisson(n / SAMPLE_RATE / 6))):
        m = int(rng.uniform(0.002, 0.008) * SAMPLE_RATE)
        at = int(rng.integers(0, n - m))
        click = rng.standard_normal(m) * np.exp(-np.arange(m) / (m / 4)) * rms * rng.uniform(4, 15)
        noise[at : at + m] += click[:, None] * rng.uniform(0.3, 1.0, size=2)
    return noise


def to_pcm16(track: np.ndarray) -> np.ndarray:
    """Quantise a float track in -1..1 to 16-bit PCM."""
    return np.clip(np.round(track * 32767.0), -32768, 32767).astype("<i2")


def render_encounter(rng: np.random.Generator, encounter: EncounterPlan) -> np.ndarray:
    """Stereo 16-bit recording (frames, 2) of an encounter's calls in background noise, peak below 0.9."""
    n = int(round(encounter.duration_s * SAMPLE_RATE))
    calls = np.zeros((n, 2))
    active = np.zeros(n, bool)
    for call in encounter.segments:
        place_call(rng, calls, synthesize_call(rng, call), call)
        active[int(call.start_s * SAMPLE_RATE) : int(call.end_s * SAMPLE_RATE)] = True
    call_rms = float(np.sqrt(np.mean(calls[active] ** 2))) if active.any() else 0.1
    track = calls + background(rng, n, call_rms / 10 ** (encounter.snr_db / 20))
    return to_pcm16(track * float(rng.uniform(0.35, 0.85)) / np.max(np.abs(track)))


def encounter_audio(plan: DropPlan, encounter: EncounterPlan) -> np.ndarray:
    """Render one planned encounter recording."""
    return render_encounter(item_rng(plan.seed, STREAM_AUDIO, encounter.serial), encounter)
