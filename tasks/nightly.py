"""The Prefect tasks of the nightly flow: thin wrappers over the lake, ingest, catalog and report code."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import asdict, astuple
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from models.ingest_rows import STAGE
from schemas.config import IngestConfig, load_settings
from schemas.home import HomeLayout
from schemas.tables import LAKE_TABLES
from tasks.artifacts import publish_run_artifacts
from tasks.catalog import refresh_views
from tasks.compaction import compact_tables, merge_past_corrections
from tasks.compaction import release_drops as release_compacted_drops
from tasks.devices import choose_device, gpu_slot, retain_freed_memory
from tasks.discover import drop_id_of, list_inbox_drops, settle_remaining, walk_drop
from tasks.execution import resolve_execution
from tasks.home_version import open_home_for_writing
from tasks.ingest import DropResult, drop_fingerprint, ingest_drop_dir
from tasks.lake import read_marker, writer_lock
from tasks.progress import progress_wanted, stage_progress
from tasks.report import write_run_report
from tasks.runs import (
    load_run_settings,
    mark_abandoned_runs,
    new_run_id,
    record_run,
    recorded_runs,
    save_run_config,
    sweep_killed_writes,
)
from tasks.stage_registry import STAGES
from tasks.stages import is_current, run_on_drop


@task(name="resolve-home", cache_policy=NO_CACHE)
def resolve_home(home: str | None, config_file: str | None) -> str:
    """Validate the configuration and return the absolute home folder."""
    settings = load_settings(Path(config_file) if config_file else None, home=home)
    return str(settings.home.resolve())


@contextlib.contextmanager
def home_writer(home: str) -> Iterator[None]:
    """Hold the home's single-writer lock for the whole run, refusing a home of a newer breedwatch and recording this
    code's versions in an older one."""
    layout = HomeLayout(Path(home))
    with writer_lock(layout):
        open_home_for_writing(layout)
        yield


@task(name="start-run", cache_policy=NO_CACHE)
def start_run(home: str, config_file: str | None) -> str:
    """Create the run id, save the resolved config and record the run as running."""
    layout = HomeLayout(Path(home))
    settings = load_settings(Path(config_file) if config_file else None, home=home)
    runs = recorded_runs(layout)
    swept = sweep_killed_writes(layout, runs)
    abandoned = mark_abandoned_runs(layout, runs)
    started = datetime.now(UTC)
    run_id = new_run_id(started)
    execution = resolve_execution(layout, settings)
    save_run_config(layout, run_id, execution.settings)
    record_run(
        layout,
        run_id,
        started,
        "running",
        execution.settings,
        [],
        {},
        execution=dict(zip(execution.plans, execution.lines())),
    )
    logger = get_run_logger()
    logger.info("run %s started; home %s", run_id, home)
    for line in execution.lines():
        logger.info("nets on this machine: %s", line)
    if swept or abandoned:
        logger.info("cleaned %d temp files and marked %d killed runs as failed", swept, len(abandoned))
    return run_id


@task(name="release-drops", cache_policy=NO_CACHE)
def release_drops(home: str, run_id: str, drop_dirs: list[str]) -> int:
    """Take the drops this run will work on out of compacted files, so their stages find and replace their own parts
    (each compacted file is rewritten once for all of them)."""
    layout = HomeLayout(Path(home))
    settings = load_run_settings(layout, run_id)
    ids = [Path(d).name for d in drop_dirs if Path(d).is_dir() and not drop_is_current(layout, Path(d), settings)]
    released = release_compacted_drops(layout, ids, LAKE_TABLES)
    if released:
        get_run_logger().info("took %d drops' parts out of compacted files to work on them", len(ids))
    return released


@task(name="compact-lake", cache_policy=NO_CACHE)
def compact_lake(home: str, run_id: str) -> list[dict[str, Any]]:
    """Compact the tables whose uncompacted parts reached [lake] compact_after_parts (never the running run's key)."""
    layout = HomeLayout(Path(home))
    threshold = load_run_settings(layout, run_id).lake.compact_after_parts
    done = compact_tables(layout, LAKE_TABLES, frozenset({run_id}), threshold) if threshold else []
    for result in done:
        get_run_logger().info("compacted %s: %d parts of %d keys into %d files", *astuple(result))
    days = merge_past_corrections(layout)
    if days:
        get_run_logger().info("merged the corrections of %d past days or months into one part each", days)
    return [asdict(result) for result in done]


@task(name="find-drops", cache_policy=NO_CACHE)
def find_drops(home: str, run_id: str, drops: list[str] | None) -> list[str]:
    """The drops given, or every inbox drop whose content is not already ingested, that have settled (given drops are
    waited for, at most settle_s once; inbox drops still being copied are left to the next run)."""
    layout = HomeLayout(Path(home))
    settings = load_run_settings(layout, run_id)
    if drops:
        return [str(d) for d in settled_drops([Path(drop).resolve() for drop in drops], settings.ingest, wait=True)]
    pending = [d for d in list_inbox_drops(settings.inbox_dir) if not drop_is_current(layout, d, settings)]
    get_run_logger().info("%d new or changed drops in %s", len(pending), settings.inbox_dir)
    return [str(d) for d in settled_drops(pending, settings.ingest, wait=False)]


def settled_drops(candidates: list[Path], config: IngestConfig, wait: bool) -> list[Path]:
    """The candidates that have settled, after waiting once for the slowest when asked; the others are logged and left
    for the next run (nothing is rejected)."""
    logger = get_run_logger()
    remaining = {drop: settle_remaining(drop, config, time.time()) for drop in candidates}
    longest = max(remaining.values(), default=0.0)
    if wait and longest > 0:
        unsettled = ", ".join(drop.name for drop, left in remaining.items() if left > 0)
        logger.info("waiting %.0f s for %s to settle (no file changed for %g s)", longest, unsettled, config.settle_s)
        time.sleep(longest)
        remaining = {drop: settle_remaining(drop, config, time.time()) for drop in candidates}
    for drop, left in remaining.items():
        if left > 0:
            marker = f" or until it carries {config.ready_marker}" if config.ready_marker else ""
            logger.warning(
                "drop %s is still being copied (a file in it changed %.0f s ago): skipped this run; it settles in "
                "%.0f s%s, and the next run takes it",
                drop.name,
                config.settle_s - left,
                left,
                marker,
            )
    return [drop for drop in candidates if remaining[drop] == 0]


def drop_is_current(layout: HomeLayout, drop_dir: Path, settings: Any) -> bool:
    """True when the drop's committed ingest matches its present content."""
    try:
        marker = read_marker(layout, drop_id_of(drop_dir), STAGE)
    except ValueError:
        return False
    if marker is None or marker["fingerprint"] != drop_fingerprint(
        walk_drop(drop_dir, settings.ingest), settings, drop_dir
    ):
        return False
    return all(is_current(stage, layout, drop_dir.name, settings) for stage in STAGES.values())


@task(name="ingest-drop", cache_policy=NO_CACHE)
def ingest_drop(drop_dir: str, home: str, run_id: str) -> dict[str, Any]:
    """Ingest one drop; a bad drop becomes a failed result, never an exception."""
    layout = HomeLayout(Path(home))
    settings = load_run_settings(layout, run_id)
    logger = get_run_logger()
    path = Path(drop_dir)
    if not path.is_dir():
        return DropResult(path.name, "failed", f"drop folder {drop_dir} does not exist").as_dict()
    try:
        drop_id_of(path)
    except ValueError as error:
        return DropResult(path.name, "failed", str(error)).as_dict()
    total = sum(1 for _ in walk_drop(path, settings.ingest).files)
    with stage_progress(f"ingest {path.name}", total, progress_wanted(settings.runtime.progress), logger) as advance:
        result = ingest_drop_dir(path, layout, run_id, settings, advance)
    log = logger.warning if result.status == "failed" else logger.info
    log("drop %s: %s %s %s", result.drop_id, result.status, result.counts, result.message)
    return result.as_dict()


def run_drop_stage(ingested: dict[str, Any], home: str, run_id: str, name: str) -> dict[str, Any]:
    """Run one registered per-drop stage after ingest with a progress bar, holding the GPU slot on CUDA; failed drops
    are passed over."""
    if ingested["status"] == "failed":
        return {"drop_id": ingested["drop_id"], "stage": name, "status": "skipped", "counts": {}}
    stage = STAGES[name]
    layout = HomeLayout(Path(home))
    settings = load_run_settings(layout, run_id)
    drop_id = ingested["drop_id"]
    source = Path(read_marker(layout, drop_id, STAGE)["source"])
    logger = get_run_logger()
    total = stage.work(layout, drop_id, ingested["counts"])
    device = choose_device(getattr(settings, stage.section).device)
    retain_freed_memory(settings.runtime.retain_freed_mb)  # in whichever process (Dask worker) runs the stage
    with (
        gpu_slot(device, settings.runner.gpu_limit),
        stage_progress(
            f"{stage.section} {drop_id}", total, progress_wanted(settings.runtime.progress), logger
        ) as advance,
    ):
        result = run_on_drop(stage, layout, source, drop_id, run_id, settings, advance)
    logger.info("drop %s: %s %s %s %s", drop_id, stage.section, result.status, result.counts, result.message)
    return result.as_dict()


@task(name="find-faces", cache_policy=NO_CACHE)
def find_faces(ingested: dict[str, Any], home: str, run_id: str) -> dict[str, Any]:
    """Detect, crop and gate the faces of one ingested drop."""
    return run_drop_stage(ingested, home, run_id, "faces")


@task(name="predict-gender", cache_policy=NO_CACHE)
def predict_gender(ingested: dict[str, Any], home: str, run_id: str) -> dict[str, Any]:
    """Calibrated P(male) for every usable face of one ingested drop (after its faces stage)."""
    return run_drop_stage(ingested, home, run_id, "gender")


@task(name="identify-faces", cache_policy=NO_CACHE)
def identify_faces(ingested: dict[str, Any], home: str, run_id: str) -> dict[str, Any]:
    """Identity embeddings for every usable face of one ingested drop (after its faces stage)."""
    return run_drop_stage(ingested, home, run_id, "identify")


@task(name="assign-individuals", cache_policy=NO_CACHE)
def assign_individuals(home: str, run_id: str) -> dict[str, Any]:
    """Who each embedded face is, over the whole home: registered matches and provisional individuals."""
    from tasks.individuals import assign_individuals as assign

    layout = HomeLayout(Path(home))
    result = assign(layout, load_run_settings(layout, run_id), run_id)
    get_run_logger().info("individuals: %s", result)
    return result


@task(name="segment-audio", cache_policy=NO_CACHE)
def segment_audio(ingested: dict[str, Any], home: str, run_id: str) -> dict[str, Any]:
    """Find vocal segments and compute MFCC features for one ingested drop."""
    return run_drop_stage(ingested, home, run_id, "segments")


@task(name="predict-mating", cache_policy=NO_CACHE)
def predict_mating(ingested: dict[str, Any], home: str, run_id: str) -> dict[str, Any]:
    """P(success) per frame and window of one ingested drop's segments with the stored CGANet (after segment-audio)."""
    return run_drop_stage(ingested, home, run_id, "mating")


@task(name="refresh-catalog", cache_policy=NO_CACHE)
def refresh_catalog(home: str, run_id: str) -> list[str]:
    """Recreate the catalog's views and decision thresholds (the only task that writes DuckDB)."""
    layout = HomeLayout(Path(home))
    return refresh_views(layout, load_run_settings(layout, run_id).view_thresholds())


@task(name="finish-run", cache_policy=NO_CACHE)
def finish_run(
    home: str,
    run_id: str,
    results: list[dict[str, Any]],
    stages: list[dict[str, Any]] | None = None,
    error: str | None = None,
) -> dict[str, int]:
    """Record the run's final status and totals (drop results from ingest, counts from later stages)."""
    layout = HomeLayout(Path(home))
    settings = load_run_settings(layout, run_id)
    counts = total_counts(results)
    for stage in stages or []:
        for key, value in stage["counts"].items():
            counts[key] = counts.get(key, 0) + int(value)
    started = datetime.strptime(run_id.split("-")[0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    status = "failed" if error else "completed"
    record_run(layout, run_id, started, status, settings, [r["drop_id"] for r in results], counts, error)
    return counts


def total_counts(results: list[dict[str, Any]]) -> dict[str, int]:
    """Add up the per-drop counts and count drops by result."""
    counts: dict[str, int] = {}
    for result in results:
        counts[f"drops_{result['status']}"] = counts.get(f"drops_{result['status']}", 0) + 1
        for key, value in result["counts"].items():
            counts[key] = counts.get(key, 0) + int(value)
    return counts


@task(name="write-report", cache_policy=NO_CACHE)
def write_report(home: str, run_id: str, results: list[dict[str, Any]], counts: dict[str, int] | None = None) -> str:
    """Render the run's HTML report and CSVs, publish its Prefect artifacts and return the HTML's path."""
    layout = HomeLayout(Path(home))
    path = write_run_report(layout, run_id, results, load_run_settings(layout, run_id).review.base_url)
    publish_run_artifacts(run_id, results, counts or {}, path)
    return str(path)
