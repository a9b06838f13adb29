"""Synthetic encounter calls: which vocalisations an encounter holds, and their type, pitch and harshness as its
outcome sets them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from models.synthetic.animals import AnimalIdentity, Sex

Outcome = Literal["success", "failure"]
CallType = Literal["bleat", "chirp", "moan", "roar", "bark"]
CALL_TYPES: tuple[CallType, ...] = ("bleat", "chirp", "moan", "roar", "bark")
SUCCESS_CALL_MIX = (0.45, 0.30, 0.10, 0.08, 0.07)
FAILURE_CALL_MIX = (0.08, 0.07, 0.28, 0.30, 0.27)
CALL_LENGTH_S: tuple[tuple[float, float], ...] = ((0.6, 2.8), (0.15, 1.0), (1.2, 4.0), (0.5, 2.2), (0.12, 1.0))
CALL_F0_HZ: tuple[tuple[float, float], ...] = ((500, 1000), (900, 1500), (150, 300), (150, 300), (200, 400))


@dataclass(frozen=True)
class CallSegment:
    """One vocalisation placed in an encounter recording (times in seconds from the start)."""

    start_s: float
    end_s: float
    call_type: CallType
    caller: Sex
    f0_hz: float
    harshness: float
    low_hz: float
    high_hz: float


def call_band_hz(call_type: CallType, f0: float) -> tuple[float, float]:
    """Low and high frequency of a call's selection box in a spectrogram."""
    bands = {
        "bleat": (0.8 * f0, min(8.5 * f0, 10000.0)),
        "chirp": (0.8 * f0, min(3.2 * f0, 9000.0)),
        "moan": (0.8 * f0, 3500.0),
        "roar": (120.0, 4500.0),
        "bark": (250.0, 5500.0),
    }
    low, high = bands[call_type]
    return round(low), round(high)


def draw_call(
    rng: np.random.Generator,
    start: float,
    outcome: Outcome,
    mix: np.ndarray,
    male: AnimalIdentity,
    female: AnimalIdentity,
) -> CallSegment:
    """One call starting at `start`: type from the encounter's mixture, pitch and harshness from the outcome."""
    kind = int(rng.choice(len(CALL_TYPES), p=mix))
    call_type = CALL_TYPES[kind]
    length = float(rng.uniform(*CALL_LENGTH_S[kind]))
    caller: Sex = "female" if rng.random() < 0.5 else "male"
    pitch = (female if caller == "female" else male).voice_pitch
    mood = rng.uniform(1.05, 1.3) if outcome == "success" else rng.uniform(0.8, 1.05)
    f0 = round(float(rng.uniform(*CALL_F0_HZ[kind]) * mood * pitch), 1)
    harsh = rng.uniform(0.05, 0.45) if outcome == "success" else rng.uniform(0.35, 0.9)
    low, high = call_band_hz(call_type, f0)
    return CallSegment(
        round(start, 3), round(start + length, 3), call_type, caller, f0, round(float(harsh), 3), low, high
    )


def draw_call_segments(
    rng: np.random.Generator, outcome: Outcome, duration: float, male: AnimalIdentity, female: AnimalIdentity
) -> tuple[CallSegment, ...]:
    """Calls of one encounter, back to back with pauses, ending at least 0.3 s before the recording ends."""
    base = SUCCESS_CALL_MIX if outcome == "success" else FAILURE_CALL_MIX
    mix = rng.dirichlet(np.array(base) * 40.0)
    calls: list[CallSegment] = []
    start = float(rng.uniform(0.3, 2.0))
    while True:
        call = draw_call(rng, start, outcome, mix, male, female)
        if call.end_s > duration - 0.3:
            return tuple(calls)
        calls.append(call)
        start = call.end_s + float(rng.uniform(0.4, 3.0))
