"""Benchmark re-identification at scale: gallery matching by matrix products vs faiss, and clustering unmatched faces.

Embeddings are generated with a known answer: unit centres drawn at random, one per animal, and faces scattered
around them (centre + noise * gaussian / sqrt(dim), normalised), so at the default noise 1.0 a face's cosine to its
own centre is about 0.71. Registered animals have --per-animal gallery rows; the matched faces are faces of
registered animals (top-1 accuracy is known); the unmatched faces belong to new animals, about 50 faces each, shown one
to three to a frame (never two of one animal in a frame), frames in random time order.

Each measurement runs in a child process that loads the arrays from .npy files, then records ru_maxrss (the peak
resident set) before and after the timed call: the difference is the extra peak memory of the call (libraries and
inputs excluded; KiB on Linux). Times are the best of --repeats calls in that child, the first call included.

    .venv/bin/python scripts/bench_identity_matching.py --faces 100000 --animals 1000 --per-animal 5 --dim 128 \\
        [--cluster-faces 10000 100000] [--repeats 3] [--json out.json]

Exits 1 when the two methods disagree (an id, or a score by more than 1e-5)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

FACES_PER_NEW_ANIMAL = 50


def unit(rows: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as float32."""
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def scattered(rng: np.random.Generator, centres: np.ndarray, which: np.ndarray, noise: float) -> np.ndarray:
    """Faces of the given animals: their centres plus gaussian noise, normalised (built in blocks to spare memory)."""
    out = np.empty((which.size, centres.shape[1]), dtype=np.float32)
    for start in range(0, which.size, 16384):
        part = which[start : start + 16384]
        noisy = centres[part] + noise * rng.standard_normal((part.size, centres.shape[1]), dtype=np.float32)
        out[start : start + part.size] = unit(noisy)
    return out


def write_matching_data(folder: Path, args: argparse.Namespace) -> None:
    """Gallery rows, their ids, the query faces and their true animals, as .npy files."""
    rng = np.random.default_rng(args.seed)
    sigma = args.noise / np.sqrt(args.dim)
    centres = unit(rng.standard_normal((args.animals, args.dim)))
    owners = np.repeat(np.arange(args.animals), args.per_animal)
    np.save(folder / "gallery.npy", scattered(rng, centres, owners, sigma))
    np.save(folder / "gallery_ids.npy", np.array([f"animal-{i:05d}" for i in owners]))
    truth = rng.integers(0, args.animals, args.faces)
    np.save(folder / "queries.npy", scattered(rng, centres, truth, sigma))
    np.save(folder / "truth.npy", np.array([f"animal-{i:05d}" for i in truth]))


def write_cluster_data(folder: Path, n_faces: int, args: argparse.Namespace) -> int:
    """Unmatched faces of new animals, their frames and time order, as .npy files; return how many animals appear."""
    rng = np.random.default_rng(args.seed + n_faces)
    n_animals = max(1, n_faces // FACES_PER_NEW_ANIMAL)
    centres = unit(rng.standard_normal((n_animals, args.dim)))
    frame_sizes = rng.integers(1, min(3, n_animals) + 1, size=n_faces)
    frame_of = np.repeat(np.arange(n_faces), frame_sizes)[:n_faces]
    n_frames = int(frame_of.max()) + 1
    slot = np.arange(n_faces) - np.searchsorted(frame_of, frame_of)  # 0, 1, 2 within a frame
    base, step = rng.integers(0, n_animals, n_frames), rng.integers(1, max(2, n_animals // 3), n_frames)
    truth = (base[frame_of] + slot * step[frame_of]) % n_animals  # distinct animals within a frame
    order_keys = rng.permutation(n_frames)[frame_of] * 4 + slot  # frames in random time order
    np.save(folder / f"faces-{n_faces}.npy", scattered(rng, centres, truth, args.noise / np.sqrt(args.dim)))
    np.save(folder / f"keys-{n_faces}.npy", order_keys)
    np.save(folder / f"frames-{n_faces}.npy", frame_of)
    np.save(folder / f"truth-{n_faces}.npy", truth)
    return int(np.unique(truth).size)


def child_match(folder: Path, method: str, repeats: int) -> dict[str, Any]:
    """Time match_gallery with one method on the saved data; save its ids and scores for the parent to compare."""
    import faiss  # noqa: F401  (loaded before the baseline, so its libraries are not counted)

    from models.identity_matching import match_gallery

    queries, gallery = np.load(folder / "queries.npy"), np.load(folder / "gallery.npy")
    ids = np.load(folder / "gallery_ids.npy").tolist()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        matches = match_gallery(queries, gallery, ids, k=5, method=method)
        times.append(time.perf_counter() - start)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    np.save(folder / f"ids-{method}.npy", matches.ids.astype(str))
    np.save(folder / f"scores-{method}.npy", matches.scores)
    top1 = float((matches.best_id.astype(str) == np.load(folder / "truth.npy")).mean())
    return {"seconds": min(times), "all_seconds": times, "extra_peak_mib": (after - before) / 1024, "top1": top1}


def child_cluster(folder: Path, n_faces: int, threshold: float, repeats: int) -> dict[str, Any]:
    """Time cluster_unmatched on the saved unmatched faces; report clusters found and agreement with the truth."""
    from sklearn.metrics import adjusted_rand_score

    from models.identity_matching import cluster_unmatched

    faces, keys = np.load(folder / f"faces-{n_faces}.npy"), np.load(folder / f"keys-{n_faces}.npy")
    frames, truth = np.load(folder / f"frames-{n_faces}.npy"), np.load(folder / f"truth-{n_faces}.npy")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        labels = cluster_unmatched(faces, keys, frames, threshold)
        times.append(time.perf_counter() - start)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    shared_frame = np.bincount(frames)[frames] > 1
    broken = len({(frame, label) for frame, label in zip(frames[shared_frame], labels[shared_frame])})
    return {
        "seconds": min(times),
        "all_seconds": times,
        "extra_peak_mib": (after - before) / 1024,
        "clusters": int(labels.max() + 1),
        "adjusted_rand": float(adjusted_rand_score(truth, labels)),
        "cannot_link_kept": broken == int(shared_frame.sum()),
    }


def in_child(*arguments: str) -> dict[str, Any]:
    """Run this script with --child arguments in a fresh process and return the JSON it prints."""
    done = subprocess.run([sys.executable, __file__, "--child", *arguments], check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def cpu_name() -> str:
    """The CPU model and the vector flags that matter here, from /proc/cpuinfo."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "")
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    wanted = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile") if f in flags]
    return f"{model} x{os.cpu_count()} ({' '.join(wanted)})"


def run(args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    """Every measurement, and whether the two matching methods agree."""
    report: dict[str, Any] = {"cpu": cpu_name(), "load_before": os.getloadavg(), "args": vars(args), "match": {}}
    with tempfile.TemporaryDirectory(prefix="bench-idmatch-") as scratch:
        folder = Path(scratch)
        write_matching_data(folder, args)
        for method in ("matmul", "faiss"):
            report["match"][method] = in_child("match", str(folder), method, str(args.repeats))
        ids = {m: np.load(folder / f"ids-{m}.npy") for m in ("matmul", "faiss")}
        scores = {m: np.load(folder / f"scores-{m}.npy") for m in ("matmul", "faiss")}
        same_ids = bool((ids["matmul"] == ids["faiss"]).all())
        score_gap = float(np.nanmax(np.abs(scores["matmul"] - scores["faiss"])))
        report["agreement"] = {"same_ids": same_ids, "max_score_difference": score_gap}
        report["cluster"] = {}
        for n_faces in args.cluster_faces:
            n_animals = write_cluster_data(folder, n_faces, args)
            result = in_child("cluster", str(folder), str(n_faces), str(args.cluster_threshold), str(args.repeats))
            report["cluster"][str(n_faces)] = {"true_animals": n_animals, **result}
    report["load_after"] = os.getloadavg()
    return report, same_ids and score_gap <= 1e-5


def print_table(report: dict[str, Any]) -> None:
    """The measurements as a plain table."""
    args = report["args"]
    print(f"CPU: {report['cpu']}; load {report['load_before'][0]:.1f} before, {report['load_after'][0]:.1f} after")
    rows = f"{args['animals']:,} animals x {args['per_animal']} rows"
    print(f"matching {args['faces']:,} faces against {rows}, D={args['dim']}, noise {args['noise']}")
    print(f"{'method':<8} {'best s':>8} {'all s':>24} {'extra peak MiB':>15} {'top-1':>7}")
    for method, row in report["match"].items():
        spread = ", ".join(f"{t:.2f}" for t in row["all_seconds"])
        print(f"{method:<8} {row['seconds']:>8.2f} {spread:>24} {row['extra_peak_mib']:>15.0f} {row['top1']:>7.4f}")
    agreement = report["agreement"]
    print(f"same ids: {agreement['same_ids']}, largest score difference: {agreement['max_score_difference']:.2e}")
    print(f"clustering (threshold {args['cluster_threshold']})")
    print(f"{'faces':>8} {'best s':>8} {'extra peak MiB':>15} {'clusters':>9} {'true':>6} {'ARI':>7} cannot-link kept")
    for n_faces, row in report["cluster"].items():
        print(
            f"{int(n_faces):>8,} {row['seconds']:>8.2f} {row['extra_peak_mib']:>15.0f} {row['clusters']:>9} "
            f"{row['true_animals']:>6} {row['adjusted_rand']:>7.4f} {row['cannot_link_kept']}"
        )


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=100_000, help="faces matched against the gallery")
    parser.add_argument("--animals", type=int, default=1_000, help="registered animals in the gallery")
    parser.add_argument("--per-animal", type=int, default=5, help="gallery rows per registered animal")
    parser.add_argument("--dim", type=int, default=128, help="embedding dimensions")
    parser.add_argument("--noise", type=float, default=1.0, help="noise around each animal's centre")
    parser.add_argument("--cluster-faces", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--cluster-threshold", type=float, default=0.35, help="fits the default noise")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the measurements here as JSON")
    return parser.parse_args()


def main() -> int:
    """Run the children when asked to, else the whole benchmark."""
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, folder = sys.argv[2], Path(sys.argv[3])
        if kind == "match":
            result = child_match(folder, sys.argv[4], int(sys.argv[5]))
        else:
            result = child_cluster(folder, int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]))
        print(json.dumps(result))
        return 0
    args = parse_args()
    report, agree = run(args)
    print_table(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
