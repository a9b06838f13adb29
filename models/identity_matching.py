"""Re-identification at scale: faces matched to a gallery of registered animals, unmatched faces clustered.

Embeddings are rows of unit length (the identity net's output), so a dot product is a cosine similarity.

- match_gallery ranks, per query face, the registered individuals by their best gallery row (the maximum cosine
  similarity over the individual's rows), keeps the top k, and the margin between the best and the runner-up. The
  queries are taken in chunks, so memory stays bounded whatever the night's size. Two implementations give the same
  ids and scores (within float rounding, 1e-5): plain matrix products (numpy's BLAS) with a per-individual
  maximum, and faiss's exact IndexFlatIP with enough neighbours to cover k distinct individuals. Exact ties rank
  the individual whose id sorts first higher, in both.
- open_set_calls and choose_threshold: a face is matched to a registered animal when its best score reaches the
  threshold; the threshold is the one that maximises the geometric mean of the balanced accuracy on known and on
  new individuals (the AnimalCLEF 2025 score).
- cluster_unmatched groups the faces that matched no registered animal into provisional individuals by a
  sequential centroid rule in time order (see its docstring); provisional_ids names each cluster after its
  founding face, so re-runs and later nights never rename an earlier cluster; merge_into_registered says which
  provisional clusters a registered animal absorbs.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from threadpoolctl import threadpool_limits

MatchMethod = Literal["auto", "matmul", "faiss"]
CHUNK_BYTES = 64 * 2**20  # one chunk's query-by-gallery similarity matrix stays under this many bytes
CLUSTER_BATCH = 256  # faces scored against the centroids in one matrix product while clustering
HELD_NEARER_REGISTERED = -1  # cluster_unmatched's label of a face nearer a registered animal than its cluster


@dataclass(frozen=True)
class GalleryMatches:
    """Per query face: the top-k individuals (None where fewer exist), their scores (nan), the best and the margin.

    ids (N, k) object, scores (N, k) float32, best_id (N,) object, best_score (N,) float32, margin (N,) float32.
    The margin is best minus runner-up score; with one registered individual it is the best score itself (the
    runner-up counts as 0); with an empty gallery best_id is None and best_score and margin are nan.
    """

    ids: np.ndarray
    scores: np.ndarray
    best_id: np.ndarray
    best_score: np.ndarray
    margin: np.ndarray


@dataclass(frozen=True)
class _Gallery:
    """The gallery's rows laid out in slot blocks, so a per-individual maximum is a few contiguous slices.

    Individuals are ranked by their number of rows (most first, then by id); block j holds the j-th row of each
    individual that has more than j rows, in that rank order, so block j covers the first widths[j] ranks.
    rank_individual maps a rank to the individual's index among the sorted ids (names); row_individual gives each
    row's individual index.
    """

    rows: np.ndarray
    row_individual: np.ndarray
    rank_individual: np.ndarray
    widths: tuple[int, ...]
    names: np.ndarray


def _as_matrix(values: np.ndarray, name: str, dim: int | None = None) -> np.ndarray:
    """The array as a C-contiguous finite float32 matrix, or a ValueError that names it."""
    matrix = np.ascontiguousarray(values, dtype=np.float32)
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be a 2-d array (rows x dimensions), got shape {matrix.shape}.")
    if dim is not None and matrix.shape[1] != dim and matrix.shape[0] > 0:
        raise ValueError(f"{name} has {matrix.shape[1]} dimensions where {dim} were expected.")
    if not np.isfinite(matrix).all():
        raise ValueError(f"{name} holds non-finite values (nan or inf).")
    return matrix


def _slot_gallery(gallery: np.ndarray, gallery_ids: Sequence[str]) -> _Gallery:
    """The gallery's rows in slot blocks (see _Gallery), individuals indexed in the order of their sorted ids."""
    names, row_individual = np.unique(np.asarray(list(gallery_ids), dtype=object).astype(str), return_inverse=True)
    counts = np.bincount(row_individual, minlength=len(names))
    rank_individual = np.lexsort((np.arange(len(names)), -counts))
    rank_of = np.empty_like(rank_individual)
    rank_of[rank_individual] = np.arange(len(names))
    by_rank = np.lexsort((np.arange(len(row_individual)), rank_of[row_individual]))  # rows grouped by rank
    first_row = np.concatenate([[0], np.cumsum(counts[rank_individual])[:-1]])
    slot = np.arange(len(by_rank)) - np.repeat(first_row, counts[rank_individual])
    layout = by_rank[np.lexsort((rank_of[row_individual[by_rank]], slot))]  # slot major, rank minor
    widths = tuple(int((counts >= j + 1).sum()) for j in range(int(counts.max())))
    return _Gallery(
        rows=np.ascontiguousarray(gallery[layout]),
        row_individual=row_individual[layout].astype(np.intp),
        rank_individual=rank_individual.astype(np.intp),
        widths=widths,
        names=names.astype(object),
    )


def _select_top(scores: np.ndarray, individuals: np.ndarray, keep: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the `keep` highest-scoring columns as (individual indices, scores), ties to the smaller index.

    `individuals` gives each column's individual (same shape as scores); a column scored -inf is no candidate.
    """
    rows = np.arange(scores.shape[0])[:, None]
    if scores.shape[1] > keep:
        part = np.argpartition(-scores, keep, axis=1)
        top = part[:, :keep]
        kth = scores[rows, top].min(axis=1)
        boundary_tie = kth == scores[rows[:, 0], part[:, keep]]
        for row in np.flatnonzero(boundary_tie):  # an exact tie at the cut: rank the whole row (rare)
            top[row] = np.lexsort((individuals[row], -scores[row]))[:keep]
    else:
        top = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    top_scores = scores[rows, top]
    top_individuals = individuals[rows, top]
    order = np.lexsort((top_individuals, -top_scores), axis=1)
    return top_individuals[rows, order], top_scores[rows, order]


def _chunk_matmul(queries: np.ndarray, gallery: _Gallery, keep: int) -> tuple[np.ndarray, np.ndarray]:
    """Top individuals of a chunk of queries by one matrix product and a per-individual maximum over slot blocks."""
    similarities = queries @ gallery.rows.T
    best = similarities[:, : gallery.widths[0]]
    offset = gallery.widths[0]
    for width in gallery.widths[1:]:
        np.maximum(best[:, :width], similarities[:, offset : offset + width], out=best[:, :width])
        offset += width
    individuals = np.broadcast_to(gallery.rank_individual, best.shape)
    return _select_top(best, individuals, keep)


def _first_occurrences(individuals: np.ndarray) -> np.ndarray:
    """Mask of the entries whose individual has not appeared earlier in the same row."""
    order = np.argsort(individuals, axis=1, kind="stable")
    grouped = np.take_along_axis(individuals, order, axis=1)
    first_sorted = np.ones(grouped.shape, dtype=bool)
    first_sorted[:, 1:] = grouped[:, 1:] != grouped[:, :-1]
    first = np.empty_like(first_sorted)
    np.put_along_axis(first, order, first_sorted, axis=1)
    return first


def _chunk_faiss(queries: np.ndarray, gallery: _Gallery, index: object, keep: int) -> tuple[np.ndarray, np.ndarray]:
    """Top individuals of a chunk of queries from faiss's exact neighbours, enough of them to cover `keep` animals.

    A row is settled when `keep` distinct individuals score strictly above its last neighbour (so no tie at the
    cut hides an individual); unsettled rows are searched again with twice as many neighbours, up to the gallery.
    """
    n_rows = gallery.rows.shape[0]
    mean_rows = math.ceil(n_rows / len(gallery.names))
    neighbours = min(n_rows, keep * min(len(gallery.widths), 2 * mean_rows))
    out_individuals = np.empty((queries.shape[0], keep), dtype=np.intp)
    out_scores = np.empty((queries.shape[0], keep), dtype=np.float32)
    pending = np.arange(queries.shape[0])
    while pending.size:
        scores, labels = index.search(queries[pending], neighbours)
        individuals = gallery.row_individual[labels]
        first = _first_occurrences(individuals)
        above_last = scores > scores[:, -1:]
        settled = ((first & above_last).sum(axis=1) >= keep) | (neighbours == n_rows)
        candidates = np.where(first, scores, np.float32(-np.inf))
        top_individuals, top_scores = _select_top(candidates[settled], individuals[settled], keep)
        out_individuals[pending[settled]] = top_individuals
        out_scores[pending[settled]] = top_scores
        pending = pending[~settled]
        neighbours = min(n_rows, 2 * neighbours)
    return out_individuals, out_scores


def _faiss_index(gallery: _Gallery) -> object:
    """An exact inner-product faiss index over the gallery's rows."""
    import faiss

    index = faiss.IndexFlatIP(gallery.rows.shape[1])
    index.add(gallery.rows)
    return index


def resolve_match_method(method: MatchMethod) -> str:
    """The implementation `method` names; "auto" is matmul, the faster in scripts/bench_identity_matching.py.

    Measured on the 2-core Zen 5 EPYC (PERFORMANCE.md): 100,000 faces against 1,000 animals x 5 rows, matmul 3.2 s,
    faiss 4.2 s (5.2 and 6.9 s in a busier run); 5,000 faces, 0.15 s against 0.25 s. Both are bound by the one
    matrix product; faiss's exact flat index adds nothing to it but a heap, and needs 5x more neighbours than k.
    """
    if method not in ("auto", "matmul", "faiss"):
        raise ValueError(f"method must be auto, matmul or faiss, not {method!r}.")
    return "matmul" if method == "auto" else method


def default_chunk_rows(n_gallery_rows: int) -> int:
    """Queries per chunk so that one chunk's similarity matrix stays under CHUNK_BYTES."""
    return max(1, CHUNK_BYTES // (4 * max(1, n_gallery_rows)))


def _empty_matches(n: int, k: int) -> GalleryMatches:
    """Matches of n queries against nothing: None ids, nan scores and margins."""
    return GalleryMatches(
        ids=np.full((n, k), None, dtype=object),
        scores=np.full((n, k), np.nan, dtype=np.float32),
        best_id=np.full(n, None, dtype=object),
        best_score=np.full(n, np.nan, dtype=np.float32),
        margin=np.full(n, np.nan, dtype=np.float32),
    )


def match_gallery(
    queries: np.ndarray,
    gallery: np.ndarray,
    gallery_ids: Sequence[str],
    k: int = 5,
    method: MatchMethod = "auto",
    chunk_rows: int | None = None,
) -> GalleryMatches:
    """Each query's top-k registered individuals by cosine similarity to their best gallery row, with the margin."""
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}.")
    query_matrix = _as_matrix(queries, "queries")
    gallery_matrix = _as_matrix(gallery, "gallery", dim=query_matrix.shape[1] if query_matrix.shape[0] else None)
    if len(gallery_ids) != gallery_matrix.shape[0]:
        raise ValueError(f"gallery has {gallery_matrix.shape[0]} rows but {len(gallery_ids)} ids.")
    chosen = resolve_match_method(method)
    n = query_matrix.shape[0]
    if n == 0 or gallery_matrix.shape[0] == 0:
        return _empty_matches(n, k)
    slots = _slot_gallery(gallery_matrix, gallery_ids)
    keep = min(max(k, 2), len(slots.names))  # at least two, for the runner-up's margin even when k is 1
    step = chunk_rows or default_chunk_rows(slots.rows.shape[0])
    index = _faiss_index(slots) if chosen == "faiss" else None
    top_individuals = np.full((n, max(k, keep)), len(slots.names), dtype=np.intp)
    scores = np.full((n, max(k, keep)), np.nan, dtype=np.float32)
    for start in range(0, n, step):
        chunk = query_matrix[start : start + step]
        if index is None:
            found, found_scores = _chunk_matmul(chunk, slots, keep)
        else:
            found, found_scores = _chunk_faiss(chunk, slots, index, keep)
        top_individuals[start : start + step, :keep] = found
        scores[start : start + step, :keep] = found_scores
    names = np.append(slots.names, None)
    runner_up = scores[:, 1] if keep > 1 else np.zeros(n, dtype=np.float32)
    return GalleryMatches(
        ids=names[top_individuals[:, :k]],
        scores=scores[:, :k].copy(),
        best_id=names[top_individuals[:, 0]],
        best_score=scores[:, 0].copy(),
        margin=(scores[:, 0] - runner_up).astype(np.float32),
    )


def open_set_calls(matches: GalleryMatches, threshold: float) -> np.ndarray:
    """Whether each query is matched to a registered individual: its best score is at least the threshold."""
    with np.errstate(invalid="ignore"):
        return np.asarray(matches.best_score >= threshold, dtype=bool) & ~np.isnan(matches.best_score)


def choose_threshold(
    scores_known: np.ndarray,
    correct_known: np.ndarray,
    scores_new: np.ndarray,
    known_individuals: Sequence[str] | None = None,
) -> float:
    """The threshold maximising the geometric mean of balanced accuracy on known and on new individuals.

    A known face is right when accepted (best score >= threshold) and its best id is correct; a new face is right
    when rejected. Accuracy on known faces is balanced over individuals when known_individuals (each known face's
    true individual) is given, as AnimalCLEF 2025 scores it, else each face counts once; new individuals form one
    class. Of the thresholds with the best score, the lowest is chosen, placed half-way between the score it
    accepts and the next lower score (so it sits in the gap, not on a face); rejecting everything gives a value
    just above the highest score.
    """
    known = np.asarray(scores_known, dtype=np.float64).ravel()
    correct = np.asarray(correct_known, dtype=bool).ravel()
    new = np.asarray(scores_new, dtype=np.float64).ravel()
    if known.size == 0 or new.size == 0:
        raise ValueError("choose_threshold needs scores of both known and new individuals' faces.")
    if correct.size != known.size:
        raise ValueError(f"{known.size} known scores but {correct.size} correctness flags.")
    if known_individuals is None:
        weights = np.full(known.size, 1.0 / known.size)
    else:
        groups = np.unique(np.asarray(list(known_individuals), dtype=object).astype(str), return_inverse=True)[1]
        if groups.size != known.size:
            raise ValueError(f"{known.size} known scores but {groups.size} known individuals.")
        counts = np.bincount(groups)
        weights = 1.0 / (counts[groups] * counts.size)
    candidates = np.unique(np.concatenate([known, new]))
    correct_scores = known[correct]
    correct_weights = weights[correct]
    order = np.argsort(correct_scores)
    accepted_weight = np.concatenate([np.cumsum(correct_weights[order][::-1])[::-1], [0.0]])
    known_accuracy = accepted_weight[np.searchsorted(correct_scores[order], candidates, side="left")]
    new_accuracy = np.searchsorted(np.sort(new), candidates, side="left") / new.size
    objective = np.sqrt(known_accuracy * new_accuracy)
    best = int(np.argmax(objective))
    if objective[best] <= 0.0:  # no threshold does better than rejecting everything
        return float(np.nextafter(candidates[-1], np.inf))
    if best == 0:
        return float(candidates[0])
    return float((candidates[best] + candidates[best - 1]) / 2)


def _sequential_clusters(
    faces: np.ndarray, order: np.ndarray, groups: list[object], threshold: float, registered: np.ndarray
) -> np.ndarray:
    """Cluster labels of faces[order] (faces in time order, groups their frames, registered their best registered
    scores), by cluster_unmatched's rule."""
    n, dim = faces.shape
    labels = np.empty(n, dtype=np.int64)
    sums = np.zeros((0, dim), dtype=np.float64)
    centroids = np.zeros((0, dim), dtype=np.float32)
    n_clusters = 0
    clusters_of_frame: dict[object, list[int]] = {}
    batch = np.zeros((CLUSTER_BATCH, dim), dtype=np.float32)
    for start in range(0, n, CLUSTER_BATCH):
        size = min(CLUSTER_BATCH, n - start)
        batch[:size] = faces[order[start : start + size]]
        batch[size:] = 0.0
        if sums.shape[0] < n_clusters + CLUSTER_BATCH:  # room for every face of the batch to found a cluster
            grown = max(2 * sums.shape[0], n_clusters + CLUSTER_BATCH)
            sums = np.concatenate([sums, np.zeros((grown - sums.shape[0], dim), dtype=np.float64)])
            centroids = np.concatenate([centroids, np.zeros((grown - centroids.shape[0], dim), dtype=np.float32)])
        scored = np.full((CLUSTER_BATCH, n_clusters + CLUSTER_BATCH), -np.inf, dtype=np.float32)
        scored[:, :n_clusters] = batch @ centroids[:n_clusters].T
        for offset in range(size):
            row = scored[offset, :n_clusters]
            excluded = clusters_of_frame.setdefault(groups[start + offset], [])
            if excluded:
                row = row.copy()
                row[excluded] = -np.inf
            best = int(row.argmax()) if n_clusters else -1
            if best >= 0 and row[best] >= threshold and registered[start + offset] >= row[best]:
                labels[start + offset] = HELD_NEARER_REGISTERED
                continue
            if best < 0 or row[best] < threshold:
                best = n_clusters
                n_clusters += 1
            sums[best] += batch[offset]
            centroids[best] = sums[best] / max(math.sqrt(float(sums[best] @ sums[best])), 1e-12)
            scored[offset + 1 :, best] = batch[offset + 1 :] @ centroids[best]  # the later faces see the new centroid
            excluded.append(best)
            labels[start + offset] = best
    return labels


def cluster_unmatched(
    embeddings: np.ndarray,
    order_keys: np.ndarray,
    frame_groups: np.ndarray,
    threshold: float,
    registered_scores: np.ndarray | None = None,
) -> np.ndarray:
    """Cluster labels (0, 1, ... in founding order) grouping unmatched faces into provisional individuals, or
    HELD_NEARER_REGISTERED for a face held out of every cluster.

    The rule: faces are taken in order of order_keys (a stable sort, so equal keys keep their input order; pass
    unique keys such as capture time then face id). Each face joins the cluster whose centroid (the normalised mean
    of its faces so far) is most similar to it, if that similarity is at least the threshold, else it founds a new
    cluster; a cluster already holding a face of the same frame (same frame_groups value) is never joined, since
    two faces in one frame are two animals. Exact ties go to the earlier cluster. A face whose best registered animal
    (registered_scores, its best gallery score below the match threshold) scores at least as high as the cluster it
    would join is held (joins nothing, founds nothing): it resembles that animal no less than the provisional
    individual, so neither is sure. A face's cluster depends only on the faces before it, so appending later faces
    never changes an earlier face's label.

    Faces are scored against the centroids in batches of CLUSTER_BATCH by one matrix product; when a face joins or
    founds a cluster, only that cluster's column is scored again for the rest of the batch. Batches are padded to
    full size, so the arithmetic of a face never depends on how many faces follow it. Memory grows with the number
    of clusters (a batch-by-clusters matrix), never N x N.
    """
    matrix = _as_matrix(embeddings, "embeddings")
    n = matrix.shape[0]
    registered = np.full(n, -np.inf) if registered_scores is None else np.asarray(registered_scores, np.float64)
    if len(order_keys) != n or len(frame_groups) != n or len(registered) != n:
        raise ValueError(
            f"{n} embeddings, {len(order_keys)} order keys, {len(frame_groups)} frame groups and "
            f"{len(registered)} registered scores."
        )
    labels = np.empty(n, dtype=np.int64)
    if n == 0:
        return labels
    order = np.argsort(np.asarray(order_keys), kind="stable")
    groups = np.asarray(frame_groups)[order].tolist()
    with threadpool_limits(limits=1, user_api="blas"):  # one small product per face: BLAS threads only wait
        labels[order] = _sequential_clusters(
            matrix, order, groups, threshold, np.nan_to_num(registered[order], nan=-np.inf)
        )
    return labels


def provisional_id(founding_face_id: str) -> str:
    """The id of the provisional individual a face founds: "P-" and the first 12 hex digits of sha1 of its id."""
    return "P-" + hashlib.sha1(founding_face_id.encode()).hexdigest()[:12]


def provisional_ids(labels: np.ndarray, face_ids: Sequence[str], order_keys: np.ndarray) -> list[str]:
    """Each face's provisional individual id: "P-" and the first 12 hex digits of sha1 of its cluster's first face.

    The founding face is the cluster's earliest by order_keys (ties in input order, as cluster_unmatched takes
    them), so the same inputs always give the same ids and later faces never rename an earlier cluster. 12 hex
    digits (48 bits) make a collision between 100,000 clusters about a 1-in-50,000 event.
    """
    label_array = np.asarray(labels)
    if not (label_array.size == len(face_ids) == len(order_keys)):
        raise ValueError(f"{label_array.size} labels, {len(face_ids)} face ids and {len(order_keys)} order keys.")
    if label_array.size == 0:
        return []
    order = np.argsort(np.asarray(order_keys), kind="stable")
    founders: dict[int, str] = {}
    for position in order.tolist():
        founders.setdefault(int(label_array[position]), str(face_ids[position]))
    names = {label: provisional_id(face) for label, face in founders.items()}
    return [names[int(label)] for label in label_array.tolist()]


def cluster_centroids(embeddings: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Unit-length mean embedding of each cluster, row c for label c (zeros for a label with no faces)."""
    matrix = _as_matrix(embeddings, "embeddings")
    label_array = np.asarray(labels, dtype=np.intp)
    if label_array.size != matrix.shape[0]:
        raise ValueError(f"{matrix.shape[0]} embeddings but {label_array.size} labels.")
    n_clusters = int(label_array.max(initial=-1)) + 1
    sums = np.zeros((n_clusters, matrix.shape[1]), dtype=np.float64)
    np.add.at(sums, label_array, matrix)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return (sums / np.maximum(norms, 1e-12)).astype(np.float32)


def merge_into_registered(
    centroids: np.ndarray, gallery: np.ndarray, gallery_ids: Sequence[str], threshold: float
) -> list[str | None]:
    """The registered individual each provisional cluster merges into (its centroid's best match >= threshold)."""
    matches = match_gallery(centroids, gallery, gallery_ids, k=1)
    accepted = open_set_calls(matches, threshold)
    return [name if ok else None for name, ok in zip(matches.best_id.tolist(), accepted.tolist())]
