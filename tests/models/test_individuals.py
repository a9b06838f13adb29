"""Who each face is (models/individuals.py): a face below the match threshold whose best candidate is matched in
another frame of the same camera event, or resembles it no less than the provisional individual it would join, is held
for review, not made part of a provisional individual; a provisional individual of fewer faces than the minimum awaits a
second sighting, unless its face is the sole candidate of a registered animal its night shows no other face of."""

from __future__ import annotations

import numpy as np

from models.individuals import (
    AWAITING_SIGHTING,
    CLUSTER,
    GALLERY_MATCH,
    NEARER_REGISTERED,
    SAME_EVENT,
    SOLE_CANDIDATE,
    Gallery,
    Queries,
    Thresholds,
    decide_individuals,
)

DIM = 8
THRESHOLDS = Thresholds(match=0.8, cluster=0.5, review_margin=0.05)


def unit(*weights: float) -> np.ndarray:
    """A unit-length embedding from its first coordinates (the rest zero)."""
    vector = np.zeros(DIM, dtype=np.float32)
    vector[: len(weights)] = weights
    return vector / np.linalg.norm(vector)


GALLERY = Gallery(["A01", "A01", "A02"], np.stack([unit(1, 0.05), unit(1, -0.05), unit(0, 1)]))
CLEAR_A01 = unit(1, 0, 0.1)  # cosine about 0.99 to A01: a match
POOR_A01 = unit(1, 0, 0.9)  # about 0.74 to A01: below the match threshold, above the cluster threshold
FAINT_A01 = unit(0.3, 0, 1)  # about 0.29 to A01: below both


def queries(
    vectors: list[np.ndarray], media: list[str], events: list[str] | None, drops: list[str] | None = None
) -> Queries:
    """Faces f0, f1, ... in time order, of the given frames and camera events (and drops: one drop 'd' unless given)."""
    n = len(vectors)
    return Queries(
        face_ids=[f"f{i}" for i in range(n)],
        drop_ids=drops or ["d"] * n,
        media_ids=media,
        order=np.arange(n),
        embeddings=np.stack(vectors),
        events=events,
    )


def calls(rows: list[dict]) -> list[tuple[str, str, str]]:
    """Each row's individual, kind and how it was established."""
    return [(r["individual_id"], r["kind"], r["established"]) for r in rows]


def test_a_poor_face_of_an_animal_matched_in_the_same_event_is_held_not_made_a_new_individual() -> None:
    rows = decide_individuals(queries([CLEAR_A01, POOR_A01], ["m0", "m1"], ["cam1#1", "cam1#1"]), GALLERY, THRESHOLDS)
    assert calls(rows) == [("A01", "registered", GALLERY_MATCH), ("A01", "registered", SAME_EVENT)]
    assert rows[1]["score"] < THRESHOLDS.match


def test_the_same_poor_face_in_another_event_becomes_a_provisional_individual() -> None:
    rows = decide_individuals(queries([CLEAR_A01, POOR_A01], ["m0", "m1"], ["cam1#1", "cam1#2"]), GALLERY, THRESHOLDS)
    assert calls(rows)[1] == (rows[1]["individual_id"], "provisional", CLUSTER)
    assert rows[1]["individual_id"].startswith("P-")


def test_a_match_in_the_same_frame_is_another_animal_so_the_face_is_not_held() -> None:
    rows = decide_individuals(queries([CLEAR_A01, POOR_A01], ["m0", "m0"], ["cam1#1", "cam1#1"]), GALLERY, THRESHOLDS)
    assert calls(rows)[1][1:] == ("provisional", CLUSTER)


def test_a_face_below_the_floor_or_naming_another_animal_is_not_held() -> None:
    rows = decide_individuals(
        queries([CLEAR_A01, FAINT_A01, unit(0.2, 1, 1.2)], ["m0", "m1", "m2"], ["e", "e", "e"]), GALLERY, THRESHOLDS
    )
    assert [c[1:] for c in calls(rows)[1:]] == [("provisional", CLUSTER), ("provisional", CLUSTER)]


def test_the_floor_is_the_cluster_threshold() -> None:
    strict = Thresholds(0.8, 0.78, 0.05)
    rows = decide_individuals(queries([CLEAR_A01, POOR_A01], ["m0", "m1"], ["e", "e"]), GALLERY, strict)
    assert calls(rows)[1][1:] == ("provisional", CLUSTER), "0.74 is below a floor of 0.78"


def test_without_events_every_unmatched_face_is_clustered_as_before() -> None:
    rows = decide_individuals(queries([CLEAR_A01, POOR_A01], ["m0", "m1"], None), GALLERY, THRESHOLDS)
    assert calls(rows)[1][1:] == ("provisional", CLUSTER)


def test_decisions_and_provisional_ids_are_the_same_on_a_rerun() -> None:
    faces = queries(
        [CLEAR_A01, POOR_A01, FAINT_A01, unit(0, 0, 0, 1), unit(0, 0, 0, 1, 0.1)],
        ["m0", "m1", "m2", "m3", "m4"],
        ["e1", "e1", "e2", "e3", "e3"],
    )
    first, again = decide_individuals(faces, GALLERY, THRESHOLDS), decide_individuals(faces, GALLERY, THRESHOLDS)
    assert first == again
    assert first[3]["individual_id"] == first[4]["individual_id"] != first[2]["individual_id"]


def test_a_face_no_nearer_the_new_individual_it_would_join_than_a_registered_animal_is_held() -> None:
    new_animal = [unit(0, 0, 0, 1), unit(0, 0, 0, 1, 0.1)]
    between = unit(1, 0, 0, 0.9)  # about 0.74 to A01 (below the match threshold), 0.67 to the new animal's centre
    nearer_new = unit(0.5, 0, 0, 1)  # about 0.45 to A01, 0.89 to the new animal's centre
    faces = queries([*new_animal, between, nearer_new], ["m0", "m1", "m2", "m3"], None)
    rows = decide_individuals(faces, GALLERY, THRESHOLDS)
    new_id = rows[0]["individual_id"]
    assert calls(rows) == [
        (new_id, "provisional", CLUSTER),
        (new_id, "provisional", CLUSTER),
        ("A01", "registered", NEARER_REGISTERED),
        (new_id, "provisional", CLUSTER),
    ]
    assert rows[2]["score"] < THRESHOLDS.match, "held, named as its candidate, at its gallery score"


def test_a_new_individual_of_one_face_awaits_a_second_sighting_and_counts_once_seen_again() -> None:
    lone = [CLEAR_A01, unit(0, 0, 0, 1)]
    rows = decide_individuals(queries(lone, ["m0", "m1"], ["e1", "e2"]), GALLERY, THRESHOLDS, provisional_min_faces=2)
    new_id = rows[1]["individual_id"]
    assert calls(rows) == [("A01", "registered", GALLERY_MATCH), (new_id, "provisional", AWAITING_SIGHTING)]
    assert new_id.startswith("P-")
    seen_again = queries([*lone, unit(0, 0, 0, 1, 0.1)], ["m0", "m1", "m2"], ["e1", "e2", "e3"])
    rows = decide_individuals(seen_again, GALLERY, THRESHOLDS, provisional_min_faces=2)
    assert calls(rows)[1:] == [(new_id, "provisional", CLUSTER)] * 2, "the same id, now counted"


def test_the_minimum_counts_faces_of_the_individual_and_one_counts_every_new_individual() -> None:
    pair, lone = [unit(0, 0, 0, 1), unit(0, 0, 0, 1, 0.1)], [unit(0, 0, 0, 0, 0, 1)]
    faces = queries([*pair, *lone], ["m0", "m1", "m2"], None)
    three = decide_individuals(faces, GALLERY, THRESHOLDS, provisional_min_faces=3)
    assert [r["established"] for r in three] == [AWAITING_SIGHTING] * 3
    two = decide_individuals(faces, GALLERY, THRESHOLDS, provisional_min_faces=2)
    assert [r["established"] for r in two] == [CLUSTER, CLUSTER, AWAITING_SIGHTING]
    assert [r["established"] for r in decide_individuals(faces, GALLERY, THRESHOLDS)] == [CLUSTER] * 3


def test_a_face_seen_once_counts_as_the_registered_animal_its_night_shows_no_other_face_of() -> None:
    faces = queries([CLEAR_A01, POOR_A01], ["m0", "m1"], ["e1", "e2"], ["night1", "night2"])
    rows = decide_individuals(faces, GALLERY, THRESHOLDS, provisional_min_faces=2)
    assert calls(rows) == [("A01", "registered", GALLERY_MATCH), ("A01", "registered", SOLE_CANDIDATE)]
    assert rows[1]["score"] == rows[1]["candidate_scores"][0] < THRESHOLDS.match
    same_night = decide_individuals(
        queries([CLEAR_A01, POOR_A01], ["m0", "m1"], ["e1", "e2"]), GALLERY, THRESHOLDS, provisional_min_faces=2
    )
    assert calls(same_night)[1][1:] == ("provisional", AWAITING_SIGHTING), "A01 is counted that night already"


def test_only_the_best_of_a_nights_seen_once_faces_is_a_registered_animals_sole_candidate() -> None:
    better, worse = unit(1, 0, 0.8), unit(1, 0, -0.9)  # both nearest A01, unlike each other: two one-face clusters
    rows = decide_individuals(
        queries([worse, better], ["m0", "m1"], None), GALLERY, THRESHOLDS, provisional_min_faces=2
    )
    assert [r["established"] for r in rows] == [AWAITING_SIGHTING, SOLE_CANDIDATE]
    assert rows[1]["individual_id"] == "A01" and rows[0]["individual_id"].startswith("P-")


def test_a_seen_once_face_below_the_floor_or_counting_every_new_individual_is_no_sole_candidate() -> None:
    assert THRESHOLDS.sole_candidate_floor == 0.65
    middling = unit(1, 0, 1.3)  # about 0.61 to A01: above the cluster threshold, below the floor halfway to a match
    for face in (FAINT_A01, middling):
        rows = decide_individuals(queries([face], ["m0"], None), GALLERY, THRESHOLDS, provisional_min_faces=2)
        assert calls(rows)[0][1:] == ("provisional", AWAITING_SIGHTING), rows[0]["candidate_scores"]
    counted = decide_individuals(queries([POOR_A01], ["m0"], None), GALLERY, THRESHOLDS, provisional_min_faces=1)
    assert calls(counted)[0][1:] == ("provisional", CLUSTER), "nothing awaits a sighting, so nothing is reconsidered"


def test_a_registered_call_within_the_review_margin_neither_shows_an_animal_nor_counts_as_its_sole_candidate() -> None:
    twins = Gallery(["A01", "A03"], np.stack([unit(1), unit(0.9, 0, 0, 0, 0.436)]))  # A03: cosine 0.9 to A01
    near_tie = unit(1, 0, 0, 0, 0.2)  # 0.98 to A01, 0.97 to A03: a match the catalog does not count
    poor_but_clear = unit(1, 0, 0.9, 0, -0.3)  # 0.73 to A01, 0.56 to A03: above the floor, a clear margin
    poor_and_torn = unit(1, 0, 0.9, 0, 0.2)  # 0.74 to A01, 0.73 to A03: above the floor, within the margin
    rows = decide_individuals(
        queries([near_tie, poor_but_clear], ["m0", "m1"], ["e1", "e2"]), twins, THRESHOLDS, provisional_min_faces=2
    )
    assert rows[0]["established"] == GALLERY_MATCH and rows[0]["margin"] < THRESHOLDS.review_margin
    assert calls(rows)[1] == ("A01", "registered", SOLE_CANDIDATE), "the near tie does not show A01 that night"
    torn = decide_individuals(queries([poor_and_torn], ["m0"], None), twins, THRESHOLDS, provisional_min_faces=2)
    assert torn[0]["candidate_scores"][0] >= THRESHOLDS.sole_candidate_floor
    assert calls(torn)[0][1:] == ("provisional", AWAITING_SIGHTING), torn[0]["candidate_scores"]
