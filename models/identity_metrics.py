"""Open-set re-identification metrics and splits (pure): top-k, mAP, new-individual AUROC, balanced accuracy on known
and new individuals (AnimalCLEF 2025), the thresholds the nightly stage applies, and splits that never cut a camera
event in two.

Similarities are cosine similarities of unit-length embeddings: a query x gallery matrix S. An animal's score for a
query is its best gallery face's similarity; the query is called that animal when the score is at or above the match
threshold, else "new".
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, balanced_accuracy_score, roc_auc_score

NEW = "new"  # the call for a query that matches no gallery animal
EVENT_GAP_S = 300.0  # frames of one camera less than this apart are one event
THRESHOLD_GRID = np.round(np.arange(-0.2, 1.0001, 0.01), 4)


@dataclass(frozen=True)
class AnimalScores:
    """Per query: the gallery animals ranked by their best face's similarity, and those similarities."""

    animals: list[str]
    ranked: np.ndarray  # queries x animals, indices into `animals`, best first
    scores: np.ndarray  # queries x animals, the similarity of each ranked animal


def animal_scores(similarity: np.ndarray, gallery_ids: Sequence[str]) -> AnimalScores:
    """Rank the gallery's animals for every query by the best similarity among each animal's gallery faces."""
    animals = sorted(set(gallery_ids))
    ids = np.asarray(gallery_ids)
    best = np.stack([similarity[:, ids == animal].max(axis=1) for animal in animals], axis=1)
    order = np.argsort(-best, axis=1, kind="stable")
    return AnimalScores(animals, order, np.take_along_axis(best, order, axis=1))


def top_k(scores: AnimalScores, query_ids: Sequence[str], k: int) -> float | None:
    """Share of queries whose animal is among the k best-scored gallery animals (None without queries)."""
    if len(query_ids) == 0:
        return None
    names = np.asarray(scores.animals)[scores.ranked[:, :k]]
    return float(np.mean([query in row for query, row in zip(query_ids, names)]))


def mean_average_precision(
    similarity: np.ndarray, query_ids: Sequence[str], gallery_ids: Sequence[str]
) -> float | None:
    """Mean over queries of the average precision of the gallery ranked by similarity, faces of the query's animal
    relevant (scikit-learn's average_precision_score); queries without a relevant gallery face are skipped."""
    gallery = np.asarray(gallery_ids)
    values = [
        average_precision_score(gallery == query, row)
        for query, row in zip(query_ids, similarity)
        if (gallery == query).any()
    ]
    return float(np.mean(values)) if values else None


def calls_at(scores: AnimalScores, threshold: float) -> list[str]:
    """Each query's call: its best gallery animal when that animal's score reaches the threshold, else NEW."""
    best = np.asarray(scores.animals)[scores.ranked[:, 0]] if len(scores.animals) else np.full(len(scores.ranked), NEW)
    return [str(animal) if score >= threshold else NEW for animal, score in zip(best, scores.scores[:, 0])]


def balanced_accuracies(calls: Sequence[str], truth: Sequence[str], known: Sequence[bool]) -> dict[str, float | None]:
    """AnimalCLEF 2025: BAKS, balanced accuracy (mean recall per animal) on queries of known animals, BAUS, the same on
    queries of new animals (all labelled NEW, so the share called new), and their geometric mean."""
    calls, truth, known = np.asarray(calls), np.asarray(truth), np.asarray(known, bool)
    with warnings.catch_warnings():  # calls naming animals (or NEW) that no query is are expected here
        warnings.filterwarnings("ignore", "y_pred contains classes not in y_true", UserWarning)
        warnings.filterwarnings("ignore", "A single label was found", UserWarning)
        baks = float(balanced_accuracy_score(truth[known], calls[known])) if known.any() else None
    baus = float(np.mean(calls[~known] == NEW)) if (~known).any() else None
    both = baks is not None and baus is not None
    return {"baks": baks, "baus": baus, "geometric_mean": float(np.sqrt(baks * baus)) if both else None}


def new_individual_auroc(scores: AnimalScores, known: Sequence[bool]) -> float | None:
    """ROC AUC of calling a query new, scored by minus its best gallery similarity (new animals positive); None unless
    both kinds of query occur."""
    is_new = ~np.asarray(known, bool)
    if is_new.all() or not is_new.any():
        return None
    return float(roc_auc_score(is_new, -scores.scores[:, 0]))


def choose_match_threshold(
    scores: AnimalScores, truth: Sequence[str], known: Sequence[bool], grid: np.ndarray = THRESHOLD_GRID
) -> float:
    """The similarity threshold maximising the geometric mean of BAKS and BAUS (ties: the lowest such threshold)."""
    truth_calls = [animal if k else NEW for animal, k in zip(truth, known)]
    values = [balanced_accuracies(calls_at(scores, t), truth_calls, known)["geometric_mean"] or 0.0 for t in grid]
    return float(grid[int(np.argmax(values))])


def choose_cluster_threshold(
    embeddings: np.ndarray, ids: Sequence[str], events: Sequence[str], grid: np.ndarray = THRESHOLD_GRID
) -> float | None:
    """The similarity at or above which two faces of different events are called the same animal, maximising the
    balanced accuracy of that call over all such pairs (None without same-animal and different-animal pairs)."""
    ids, events = np.asarray(ids), np.asarray(events)
    upper = np.triu_indices(len(ids), k=1)
    keep = events[upper[0]] != events[upper[1]]
    pairs = (upper[0][keep], upper[1][keep])
    same = ids[pairs[0]] == ids[pairs[1]]
    if same.all() or not same.any():
        return None
    sims = np.einsum("ij,ij->i", embeddings[pairs[0]], embeddings[pairs[1]])
    values = [0.5 * (np.mean(sims[same] >= t) + np.mean(sims[~same] < t)) for t in grid]
    return float(grid[int(np.argmax(values))])


def open_set_report(
    similarity: np.ndarray,
    query_ids: Sequence[str],
    gallery_ids: Sequence[str],
    threshold: float,
) -> dict[str, Any]:
    """Every metric of one query/gallery comparison at a match threshold: top-1, top-5 and mAP on queries of gallery
    animals, new-individual AUROC, BAKS, BAUS and their geometric mean, with the counts behind them."""
    gallery_animals = set(gallery_ids)
    known = [q in gallery_animals for q in query_ids]
    scores = animal_scores(similarity, gallery_ids)
    known_rows = np.asarray(known, bool)
    known_ids = [q for q, k in zip(query_ids, known) if k]
    known_scores = AnimalScores(scores.animals, scores.ranked[known_rows], scores.scores[known_rows])
    truth_calls = [q if k else NEW for q, k in zip(query_ids, known)]
    return {
        "n_queries": len(query_ids),
        "n_known_queries": int(known_rows.sum()),
        "n_new_queries": int((~known_rows).sum()),
        "n_gallery": len(gallery_ids),
        "n_gallery_animals": len(gallery_animals),
        "n_new_animals": len({q for q, k in zip(query_ids, known) if not k}),
        "top1": top_k(known_scores, known_ids, 1),
        "top5": top_k(known_scores, known_ids, 5),
        "map": mean_average_precision(similarity[known_rows], known_ids, gallery_ids),
        "new_auroc": new_individual_auroc(scores, known),
        "threshold": threshold,
        **balanced_accuracies(calls_at(scores, threshold), truth_calls, known),
    }


def camera_events(cameras: Sequence[str], times: Sequence[float | None], gap_s: float = EVENT_GAP_S) -> list[str]:
    """An event id per face from its camera and time (epoch seconds): faces of one camera less than gap_s apart, in
    time order, share an event; a face without a time is an event of its own."""
    events = [""] * len(cameras)
    order = sorted(range(len(cameras)), key=lambda i: (cameras[i], times[i] is None, times[i] or 0.0, i))
    previous: tuple[str, float | None] | None = None
    serial = 0
    for i in order:
        camera, moment = cameras[i], times[i]
        joins = (
            previous is not None
            and moment is not None
            and previous[1] is not None
            and previous[0] == camera
            and moment - previous[1] < gap_s
        )
        serial += 0 if joins else 1
        events[i] = f"{camera}#{serial}"
        previous = (camera, moment)
    return events


def later_events(events: Sequence[str], times: Sequence[float | None], later_share: float) -> list[bool]:
    """Closed-set split: True for faces of the latest events holding about `later_share` of the faces (whole events
    only, ordered by each event's first time), False for the earlier ones."""
    first: dict[str, float] = {}
    for event, moment in zip(events, times):
        value = moment if moment is not None else float("-inf")
        first[event] = min(first.get(event, value), value)
    sizes = Counter(events)
    target, taken, later = later_share * len(events), 0, set()
    for event in sorted(first, key=lambda e: (first[e], e), reverse=True):
        if taken >= target:
            break
        later.add(event)
        taken += sizes[event]
    return [event in later for event in events]
