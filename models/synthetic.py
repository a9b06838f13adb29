"""Deterministic synthetic giant-panda drops: identities, keeper face photos, camera-trap scenes, encounter audio.

Pure code: no disk I/O. Every random draw comes from a numpy Generator derived from (seed, stream, index),
so each rendered item is a pure function of the seed and items can be rendered in any order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from scipy import fft, signal

Sex = Literal["female", "male"]
Outcome = Literal["success", "failure"]
CallType = Literal["bleat", "chirp", "moan", "roar", "bark"]
RGB = tuple[int, int, int]

SAMPLE_RATE = 44100
STATION_TZ = timezone(timedelta(hours=8))
MIN_ANIMALS = 4
MAX_ANIMALS = 200
KEEPER_PHOTO_SIZE = 320
MAX_RENDER_SIZE = 768
FACE_BOX_FRACTION = 0.6
BLACK_FUR: RGB = (24, 21, 21)
CALL_TYPES: tuple[CallType, ...] = ("bleat", "chirp", "moan", "roar", "bark")
SUCCESS_CALL_MIX = (0.45, 0.30, 0.10, 0.08, 0.07)
FAILURE_CALL_MIX = (0.08, 0.07, 0.28, 0.30, 0.27)
CALL_LENGTH_S: tuple[tuple[float, float], ...] = ((0.6, 2.8), (0.15, 1.0), (1.2, 4.0), (0.5, 2.2), (0.12, 1.0))
CALL_F0_HZ: tuple[tuple[float, float], ...] = ((500, 1000), (900, 1500), (150, 300), (150, 300), (200, 400))
NAME_SYLLABLES = (
    "Mei",
    "Bao",
    "Xin",
    "Le",
    "Hua",
    "Yuan",
    "Qing",
    "Ying",
    "Lun",
    "Tian",
    "Xiao",
    "Ya",
    "Fu",
    "Long",
    "Jing",
    "Shan",
    "Zhu",
    "An",
    "Ling",
    "Cheng",
)
CAMERA_MODELS: tuple[tuple[str, str, int, int], ...] = (
    ("RECONYX", "HyperFire 2", 1280, 720),
    ("Bushnell", "Core DS-4K", 1920, 1080),
    ("Browning", "Recon Force Elite HP4", 1280, 720),
    ("SPYPOINT", "FLEX-M", 1280, 720),
)
KEEPER_CAMERA = ("Canon", "Canon EOS 5D Mark III")

STREAM_PLAN, STREAM_KEEPER, STREAM_SCENE, STREAM_CALLS, STREAM_AUDIO, STREAM_MARKINGS = range(6)


@dataclass(frozen=True)
class TraitSpec:
    """Between-animal distribution of one identity trait; males shift by `male_shift_sd` standard deviations."""

    name: str
    mean: float
    sd: float
    male_shift_sd: float


TRAITS: tuple[TraitSpec, ...] = (
    TraitSpec("head_aspect", 1.15, 0.10, 1.0),
    TraitSpec("ear_spacing", 0.74, 0.09, 1.0),
    TraitSpec("patch_scale", 1.0, 0.20, 1.0),
    TraitSpec("ear_size", 0.34, 0.07, 0.9),
    TraitSpec("muzzle_scale", 1.0, 0.14, 0.8),
    TraitSpec("patch_elongation", 1.55, 0.12, 0.0),
    TraitSpec("patch_tilt_deg", 28.0, 6.0, 0.0),
    TraitSpec("patch_asymmetry", 0.0, 0.06, 0.0),
    TraitSpec("patch_spacing", 0.40, 0.03, 0.0),
    TraitSpec("voice_pitch", 1.0, 0.06, -0.5),
)


@dataclass(frozen=True)
class AnimalIdentity:
    """One animal: registry facts plus the stable appearance and voice parameters drawn once."""

    animal_id: str
    sex: Sex
    sex_labelled: bool
    name: str
    birth_date: date
    head_aspect: float
    ear_spacing: float
    patch_scale: float
    ear_size: float
    patch_elongation: float
    patch_tilt_deg: float
    patch_asymmetry: float
    patch_spacing: float
    muzzle_scale: float
    voice_pitch: float
    fur_tint: RGB
    marking_seed: int


@dataclass(frozen=True)
class CameraSpec:
    """A camera-trap station: id, EXIF make/model and frame size."""

    camera_id: str
    make: str
    model: str
    width: int
    height: int


@dataclass(frozen=True)
class KeeperPhotoPlan:
    """One keeper photo of a known animal, already cropped to the face."""

    serial: int
    animal_id: str
    file_name: str
    captured_at: datetime


@dataclass(frozen=True)
class FramePlan:
    """One camera-trap frame: where, when, whether infrared, and which animals' faces it shows."""

    serial: int
    camera_id: str
    file_name: str
    captured_at: datetime
    infrared: bool
    animal_ids: tuple[str, ...]


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


@dataclass(frozen=True)
class EncounterPlan:
    """One breeding encounter: the pair, its recording length, true outcome and the calls placed in it."""

    serial: int
    encounter_id: str
    male_id: str
    female_id: str
    started_at: datetime
    outcome: Outcome
    outcome_known: bool
    duration_s: float
    snr_db: float
    segments: tuple[CallSegment, ...]


@dataclass(frozen=True)
class DropPlan:
    """Everything drawn for one drop before any pixel or sample is rendered."""

    seed: int
    n_animals: int
    night_start: datetime
    animals: tuple[AnimalIdentity, ...]
    cameras: tuple[CameraSpec, ...]
    keeper_photos: tuple[KeeperPhotoPlan, ...]
    frames: tuple[FramePlan, ...]
    encounters: tuple[EncounterPlan, ...]


@dataclass(frozen=True)
class FaceBox:
    """True face box of one animal in a frame, in pixels (top-left origin)."""

    animal_id: str
    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True)
class FacePose:
    """Per-image pose nuisance of one face: slight yaw/pitch squeeze and the matching feature shift."""

    squeeze_x: float
    squeeze_y: float
    feature_shift: float


@dataclass(frozen=True)
class Markings:
    """Stable per-animal marks: eye-patch outline wobble, faint smudges, and a fur-shade field seed."""

    wobble_left: tuple[tuple[int, float, float], ...]
    wobble_right: tuple[tuple[int, float, float], ...]
    smudges: tuple[tuple[float, float, float, float], ...]
    field_seed: int


@dataclass(frozen=True)
class FaceGeometry:
    """Pixel geometry of one face drawing on the render canvas."""

    cx: float
    cy: float
    rx: float
    ry: float
    ear_dx: float
    ear_dy: float
    ear_r: float
    patch_dx: float
    patch_dy: float
    patch_a: float
    patch_b: float
    shift: float


# ---------------------------------------------------------------- planning


def item_rng(seed: int, stream: int, *index: int) -> np.random.Generator:
    """Independent generator for one item, a pure function of (seed, stream, index)."""
    return np.random.default_rng([seed, stream, *index])


def plan_drop(seed: int, n_animals: int) -> DropPlan:
    """Draw the whole drop plan (animals, photos, frames, encounters) from the seed."""
    if seed < 0:
        raise ValueError(f"The seed must be a non-negative integer, got {seed}.")
    if not MIN_ANIMALS <= n_animals <= MAX_ANIMALS:
        raise ValueError(f"A sample drop needs between {MIN_ANIMALS} and {MAX_ANIMALS} animals, got {n_animals}.")
    rng = item_rng(seed, STREAM_PLAN)
    day = date(2024, 3, 20) + timedelta(days=int(rng.integers(0, 50)))
    night_start = datetime(day.year, day.month, day.day, 17, 0, tzinfo=STATION_TZ)
    animals = draw_animals(rng, n_animals)
    cameras = camera_specs(n_animals)
    keeper_photos = draw_keeper_photos(rng, animals, night_start)
    frames = draw_frames(rng, cameras, animals, night_start, 3 * n_animals)
    encounters = draw_encounters(rng, seed, animals, night_start, max(4, round(2 * n_animals / 3)))
    return DropPlan(seed, n_animals, night_start, animals, cameras, keeper_photos, frames, encounters)


def draw_sexes(rng: np.random.Generator, n: int) -> tuple[Sex, ...]:
    """True sexes of n animals, both sexes at least max(2, n/4) times."""
    floor = max(2, n // 4)
    n_male = int(np.clip(rng.binomial(n, 0.45), floor, n - floor))
    sexes: list[Sex] = ["male"] * n_male + ["female"] * (n - n_male)
    return tuple(sexes[i] for i in rng.permutation(n))


def draw_labelled(rng: np.random.Generator, sexes: tuple[Sex, ...], fraction: float = 0.6) -> tuple[bool, ...]:
    """Which animals have a registered sex: about `fraction` of each sex, never all of one."""
    labelled = [False] * len(sexes)
    for sex in ("female", "male"):
        members = [i for i, s in enumerate(sexes) if s == sex]
        k = min(len(members) - 1, max(1, round(fraction * len(members))))
        for i in rng.choice(members, size=k, replace=False):
            labelled[int(i)] = True
    return tuple(labelled)


def draw_names(rng: np.random.Generator, n: int) -> tuple[str, ...]:
    """Distinct two-syllable panda names."""
    pairs = [(a, b) for a in NAME_SYLLABLES for b in NAME_SYLLABLES if a != b]
    return tuple(f"{pairs[i][0]}{pairs[i][1].lower()}" for i in rng.choice(len(pairs), size=n, replace=False))


def draw_traits(rng: np.random.Generator, sex: Sex) -> dict[str, float]:
    """Identity traits of one animal (within 2.5 SD); sex moves the dimorphic ones by their effect size."""
    sign = 0.5 if sex == "male" else -0.5
    z = np.clip(rng.standard_normal(len(TRAITS)), -2.5, 2.5)
    return {t.name: round(t.mean + t.sd * (float(zi) + sign * t.male_shift_sd), 4) for t, zi in zip(TRAITS, z)}


def draw_animals(rng: np.random.Generator, n: int) -> tuple[AnimalIdentity, ...]:
    """Draw n animals with neutral ids A01.., true sexes, a labelled subset and identity traits."""
    sexes = draw_sexes(rng, n)
    labelled = draw_labelled(rng, sexes)
    names = draw_names(rng, n)
    width = max(2, len(str(n)))
    animals = []
    for i in range(n):
        born = date(2024, 1, 1) - timedelta(days=int(rng.integers(2 * 365, 20 * 365)))
        white = int(rng.integers(228, 248))
        tint = (white, white - int(rng.integers(0, 9)), white - int(rng.integers(6, 26)))
        animals.append(
            AnimalIdentity(
                animal_id=f"A{i + 1:0{width}d}",
                sex=sexes[i],
                sex_labelled=labelled[i],
                name=names[i],
                birth_date=born,
                fur_tint=tint,
                marking_seed=int(rng.integers(0, 2**31)),
                **draw_traits(rng, sexes[i]),
            )
        )
    return tuple(animals)


def camera_specs(n_animals: int) -> tuple[CameraSpec, ...]:
    """Camera stations for a drop: at least two, with two frame sizes."""
    n = min(len(CAMERA_MODELS), 2 + n_animals // 12)
    return tuple(CameraSpec(f"cam{i + 1:02d}", *CAMERA_MODELS[i]) for i in range(n))


def draw_keeper_photos(
    rng: np.random.Generator, animals: tuple[AnimalIdentity, ...], night_start: datetime
) -> tuple[KeeperPhotoPlan, ...]:
    """Four to twelve daytime keeper photos per animal, taken in the week before the night."""
    photos = []
    for animal in animals:
        for k in range(int(rng.integers(4, 13))):
            taken = night_start - timedelta(days=int(rng.integers(1, 8)), hours=float(rng.uniform(1, 8)))
            taken = taken.replace(microsecond=0)
            photos.append(KeeperPhotoPlan(len(photos), animal.animal_id, f"{animal.animal_id}_{k + 1:02d}.jpg", taken))
    return tuple(photos)


def is_dark(moment: datetime) -> bool:
    """Whether a local time falls in the dark hours (20:30 to 05:00), when traps shoot infrared."""
    minutes = moment.hour * 60 + moment.minute
    return minutes >= 20 * 60 + 30 or minutes < 5 * 60


def frame_offset_s(rng: np.random.Generator) -> float:
    """Seconds after 17:00 of one trigger: any time to 08:00, but most often at dusk or dawn."""
    if rng.random() < 0.6:
        return float(rng.uniform(0, 15 * 3600))
    dusk = rng.random() < 0.5
    return float(rng.uniform(0, 3.5 * 3600) if dusk else rng.uniform(12 * 3600, 15 * 3600))


def draw_frames(
    rng: np.random.Generator,
    cameras: tuple[CameraSpec, ...],
    animals: tuple[AnimalIdentity, ...],
    night_start: datetime,
    n_frames: int,
) -> tuple[FramePlan, ...]:
    """Camera-trap frames over one night (17:00 to 08:00), most on the smaller-frame cameras."""
    weights = np.array([1.0 if c.width <= 1280 else 0.45 for c in cameras])
    station = rng.choice(len(cameras), size=n_frames, p=weights / weights.sum())
    offsets = np.sort([frame_offset_s(rng) for _ in range(n_frames)])
    frames, taken_per_camera = [], [0] * len(cameras)
    for serial, (c, offset) in enumerate(zip(station, offsets)):
        taken_per_camera[c] += 1
        moment = night_start + timedelta(seconds=int(offset))
        n_faces = int(rng.choice(3, p=[0.25, 0.55, 0.20]))
        ids = tuple(animals[int(i)].animal_id for i in rng.choice(len(animals), size=n_faces, replace=False))
        file_name = f"IMG_{taken_per_camera[c]:04d}.jpg"
        frames.append(FramePlan(serial, cameras[c].camera_id, file_name, moment, is_dark(moment), ids))
    return tuple(frames)


def draw_outcomes(rng: np.random.Generator, n: int) -> tuple[tuple[Outcome, ...], tuple[bool, ...]]:
    """True outcomes (both present) and which are known (about 70%, both outcomes among them)."""
    n_success = int(np.clip(rng.binomial(n, 0.5), 2, n - 2))
    outcomes: list[Outcome] = ["success"] * n_success + ["failure"] * (n - n_success)
    outcomes = [outcomes[i] for i in rng.permutation(n)]
    known = [False] * n
    for outcome in ("success", "failure"):
        members = [i for i, o in enumerate(outcomes) if o == outcome]
        for i in rng.choice(members, size=max(1, round(0.7 * len(members))), replace=False):
            known[int(i)] = True
    return tuple(outcomes), tuple(known)


def draw_encounter_starts(rng: np.random.Generator, night_start: datetime, n: int) -> list[datetime]:
    """Sorted start times of n daytime encounters (08:00 to 17:00) in the four weeks before the night."""
    morning = night_start.replace(hour=8, minute=0, second=0)
    return sorted(
        morning - timedelta(days=int(rng.integers(1, 29))) + timedelta(minutes=int(rng.integers(0, 540)))
        for _ in range(n)
    )


def draw_encounters(
    rng: np.random.Generator, seed: int, animals: tuple[AnimalIdentity, ...], night_start: datetime, n: int
) -> tuple[EncounterPlan, ...]:
    """Daytime male-female encounters over the four weeks before the night, in time order."""
    males = [animals[int(i)] for i in rng.permutation(len(animals)) if animals[int(i)].sex == "male"]
    females = [animals[int(i)] for i in rng.permutation(len(animals)) if animals[int(i)].sex == "female"]
    outcomes, known = draw_outcomes(rng, n)
    starts = draw_encounter_starts(rng, night_start, n)
    encounters, width = [], max(2, len(str(n)))
    for i in range(n):
        male, female = males[i % len(males)], females[i % len(females)]
        duration = round(float(rng.uniform(20.0, 45.0)), 2)
        calls = draw_call_segments(item_rng(seed, STREAM_CALLS, i), outcomes[i], duration, male, female)
        encounters.append(
            EncounterPlan(
                serial=i,
                encounter_id=f"E{i + 1:0{width}d}",
                male_id=male.animal_id,
                female_id=female.animal_id,
                started_at=starts[i],
                outcome=outcomes[i],
                outcome_known=known[i],
                duration_s=duration,
                snr_db=round(float(rng.uniform(6.0, 24.0)), 1),
                segments=calls,
            )
        )
    return tuple(encounters)


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


# ---------------------------------------------------------------- textures and backgrounds


def smooth_noise(rng: np.random.Generator, width: int, height: int, cell: float) -> np.ndarray:
    """Zero-mean unit-variance noise with features of about `cell` pixels, shape (height, width)."""
    grid = rng.standard_normal((int(height / cell) + 3, int(width / cell) + 3)).astype(np.float32)
    field = np.asarray(Image.fromarray(grid).resize((width, height), Image.Resampling.BICUBIC))
    return (field - field.mean()) / (field.std() + 1e-6)


def fractal_noise(rng: np.random.Generator, width: int, height: int, cells: tuple[float, ...]) -> np.ndarray:
    """Sum of smooth noises at several feature sizes, coarse ones weighted more, unit variance."""
    total = np.zeros((height, width), np.float32)
    for k, cell in enumerate(cells):
        total += smooth_noise(rng, width, height, max(cell, 1.0)) / (1.6**k)
    return total / total.std()


def palette_blend(field: np.ndarray, dark: RGB, light: RGB) -> np.ndarray:
    """Map a noise field to colours between two RGB endpoints, as float array (h, w, 3) in 0..255."""
    t = np.clip(0.5 + 0.22 * field, 0.0, 1.0)[..., None]
    low = np.array(dark, np.float32)
    return t * (np.array(light, np.float32) - low) + low


def ellipse_points(
    cx: float,
    cy: float,
    rx: float,
    ry: float,
    angle_deg: float = 0.0,
    wobble: tuple[tuple[int, float, float], ...] = (),
    exponent: float = 2.0,
    n: int = 72,
) -> list[tuple[float, float]]:
    """Polygon of a rotated (super)ellipse whose radius wobbles by the given (harmonic, amplitude, phase)."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    radius = 1 + sum(a * np.cos(k * t + p) for k, a, p in wobble)
    x = rx * np.sign(np.cos(t)) * np.abs(np.cos(t)) ** (2 / exponent) * radius
    y = ry * np.sign(np.sin(t)) * np.abs(np.sin(t)) ** (2 / exponent) * radius
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    return [(cx + c * xi - s * yi, cy + s * xi + c * yi) for xi, yi in zip(x, y)]


def draw_bamboo(
    rng: np.random.Generator, draw: ImageDraw.ImageDraw, width: int, height: int, n_stalks: int, scale: float
) -> None:
    """Draw near-vertical bamboo stalks with nodes and a few leaves."""
    for _ in range(n_stalks):
        x0 = float(rng.uniform(-0.1, 1.1)) * width
        lean = float(rng.uniform(-0.25, 0.25)) * height
        stalk = int(rng.uniform(4, 22) * scale)
        green = (int(rng.integers(70, 150)), int(rng.integers(110, 175)), int(rng.integers(40, 90)))
        draw.line([(x0, height * 1.05), (x0 + lean, -0.05 * height)], fill=green, width=max(2, stalk))
        for y in np.arange(rng.uniform(0, 0.2), 1.0, rng.uniform(0.12, 0.3)) * height:
            x = x0 + lean * (1 - y / height)
            draw.line([(x - stalk * 0.6, y), (x + stalk * 0.6, y)], fill=(60, 80, 35), width=max(1, stalk // 4))
        for _ in range(int(rng.integers(1, 5))):
            y = float(rng.uniform(0, height))
            x = x0 + lean * (1 - y / height)
            leaf = ellipse_points(x + rng.uniform(-3, 3) * stalk, y, 3.5 * stalk, 0.8 * stalk, rng.uniform(-60, 60))
            draw.polygon(leaf, fill=(int(rng.integers(40, 110)), int(rng.integers(100, 160)), 40))


def vegetation_background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """Dense green-brown foliage texture with bamboo stalks."""
    scale = max(width, height) / 1280
    field = fractal_noise(rng, width, height, (width / 6, width / 24, 12 * scale, 3))
    soil = smooth_noise(rng, width, height, width / 5)[..., None]
    rgb = palette_blend(field, (22, 38, 16), (110, 145, 62))
    earth = 0.35 * np.clip(soil, 0, 1)
    rgb = rgb * (1 - earth) + np.array([95, 75, 50], np.float32) * earth
    image = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    draw_bamboo(rng, ImageDraw.Draw(image), width, height, int(rng.integers(4, 14)), scale)
    return image


def natural_tone(rng: np.random.Generator) -> np.ndarray:
    """An earthy, leafy or stony RGB colour (float32)."""
    grey = float(rng.uniform(50, 190))
    return np.array([grey + rng.uniform(-10, 25), grey + rng.uniform(-5, 22), grey + rng.uniform(-30, 8)], np.float32)


def gradient_background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A soft two-colour gradient (sky, wall or ground) with grain."""
    angle = float(rng.uniform(0, 2 * np.pi))
    xs = np.cos(angle) * np.arange(width, dtype=np.float32) / width
    ys = np.sin(angle) * np.arange(height, dtype=np.float32)[:, None] / height
    t = xs + ys
    t = ((t - t.min()) / (t.max() - t.min() + 1e-6))[..., None]
    a, b = natural_tone(rng), natural_tone(rng)
    grain = fractal_noise(rng, width, height, (width / 8, 6, 2))[..., None] * float(rng.uniform(4, 14))
    rgb = a * (1 - t) + b * t + grain
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def rock_background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """Earth ground with scattered grey and brown rocks."""
    field = fractal_noise(rng, width, height, (width / 5, width / 30, 4))
    image = Image.fromarray(np.clip(palette_blend(field, (70, 58, 42), (150, 130, 100)), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(6, 24))):
        r = float(rng.uniform(0.03, 0.18)) * width
        grey = int(rng.integers(70, 180))
        tone = (grey, grey + int(rng.integers(-8, 8)), grey - int(rng.integers(0, 20)))
        wobble = tuple((k, float(rng.uniform(0, 0.12)), float(rng.uniform(0, 6.3))) for k in (2, 3, 5))
        draw.polygon(
            ellipse_points(
                rng.uniform(0, width), rng.uniform(0, height), r, r * rng.uniform(0.4, 0.9), rng.uniform(0, 180), wobble
            ),
            fill=tone,
        )
    texture = fractal_noise(rng, width, height, (20, 5, 2))[..., None] * 10
    return Image.fromarray(np.clip(np.asarray(image, np.float32) + texture, 0, 255).astype(np.uint8))


def draw_background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A random synthetic background: vegetation, gradient or rocks."""
    kind = int(rng.choice(3, p=[0.5, 0.2, 0.3]))
    makers = (vegetation_background, gradient_background, rock_background)
    return makers[kind](rng, width, height)


# ---------------------------------------------------------------- faces


def draw_wobble(rng: np.random.Generator) -> tuple[tuple[int, float, float], ...]:
    """Outline wobble of one eye patch: (harmonic, amplitude, phase) for harmonics 2 to 4."""
    return tuple((k, float(rng.normal(0, 0.10)), float(rng.uniform(0, 2 * np.pi))) for k in (2, 3, 4))


def animal_markings(identity: AnimalIdentity) -> Markings:
    """The animal's fixed marks, drawn from its own marking seed."""
    rng = item_rng(identity.marking_seed, STREAM_MARKINGS)
    left, right = draw_wobble(rng), draw_wobble(rng)
    smudges = tuple(
        (
            float(rng.uniform(-0.6, 0.6)),
            float(rng.uniform(-0.7, 0.5)),
            float(rng.uniform(0.1, 0.3)),
            float(rng.uniform(0.12, 0.35)),
        )
        for _ in range(int(rng.integers(1, 4)))
    )
    return Markings(left, right, smudges, int(rng.integers(0, 2**31)))


def draw_pose(rng: np.random.Generator) -> FacePose:
    """Per-image pose nuisance: small yaw and pitch."""
    yaw = float(rng.uniform(-1, 1))
    return FacePose(1.0 - 0.05 * abs(yaw), float(rng.uniform(0.95, 1.04)), 0.07 * yaw)


def face_geometry(identity: AnimalIdentity, pose: FacePose, size: int) -> FaceGeometry:
    """Pixel geometry of the face on a square canvas; the head is centred a little below the middle."""
    ry = 0.245 * size * pose.squeeze_y
    rx = 0.245 * size * identity.head_aspect * pose.squeeze_x
    patch_a = 0.17 * ry * identity.patch_scale
    return FaceGeometry(
        cx=size / 2,
        cy=0.54 * size,
        rx=rx,
        ry=ry,
        ear_dx=identity.ear_spacing * rx,
        ear_dy=-0.80 * ry,
        ear_r=identity.ear_size * ry,
        patch_dx=identity.patch_spacing * rx,
        patch_dy=-0.05 * ry,
        patch_a=patch_a,
        patch_b=patch_a * identity.patch_elongation,
        shift=pose.feature_shift * rx,
    )


def marking_field(marks: Markings, g: FaceGeometry, size: int) -> np.ndarray:
    """Multiplicative fur shade (per animal, in face coordinates): smudges, mottling and rounded shading."""
    small, k = size // 4, 4.0
    mottle = 1.0 + 0.12 * smooth_noise(item_rng(marks.field_seed, STREAM_MARKINGS), small, small, small / 7)
    smudge_layer = Image.new("L", (small, small), 0)
    draw = ImageDraw.Draw(smudge_layer)
    cx, cy, rx, ry = g.cx / k, g.cy / k, g.rx / k, g.ry / k
    for x, y, r, strength in marks.smudges:
        draw.ellipse(
            [cx + (x - r) * rx, cy + (y - r) * ry, cx + (x + r) * rx, cy + (y + r) * ry], fill=int(255 * strength)
        )
    smudges = np.asarray(smudge_layer.filter(ImageFilter.GaussianBlur(0.12 * ry)), np.float32) / 255
    yy, xx = np.mgrid[0:small, 0:small].astype(np.float32)
    shading = 1.0 - 0.14 * np.clip(((xx - cx) / rx) ** 2 + ((yy - cy + 0.2 * ry) / ry) ** 2, 0, 1.5)
    field = (mottle * (1 - smudges) * shading).astype(np.float32)
    return np.asarray(Image.fromarray(field).resize((size, size), Image.Resampling.BICUBIC))


def draw_head(colour: Image.Image, alpha: Image.Image, identity: AnimalIdentity, g: FaceGeometry) -> None:
    """Black ears behind a cream head; the alpha mask covers both."""
    for side in (-1, 1):
        ear = [
            g.cx + side * g.ear_dx - g.ear_r,
            g.cy + g.ear_dy - g.ear_r,
            g.cx + side * g.ear_dx + g.ear_r,
            g.cy + g.ear_dy + g.ear_r,
        ]
        ImageDraw.Draw(colour).ellipse(ear, fill=BLACK_FUR)
        ImageDraw.Draw(alpha).ellipse(ear, fill=255)
    head = ellipse_points(g.cx, g.cy, g.rx, g.ry, exponent=2.3, n=120)
    ImageDraw.Draw(colour).polygon(head, fill=identity.fur_tint)
    ImageDraw.Draw(alpha).polygon(head, fill=255)
    muzzle_tint = tuple(min(255, c + 12) for c in identity.fur_tint)
    m = identity.muzzle_scale
    ImageDraw.Draw(colour).polygon(
        ellipse_points(g.cx + 0.8 * g.shift, g.cy + 0.45 * g.ry, 0.36 * g.ry * m, 0.27 * g.ry * m, exponent=2.2),
        fill=muzzle_tint,
    )


def draw_eye_patches(draw: ImageDraw.ImageDraw, identity: AnimalIdentity, marks: Markings, g: FaceGeometry) -> None:
    """Tilted, slightly asymmetric teardrop patches with the eyes inside."""
    for side, wobble in ((-1, marks.wobble_left), (1, marks.wobble_right)):
        grow = 1 + side * identity.patch_asymmetry
        px, py = g.cx + side * g.patch_dx + g.shift, g.cy + g.patch_dy
        draw.polygon(
            ellipse_points(px, py, g.patch_a * grow, g.patch_b * grow, -side * identity.patch_tilt_deg, wobble),
            fill=BLACK_FUR,
        )
        ex, ey, er = px - side * 0.12 * g.patch_a, py - 0.25 * g.patch_b, 0.045 * g.ry
        draw.ellipse([ex - er * 1.35, ey - er * 1.35, ex + er * 1.35, ey + er * 1.35], fill=(75, 58, 44))
        draw.ellipse([ex - er, ey - er, ex + er, ey + er], fill=(12, 9, 8))
        gr = 0.32 * er
        draw.ellipse(
            [ex - 0.4 * er - gr, ey - 0.4 * er - gr, ex - 0.4 * er + gr, ey - 0.4 * er + gr], fill=(235, 235, 230)
        )


def draw_nose_and_mouth(draw: ImageDraw.ImageDraw, g: FaceGeometry, muzzle_scale: float) -> None:
    """Black nose (sized with the muzzle) above a small mouth."""
    nx, ny, u = g.cx + g.shift, g.cy + 0.30 * g.ry, g.ry * muzzle_scale
    draw.polygon(ellipse_points(nx, ny, 0.14 * u, 0.085 * u, exponent=2.6), fill=(18, 16, 16))
    draw.ellipse([nx - 0.05 * u, ny - 0.05 * u, nx - 0.01 * u, ny - 0.03 * u], fill=(90, 88, 88))
    line = max(2, int(0.02 * g.ry))
    draw.line([(nx, ny + 0.07 * u), (nx, ny + 0.19 * u)], fill=(45, 38, 36), width=line)
    draw.line(
        [(nx - 0.12 * u, ny + 0.24 * u), (nx, ny + 0.19 * u), (nx + 0.12 * u, ny + 0.24 * u)],
        fill=(45, 38, 36),
        width=line,
        joint="curve",
    )


def render_face_rgba(identity: AnimalIdentity, pose: FacePose, size: int) -> Image.Image:
    """One panda face on a transparent square canvas of `size` pixels (drawn 1.5 times larger, then reduced)."""
    work = int(np.clip(1.5 * size, 128, MAX_RENDER_SIZE)) // 4 * 4
    g = face_geometry(identity, pose, work)
    marks = animal_markings(identity)
    colour = Image.new("RGB", (work, work), identity.fur_tint)
    alpha = Image.new("L", (work, work), 0)
    draw_head(colour, alpha, identity, g)
    shaded = np.asarray(colour, np.float32) * marking_field(marks, g, work)[..., None]
    colour = Image.fromarray(np.clip(shaded, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(colour)
    draw_eye_patches(draw, identity, marks, g)
    draw_nose_and_mouth(draw, g, identity.muzzle_scale)
    face = colour.convert("RGBA")
    face.putalpha(alpha)
    return face.resize((size, size), Image.Resampling.LANCZOS)


def add_fur_grain(rng: np.random.Generator, face: Image.Image, strength: float) -> Image.Image:
    """Fine multiplicative fur grain, new for every image."""
    rgba = np.asarray(face, np.float32).copy()
    grain = smooth_noise(rng, face.width, face.height, 1.5)
    rgba[..., :3] *= (1 + strength * grain)[..., None]
    return Image.fromarray(np.clip(rgba, 0, 255).astype(np.uint8), "RGBA")


def adjust_photometry(
    rng: np.random.Generator, image: Image.Image, gain: tuple[float, float], contrast: tuple[float, float], cast: float
) -> Image.Image:
    """Random brightness, contrast and colour cast of the colour channels (alpha kept)."""
    pixels = np.asarray(image, np.float32).copy()
    rgb = pixels[..., :3]
    mean = rgb.mean()
    rgb = (rgb - mean) * rng.uniform(*contrast) + mean
    rgb = rgb * rng.uniform(*gain) * rng.uniform(1 - cast, 1 + cast, size=3)
    pixels[..., :3] = np.clip(rgb, 0, 255)
    return Image.fromarray(pixels.astype(np.uint8), image.mode)


def prepared_face(
    rng: np.random.Generator, identity: AnimalIdentity, canvas: int, gain: tuple[float, float], tilt_deg: float
) -> Image.Image:
    """A posed, grained, lit and tilted face, ready to paste with its own alpha."""
    face = render_face_rgba(identity, draw_pose(rng), canvas)
    face = add_fur_grain(rng, face, float(rng.uniform(0.02, 0.07)))
    face = adjust_photometry(rng, face, gain, (0.8, 1.15), 0.03)
    return face.rotate(tilt_deg, Image.Resampling.BICUBIC, expand=True, fillcolor=(*identity.fur_tint, 0))


def face_extent(face: Image.Image) -> tuple[int, int, int, int]:
    """Bounding box (left, top, right, bottom) of the solid part of a face's alpha."""
    box = face.getchannel("A").point(lambda v: 255 if v > 127 else 0).getbbox()
    return box if box else (0, 0, face.width, face.height)


def draw_occluder(rng: np.random.Generator, image: Image.Image, box: tuple[int, int, int, int]) -> None:
    """A bamboo stalk or leaf cluster across part of a face box."""
    left, top, right, bottom = box
    size = max(right - left, bottom - top)
    draw = ImageDraw.Draw(image)
    x = float(rng.uniform(left, right))
    green = (int(rng.integers(60, 140)), int(rng.integers(100, 170)), int(rng.integers(30, 80)))
    if rng.random() < 0.5:
        draw.line(
            [(x, top - size), (x + rng.uniform(-0.4, 0.4) * size, bottom + size)],
            fill=green,
            width=max(2, int(rng.uniform(0.06, 0.16) * size)),
        )
        return
    for _ in range(int(rng.integers(2, 6))):
        y = float(rng.uniform(top, bottom))
        draw.polygon(
            ellipse_points(x + rng.uniform(-0.2, 0.2) * size, y, 0.3 * size, 0.07 * size, rng.uniform(-70, 70)),
            fill=green,
        )


def finish_photo(rng: np.random.Generator, image: Image.Image, blur: float, noise_sd: float) -> Image.Image:
    """Lens blur and (luminance) sensor noise."""
    if blur > 0.05:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    pixels = np.asarray(image, np.float32)
    noise = noise_sd * rng.standard_normal(pixels.shape[:2], dtype=np.float32)
    pixels = pixels + (noise[..., None] if pixels.ndim == 3 else noise)
    return Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8), image.mode)


def compose_keeper_photo(
    rng: np.random.Generator, identity: AnimalIdentity, size: int = KEEPER_PHOTO_SIZE
) -> Image.Image:
    """A keeper's photo cropped to the face: the face fills most of a square RGB frame."""
    photo = draw_background(rng, size, size)
    canvas = round(size * float(rng.uniform(0.70, 0.78)) / FACE_BOX_FRACTION)
    tilt = float(np.clip(rng.normal(0.0, 8.0), -20.0, 20.0))
    face = prepared_face(rng, identity, canvas, (0.85, 1.1), tilt)
    left, top, right, bottom = face_extent(face)
    jitter = rng.uniform(-0.03, 0.03, size=2) * size
    x = int(round((size - (right + left)) / 2 + jitter[0]))
    y = int(round((size - (bottom + top)) / 2 + jitter[1]))
    photo.paste(face, (x, y), face)
    if rng.random() < 0.15:
        draw_occluder(rng, photo, (x + left, y + top, x + right, y + bottom))
    photo = adjust_photometry(rng, photo, (0.75, 1.15), (0.85, 1.15), 0.04)
    return finish_photo(rng, photo, float(rng.uniform(0.0, 1.3)), float(rng.uniform(1.0, 6.0)))


def keeper_photo(plan: DropPlan, photo: KeeperPhotoPlan, size: int = KEEPER_PHOTO_SIZE) -> Image.Image:
    """Render one planned keeper photo (square, `size` pixels)."""
    identity = next(a for a in plan.animals if a.animal_id == photo.animal_id)
    return compose_keeper_photo(item_rng(plan.seed, STREAM_KEEPER, photo.serial), identity, size)


# ---------------------------------------------------------------- camera-trap scenes


def overlaps(box: tuple[int, int, int, int], others: list[FaceBox], margin: int) -> bool:
    """Whether a (left, top, right, bottom) box comes within `margin` pixels of any placed face box."""
    left, top, right, bottom = box
    return any(
        left < o.x + o.w + margin and o.x < right + margin and top < o.y + o.h + margin and o.y < bottom + margin
        for o in others
    )


def place_face(
    rng: np.random.Generator, extent: tuple[int, int, int, int], width: int, height: int, placed: list[FaceBox]
) -> tuple[int, int] | None:
    """Paste offset keeping the face inside the frame and apart from the others, or None."""
    left, top, right, bottom = extent
    if right - left >= width or bottom - top >= height:
        return None
    for _ in range(30):
        x = int(rng.integers(-left, width - right + 1))
        y = int(rng.integers(-top, height - bottom + 1))
        if not overlaps((x + left, y + top, x + right, y + bottom), placed, 8):
            return x, y
    return None


def paste_scene_face(
    rng: np.random.Generator, scene: Image.Image, identity: AnimalIdentity, placed: list[FaceBox]
) -> FaceBox | None:
    """Paste one face at a random place and scale (box about 48 to 360 px); return its true box."""
    box_side = math.exp(rng.uniform(math.log(48), math.log(min(360, 0.5 * scene.height))))
    face = prepared_face(rng, identity, round(box_side / FACE_BOX_FRACTION), (0.55, 1.15), float(rng.uniform(-20, 20)))
    extent = face_extent(face)
    offset = place_face(rng, extent, scene.width, scene.height, placed)
    if offset is None:
        return None
    scene.paste(face, offset, face)
    left, top, right, bottom = extent
    box = FaceBox(identity.animal_id, offset[0] + left, offset[1] + top, right - left, bottom - top)
    if rng.random() < 0.1:
        draw_occluder(rng, scene, (box.x, box.y, box.x + box.w, box.y + box.h))
    return box


def vignette(width: int, height: int, strength: float) -> np.ndarray:
    """Radial fall-off of light towards the corners, 1 in the centre."""
    xs = ((np.arange(width, dtype=np.float32) - width / 2) / (width / 2)) ** 2
    ys = ((np.arange(height, dtype=np.float32)[:, None] - height / 2) / (height / 2)) ** 2
    return 1.0 - strength * np.clip((xs + ys) / 2, 0, 1)


def scene_lighting(rng: np.random.Generator, scene: Image.Image, infrared: bool) -> Image.Image:
    """Whole-frame light: dusk colour and vignette, or an infrared grayscale look at night."""
    rgb = np.asarray(scene, np.float32)
    if infrared:
        gray = rgb @ np.array([0.25, 0.6, 0.15], np.float32)
        gray = (
            255
            * (gray / 255) ** rng.uniform(0.75, 1.15)
            * vignette(scene.width, scene.height, float(rng.uniform(0.3, 0.6)))
        )
        gray = gray * rng.uniform(0.8, 1.15)
        image = Image.fromarray(np.clip(gray, 0, 255).astype(np.uint8), "L")
        return finish_photo(rng, image, float(rng.uniform(0.3, 1.2)), float(rng.uniform(3.0, 8.0)))
    light = vignette(scene.width, scene.height, float(rng.uniform(0.0, 0.35)))[..., None]
    rgb = rgb * light * (rng.uniform(0.55, 1.1) * rng.uniform(0.93, 1.07, size=3)).astype(np.float32)
    image = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    return finish_photo(rng, image, float(rng.uniform(0.0, 1.0)), float(rng.uniform(1.5, 5.0)))


def compose_scene(
    rng: np.random.Generator, camera: CameraSpec, frame: FramePlan, animals: tuple[AnimalIdentity, ...]
) -> tuple[Image.Image, tuple[FaceBox, ...]]:
    """A camera-trap frame (RGB by day, L by night) and the true boxes of the faces pasted in it."""
    scene = draw_background(rng, camera.width, camera.height)
    by_id = {a.animal_id: a for a in animals}
    placed: list[FaceBox] = []
    for animal_id in frame.animal_ids:
        box = paste_scene_face(rng, scene, by_id[animal_id], placed)
        if box is not None:
            placed.append(box)
    return scene_lighting(rng, scene, frame.infrared), tuple(placed)


def scene_frame(plan: DropPlan, frame: FramePlan) -> tuple[Image.Image, tuple[FaceBox, ...]]:
    """Render one planned camera-trap frame with its true face boxes."""
    camera = next(c for c in plan.cameras if c.camera_id == frame.camera_id)
    return compose_scene(item_rng(plan.seed, STREAM_SCENE, frame.serial), camera, frame, plan.animals)


# ---------------------------------------------------------------- audio


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
