"""Benchmark compaction on a generated lake of N drops: catalog refresh and queries before and after, same results.

The lake is built from one drop's parts copied under N new drop ids (the drop_id column rewritten): the parts of a
home's drop given with --source-home (for example ./data after `make demo`), or of a 4-animal sample drop run through
the nightly flow into a temporary home (no trained models: media, faces, segments and features, no predictions).

    .venv/bin/python scripts/bench_compaction.py --drops 200 [--source-home data] [--json out.json]

Exits 1 when a view's rows differ after compaction (count and an order-free hash of every row per view).

A lake as a station grows it (issue 23's 10,000-drop target; the lake above is never compacted before it is measured,
and 10,000 uncompacted drops need 21 GB to refresh): three steps on a lake folder that is kept between them,

    bench_compaction.py --mode grow --drops 10000 --months 30 --source-home H --lake DIR   # build (untimed)
    bench_compaction.py --mode measure --lake DIR                                          # times, peak RSS
    bench_compaction.py --mode check --lake DIR                                            # same rows?

grow writes the drops in time order, spread evenly over --months months from 2024-01-01, each drop's parts dated
(mtime) at its night, which is the month compaction files them under (tasks/compaction.month_of), and after each
night compacts exactly as the nightly run does (compact_tables at [lake] compact_after_parts), so uncompacted parts
never pile up. identity_matches (one part for the home) holds the source drop's matches once per drop. measure runs
each phase in a fresh process (the refresh first, so it is cold) and reports its time and peak RSS. check compares
every lake table, view and summary table of the catalog with the same SQL over an in-memory reference: the source
drop's rows repeated under the N drop ids, computed without any Parquet part or compaction; a view empty in both is
reported unchecked, never equal, and an empty timed view fails the check."""

from __future__ import annotations

import argparse
import calendar
import json
import os
import platform
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

import duckdb  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from schemas.config import load_settings  # noqa: E402
from schemas.home import HomeLayout  # noqa: E402
from schemas.tables import IDENTITY_MATCHES, LAKE_TABLES, TableSpec  # noqa: E402
from tasks.catalog import DERIVED_VIEWS, MACHINE_TABLES, connect_with_retry, query, refresh_views, write_thresholds  # noqa: E402
from tasks.compaction import compact_tables, own_part_count  # noqa: E402
from tasks.lake import read_table  # noqa: E402

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


def row_hash_sql(con: duckdb.DuckDBPyConnection, name: str) -> str:
    """An order-free hash of a view's rows with floating-point columns rounded to 9 decimals: the views sum floats over
    many parts, and DuckDB's parallel scans add them in a different order each time (the last bits differ between two
    identical reads of a 500-drop lake, compacted or not). Its columns are read from the relation, not by SQL."""
    relation = con.table(name)
    values = [
        f'round("{column}", 9)' if str(kind) in ("DOUBLE", "FLOAT") else f'"{column}"'
        for column, kind in zip(relation.columns, relation.types, strict=True)
    ]
    return f'SELECT count(*) AS n, sum(hash({", ".join(values)})) AS h FROM "{name}"'


def fingerprints(home: HomeLayout) -> dict[str, list[Any]]:
    """Per view: row count and an order-free hash of all its rows (floats rounded, see row_hash_sql)."""
    names = [spec.name for spec in LAKE_TABLES] + list(DERIVED_VIEWS)
    with connect_with_retry(home.catalog, read_only=True) as con:
        return {name: list(con.execute(row_hash_sql(con, name)).fetchone()) for name in names}


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


GROW_START = datetime(2024, 1, 1, 20, tzinfo=UTC)  # the first night's run; every drop's parts are dated at its night
SUMMARY_TABLES = ("gender_ratio", "mating_success", "audit_accuracy", "review_items")
MUST_HAVE_ROWS = ("media", "faces", "face_calls", "animals", "encounters", "gender_predictions")


def drop_part_tables(source: HomeLayout, drop_id: str) -> list[tuple[TableSpec, str, pa.Table]]:
    """Every part of the source drop, read once: (table, part name, rows)."""
    found = []
    for spec in LAKE_TABLES:
        if spec.partition == "drop":
            for part in sorted((source.table_dir(spec.name) / f"drop={drop_id}").glob("part-*.parquet")):
                found.append((spec, part.stem.removeprefix("part-"), pq.read_table(part)))
    return found


def bench_drop_id(index: int) -> str:
    """The id of the benchmark's index-th drop."""
    return f"bench-{index:05d}"


def write_drop(target: HomeLayout, parts: list[tuple[TableSpec, str, pa.Table]], new_id: str, night: float) -> None:
    """Write the source drop's parts under a new drop id, dated (mtime) at the night that ingested it."""
    for spec, name, table in parts:
        column = table.schema.get_field_index("drop_id")
        copy = table.set_column(column, "drop_id", pa.array([new_id] * table.num_rows, pa.string()))
        path = target.part(spec.name, spec.partition, new_id, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(copy, path, compression="zstd")
        os.utime(path, (night, night))


def add_months(start: datetime, months: int) -> datetime:
    """The same day and time `months` calendar months later (the day clipped to the month's length)."""
    year, month = divmod(start.month - 1 + months, 12)
    day = min(start.day, calendar.monthrange(start.year + year, month + 1)[1])
    return start.replace(year=start.year + year, month=month + 1, day=day)


def drop_nights(drops: int, months: int) -> list[datetime]:
    """The night each drop is ingested: evenly over `months` months from GROW_START, several drops a night."""
    days = (add_months(GROW_START, months) - GROW_START).days
    return [GROW_START + timedelta(days=index * days // drops) for index in range(drops)]


def replicated(rows: pa.Table, drop_id: str, drops: int) -> pa.Table:
    """The source drop's rows of a home-wide table once per benchmark drop, under each drop's id."""
    mine = rows.filter(pc.equal(rows.column("drop_id"), drop_id))
    column = mine.schema.get_field_index("drop_id")
    copies = [
        mine.set_column(column, "drop_id", pa.array([bench_drop_id(i)] * mine.num_rows, pa.string()))
        for i in range(drops)
    ]
    return pa.concat_tables(copies) if copies else mine


def write_home_tables(source: HomeLayout, drop_id: str, target: HomeLayout, drops: int) -> None:
    """identity_matches (one part for the home, the source drop's rows once per drop) and the keepers' corrections
    as they are (partitioned by day: nothing to repeat)."""
    for part in sorted(source.table_dir(IDENTITY_MATCHES.name).glob("scope=*/part-*.parquet")):
        path = target.table_dir(IDENTITY_MATCHES.name) / part.parent.name / part.name
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(replicated(pq.read_table(part), drop_id, drops), path, compression="zstd")
    for part in sorted(source.table_dir("corrections").glob("day=*/part-*.parquet")):
        path = target.table_dir("corrections") / part.parent.name / part.name
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pq.read_table(part), path, compression="zstd")


def grow_lake(source: HomeLayout, drop_id: str, target: HomeLayout, drops: int, months: int) -> dict[str, Any]:
    """Ingest the drops night by night and compact after each night as the nightly run does (compact_lake)."""
    threshold = load_settings(None, home=target.root).lake.compact_after_parts
    parts = drop_part_tables(source, drop_id)
    per_drop: dict[str, int] = {}
    for spec, _, _ in parts:
        per_drop[spec.name] = per_drop.get(spec.name, 0) + 1
    pending = dict.fromkeys(per_drop, 0)
    nights = drop_nights(drops, months)
    compactions: list[dict[str, Any]] = []
    write_s = compact_s = 0.0
    for index, night in enumerate(nights):
        started = time.perf_counter()
        write_drop(target, parts, bench_drop_id(index), night.timestamp())
        write_s += time.perf_counter() - started
        pending = {name: count + per_drop[name] for name, count in pending.items()}
        last_of_night = index + 1 == drops or nights[index + 1] != night
        if last_of_night and threshold and max(pending.values()) >= threshold:
            started = time.perf_counter()
            done = compact_tables(target, LAKE_TABLES, frozenset(), threshold)
            compact_s += time.perf_counter() - started
            compactions.append({"after_drops": index + 1, "night": night.date().isoformat(), "tables": len(done)})
            pending = {spec.name: own_part_count(target, spec) for spec in LAKE_TABLES if spec.name in per_drop}
    write_home_tables(source, drop_id, target, drops)
    return {
        "drops": drops,
        "months": months,
        "first_night": nights[0].date().isoformat(),
        "last_night": nights[-1].date().isoformat(),
        "parts_per_drop": sum(per_drop.values()),
        "compact_after_parts": threshold,
        "compactions": compactions,
        "write_s": round(write_s, 1),
        "compact_s": round(compact_s, 1),
        "own_parts_left": {spec.name: own_part_count(target, spec) for spec in LAKE_TABLES},
        "compacted_files": len(list(target.lake.glob("*/compacted=*/part-compacted.parquet"))),
    }


def lake_bytes(home: HomeLayout) -> int:
    """Bytes of every file under the lake."""
    return sum(path.stat().st_size for path in home.lake.rglob("*") if path.is_file())


def drop_page_cache() -> bool:
    """Ask the kernel to drop clean cached pages so the next read is cold; False where that is not allowed."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def phase_refresh(root: str, as_in_a_run: bool = False) -> tuple[float, int]:
    """A fresh process's catalog refresh: its time and the process's peak RSS. `as_in_a_run`: the nightly flow's
    modules are imported first (untimed), as they are when a run's refresh-catalog task runs (scipy.stats among
    them, which the refresh otherwise imports itself)."""
    if as_in_a_run:
        import flows.nightly  # noqa: F401
    home = HomeLayout(Path(root))
    thresholds = load_settings(None, home=home.root).view_thresholds()
    return timed(lambda: refresh_views(home, thresholds)), peak_rss_mib()


def phase_query(root: str, sql: str, repeat: int) -> tuple[list[float], int]:
    """A fresh process's query times (the first one cold) and its peak RSS."""
    home = HomeLayout(Path(root))
    return [timed(lambda: query(home, sql)) for _ in range(repeat)], peak_rss_mib()


def phase_views(root: str) -> tuple[dict[str, float], int]:
    """Seconds to count the rows of every lake table and derived view (each in turn, in one process)."""
    home = HomeLayout(Path(root))
    names = [spec.name for spec in LAKE_TABLES] + list(DERIVED_VIEWS)
    return {name: round(timed(lambda name=name: count_rows(home, name)), 3) for name in names}, peak_rss_mib()


def count_rows(home: HomeLayout, name: str) -> int:
    """The rows of one catalog relation, on a new read-only connection (as a query from outside opens one)."""
    with connect_with_retry(home.catalog, read_only=True) as con:
        return int(con.table(name).aggregate("count(*)").fetchall()[0][0])


def in_fresh_process(action: Any, *args: Any) -> Any:
    """Run a phase in a new Python process (spawned: nothing inherited) and return its answer."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(action, *args).result()


def measure_grown(lake: Path, repeat: int) -> dict[str, Any]:
    """Cold refresh (alone, then after importing the nightly flow's modules as a run has), then each timed query and
    every view's row count, each phase in a fresh process."""
    home = HomeLayout(lake / "home")
    cold = drop_page_cache()
    refresh_s, refresh_rss = in_fresh_process(phase_refresh, str(home.root))
    drop_page_cache()
    in_run_s, in_run_rss = in_fresh_process(phase_refresh, str(home.root), True)
    figures: dict[str, Any] = {
        "page_cache_dropped": cold,
        "refresh_s": round(refresh_s, 3),
        "refresh_in_run_s": round(in_run_s, 3),
    }
    peaks = {"refresh": refresh_rss, "refresh_in_run": in_run_rss}
    for name, sql in TIMED_QUERIES.items():
        times, peaks[name] = in_fresh_process(phase_query, str(home.root), sql, repeat)
        figures[f"{name}_first_s"], figures[f"{name}_s"] = round(times[0], 3), round(min(times), 3)
    figures["count_s_per_view"], peaks["count_every_view"] = in_fresh_process(phase_views, str(home.root))
    figures["peak_rss_mib_per_phase"] = peaks
    return figures


def reference_connection(source: HomeLayout, drop_id: str, drops: int, target: HomeLayout) -> duckdb.DuckDBPyConnection:
    """An in-memory catalog of the lake grow_lake builds, computed without Parquet parts or compaction: each lake table
    a view repeating the source drop's rows under the N drop ids (corrections as they are, runs empty), the derived
    views and summary tables by the catalog's own SQL."""
    from tasks.summary_tables import write_summary_tables

    con = duckdb.connect()
    write_thresholds(con, load_settings(None, home=target.root).view_thresholds())
    con.execute("CREATE TABLE damaged_parts AS SELECT 1 AS none WHERE false")
    con.register("copy_ids", pa.table({"copy_id": [f"bench-{i:05d}" for i in range(drops)]}))
    for spec in LAKE_TABLES:
        rows = read_table(source, spec)
        if spec.name == "runs":
            rows = rows.schema.empty_table()
        if spec.partition == "drop" or spec.name == IDENTITY_MATCHES.name:  # the drop's rows under every copy id
            con.register(f"source_{spec.name}", rows.filter(pc.equal(rows["drop_id"], drop_id)))
            columns = ", ".join("copy_id AS drop_id" if c == "drop_id" else f'"{c}"' for c in rows.column_names)
            con.table(f"source_{spec.name}").cross(con.table("copy_ids")).project(columns).create_view(spec.name)
        else:
            con.register(spec.name, rows)
    for sql in [*MACHINE_TABLES.values(), *DERIVED_VIEWS.values()]:
        con.execute(sql)
    write_summary_tables(con, target)
    return con


def compared_names() -> list[str]:
    """Every lake table, derived view and summary table the check compares."""
    return [spec.name for spec in LAKE_TABLES] + list(DERIVED_VIEWS) + list(SUMMARY_TABLES)


def check_grown(lake: Path) -> dict[str, Any]:
    """Every relation of the grown lake's catalog against the in-memory reference: count and order-free hash."""
    built = json.loads((lake / "build.json").read_text())
    source, drop_id = HomeLayout(Path(built["source_home"])), built["source_drop"]
    home = HomeLayout(lake / "home")
    found: dict[str, list[Any]] = {}
    with connect_with_retry(home.catalog, read_only=True) as con:
        for name in compared_names():
            found[name] = list(con.execute(row_hash_sql(con, name)).fetchone())
    reference = reference_connection(source, drop_id, built["drops"], home)
    expected = {name: list(reference.execute(row_hash_sql(reference, name)).fetchone()) for name in compared_names()}
    empty = sorted(name for name in expected if expected[name][0] == 0 and found[name][0] == 0)
    differing = sorted(name for name in expected if found[name] != expected[name])
    empty_required = sorted(set(empty) & set(MUST_HAVE_ROWS))
    return {
        "rows": {name: found[name][0] for name in compared_names()},
        "identical": sorted(set(expected) - set(differing) - set(empty)),
        "differing": differing,
        "empty_unchecked": empty,
        "passed": not differing and not empty_required,
        "failed_because_empty": empty_required,
        "fingerprints": {name: [str(value) for value in found[name]] for name in compared_names()},
    }


def grow_main(args: argparse.Namespace) -> int:
    """--mode grow: build the lake under args.lake and write build.json beside it."""
    source, drop_id = source_home(args.source_home, args.lake / "scratch")
    drop_id = args.source_drop or drop_id
    home = HomeLayout(args.lake / "home")
    if home.root.exists():
        raise SystemExit(f"{home.root} exists: grow builds a new lake (delete it first)")
    started = time.perf_counter()
    report = grow_lake(source, drop_id, home, args.drops, args.months)
    report.update(
        cpu=cpu_name(),
        source_home=str(source.root.resolve()),
        source_drop=drop_id,
        build_s=round(time.perf_counter() - started, 1),
        peak_rss_mib=peak_rss_mib(),
        lake_mib=lake_bytes(home) >> 20,
    )
    (args.lake / "build.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


def compact_main(args: argparse.Namespace) -> int:
    """--mode compact: compact every table of the grown lake whatever its part count, as `breedwatch compact` does."""
    home = HomeLayout(args.lake / "home")
    started = time.perf_counter()
    done = compact_tables(home, LAKE_TABLES)
    built = json.loads((args.lake / "build.json").read_text())
    built.update(
        compacted_whole_s=round(time.perf_counter() - started, 1),
        own_parts_left={spec.name: own_part_count(home, spec) for spec in LAKE_TABLES},
        compacted_files=len(list(home.lake.glob("*/compacted=*/part-compacted.parquet"))),
        lake_mib=lake_bytes(home) >> 20,
    )
    (args.lake / "build.json").write_text(json.dumps(built, indent=2))
    print(json.dumps({"tables": len(done), **built}, indent=2))
    return 0


def measured_main(args: argparse.Namespace) -> int:
    """--mode measure and --mode check: figures or the comparison, printed and written to --json when given."""
    report: dict[str, Any] = {"cpu": cpu_name(), "lake": str(args.lake)}
    report.update(json.loads((args.lake / "build.json").read_text()))
    if args.mode == "measure":
        report["measured"] = measure_grown(args.lake, args.repeat)
    else:
        report["check"] = check_grown(args.lake)
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0 if args.mode == "measure" or report["check"]["passed"] else 1


def main() -> int:
    """Build the lake, measure, compact, measure again, compare."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drops", type=int, default=200)
    parser.add_argument("--source-home", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--mode", choices=["compare", "grow", "compact", "measure", "check"], default="compare")
    parser.add_argument("--lake", type=Path, help="grow, measure, check: the folder holding the grown lake")
    parser.add_argument("--months", type=int, default=30, help="grow: months the drops are spread over")
    parser.add_argument("--source-drop", help="grow: the source home's drop to copy (default: its first)")
    args = parser.parse_args()
    if args.mode != "compare":
        if args.lake is None:
            parser.error(f"--mode {args.mode} needs --lake")
        modes = {"grow": grow_main, "compact": compact_main}
        return modes.get(args.mode, measured_main)(args)
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
