"""A population over several nights: the seed's registered animals plus never-registered (wild) ones, each visiting
the camera traps on some nights, in short bursts of frames on one camera (camera events)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

import numpy as np

from models.synthetic.animals import AnimalIdentity, draw_wild_animal
from models.synthetic.plan import (
    MAX_ANIMALS,
    CameraSpec,
    DropPlan,
    FramePlan,
    camera_weights,
    frame_offset_s,
    is_dark,
    plan_drop,
)
from models.synthetic.streams import STREAM_HABITS, STREAM_NIGHT, STREAM_WILD, item_rng

MAX_NIGHTS = 3650
VISIT_CYCLE = 4
NIGHT_END_S = 15 * 3600 - 1
COMPANION_CHANCE = 0.15
EMPTY_TRIGGER_SHARE = 0.3


@dataclass(frozen=True)
class VisitHabit:
    """How an animal uses the trap line: the night of every VISIT_CYCLE it surely passes, and its chance on others."""

    phase: int
    propensity: float


@dataclass(frozen=True)
class CameraEvent:
    """One visit of an animal (and perhaps a companion) to one camera: a burst of frames from `start_s` after 17:00."""

    camera: int
    start_s: float
    animal_ids: tuple[str, ...]
    n_frames: int


class Shot(NamedTuple):
    """One trigger before it is numbered: camera index, seconds after 17:00 and the faces it shows."""

    camera: int
    offset_s: float
    animal_ids: tuple[str, ...]


def check_night(night: int, n_wild: int) -> None:
    """Raise ValueError, in one sentence, for a night or a number of wild animals out of range."""
    if not 0 <= night <= MAX_NIGHTS:
        raise ValueError(f"The night must be between 0 (the population's first) and {MAX_NIGHTS}, got {night}.")
    if not 0 <= n_wild <= MAX_ANIMALS:
        raise ValueError(f"The number of never-registered animals must be between 0 and {MAX_ANIMALS}, got {n_wild}.")


def draw_wild_animals(seed: int, n_wild: int) -> tuple[AnimalIdentity, ...]:
    """Never-registered animals W01.., each drawn from its own stream of (seed, number), so more never changes any."""
    return tuple(draw_wild_animal(item_rng(seed, STREAM_WILD, k), k) for k in range(1, n_wild + 1))


def visit_habit(seed: int, wild: bool, index: int) -> VisitHabit:
    """The visiting habit of the index-th registered or wild animal, the same on every night."""
    rng = item_rng(seed, STREAM_HABITS, int(wild), index)
    return VisitHabit(int(rng.integers(0, VISIT_CYCLE)), float(rng.uniform(0.25, 0.7)))


def habits(seed: int, plan: DropPlan) -> dict[str, VisitHabit]:
    """Visiting habit of every animal of the plan's population, by animal id."""
    registered = {a.animal_id: visit_habit(seed, False, i) for i, a in enumerate(plan.animals)}
    return registered | {a.animal_id: visit_habit(seed, True, i) for i, a in enumerate(plan.wild)}


def draw_visitors(rng: np.random.Generator, habit_of: dict[str, VisitHabit], night: int) -> tuple[str, ...]:
    """Animals that pass the traps tonight: those on their cycle's night, and others by their propensity."""
    chances = {animal_id: rng.random() for animal_id in habit_of}
    return tuple(
        animal_id
        for animal_id, habit in habit_of.items()
        if night % VISIT_CYCLE == habit.phase or chances[animal_id] < habit.propensity
    )


def draw_events(
    rng: np.random.Generator, cameras: tuple[CameraSpec, ...], visitors: tuple[str, ...]
) -> list[CameraEvent]:
    """One to three camera events per visitor, each of one to five frames, sometimes shared with another visitor."""
    events = []
    for animal_id in visitors:
        for _ in range(1 + min(2, int(rng.poisson(0.4)))):
            camera = int(rng.choice(len(cameras), p=camera_weights(cameras)))
            others = [v for v in visitors if v != animal_id]
            ids = (animal_id,)
            if others and rng.random() < COMPANION_CHANCE:
                ids = (animal_id, others[int(rng.integers(0, len(others)))])
            events.append(CameraEvent(camera, frame_offset_s(rng), ids, int(rng.integers(1, 6))))
    return events


def event_shots(rng: np.random.Generator, event: CameraEvent) -> list[Shot]:
    """An event's frames: triggers 2 to 40 s apart; the first animal
    shows its face in at least one frame, every animal in each frame with some chance."""
    gaps = np.concatenate([[0.0], rng.uniform(2.0, 40.0, size=event.n_frames - 1)])
    times = np.cumsum(gaps)
    start = min(event.start_s, NIGHT_END_S - float(times[-1]))
    sure = int(rng.integers(0, event.n_frames))
    shots = []
    for k, offset in enumerate(times):
        shown = [i for j, i in enumerate(event.animal_ids) if rng.random() < (0.8 if j == 0 else 0.6)]
        if k == sure and event.animal_ids[0] not in shown:
            shown.insert(0, event.animal_ids[0])
        shots.append(Shot(event.camera, start + float(offset), tuple(shown)))
    return shots


def empty_shots(rng: np.random.Generator, cameras: tuple[CameraSpec, ...], n: int) -> list[tuple[int, float, tuple]]:
    """Triggers that show no face (wind, birds, an animal turned away), at the night's usual times."""
    weights = camera_weights(cameras)
    return [Shot(int(rng.choice(len(cameras), p=weights)), frame_offset_s(rng), ()) for _ in range(n)]


def shots_to_frames(shots: list[Shot], cameras: tuple[CameraSpec, ...], night_start: datetime) -> tuple[FramePlan, ...]:
    """Frames in time order, numbered per camera as a trap names its files."""
    frames, taken_per_camera = [], [0] * len(cameras)
    for serial, (c, offset, ids) in enumerate(sorted(shots, key=lambda shot: (shot.offset_s, shot.camera))):
        taken_per_camera[c] += 1
        moment = night_start + timedelta(seconds=int(offset))
        file_name = f"IMG_{taken_per_camera[c]:04d}.jpg"
        frames.append(FramePlan(serial, cameras[c].camera_id, file_name, moment, is_dark(moment), ids))
    return tuple(frames)


def draw_night_frames(
    rng: np.random.Generator, plan: DropPlan, habit_of: dict[str, VisitHabit]
) -> tuple[FramePlan, ...]:
    """The night's camera-trap frames: the visitors' camera events plus some empty triggers."""
    visitors = draw_visitors(rng, habit_of, plan.night)
    shots = [shot for event in draw_events(rng, plan.cameras, visitors) for shot in event_shots(rng, event)]
    shots += empty_shots(rng, plan.cameras, int(rng.poisson(EMPTY_TRIGGER_SHARE * len(shots))))
    return shots_to_frames(shots, plan.cameras, plan.night_start)


def plan_night(seed: int, n_animals: int, night: int = 0, n_wild: int = 0, traps_only: bool = False) -> DropPlan:
    """The drop of one night of the seed's population: registered animals as plan_drop draws them, plus n_wild
    never-registered ones; night 0 without wild animals keeps plan_drop's frames, any other night draws camera events
    from (seed, night). Later nights, and traps_only, hold camera-trap frames only."""
    check_night(night, n_wild)
    first = plan_drop(seed, n_animals)
    traps = traps_only or night > 0
    plan = dataclasses.replace(
        first,
        night=night,
        night_start=first.night_start + timedelta(days=night),
        wild=draw_wild_animals(seed, n_wild),
        traps_only=traps,
        keeper_photos=() if traps else first.keeper_photos,
        encounters=() if traps else first.encounters,
    )
    if night == 0 and n_wild == 0:
        return plan
    frames = draw_night_frames(item_rng(seed, STREAM_NIGHT, night), plan, habits(seed, plan))
    return dataclasses.replace(plan, frames=frames)
