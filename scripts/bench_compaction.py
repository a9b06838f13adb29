"""Benchmark compaction on a generated lake of N drops: catalog refresh and queries before and after, same results.

The lake is built from one drop's parts copied under N new drop ids (the drop_id column rewritten): the parts of a
home's drop given with --source-home (for example ./data after `make demo`), or of a 4-animal sample drop run through
the nightly flow into a temporary home (no trained models: media, faces, segments and features, no predictions).

    .venv/bin/python scripts/bench_compaction.py --drops 200 [--source-home data] [--json out.json]

Exits 1 when a view's rows differ after compaction (count and an order-free hash of every row per view)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from schemas.config import load_settings  # noqa: E402
from schemas.home import HomeLayout  # noqa: E402
from schemas.tables import LAKE_TABLES  # noqa: E402
from tasks.catalog import DERIVED_VIEWS, query, refresh_views  # noqa: E402
from tasks.compaction import compact_tables, own_part_count  # noqa: E402

TIMED_QUERIES = {
    "animals": "SELECT count(*) FROM animals",
    "encounters": "SELECT count(*) FROM encounters",
    "media": "SELECT kind, status, count(*) FROM media GROUP BY ALL",
}


def source_home(given: Path | None, scratch: Path) -> tuple[HomeLayout, str]:
    """The home whose first drop is copied, and that drop's id (a sample drop run once when none is given)."""
    if given is None:
        os.environ.setdefault("BREEDWATCH_INGEST__SETTLE_S", "0")
        from flows.nightly import nightly
        from tasks.sample_drop import write_sample_drop

        drop = scratch / "inbox" / "sample"
        write_sample_drop(drop, seed=0, n_animals=4)
        nightly(drops=[str(drop)], home=str(scratch / "source"))
        given = scratch / "source"
    home = HomeLayout(given)
    drop_ids = sorted(p.name.split("=", 1)[1] for p in (home.lake / "media").glob("drop=*"))
    if not drop_ids:
        raise SystemExit(f"no drop parts under {home.lake / 'media'}")
    return home, drop_ids[0]


def build_lake(source: HomeLayout, drop_id: str, target: HomeLayout, drops: int) -> int:
    """Write the source drop's parts under `drops` new drop ids into the target lake; return the parts written."""
    written = 0
    for spec in LAKE_TABLES:
        if spec.partition != "drop":
            continue
        for part in sorted((source.table_dir(spec.name) / f"drop={drop_id}").glob("part-*.parquet")):
            table = pq.read_table(part)
            column = table.schema.get_field_index("drop_id")
            for index in range(drops):
                new_id = f"bench-{index:05d}"
                copy = table.set_column(column, "drop_id", pa.array([new_id] * table.num_rows, pa.string()))
                path = target.part(spec.name, spec.partition, new_id, part.stem.removeprefix("part-"))
                path.parent.mkdir(parents=True, exist_ok=True)
                pq.write_table(copy, path, compression="zstd")
                written += 1
    return written


def peak_rss_mib() -> int:
    """This process's peak resident memory so far, in MiB (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def timed(action: Any, repeat: int = 1) -> float:
    """The best wall time in seconds of repeat calls."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - started)
    return best


def row_hash_sql(home: HomeLayout, name: str) -> str:
    """An order-free hash of a view's rows with floating-point columns rounded to 9 decimals: the views sum floats over
    many parts, and DuckDB's parallel scans add them in a different order each time (the last bits differ between two
    identical reads of a 500-drop lake, compacted or not)."""
    columns = query(home, f"DESCRIBE {name}").to_pylist()
    values = [
        f'round("{c["column_name"]}", 9)' if c["column_type"] in ("DOUBLE", "FLOAT") else f'"{c["column_name"]}"'
        for c in columns
    ]
    return f"SELECT count(*) AS n, sum(hash({', '.join(values)})) AS h FROM {name}"


def fingerprints(home: HomeLayout) -> dict[str, list[Any]]:
    """Per view: row count and an order-free hash of all its rows (floats rounded, see row_hash_sql)."""
    names = [spec.name for spec in LAKE_TABLES] + list(DERIVED_VIEWS)
    return {name: list(query(home, row_hash_sql(home, name)).to_pylist()[0].values()) for name in names}


def measure(home: HomeLayout, thresholds: dict[str, float], repeat: int) -> dict[str, float]:
    """Catalog refresh and the timed queries, in seconds."""
    figures = {"refresh_s": timed(lambda: refresh_views(home, thresholds))}
    for name, sql in TIMED_QUERIES.items():
        figures[f"{name}_s"] = timed(lambda sql=sql: query(home, sql), repeat)
    return figures


def cpu_name() -> str:
    """The CPU's model name and usable cores."""
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or "unknown CPU"
    return f"{model}, {len(os.sched_getaffinity(0))} usable cores"


def main() -> int:
    """Build the lake, measure, compact, measure again, compare."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drops", type=int, default=200)
    parser.add_argument("--source-home", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-compaction-") as folder:
        scratch = Path(folder)
        source, drop_id = source_home(args.source_home, scratch)
        home = HomeLayout(scratch / "lake-home")
        thresholds = load_settings(None, home=home.root).view_thresholds()
        peaks: dict[str, int] = {}
        parts = timed(lambda: build_lake(source, drop_id, home, args.drops))
        peaks["build"] = peak_rss_mib()
        files_before = sum(own_part_count(home, spec) for spec in LAKE_TABLES)
        before = measure(home, thresholds, args.repeat)
        peaks["measure_before"] = peak_rss_mib()
        expected = fingerprints(home)
        peaks["fingerprints_before"] = peak_rss_mib()
        compact_s = timed(lambda: compact_tables(home, LAKE_TABLES))
        peaks["compact"] = peak_rss_mib()
        after = measure(home, thresholds, args.repeat)
        peaks["measure_after"] = peak_rss_mib()
        found = fingerprints(home)
        peaks["fingerprints_after"] = peak_rss_mib()
        differing = sorted(name for name in expected if found.get(name) != expected[name])
        files_after = len(list(home.lake.glob("*/compacted=*/part-compacted.parquet")))
    report = {
        "cpu": cpu_name(),
        "drops": args.drops,
        "source_drop": drop_id,
        "build_s": round(parts, 2),
        "parts_before": files_before,
        "compacted_files_after": files_after,
        "compact_s": round(compact_s, 2),
        "before": {key: round(value, 3) for key, value in before.items()},
        "after": {key: round(value, 3) for key, value in after.items()},
        "peak_rss_mib_after_each_phase": peaks,
        "identical_results": not differing,
        "differing_views": differing,
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0 if not differing else 1


if __name__ == "__main__":
    raise SystemExit(main())
