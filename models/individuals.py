"""Who each face is (pure): faces of no known animal are matched to the gallery of registered animals' faces; a
confident match names the animal, the rest are clustered across events, cameras and nights into provisional
individuals, and a provisional individual whose centre matches a registered animal is merged into it. A face below the
match threshold is held for review instead when its best candidate is matched in another frame of the same camera
event, or when that candidate resembles it at least as much as the provisional individual it would join: named as
the candidate but not confident, so it neither joins nor founds a provisional individual, nor counts. A provisional
individual of fewer faces than the configured minimum awaits a second sighting: one outlier face of a known animal
founds such an individual far more often than a new animal passes a camera once (PERFORMANCE.md, session 20), so it
is held, not counted, until it is seen again or a person confirms it. Such a face that scores at least halfway from the
cluster to the match threshold against a registered animal which no confident face of its night shows is that
animal's sole candidate:
counted as it (so a known animal seen once that night is not lost from the night's count) and asked about first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.identity_matching import (
    HELD_NEARER_REGISTERED,
    cluster_centroids,
    cluster_unmatched,
    match_gallery,
    merge_into_registered,
    provisional_ids,
)

TOP_K = 5
DECIMALS = 6  # scores are stored rounded: BLAS sums in another order for another batch shape (last bits differ)
GALLERY_MATCH = "gallery_match"
CLUSTER = "cluster"
MERGED = "merged_by_match"
SAME_EVENT = "same_event_candidate"  # below the match threshold, its candidate matched in the same event: unsure
NEARER_REGISTERED = "nearer_registered"  # below the match threshold, but no nearer the cluster it would join: unsure
AWAITING_SIGHTING = "awaiting_sighting"  # a provisional individual of too few faces: counted once seen again
SOLE_CANDIDATE = "sole_candidate"  # seen once, like a registered animal its night shows no other face of: counted as it
CONFIDENT_REGISTERED = (GALLERY_MATCH, MERGED)  # how a registered call is established when it counts without doubt


@dataclass(frozen=True)
class Queries:
    """Faces to identify: ids, their frame, their order in time (0 = earliest) and their embeddings (N x D)."""

    face_ids: Sequence[str]
    drop_ids: Sequence[str]
    media_ids: Sequence[str]
    order: np.ndarray
    embeddings: np.ndarray
    events: Sequence[str] | None = None  # camera event of each face (one camera, no gap over the event gap)


@dataclass(frozen=True)
class Gallery:
    """Faces of registered animals (keeper photos, named folders, keeper-confirmed faces): animal ids, embeddings."""

    animal_ids: Sequence[str]
    embeddings: np.ndarray


@dataclass(frozen=True)
class Thresholds:
    """The identity model card's open-set match threshold and provisional clustering threshold (cosine), and the
    configured review margin; the clustering threshold is also the score from which a face below the match threshold
    is held for review when its best candidate is matched in the same camera event (the card's same-animal pair
    threshold), and a registered call whose margin to the runner-up is below the review margin is no confident one."""

    match: float
    cluster: float
    review_margin: float

    def clear(self, margin: float) -> bool:
        """Whether a registered call's margin to the runner-up is wide enough for a confident identity."""
        return margin >= self.review_margin

    @property
    def sole_candidate_floor(self) -> float:
        """The score from which a face awaiting a sighting counts as its sole registered candidate: halfway from the
        cluster threshold to the match threshold (chosen on the count bench's selection seeds, PERFORMANCE.md)."""
        return (self.cluster + self.match) / 2


def candidate_lists(ids: np.ndarray, scores: np.ndarray, row: int) -> tuple[list[str], list[float]]:
    """The registered candidates of one query, best first, with their scores (absent ones left out)."""
    pairs = [(str(i), float(s)) for i, s in zip(ids[row], scores[row]) if i is not None]
    return [i for i, _ in pairs], [round(s, DECIMALS) for _, s in pairs]


def centroid_scores(embeddings: np.ndarray, labels: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Each face's cosine similarity to its cluster's (unit-length) centre."""
    if len(labels) == 0:
        return np.zeros(0, dtype=np.float64)
    norms = np.linalg.norm(centroids, axis=1, keepdims=True)
    unit = centroids / np.where(norms > 0, norms, 1.0)
    return np.einsum("nd,nd->n", embeddings, unit[labels]).astype(np.float64)


def same_event_candidates(
    best_ids: np.ndarray, best_scores: np.ndarray, matched: np.ndarray, queries: Queries, floor: float
) -> np.ndarray:
    """Which unmatched faces score at least `floor` against a registered animal that a matched face of another frame
    of the same camera event names: the same animal seen a moment later (or a companion it resembles), so unsure."""
    held = np.zeros(len(best_ids), dtype=bool)
    if queries.events is None:
        return held
    seen: dict[tuple[str, str], set[str]] = {}
    for i in np.flatnonzero(matched):
        seen.setdefault((str(queries.events[i]), str(best_ids[i])), set()).add(str(queries.media_ids[i]))
    for i in np.flatnonzero(~matched):
        frames = seen.get((str(queries.events[i]), str(best_ids[i])), set())
        held[i] = best_scores[i] >= floor and bool(frames - {str(queries.media_ids[i])})
    return held


def cluster_established(absorbed: bool, n_faces: int, min_faces: int) -> str:
    """How a clustered face's identity was established: merged into a registered animal, awaiting a sighting (its
    provisional individual has fewer than min_faces faces), or a provisional individual."""
    if absorbed:
        return MERGED
    return AWAITING_SIGHTING if n_faces < min_faces else CLUSTER


def sole_candidates(rows: list[dict[str, Any]], thresholds: Thresholds) -> list[int]:
    """The rows awaiting a sighting whose best registered candidate scores at least the sole-candidate floor, by at
    least the review margin over the runner-up, and is named by no confident face of the same drop (a registered call
    at the review margin or more; nor by a better-scoring such row): most likely that animal's only face of the night,
    so it is counted as it rather than not at all."""
    shown = {
        (r["drop_id"], r["individual_id"])
        for r in rows
        if r["established"] in CONFIDENT_REGISTERED and thresholds.clear(r["margin"])
    }
    waiting = [
        i
        for i, r in enumerate(rows)
        if r["established"] == AWAITING_SIGHTING and r["candidates"] and thresholds.clear(r["margin"])
    ]
    chosen = []
    for i in sorted(waiting, key=lambda i: (-rows[i]["candidate_scores"][0], rows[i]["face_id"])):
        key = (rows[i]["drop_id"], rows[i]["candidates"][0])
        if rows[i]["candidate_scores"][0] >= thresholds.sole_candidate_floor and key not in shown:
            shown.add(key)
            chosen.append(i)
    return chosen


def decide_individuals(
    queries: Queries, gallery: Gallery, thresholds: Thresholds, provisional_min_faces: int = 1
) -> list[dict[str, Any]]:
    """One identity_matches row (without model version and run) per query face: registered when its best gallery
    match reaches the match threshold, else provisional (merged into a registered animal when its cluster's centre
    matches one; awaiting a sighting while its cluster has fewer than provisional_min_faces faces, unless it is its
    drop's sole candidate for a registered animal at the sole-candidate floor or more)."""
    n = len(queries.face_ids)
    if n == 0:
        return []
    matches = match_gallery(queries.embeddings, gallery.embeddings, list(gallery.animal_ids), k=TOP_K)
    has_gallery = len(gallery.animal_ids) > 0
    matched = np.asarray(matches.best_score >= thresholds.match) if has_gallery else np.zeros(n, dtype=bool)
    held = (
        same_event_candidates(matches.best_id, matches.best_score, matched, queries, thresholds.cluster)
        if has_gallery
        else np.zeros(n, dtype=bool)
    )
    unmatched = np.flatnonzero(~matched & ~held)
    clustered = cluster_unmatched(
        queries.embeddings[unmatched],
        queries.order[unmatched],
        np.asarray([queries.media_ids[i] for i in unmatched], dtype=object),
        thresholds.cluster,
        matches.best_score[unmatched] if has_gallery else None,
    )
    nearer = unmatched[clustered == HELD_NEARER_REGISTERED]
    rest, labels = unmatched[clustered >= 0], clustered[clustered >= 0]
    names = provisional_ids(labels, [queries.face_ids[i] for i in rest], queries.order[rest])
    centroids = cluster_centroids(queries.embeddings[rest], labels)
    merged = (
        merge_into_registered(centroids, gallery.embeddings, list(gallery.animal_ids), thresholds.match)
        if has_gallery and len(rest)
        else [None] * len(centroids)
    )
    to_centre = centroid_scores(queries.embeddings[rest], labels, centroids)
    cluster_faces = np.bincount(labels, minlength=len(centroids))
    rows = []
    for i in range(n):
        candidates, scores = candidate_lists(matches.ids, matches.scores, i) if has_gallery else ([], [])
        rows.append(
            {
                "face_id": queries.face_ids[i],
                "drop_id": queries.drop_ids[i],
                "media_id": queries.media_ids[i],
                "candidates": candidates,
                "candidate_scores": scores,
                "margin": round(float(matches.margin[i]), DECIMALS) if has_gallery else None,
                "method": "machine",
            }
        )
    for i in np.flatnonzero(matched):
        rows[i] |= {
            "individual_id": str(matches.best_id[i]),
            "kind": "registered",
            "score": round(float(matches.best_score[i]), DECIMALS),
            "established": GALLERY_MATCH,
        }
    for established, faces in ((SAME_EVENT, np.flatnonzero(held)), (NEARER_REGISTERED, nearer)):
        for i in faces:
            rows[i] |= {
                "individual_id": str(matches.best_id[i]),
                "kind": "registered",
                "score": round(float(matches.best_score[i]), DECIMALS),
                "established": established,
            }
    for j, i in enumerate(rest):
        absorbed = merged[int(labels[j])]
        rows[i] |= {
            "individual_id": absorbed or names[j],
            "kind": "registered" if absorbed else "provisional",
            "score": round(float(to_centre[j]), DECIMALS),
            "established": cluster_established(bool(absorbed), int(cluster_faces[labels[j]]), provisional_min_faces),
        }
    for i in sole_candidates(rows, thresholds):
        rows[i] |= {
            "individual_id": rows[i]["candidates"][0],
            "kind": "registered",
            "score": rows[i]["candidate_scores"][0],
            "established": SOLE_CANDIDATE,
        }
    return rows
