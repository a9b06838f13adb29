"""The synthetic drop drawn before any pixel or sample is rendered: animals, cameras, keeper photos, camera-trap
frames and encounters."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import numpy as np

from models.synthetic.animals import AnimalIdentity, draw_animals
from models.synthetic.calls import CallSegment, Outcome, draw_call_segments
from models.synthetic.streams import STREAM_CALLS, STREAM_PLAN, item_rng

STATION_TZ = timezone(timedelta(hours=8))
MIN_ANIMALS = 4
MAX_ANIMALS = 200
CAMERA_MODELS: tuple[tuple[str, str, int, int], ...] = (
    ("RECONYX", "HyperFire 2", 1280, 720),
    ("Bushnell", "Core DS-4K", 1920, 1080),
    ("Browning", "Recon Force Elite HP4", 1280, 720),
    ("SPYPOINT", "FLEX-M", 1280, 720),
)
KEEPER_CAMERA = ("Canon", "Canon EOS 5D Mark III")


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
    night: int = 0
    wild: tuple[AnimalIdentity, ...] = ()
    traps_only: bool = False


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


def population(plan: DropPlan) -> tuple[AnimalIdentity, ...]:
    """Every animal the plan's frames can show: the registered ones, then the never-registered (wild) ones."""
    return plan.animals + plan.wild


def is_plain_drop(plan: DropPlan) -> bool:
    """Whether the plan is a first night without wild animals and with keeper photos, written as before population
    nights existed (truth without a `registered` column or individuals.csv)."""
    return plan.night == 0 and not plan.wild and not plan.traps_only


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


def camera_weights(cameras: tuple[CameraSpec, ...]) -> np.ndarray:
    """Probability that a trigger is on each camera: the smaller-frame ones fire about twice as often."""
    weights = np.array([1.0 if c.width <= 1280 else 0.45 for c in cameras])
    return weights / weights.sum()


def draw_frames(
    rng: np.random.Generator,
    cameras: tuple[CameraSpec, ...],
    animals: tuple[AnimalIdentity, ...],
    night_start: datetime,
    n_frames: int,
) -> tuple[FramePlan, ...]:
    """Camera-trap frames over one night (17:00 to 08:00), most on the smaller-frame cameras."""
    station = rng.choice(len(cameras), size=n_frames, p=camera_weights(cameras))
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


def studbook_plan(plan: DropPlan) -> DropPlan:
    """The plan's animals and keeper photos only, every sex registered, ids S01.. so they never read as a drop's
    A01.."""
    ids = {a.animal_id: "S" + a.animal_id[1:] for a in plan.animals}
    animals = tuple(dataclasses.replace(a, animal_id=ids[a.animal_id], sex_labelled=True) for a in plan.animals)
    photos = tuple(dataclasses.replace(p, animal_id=ids[p.animal_id]) for p in plan.keeper_photos)
    return dataclasses.replace(plan, animals=animals, keeper_photos=photos, cameras=(), frames=(), encounters=())
