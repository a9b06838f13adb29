"""Benchmark the review app's server time to the next item with a large catalog (issue 24: under 100 ms at 100,000
faces).

A home is generated with N camera-trap faces and their gender predictions written straight into the lake (no nets
run), over drops of --per-drop faces each, a tenth of them of registered animals and one frame in twenty with no
face; then the catalog is refreshed and the app's own endpoints are timed through FastAPI's TestClient in this
process: POST /api/next (the next item) and POST /api/review (save a decision and answer with the next item), before
and after compaction.

    .venv/bin/python scripts/bench_review.py --faces 100000 [--per-drop 1000] [--calls 30] [--json out.json]

With --correction-days N it instead times the next item with N past days of keepers' corrections (ten a day, each
saved as its own part as the app saves it): as saved, merged into one part a day, and merged into one part a month
(tasks.compaction.merge_past_corrections), to show what a year of reviews costs the app.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from fastapi.testclient import TestClient  # noqa: E402

from flows.review.app import ReviewServer, create_app  # noqa: E402
from schemas.config import Settings  # noqa: E402
from schemas.home import HomeLayout  # noqa: E402
from schemas.tables import (  # noqa: E402
    ANIMALS_MANIFEST,
    CORRECTIONS,
    DROPS,
    FACES,
    GENDER_PREDICTIONS,
    LAKE_TABLES,
    MEDIA,
)
from tasks.catalog import refresh_views  # noqa: E402
from tasks.compaction import DAY_PART, compact_tables, merge_correction_folders, merge_past_corrections  # noqa: E402
from tasks.lake import write_rows  # noqa: E402
from tasks.review import save_correction  # noqa: E402

CAMERAS = 8
EMPTY_EVERY = 20  # one frame in twenty has no face
REGISTERED_EVERY = 10  # one face in ten is of a registered animal (10 faces per animal)


def drop_rows(drop: int, per_drop: int) -> dict[str, list[dict[str, Any]]]:
    """The media, faces and gender_predictions rows of one generated drop, and its registered animals."""
    drop_id = f"drop-{drop:05d}"
    media, faces, predictions, animals = [], [], [], []
    for index in range(per_drop):
        media_id = f"{drop_id}-m{index:05d}"
        path = f"images/cam{index % CAMERAS:02d}/IMG_{index:05d}.JPG"
        media.append({"media_id": media_id, "drop_id": drop_id, "path": path, "kind": "image", "status": "ok"})
        if index % EMPTY_EVERY == EMPTY_EVERY - 1:
            continue
        animal = f"A{drop:05d}-{index // (REGISTERED_EVERY * 10)}" if index % REGISTERED_EVERY == 0 else None
        face_id = f"{media_id}-f0"
        p_male = ((index * 7919 + drop * 104729) % 1000) / 1000
        box = {"bbox_x": 0.2, "bbox_y": 0.2, "bbox_w": 0.3, "bbox_h": 0.3}
        faces.append(
            {
                "face_id": face_id,
                "media_id": media_id,
                "drop_id": drop_id,
                "animal_id": animal,
                "source": "detector",
                **box,
                "score": 0.99,
                "excluded": False,
                "crop_path": f"lake/crops/drop={drop_id}/{face_id}.jpg",
                "detector": "mtcnn-panda@v1",
                "run_id": "bench",
            }
        )
        predictions.append(
            {
                "face_id": face_id,
                "media_id": media_id,
                "drop_id": drop_id,
                "animal_id": animal,
                "p_male": p_male,
                "label": "male" if p_male >= 0.5 else "female",
                "model_version": "panda-gender@v1",
                "run_id": "bench",
            }
        )
        if animal and not any(a["animal_id"] == animal for a in animals):
            animals.append({"drop_id": drop_id, "animal_id": animal, "sex": "female" if drop % 2 else None})
    return {"media": media, "faces": faces, "predictions": predictions, "animals": animals}


def build_home(root: Path, faces: int, per_drop: int) -> tuple[HomeLayout, int]:
    """A home holding about `faces` faces over drops of per_drop frames; the number of faces written."""
    home = HomeLayout(root)
    written = 0
    drop = 0
    while written < faces:
        rows = drop_rows(drop, per_drop)
        drop_id = rows["media"][0]["drop_id"]
        write_rows(home, MEDIA, drop_id, "ingest", rows["media"])
        write_rows(home, DROPS, drop_id, "ingest", [{"drop_id": drop_id, "timezone": "UTC", "site": "Bench"}])
        write_rows(home, ANIMALS_MANIFEST, drop_id, "ingest", rows["animals"])
        write_rows(home, FACES, drop_id, "faces", rows["faces"])
        write_rows(home, GENDER_PREDICTIONS, drop_id, "gender", rows["predictions"])
        written += len(rows["faces"])
        drop += 1
    return home, written


def timed(call: Any, repeats: int) -> dict[str, float]:
    """Median, 95th percentile and worst wall time of repeated calls, in milliseconds (one warm-up call first)."""
    call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(1000 * (time.perf_counter() - started))
    times.sort()
    return {
        "median_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[max(0, round(0.95 * len(times)) - 1)], 1),
        "max_ms": round(times[-1], 1),
    }


def measure(home: HomeLayout, calls: int) -> dict[str, Any]:
    """Server time of the next item and of a decision with the next item, through the app's endpoints."""
    client = TestClient(create_app(ReviewServer(home, None, "bench", 0.05, True)), base_url="http://127.0.0.1:8765")
    page = client.get("/")
    token = page.text.split('name="csrf-token" content="')[1].split('"')[0]
    headers = {"X-CSRF-Token": token}

    def next_item() -> dict[str, Any]:
        answer = client.post("/api/next", json={}, headers=headers)
        answer.raise_for_status()
        return answer.json()["item"]

    remaining = next_item()["remaining"]

    def decide() -> None:
        item = next_item()
        action = "c" if item["kind"] != "frame" else "e"
        if not any(a["key"] == action for a in item["actions"]):
            action = item["actions"][0]["key"]
        client.post("/api/review", json={"key": item["key"], "action": action}, headers=headers).raise_for_status()

    reviewed_before = time.perf_counter()
    decision = timed(decide, calls)
    shown = timed(next_item, calls)
    return {
        "open_items": remaining,
        "next_item": shown,
        "next_item_and_decision": decision,
        "decision_alone_ms": round(decision["median_ms"] - shown["median_ms"], 1),
        "seconds": round(time.perf_counter() - reviewed_before, 1),
    }


CORRECTIONS_A_DAY = 10


def save_past_corrections(home: HomeLayout, days: int, today: datetime) -> int:
    """Ten corrections on each of the given number of days before today, each its own part; how many were saved."""
    saved = 0
    for back in range(days, 0, -1):
        day = today - timedelta(days=back)
        for index in range(CORRECTIONS_A_DAY):
            row = {
                "correction_id": f"{day:%Y%m%d}-{index}",
                "action": "set",
                "target_kind": "animal",
                "target_id": f"A{index:05d}",
                "drop_id": "",
                "field": "sex",
                "human_value": "male" if index % 2 else "female",
                "reviewer": "bench",
                "created_at": day.replace(hour=10, minute=index),
            }
            save_correction(home, row)
            saved += 1
    return saved


def measure_correction_days(home: HomeLayout, days: int, calls: int) -> dict[str, Any]:
    """The next item's server time with `days` past days of corrections: as saved, one part a day, one a month."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    saved = save_past_corrections(home, days, today)
    folder = home.table_dir(CORRECTIONS.name)
    result: dict[str, Any] = {"corrections": saved, "days": days}
    result["as_saved"] = {"parts": len(list(folder.glob("day=*/part-*.parquet"))), **measure(home, calls)}
    for day in sorted(folder.glob("day=*")):
        merge_correction_folders(home, [day], day.name.split("=", 1)[1], DAY_PART)
    result["a_part_a_day"] = {"parts": len(list(folder.glob("day=*/part-*.parquet"))), **measure(home, calls)}
    merge_past_corrections(home, f"{today:%Y-%m-%d}")
    result["a_part_a_month"] = {"parts": len(list(folder.glob("day=*/part-*.parquet"))), **measure(home, calls)}
    return result


def main() -> None:
    """Build the home, time the endpoints before and after compaction, print and optionally save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--per-drop", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--correction-days", type=int, default=0)
    args = parser.parse_args()
    if args.correction_days:
        with tempfile.TemporaryDirectory(prefix="bench-review-") as scratch:
            home, written = build_home(Path(scratch) / "home", args.faces, args.per_drop)
            refresh_views(home, Settings().view_thresholds())
            days = measure_correction_days(home, args.correction_days, args.calls)
        print(json.dumps({"faces": written, **days}, indent=2))
        if args.json:
            args.json.write_text(json.dumps({"faces": written, **days}, indent=2) + "\n")
        return
    with tempfile.TemporaryDirectory(prefix="bench-review-") as scratch:
        started = time.perf_counter()
        home, written = build_home(Path(scratch) / "home", args.faces, args.per_drop)
        refresh_views(home, Settings().view_thresholds())
        built = time.perf_counter() - started
        before = measure(home, args.calls)
        compact_tables(home, LAKE_TABLES)
        refresh_views(home, Settings().view_thresholds())
        after = measure(home, args.calls)
    result = {
        "faces": written,
        "drops": -(-written // args.per_drop),
        "build_seconds": round(built, 1),
        "parts": "one per drop and table before compaction",
        "before_compaction": before,
        "after_compaction": after,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
