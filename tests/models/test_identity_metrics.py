"""Open-set metrics on hand-made similarity matrices with known answers, and event-respecting splits."""

from __future__ import annotations

import numpy as np
import pytest

from models.identity_metrics import (
    NEW,
    animal_scores,
    balanced_accuracies,
    calls_at,
    camera_events,
    choose_cluster_threshold,
    choose_match_threshold,
    later_events,
    open_set_report,
)
from models.identity_training import animal_sides, event_respecting_sides

GALLERY = ["a", "a", "b", "c"]
# queries: an "a" (best a, 0.9), a "b" ranked second (c 0.7 beats b 0.6), and a new animal "d" (best 0.4)
SIMILARITY = np.array(
    [
        [0.9, 0.2, 0.1, 0.3],
        [0.1, 0.2, 0.6, 0.7],
        [0.4, 0.1, 0.2, 0.3],
    ]
)
QUERIES = ["a", "b", "d"]


def test_report_on_a_hand_made_matrix() -> None:
    report = open_set_report(SIMILARITY, QUERIES, GALLERY, threshold=0.5)
    assert report["n_known_queries"] == 2 and report["n_new_queries"] == 1 and report["n_new_animals"] == 1
    assert report["top1"] == pytest.approx(0.5)  # a right, b second
    assert report["top5"] == pytest.approx(1.0)
    # AP of query a: its two gallery faces rank 1st and 3rd -> (1 + 2/3) / 2; of query b: its face ranks 2nd -> 1/2
    assert report["map"] == pytest.approx(((1 + 2 / 3) / 2 + 0.5) / 2)
    # new-individual AUROC from best similarities: d 0.4 is below a's 0.9 and b's 0.7 -> perfectly separated
    assert report["new_auroc"] == pytest.approx(1.0)
    # calls at 0.5: a -> a (right), b -> c (wrong), d -> new (right): BAKS 1/2, BAUS 1, geometric mean sqrt(1/2)
    assert report["baks"] == pytest.approx(0.5) and report["baus"] == pytest.approx(1.0)
    assert report["geometric_mean"] == pytest.approx(np.sqrt(0.5))


def test_calls_and_balanced_accuracies_per_animal() -> None:
    scores = animal_scores(SIMILARITY, GALLERY)
    assert scores.animals == ["a", "b", "c"]
    assert calls_at(scores, 0.5) == ["a", "c", NEW]
    assert calls_at(scores, 0.95) == [NEW, NEW, NEW]
    # balanced: animal a has 3 queries (2 right), animal b 1 (right) -> (2/3 + 1) / 2, not 3/4
    found = balanced_accuracies(["a", "a", NEW, "b", NEW], ["a", "a", "a", "b", NEW], [True] * 4 + [False])
    assert found["baks"] == pytest.approx((2 / 3 + 1) / 2) and found["baus"] == pytest.approx(1.0)
    assert balanced_accuracies(["a"], ["a"], [True])["geometric_mean"] is None


def test_the_match_threshold_separates_known_from_new() -> None:
    scores = animal_scores(np.array([[0.9, 0.1], [0.1, 0.8], [0.3, 0.35]]), ["a", "b"])
    threshold = choose_match_threshold(scores, ["a", "b", "z"], [True, True, False])
    assert 0.35 < threshold <= 0.8


def test_the_cluster_threshold_splits_same_from_different_animals() -> None:
    angles = np.array([0.0, 0.1, 1.5, 1.6])
    embeddings = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    threshold = choose_cluster_threshold(embeddings, ["a", "a", "b", "b"], ["e1", "e2", "e3", "e4"])
    assert np.cos(1.5) < threshold <= np.cos(0.1)
    assert choose_cluster_threshold(embeddings, ["a"] * 4, ["e1", "e2", "e3", "e4"]) is None


def test_camera_events_join_frames_under_the_gap() -> None:
    cameras = ["c1", "c1", "c1", "c2", "c1"]
    times = [0.0, 200.0, 600.0, 100.0, None]
    events = camera_events(cameras, times)
    assert events[0] == events[1]  # 200 s apart
    assert len({events[1], events[2], events[3], events[4]}) == 4  # a 400 s gap, another camera, no time


def test_later_events_take_whole_events() -> None:
    events = ["e1", "e1", "e2", "e2", "e2", "e3"]
    times = [0.0, 1.0, 100.0, 101.0, 102.0, 50.0]
    later = later_events(events, times, 0.3)
    assert later == [False, False, True, True, True, False]


def test_event_respecting_split_never_puts_one_event_on_both_sides() -> None:
    rng = np.random.default_rng(0)
    animals = [f"A{i}" for i in range(12)]
    ids = [animals[int(i)] for i in rng.integers(0, 12, 200)]
    events = [f"e{int(i)}" for i in rng.integers(0, 60, 200)]
    sides = animal_sides(ids, 0.25, 0.25, seed=0)
    assert sorted(sides.values()).count("test") == 3 and sorted(sides.values()).count("validation") == 3
    placed = event_respecting_sides(ids, events, sides)
    for event in set(events):
        assert len({side for side, e in zip(placed, events) if e == event and side is not None}) <= 1
    for animal, side in zip(ids, placed):
        assert side in (None, sides[animal])
    assert sum(side is not None for side in placed) > 50  # random events hold ~3 faces: many mix sides
    with pytest.raises(ValueError, match="too few"):
        animal_sides(["a", "b", "c", "d"], 0.25, 0.25, seed=0)
