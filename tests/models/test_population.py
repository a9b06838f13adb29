"""A sample population over nights, as planned: stable identities, wild animals, visits in camera events."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import numpy as np
import pytest

from models.synthetic.animals import TRAITS
from models.synthetic.drop_files import TRUTH_BOXES_HEADER, individual_rows
from models.synthetic.plan import DropPlan, plan_drop, population
from models.synthetic.population import VISIT_CYCLE, draw_wild_animals, plan_night
from models.synthetic.truth import registered_by_id, truth_faces

EVENT_GAP_S = 300


def seen_ids(plan: DropPlan) -> set[str]:
    """Animals whose face the plan puts on some frame."""
    return {animal_id for frame in plan.frames for animal_id in frame.animal_ids}


def events_of(plan: DropPlan, animal_id: str) -> list[list[int]]:
    """An animal's frames grouped into camera events: same camera, no gap over EVENT_GAP_S seconds."""
    frames = sorted((f for f in plan.frames if animal_id in f.animal_ids), key=lambda f: f.captured_at)
    events: list[list[int]] = []
    for previous, frame in zip([None, *frames], frames):
        same = previous is not None and previous.camera_id == frame.camera_id
        if same and frame.captured_at - previous.captured_at <= timedelta(seconds=EVENT_GAP_S):
            events[-1].append(frame.serial)
        else:
            events.append([frame.serial])
    return events


def test_default_night_is_the_plain_drop() -> None:
    assert plan_night(3, 12) == plan_drop(3, 12)
    traps = plan_night(3, 12, traps_only=True)
    assert traps.frames == plan_drop(3, 12).frames
    assert traps.traps_only and traps.keeper_photos == () and traps.encounters == ()


def test_registered_and_wild_animals_are_the_same_on_every_night() -> None:
    first = plan_night(4, 12, night=0, n_wild=3)
    assert first.animals == plan_drop(4, 12).animals
    for night in (1, 2, 7):
        later = plan_night(4, 12, night=night, n_wild=3)
        assert later.animals == first.animals and later.wild == first.wild
    assert draw_wild_animals(4, 5)[:3] == first.wild, "adding wild animals must not change the others"
    assert plan_night(4, 8, n_wild=3).wild == first.wild
    assert [a.animal_id for a in first.wild] == ["W01", "W02", "W03"]
    assert all(not a.sex_labelled and a.name == "" for a in first.wild)
    assert draw_wild_animals(5, 3) != first.wild


def test_wild_animals_follow_the_registered_trait_distributions() -> None:
    wild = draw_wild_animals(0, 200)
    assert 0.3 < np.mean([a.sex == "male" for a in wild]) < 0.6
    for trait in TRAITS:
        values = np.array([getattr(a, trait.name) for a in wild])
        assert abs(values.mean() - trait.mean) < 0.3 * trait.sd, trait.name
        assert 0.6 * trait.sd < values.std() < 1.4 * trait.sd, trait.name


def test_later_nights_start_later_hold_frames_only_and_differ() -> None:
    first = plan_night(2, 12, n_wild=4)
    assert first.keeper_photos and first.encounters and not first.traps_only
    for night in (1, 3):
        later = plan_night(2, 12, night=night, n_wild=4)
        assert later.night_start == first.night_start + timedelta(days=night)
        assert later.traps_only and later.keeper_photos == () and later.encounters == ()
        assert all(timedelta(0) <= f.captured_at - later.night_start <= timedelta(hours=15) for f in later.frames)
        assert [f.animal_ids for f in later.frames] != [f.animal_ids for f in first.frames]
    assert plan_night(2, 12, night=1, n_wild=4) == plan_night(2, 12, night=1, n_wild=4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_animal_visits_within_a_cycle_of_nights_but_not_every_night(seed: int) -> None:
    plans = [plan_night(seed, 12, night=night, n_wild=4) for night in range(2 * VISIT_CYCLE)]
    everyone = {a.animal_id for a in population(plans[0])}
    for start in range(VISIT_CYCLE + 1):
        window = plans[start : start + VISIT_CYCLE]
        assert set.union(*(seen_ids(p) for p in window)) == everyone
    counts = [len(seen_ids(p)) for p in plans[1:]]
    assert len(set(counts)) > 1 and max(counts) < len(everyone)
    assert any(seen_ids(p) & {f"W0{k}" for k in range(1, 5)} for p in plans[1:])


def test_a_visit_is_a_short_burst_on_one_camera() -> None:
    plans = [plan_night(6, 16, night=night, n_wild=4) for night in range(1, 5)]
    events = [event for p in plans for animal_id in seen_ids(p) for event in events_of(p, animal_id)]
    frames_per_visitor = [sum(animal_id in f.animal_ids for f in p.frames) for p in plans for animal_id in seen_ids(p)]
    assert 1.5 < np.mean([len(e) for e in events]) < 4.5
    assert max(len(e) for e in events) >= 3
    assert 1.0 <= len(events) / len(frames_per_visitor) < 2.5
    assert 2.0 < np.mean(frames_per_visitor) < 8.0
    faces_per_frame = Counter(len(f.animal_ids) for p in plans for f in p.frames)
    assert faces_per_frame[0] > 0 and faces_per_frame[2] > 0 and set(faces_per_frame) <= {0, 1, 2}


@pytest.mark.parametrize(
    ("night", "n_wild", "message"),
    [
        (-1, 0, r"^The night must be between 0 \(the population's first\) and \d+, got -1\.$"),
        (0, -1, r"^The number of never-registered animals must be between 0 and 200, got -1\.$"),
        (0, 201, r"^The number of never-registered animals must be between 0 and 200, got 201\.$"),
    ],
)
def test_out_of_range_nights_and_wild_counts_are_refused_in_one_sentence(night: int, n_wild: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan_night(0, 12, night=night, n_wild=n_wild)


def test_individual_rows_count_boxed_faces_and_planned_frames() -> None:
    plan = plan_night(1, 8, night=2, n_wild=2)
    framed = [f for f in plan.frames if f.animal_ids]
    boxes = [(f"images/{f.camera_id}/{f.file_name}", f.animal_ids[0], 0, 0, 9, 9, 99, 99) for f in framed[1:]]
    rows = {row[0]: row for row in individual_rows(plan, boxes)}
    assert set(rows) == {box[1] for box in boxes}
    for animal_id, (_, registered, n_frames, n_faces, cameras) in rows.items():
        mine = [box for box in boxes if box[1] == animal_id]
        assert n_faces == len(mine) <= n_frames == sum(animal_id in f.animal_ids for f in plan.frames)
        assert cameras == ";".join(sorted({str(box[0]).split("/")[1] for box in mine}))
        assert registered == ("true" if animal_id.startswith("A") else "false")


def test_truth_faces_join_frames_and_registration() -> None:
    boxes = ",".join(TRUTH_BOXES_HEADER) + "\nimages/cam02/IMG_0001.jpg,W01,1,2,30,40,1280,720\n"
    frames = (
        "path,camera_id,captured_at,infrared,n_faces\n"
        "images/cam02/IMG_0001.jpg,cam02,2024-04-01T21:00:05+08:00,true,1\n"
    )
    animals = "animal_id,sex,registered\nA01,male,true\nW01,female,false\n"
    (face,) = truth_faces(boxes, frames, animals)
    assert (face.animal_id, face.registered, face.camera_id, face.captured_at.hour) == ("W01", False, "cam02", 21)
    assert (face.x, face.y, face.w, face.h, face.width, face.height) == (1, 2, 30, 40, 1280, 720)
    assert registered_by_id("animal_id,sex\nA01,male\n") == {"A01": True}
