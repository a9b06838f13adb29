"""Measure re-identification end to end (issue 22, item 7): sample nights of a population the identity net never saw
run through the real nightly flow, scored against their truth/.

A fresh home gets the models of --models-home (its detector and identity net; a gender net too if stored), then
night 0 of (--seed, --animals, --wild) (keeper photos, registry, camera traps) and --nights later camera-trap-only
nights of the same population. Reported:
- top-1 on camera-trap faces of registered animals (the best registered candidate is the right animal), and how
  many of them the pipeline named right, left unsure (near tie) or put in a provisional individual;
- new-individual AUROC: how well the best registered similarity separates never-registered animals' faces;
- per camera-trap-only night, the individuals the catalog counts against truth/individuals.csv (and the one-face
  provisional individuals it leaves out while they await a second sighting).
Detected faces are matched to the truth boxes at IoU > 0.5.

    .venv/bin/python scripts/bench_identity_count.py --models-home data --config data/demo.toml \
        [--seed 7] [--animals 12] [--wild 6] [--nights 3] [--json out.json] [--faces-json faces.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("BREEDWATCH_INGEST__SETTLE_S", "0")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

from sklearn.metrics import roc_auc_score  # noqa: E402

from models.individuals import AWAITING_SIGHTING, SOLE_CANDIDATE  # noqa: E402
from schemas.home import HomeLayout  # noqa: E402
from tasks.catalog import query  # noqa: E402
from tasks.demo import true_individuals  # noqa: E402
from tasks.sample_drop import read_truth_faces, write_sample_drop  # noqa: E402

FACES_SQL = """
SELECT c.drop_id, c.face_id, m.path, m.captured_at, m.width, m.height, c.bbox_x, c.bbox_y, c.bbox_w, c.bbox_h,
       c.individual_id, c.identity_kind, c.identity_machine_kind, c.individual_machine, c.identity_established,
       c.identity_score, c.identity_margin, c.identity_candidates, c.identity_candidate_scores
FROM face_calls c JOIN media m ON m.media_id = c.media_id AND m.drop_id = c.drop_id
WHERE c.source = 'detector' AND c.is_face
ORDER BY m.captured_at, c.drop_id, c.face_id
"""
MATCH_IOU = 0.5


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    w = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    union = a[2] * a[3] + b[2] * b[3] - w * h
    return w * h / union if union > 0 else 0.0


def truth_of(face: dict[str, Any], truths: list[Any]) -> Any | None:
    """The truth face a detected face overlaps at IoU > 0.5 on the same frame, if any."""
    box = (
        face["bbox_x"] * face["width"],
        face["bbox_y"] * face["height"],
        face["bbox_w"] * face["width"],
        face["bbox_h"] * face["height"],
    )
    best = max(truths, key=lambda t: iou(box, (t.x, t.y, t.w, t.h)), default=None)
    return best if best is not None and iou(box, (best.x, best.y, best.w, best.h)) > MATCH_IOU else None


def write_nights(inbox: Path, seed: int, animals: int, wild: int, nights: int) -> list[Path]:
    """Night 0 (registry, keeper photos, traps) and the later camera-trap-only nights of one population."""
    drops = []
    for night in range(nights + 1):
        drop = inbox / f"pop-s{seed}-night{night}"
        write_sample_drop(drop, seed=seed, n_animals=animals, night=night, n_wild=wild, traps_only=night > 0)
        drops.append(drop)
    return drops


def scored_faces(home: HomeLayout, drops: list[Path]) -> list[dict[str, Any]]:
    """Every camera-trap face of the run with the truth face it matches (truth None when it matches none)."""
    truths = {drop.name: {} for drop in drops}
    for drop in drops:
        for face in read_truth_faces(drop):
            truths[drop.name].setdefault(face.path, []).append(face)
    rows = query(home, FACES_SQL).to_pylist()
    return [{**row, "truth": truth_of(row, truths[row["drop_id"]].get(row["path"], []))} for row in rows]


def face_scores(faces: list[dict[str, Any]]) -> dict[str, Any]:
    """Top-1 on registered animals' faces, what the pipeline called them, and new-individual AUROC."""
    known = [f for f in faces if f["truth"] is not None and f["truth"].registered and f["identity_candidates"]]
    new = [f for f in faces if f["truth"] is not None and not f["truth"].registered and f["identity_candidates"]]
    top1 = [f["identity_candidates"][0] == f["truth"].animal_id for f in known]
    named_right = sum(f["individual_id"] == f["truth"].animal_id for f in known)
    named_wrong = sum(f["individual_id"] is not None and f["individual_id"] != f["truth"].animal_id for f in known)
    best = [f["identity_candidate_scores"][0] for f in known + new]
    provisional = [f for f in known if f["identity_machine_kind"] == "provisional"]
    is_new = [0] * len(known) + [1] * len(new)
    return {
        "registered_faces": len(known),
        "top1": round(sum(top1) / len(top1), 4) if top1 else None,
        "named_right": named_right,
        "named_wrong_or_provisional": named_wrong,
        "unsure": sum(f["individual_id"] is None for f in known),
        "registered_faces_in_provisional": len(provisional),
        "registered_faces_merged_by_cluster": sum(f["identity_established"] == "merged_by_match" for f in known),
        "new_faces": len(new),
        "new_individual_auroc": round(roc_auc_score(is_new, [-s for s in best]), 4) if known and new else None,
        "unmatched_detections": sum(f["truth"] is None for f in faces),
    }


def face_detail(faces: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per camera-trap face for diagnosis: truth, what the pipeline called it, and the scores it had."""
    return [
        {
            "drop": f["drop_id"],
            "face_id": f["face_id"],
            "captured_at": str(f["captured_at"]),
            "truth": f["truth"].animal_id if f["truth"] is not None else None,
            "truth_registered": f["truth"].registered if f["truth"] is not None else None,
            "individual_id": f["individual_id"],
            "machine_kind": f["identity_machine_kind"],
            "machine_id": f["individual_machine"],
            "established": f["identity_established"],
            "score": f["identity_score"],
            "margin": f["identity_margin"],
            "candidates": list(f["identity_candidates"] or [])[:3],
            "candidate_scores": list(f["identity_candidate_scores"] or [])[:3],
        }
        for f in faces
    ]


def night_counts(home: HomeLayout, drops: list[Path]) -> list[dict[str, Any]]:
    """Per camera-trap-only night: individuals counted by the catalog against the night's truth."""
    counts = []
    for drop in drops[1:]:
        true_registered, true_wild = true_individuals(drop)
        true_total = true_registered + true_wild
        sql = (
            "SELECT count(DISTINCT individual_id) FILTER (WHERE identity_kind = 'registered') AS registered, "
            "count(DISTINCT individual_id) FILTER (WHERE identity_kind = 'provisional') AS provisional, "
            "count(DISTINCT individual_machine) FILTER (WHERE individual_id IS NULL AND identity_established = ?) "
            "AS awaiting_sighting, count(DISTINCT individual_id) FILTER (WHERE identity_established = ?) "
            "AS sole_candidates FROM face_calls WHERE drop_id = ? AND source = 'detector' AND is_face"
        )
        row = query(home, sql, [AWAITING_SIGHTING, SOLE_CANDIDATE, drop.name]).to_pylist()[0]
        counted = row["registered"] + row["provisional"]
        counts.append(
            {
                "drop": drop.name,
                "true": true_total,
                "true_registered": true_registered,
                "true_never_registered": true_wild,
                "counted": counted,
                **row,  # awaiting_sighting: one-face provisional individuals, not counted; sole_candidates: counted
                "relative_error": round(abs(counted - true_total) / true_total, 3) if true_total else None,
            }
        )
    return counts


def cpu_line() -> str:
    """The CPU's model name and the flags that decide how the nets run (torch is imported by then)."""
    from tasks.execution import cpu_identity

    model, flags = cpu_identity()
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16")
    return f"{model}, {os.cpu_count()} cores, flags {' '.join(f for f in wanted if f in flags) or 'none listed'}"


def main() -> int:
    """Run the nights, score them, print and optionally save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-home", type=Path, required=True)
    parser.add_argument("--config", type=Path)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--animals", type=int, default=12)
    parser.add_argument("--wild", type=int, default=6)
    parser.add_argument("--nights", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--faces-json", type=Path, help="write every camera-trap face's truth and calls here")
    parser.add_argument("--keep-home", type=Path, help="copy the run's home (lake, catalog) and drops here")
    args = parser.parse_args()
    from flows.nightly import nightly

    with tempfile.TemporaryDirectory(prefix="bench-identity-") as folder:
        home = HomeLayout(Path(folder) / "home")
        shutil.copytree(args.models_home / "models", home.root / "models")
        drops = write_nights(Path(folder) / "inbox", args.seed, args.animals, args.wild, args.nights)
        started = time.perf_counter()
        nightly(
            drops=[str(d) for d in drops], home=str(home.root), config_file=str(args.config) if args.config else None
        )
        seconds = time.perf_counter() - started
        cards = sorted((home.root / "models" / "identity").glob("*/v*/model_card.json"))
        report = {
            "cpu": cpu_line(),
            "identity_model": json.loads(cards[-1].read_text())["name"] if cards else None,
            "population": {"seed": args.seed, "registered": args.animals, "wild": args.wild, "nights": args.nights},
            "run_seconds": round(seconds, 1),
            "faces": face_scores(faces := scored_faces(home, drops)),
            "nights": night_counts(home, drops),
        }
        if args.keep_home:
            shutil.copytree(folder, args.keep_home, dirs_exist_ok=True)
        if args.faces_json:
            args.faces_json.write_text(json.dumps(face_detail(faces), indent=1) + "\n")
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
