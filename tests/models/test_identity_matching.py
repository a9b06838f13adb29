"""Gallery matching, the open-set threshold and the clustering of unmatched faces, on embeddings with known answers."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from models.identity_matching import (
    GalleryMatches,
    choose_threshold,
    cluster_centroids,
    cluster_unmatched,
    match_gallery,
    merge_into_registered,
    open_set_calls,
    provisional_ids,
)

METHODS = ["matmul", "faiss"]


def unit(rows: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as float32."""
    rows = np.asarray(rows, dtype=np.float64)
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def generated_faces(
    rng: np.random.Generator, n_individuals: int, per_individual: int, dim: int, noise: float
) -> tuple[np.ndarray, np.ndarray]:
    """Faces scattered around random unit centres, shuffled: (embeddings, true individual of each)."""
    centres = unit(rng.standard_normal((n_individuals, dim)))
    truth = rng.permutation(np.repeat(np.arange(n_individuals), per_individual))
    faces = unit(centres[truth] + noise * rng.standard_normal((truth.size, dim)) / np.sqrt(dim))
    return faces, truth


def skewed_gallery(rng: np.random.Generator, dim: int) -> tuple[np.ndarray, list[str]]:
    """A gallery of 40 individuals with 1 to 8 rows each, rows of one individual spread over the gallery."""
    counts = rng.integers(1, 9, size=40)
    ids = np.repeat([f"ind-{i:02d}" for i in range(40)], counts)[rng.permutation(counts.sum())]
    return unit(rng.standard_normal((ids.size, dim))), ids.tolist()


def brute_force(queries: np.ndarray, gallery: np.ndarray, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Every individual's score per query (max over its rows) by a dense product: (sorted names, N x K scores)."""
    names = np.array(sorted(set(ids)))
    dense = queries.astype(np.float64) @ gallery.astype(np.float64).T
    per_individual = np.stack([dense[:, np.array(ids) == name].max(axis=1) for name in names], axis=1)
    return names, per_individual


HAND_GALLERY = unit([[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]])
HAND_IDS = ["b", "b", "a", "c"]


@pytest.mark.parametrize("method", METHODS)
def test_top_k_scores_and_margin_on_hand_made_embeddings(method: str) -> None:
    queries = unit([[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0]])
    matches = match_gallery(queries, HAND_GALLERY, HAND_IDS, k=5, method=method)
    root_half = np.sqrt(0.5)
    assert matches.ids.tolist() == [
        ["b", "a", "c", None, None],  # b's best row is e0 (1.0, not 0.707); a and c tie at 0: a's id sorts first
        ["b", "a", "c", None, None],  # b's best row is now its second one
        ["c", "a", "b", None, None],
    ]
    np.testing.assert_allclose(
        matches.scores,
        [[1, 0, 0, np.nan, np.nan], [1, root_half, 0, np.nan, np.nan], [1, 0, 0, np.nan, np.nan]],
        atol=1e-6,
    )
    assert matches.best_id.tolist() == ["b", "b", "c"]
    np.testing.assert_allclose(matches.best_score, [1, 1, 1], atol=1e-6)
    np.testing.assert_allclose(matches.margin, [1, 1 - root_half, 1], atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_the_margin_is_to_the_runner_up_even_when_only_the_best_is_asked_for(method: str) -> None:
    matches = match_gallery(unit([[1, 1, 0, 0]]), HAND_GALLERY, HAND_IDS, k=1, method=method)
    assert matches.ids.tolist() == [["b"]] and matches.scores.shape == (1, 1)
    assert matches.margin[0] == pytest.approx(1 - np.sqrt(0.5), abs=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_with_one_registered_individual_the_margin_is_the_best_score(method: str) -> None:
    matches = match_gallery(unit([[0.6, 0.8]]), unit([[1, 0], [0.8, -0.6]]), ["only", "only"], k=3, method=method)
    assert matches.ids.tolist() == [["only", None, None]]
    assert matches.best_score[0] == pytest.approx(0.6)
    assert matches.margin[0] == pytest.approx(0.6)


@pytest.mark.parametrize("method", METHODS)
def test_exact_ties_rank_individuals_by_id_even_across_the_top_k_cut(method: str) -> None:
    names = [f"twin-{i}" for i in (7, 2, 9, 0, 4, 1, 8, 3, 6, 5)]
    gallery = np.tile(unit([[1, 2, 3]]), (10, 1))  # ten individuals, all the same vector
    matches = match_gallery(unit([[1, 2, 3], [3, 2, 1]]), gallery, names, k=5, method=method)
    assert matches.ids.tolist() == [[f"twin-{i}" for i in range(5)]] * 2
    assert matches.margin.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("method", METHODS)
def test_exact_ties_rank_by_id_when_the_first_neighbours_belong_to_later_ids(method: str) -> None:
    # twins 5-9 have two rows each, 0-4 one: faiss's first neighbours (of tied rows) are 5-9's, yet 0 and 1 rank first
    names = [f"twin-{i}" for i in range(10)] + [f"twin-{i}" for i in range(5, 10)]
    gallery = np.tile(unit([[1, 2, 3]]), (15, 1))
    matches = match_gallery(unit([[1, 2, 3]]), gallery, names, k=2, method=method)
    assert matches.ids.tolist() == [["twin-0", "twin-1"]]


@pytest.mark.parametrize("method", METHODS)
def test_matches_equal_a_dense_brute_force_on_a_skewed_gallery(method: str) -> None:
    rng = np.random.default_rng(3)
    gallery, ids = skewed_gallery(rng, dim=16)
    queries = unit(rng.standard_normal((200, 16)))
    matches = match_gallery(queries, gallery, ids, k=5, method=method)
    names, per_individual = brute_force(queries, gallery, ids)
    top = np.argsort(-per_individual, axis=1, kind="stable")[:, :5]
    assert (matches.ids == names[top].astype(object)).all()
    np.testing.assert_allclose(matches.scores, np.take_along_axis(per_individual, top, axis=1), atol=1e-5)
    second = np.sort(per_individual, axis=1)[:, -2]
    np.testing.assert_allclose(matches.margin, per_individual.max(axis=1) - second, atol=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_small_chunks_give_the_same_matches_as_one_chunk(method: str) -> None:
    rng = np.random.default_rng(4)
    gallery, ids = skewed_gallery(rng, dim=8)
    queries = unit(rng.standard_normal((101, 8)))
    whole = match_gallery(queries, gallery, ids, method=method, chunk_rows=1000)
    chunked = match_gallery(queries, gallery, ids, method=method, chunk_rows=7)
    assert (whole.ids == chunked.ids).all()
    np.testing.assert_allclose(whole.scores, chunked.scores, atol=1e-6)  # BLAS may round by chunk shape (1 ulp)
    np.testing.assert_allclose(whole.margin, chunked.margin, atol=1e-6)


def test_faiss_and_matrix_products_give_the_same_ids_and_scores() -> None:
    rng = np.random.default_rng(5)
    gallery, ids = skewed_gallery(rng, dim=64)
    queries, _ = generated_faces(rng, 30, 20, 64, noise=1.0)
    by_matmul = match_gallery(queries, gallery, ids, k=5, method="matmul")
    by_faiss = match_gallery(queries, gallery, ids, k=5, method="faiss")
    assert (by_matmul.ids == by_faiss.ids).all()
    np.testing.assert_allclose(by_matmul.scores, by_faiss.scores, atol=1e-5)
    np.testing.assert_allclose(by_matmul.margin, by_faiss.margin, atol=1e-5)


def test_registered_faces_are_matched_to_their_individual() -> None:
    rng = np.random.default_rng(6)
    centres = unit(rng.standard_normal((50, 32)))
    gallery = unit(np.repeat(centres, 3, axis=0) + 0.3 * rng.standard_normal((150, 32)) / np.sqrt(32))
    ids = [f"animal-{i:02d}" for i in np.repeat(np.arange(50), 3)]
    truth = rng.integers(0, 50, 400)
    queries = unit(centres[truth] + 0.3 * rng.standard_normal((400, 32)) / np.sqrt(32))
    matches = match_gallery(queries, gallery, ids)
    assert matches.best_id.tolist() == [f"animal-{i:02d}" for i in truth]


@pytest.mark.parametrize("method", METHODS)
def test_no_queries_or_an_empty_gallery_give_empty_results(method: str) -> None:
    none_asked = match_gallery(np.zeros((0, 4), np.float32), HAND_GALLERY, HAND_IDS, k=3, method=method)
    assert none_asked.ids.shape == (0, 3) and none_asked.best_score.shape == (0,)
    assert open_set_calls(none_asked, 0.5).shape == (0,)
    nobody_known = match_gallery(unit([[1, 0, 0, 0]]), np.zeros((0, 4), np.float32), [], k=3, method=method)
    assert nobody_known.ids.tolist() == [[None, None, None]]
    assert nobody_known.best_id.tolist() == [None]
    assert np.isnan(nobody_known.best_score).all() and np.isnan(nobody_known.margin).all()
    assert open_set_calls(nobody_known, 0.0).tolist() == [False]


def test_bad_inputs_are_refused_with_a_sentence() -> None:
    with pytest.raises(ValueError, match="rows but 3 ids"):
        match_gallery(unit([[1, 0, 0, 0]]), HAND_GALLERY, HAND_IDS[:3])
    with pytest.raises(ValueError, match="dimensions"):
        match_gallery(unit([[1, 0, 0]]), HAND_GALLERY, HAND_IDS)
    with pytest.raises(ValueError, match="non-finite"):
        match_gallery(np.full((1, 4), np.nan, np.float32), HAND_GALLERY, HAND_IDS)
    with pytest.raises(ValueError, match="method"):
        match_gallery(unit([[1, 0, 0, 0]]), HAND_GALLERY, HAND_IDS, method="annoy")


def test_open_set_calls_accept_a_best_score_at_or_above_the_threshold() -> None:
    nan = np.float32(np.nan)
    matches = GalleryMatches(
        ids=np.array([["a"], ["a"], ["a"], [None]], dtype=object),
        scores=np.array([[0.7], [0.5], [0.49], [nan]], dtype=np.float32),
        best_id=np.array(["a", "a", "a", None], dtype=object),
        best_score=np.array([0.7, 0.5, 0.49, nan], dtype=np.float32),
        margin=np.array([0.7, 0.5, 0.49, nan], dtype=np.float32),
    )
    assert open_set_calls(matches, 0.5).tolist() == [True, True, False, False]


def test_threshold_maximises_the_geometric_mean_and_sits_in_the_gap() -> None:
    # threshold 0.8 accepts the two correct known faces (2 of 3 right) and rejects both new ones: sqrt(2/3 * 1);
    # every other cut scores lower, and the value returned is half-way between 0.75 and 0.8
    threshold = choose_threshold(np.array([0.9, 0.8, 0.7]), np.array([True, True, False]), np.array([0.3, 0.75]))
    assert threshold == pytest.approx(0.775)


def test_threshold_balances_accuracy_over_known_individuals_when_they_are_given() -> None:
    known = np.array([0.9, 0.9, 0.9, 0.6])
    correct = np.ones(4, dtype=bool)
    new = np.array([0.5, 0.65, 0.4])
    # per face: cut at 0.9 gives sqrt(3/4 * 1) = 0.866 > cut at 0.6, sqrt(1 * 2/3) = 0.816
    assert choose_threshold(known, correct, new) == pytest.approx(0.775)
    # per individual, x (three faces) and y (one face) weigh the same: cut at 0.9 gives sqrt(1/2) = 0.707 < 0.816
    assert choose_threshold(known, correct, new, known_individuals=["x", "x", "x", "y"]) == pytest.approx(0.55)


def test_threshold_rejects_everything_when_no_known_face_is_matched_correctly() -> None:
    threshold = choose_threshold(np.array([0.9, 0.4]), np.array([False, False]), np.array([0.2]))
    assert threshold > 0.9
    with pytest.raises(ValueError, match="both known and new"):
        choose_threshold(np.array([0.9]), np.array([True]), np.array([]))


def test_well_separated_individuals_are_recovered_exactly() -> None:
    rng = np.random.default_rng(7)
    faces, truth = generated_faces(rng, n_individuals=12, per_individual=30, dim=32, noise=0.4)
    labels = cluster_unmatched(faces, np.arange(truth.size), np.arange(truth.size), threshold=0.5)
    assert labels.max() + 1 == 12
    pairs = set(zip(labels.tolist(), truth.tolist()))
    assert len(pairs) == 12  # each cluster holds exactly one individual, each individual one cluster


def test_faces_of_one_frame_never_share_a_cluster() -> None:
    faces = unit([[1, 0, 0], [1, 0, 0], [1, 0, 0], [0, 1, 0]])
    labels = cluster_unmatched(faces, np.arange(4), np.array(["frame-1", "frame-1", "frame-2", "frame-3"]), 0.5)
    # the twins of frame-1 found two clusters; the third copy ties between them and joins the earlier one
    assert labels.tolist() == [0, 1, 0, 2]


def test_clustering_is_deterministic_and_ignores_the_input_order() -> None:
    rng = np.random.default_rng(8)
    faces, truth = generated_faces(rng, n_individuals=20, per_individual=15, dim=16, noise=1.2)
    keys = rng.permutation(truth.size)
    groups = np.arange(truth.size) // 2
    labels = cluster_unmatched(faces, keys, groups, threshold=0.45)
    assert (cluster_unmatched(faces, keys, groups, threshold=0.45) == labels).all()
    shuffle = rng.permutation(truth.size)
    shuffled = cluster_unmatched(faces[shuffle], keys[shuffle], groups[shuffle], threshold=0.45)
    assert (shuffled == labels[shuffle]).all()
    face_ids = [f"face-{i}" for i in range(truth.size)]
    names = provisional_ids(labels, face_ids, keys)
    assert provisional_ids(shuffled, [face_ids[i] for i in shuffle], keys[shuffle]) == [names[i] for i in shuffle]


def test_appending_a_later_night_keeps_every_earlier_label_and_id() -> None:
    rng = np.random.default_rng(9)
    faces, _ = generated_faces(rng, n_individuals=40, per_individual=25, dim=32, noise=1.0)
    keys = np.arange(1000)  # already in time order: the first 600 faces are the first night
    groups = keys // 3
    face_ids = [f"face-{i:04d}" for i in keys]
    night_one = cluster_unmatched(faces[:600], keys[:600], groups[:600], threshold=0.5)
    both = cluster_unmatched(faces, keys, groups, threshold=0.5)
    assert (both[:600] == night_one).all()
    assert both.max() > night_one.max()  # the second night did found new clusters of its own
    assert provisional_ids(both, face_ids, keys)[:600] == provisional_ids(night_one, face_ids[:600], keys[:600])


def test_a_provisional_id_is_named_after_the_clusters_earliest_face() -> None:
    labels = np.array([1, 0, 1, 0])
    keys = np.array([30, 20, 10, 40])
    ids = provisional_ids(labels, ["f-a", "f-b", "f-c", "f-d"], keys)
    expected = {face: "P-" + hashlib.sha1(face.encode()).hexdigest()[:12] for face in ("f-b", "f-c")}
    assert ids == [expected["f-c"], expected["f-b"], expected["f-c"], expected["f-b"]]


def test_centroids_are_unit_means_and_merge_into_the_registered_animal_they_match() -> None:
    embeddings = unit([[1, 0, 0], [0.8, 0.6, 0], [0, 0, 1], [0, 1, 0], [0, 0.96, 0.28]])
    labels = np.array([0, 0, 1, 2, 2])
    centroids = cluster_centroids(embeddings, labels)
    np.testing.assert_allclose(centroids[0], unit([[1.8, 0.6, 0]])[0], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(centroids, axis=1), 1, atol=1e-6)
    gallery = unit([[1, 0.3, 0], [0, 1, 0.1], [0.9, 0.2, 0]])
    merged = merge_into_registered(centroids, gallery, ["tuan", "yuan", "tuan"], threshold=0.9)
    assert merged == ["tuan", None, "yuan"]
    assert merge_into_registered(centroids, np.zeros((0, 3), np.float32), [], 0.9) == [None, None, None]


def test_no_unmatched_faces_give_empty_results() -> None:
    empty = np.zeros((0, 8), np.float32)
    labels = cluster_unmatched(empty, np.array([]), np.array([]), 0.5)
    assert labels.shape == (0,)
    assert provisional_ids(labels, [], np.array([])) == []
    assert cluster_centroids(empty, labels).shape == (0, 8)
    assert merge_into_registered(np.zeros((0, 8), np.float32), unit(np.eye(8)), list("abcdefgh"), 0.5) == []
