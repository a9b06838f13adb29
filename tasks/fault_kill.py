"""kill -9 fault injection: runs of the nightly flow (and a review correction's save) killed at random and at chosen
points, each followed by a run to completion whose tables must equal those of one uninterrupted run.

The kill points are timed from what a run leaves in its home (its runs record, each stage's commit marker, the
catalog file, the report), never from hooks in the code: a random point is a delay after the run's start record,
drawn across the reference run's length; a chosen point is the moment an event appears (the catalog file: inside the
catalog refresh). A correction's save is killed the moment its temp file appears. scripts/fault_kill.py runs it."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from schemas.home import CATALOG_FILE, HomeLayout
from schemas.tables import CORRECTIONS, LAKE_TABLES, RUNS, TableSpec
from tasks.lake import TEMP_PREFIX, read_table
from tasks.review import save_correction
from tasks.runs import recorded_runs

ROOT = Path(__file__).resolve().parents[1]
POLL_S = 0.005
RUN_STARTED = "run started"
CATALOG_REFRESH = "catalog refresh"
REPORT_WRITTEN = "report written"
CORRECTION_SAVE = "correction save"
ENDED_FIRST = "run ended first"
# Columns that differ between two runs of the same inputs by design, left out of every comparison: the id of the run
# that wrote a row, and the runs table and view as a whole (a killed run adds its own row, marked failed; its start
# and end times, code version and counts are those of that run).
VOLATILE_COLUMNS = ("run_id",)
VOLATILE_RELATIONS = ("runs",)
# Catalog relations compare floats to 9 decimals: views sum over many parts, and DuckDB's parallel scans add them in a
# varying order (scripts/bench_compaction.py saw the last bits differ between two reads of one lake). Lake tables
# compare exactly.
VIEW_DIGITS = 9
CORRECTED_AT = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
SAVER = (
    "import sys; from pathlib import Path; from tasks.fault_kill import save_missing_corrections; "
    "save_missing_corrections(Path(sys.argv[1]), [Path(d) for d in sys.argv[2:]], echo=True)"
)


@dataclass(frozen=True)
class FaultInputs:
    """What every home of the harness starts from: the generated drops (kept untouched), the config file and a
    models folder holding the random-weight nets."""

    drops: tuple[Path, ...]
    config: Path
    models: Path


@dataclass(frozen=True)
class Snapshot:
    """A home's data after a completed run: every lake table's and catalog relation's rows as sorted JSON lines
    (volatile columns left out)."""

    lake: dict[str, list[str]]
    catalog: dict[str, list[str]]


@dataclass(frozen=True)
class Reference:
    """The uninterrupted run: its snapshot, when each event appeared (seconds after the run's start record) and how
    long the run lasted after it."""

    snapshot: Snapshot
    events: dict[str, float]
    duration_s: float


@dataclass(frozen=True)
class KillPoint:
    """Where to kill: `delay_s` seconds after `event` appears in the home (CORRECTION_SAVE: a correction's save)."""

    name: str
    event: str
    delay_s: float = 0.0


@dataclass(frozen=True)
class Outcome:
    """What one kill did: where it landed (the last event seen before it), the problems found in the killed home and
    after the next run (none: identical tables, no duplicates, nothing left behind)."""

    point: KillPoint
    landed: str
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the next run ended with the reference's tables and nothing else was wrong."""
        return not self.problems


def trim_drop(drop: Path, frames: int, keeper_photos: int) -> None:
    """Keep a sample drop's first `frames` camera-trap frames and first `keeper_photos` photos per animal."""
    for frame in sorted(p for p in (drop / "images").rglob("*") if p.is_file())[frames:]:
        frame.unlink()
    for animal in sorted(p for p in (drop / "faces").iterdir() if p.is_dir()):
        for photo in sorted(p for p in animal.iterdir() if p.is_file())[keeper_photos:]:
            photo.unlink()


def fault_config() -> str:
    """The config every run of the harness uses: the stored random-weight nets, their way of running pinned (two homes
    measuring apart may choose another precision or batch, which changes the last bits of a probability), one Grad-CAM
    map per drop, crops decoded in the stage's own process."""
    from tasks.bench.scratch import GENDER_MODEL, MATING_MODEL  # torch: not for the correction saver's process

    return f"""[faces]
min_sharpness = 0
[gender]
model = "{GENDER_MODEL}"
precision = "fp32"
layout = "channels_last"
cpu_batch_size = 8
loader_workers = 0
gradcam_faces = 1
[mating]
model = "{MATING_MODEL}"
precision = "fp32"
layout = "channels_last"
batch_size = 64
"""


def write_inputs(
    folder: Path, drops: int = 2, animals: int = 4, frames: int = 4, keeper_photos: int = 3
) -> FaultInputs:
    """Generate the harness's drops (sample drops, trimmed, each with the ready marker), its config and its models."""
    from schemas.bench import BenchOptions
    from schemas.config import IngestConfig
    from tasks.bench.scratch import store_models
    from tasks.sample_drop import write_sample_drop

    written = []
    for seed in range(drops):
        drop = folder / "drops" / f"fault-s{seed}"
        write_sample_drop(drop, seed=seed, n_animals=animals)
        trim_drop(drop, frames, keeper_photos)
        (drop / IngestConfig().ready_marker).write_bytes(b"")
        written.append(drop)
    config = folder / "config.toml"
    config.write_text(fault_config())
    models_home = HomeLayout(folder / "models-home")
    store_models(models_home, BenchOptions(seed=0, gender_size=64, cganet_filters=8))
    return FaultInputs(tuple(written), config, models_home.models)


def fresh_home(work: Path, inputs: FaultInputs) -> tuple[HomeLayout, list[Path]]:
    """An empty home holding only the models, and a fresh copy of the drops, at the same paths every time (a drop's
    source path is part of its rows)."""
    home, inbox = work / "home", work / "inbox"
    for folder in (home, inbox):
        shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(inputs.models, home / "models")
    drops = [Path(shutil.copytree(drop, inbox / drop.name)) for drop in inputs.drops]
    return HomeLayout(home), drops


def correction_rows(drops: Sequence[Path]) -> list[dict[str, Any]]:
    """The keepers' corrections every home of the harness gets, with fixed ids and times: the sex of each drop's first
    animal and the outcome of its first encounter (targets read from the drop's manifests)."""
    rows = []
    for drop in drops:
        animal = (drop / "animals.csv").read_text().splitlines()[1].split(",")[0]
        encounter = (drop / "encounters.csv").read_text().splitlines()[1].split(",")[0]
        for kind, target, name, value in (
            ("animal", animal, "sex", "male"),
            ("encounter", encounter, "outcome", "failure"),
        ):
            rows.append(
                {
                    "correction_id": f"fault-{drop.name}-{kind}-{target}",
                    "action": "set",
                    "target_kind": kind,
                    "target_id": target,
                    "drop_id": drop.name,
                    "field": name,
                    "human_value": value,
                    "reviewer": "fault-harness",
                    "created_at": CORRECTED_AT,
                }
            )
    return rows


def save_missing_corrections(home: Path, drops: Sequence[Path], echo: bool = False) -> int:
    """Save, one part each, the harness's corrections the home does not hold yet (printing each id once saved when
    asked); return how many were saved."""
    layout = HomeLayout(home)
    held = set(read_table(layout, CORRECTIONS).column("correction_id").to_pylist())
    saved = 0
    for row in correction_rows(drops):
        if row["correction_id"] in held:
            continue
        save_correction(layout, row)
        saved += 1
        if echo:
            print(row["correction_id"], flush=True)
    return saved


def observed_events(home: HomeLayout) -> list[str]:
    """The phase boundaries a run has left in the home: its runs record, each drop's committed stages, the catalog
    file (or its temp file: the refresh has begun) and the report."""
    if not home.root.exists():
        return []
    events = [RUN_STARTED] if any(home.table_dir(RUNS.name).glob("run=*/part-*.parquet")) else []
    events += sorted(f"{m.stem} {m.parent.name.removeprefix('drop=')}" for m in home.state.glob("drop=*/*.json"))
    if any(CATALOG_FILE in p.name for p in home.root.iterdir()):
        events.append(CATALOG_REFRESH)
    if any(home.reports.glob("*/report.html")):
        events.append(REPORT_WRITTEN)
    return events


class EventWatcher:
    """Records when each event first appears in a home, from a background thread, while a run goes on in this one."""

    def __init__(self, home: HomeLayout) -> None:
        """Start watching the home."""
        self.home = home
        self.seen: dict[str, float] = {}
        self.started = time.monotonic()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.watch, name="fault-event-watcher", daemon=True)
        self.thread.start()

    def watch(self) -> None:
        """Poll the home until stopped."""
        while not self.stopping.is_set():
            self.poll()
            time.sleep(POLL_S)

    def poll(self) -> None:
        """Note the events that appeared since the last poll."""
        now = time.monotonic() - self.started
        for event in observed_events(self.home):
            self.seen.setdefault(event, now)

    def stop(self) -> float:
        """Stop watching; return the seconds since watching began."""
        self.stopping.set()
        self.thread.join()
        self.poll()
        return time.monotonic() - self.started


def run_in_process(home: HomeLayout, drops: Sequence[Path], config: Path) -> dict[str, Any]:
    """Run the nightly flow to completion in this process."""
    from flows.nightly import nightly

    return nightly(drops=[str(d) for d in drops], home=str(home.root), config_file=str(config))


def json_line(row: dict[str, Any], leave_out: Sequence[str], digits: int | None = None) -> str:
    """One row as a JSON line with sorted keys, the volatile columns left out, floats rounded when digits are given."""
    kept = {k: round(v, digits) if digits is not None and isinstance(v, float) else v for k, v in row.items()}
    return json.dumps({k: v for k, v in kept.items() if k not in leave_out}, sort_keys=True, default=str)


def lake_rows(home: HomeLayout) -> dict[str, list[str]]:
    """Every lake table but the volatile ones, as sorted JSON lines."""
    return {
        spec.name: sorted(json_line(row, VOLATILE_COLUMNS) for row in read_table(home, spec).to_pylist())
        for spec in LAKE_TABLES
        if spec.name not in VOLATILE_RELATIONS
    }


def catalog_rows(home: HomeLayout) -> dict[str, list[str]]:
    """Every view and table of the catalog but the volatile ones, as sorted JSON lines."""
    with duckdb.connect(str(home.catalog), read_only=True) as con:
        names = [row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
        relations = {}
        for name in sorted(set(names) - set(VOLATILE_RELATIONS)):
            table = con.sql(f'SELECT * FROM "{name}"').to_arrow_table()
            relations[name] = sorted(json_line(row, VOLATILE_COLUMNS, VIEW_DIGITS) for row in table.to_pylist())
    return relations


def snapshot(home: HomeLayout) -> Snapshot:
    """The home's lake tables and catalog relations, ready to compare."""
    return Snapshot(lake_rows(home), catalog_rows(home))


def duplicate_keys(home: HomeLayout, specs: Sequence[TableSpec] = LAKE_TABLES) -> dict[str, int]:
    """Per lake table, how many keys (the spec's key, else the whole row) name more than one row; tables without any
    left out."""
    found = {}
    for spec in specs:
        table = read_table(home, spec)
        columns = list(spec.key) or table.column_names
        keys = [json.dumps([row[c] for c in columns], default=str) for row in table.select(columns).to_pylist()]
        repeated = len(keys) - len(set(keys))
        if repeated:
            found[spec.name] = repeated
    return found


def differences(expected: Snapshot, actual: Snapshot) -> list[str]:
    """One line per lake table or catalog relation whose rows differ from the reference's."""
    lines = []
    for where, want, got in (("lake", expected.lake, actual.lake), ("catalog", expected.catalog, actual.catalog)):
        for name in sorted(set(want) | set(got)):
            if name not in got or name not in want:
                lines.append(f"{where} {name}: {'missing' if name not in got else 'not in the reference'}")
                continue
            missing = multiset_minus(want[name], got[name])
            extra = multiset_minus(got[name], want[name])
            if missing or extra:
                lines.append(f"{where} {name}: {len(missing)} rows missing, {len(extra)} extra")
    return lines


def multiset_minus(rows: list[str], other: list[str]) -> list[str]:
    """The rows of `rows` not matched one for one in `other`."""
    left = list(other)
    remaining = []
    for row in rows:
        try:
            left.remove(row)
        except ValueError:
            remaining.append(row)
    return remaining


def torn_files(home: HomeLayout, relations: Sequence[str]) -> list[str]:
    """What a killed run left visible that is not whole: Parquet parts that do not read, a catalog that does not open
    or lacks a relation the refresh creates."""
    problems = []
    for part in sorted(home.lake.rglob("part-*.parquet")) if home.lake.exists() else []:
        try:
            pq.read_metadata(part)
        except (OSError, ValueError) as error:
            problems.append(f"torn part {part.relative_to(home.root)}: {error}")
    if home.catalog.exists():
        try:
            with duckdb.connect(str(home.catalog), read_only=True) as con:
                names = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        except duckdb.Error as error:
            return [*problems, f"the catalog does not open: {error}"]
        absent = sorted(set(relations) - names)
        if absent:
            problems.append(
                f"half-written catalog: {len(absent)} of {len(relations)} relations absent ({absent[0]}, ...)"
            )
    return problems


def leftovers(home: HomeLayout) -> list[str]:
    """Temp files still present after a completed run, and runs still recorded as running."""
    temps = [str(p.relative_to(home.root)) for p in home.root.rglob(f"{TEMP_PREFIX}*")]
    problems = [f"temp file left: {temp}" for temp in temps]
    running = [row["run_id"] for row in recorded_runs(home) if row["status"] == "running"]
    problems += [f"run {run_id} still recorded as running" for run_id in running]
    return problems


def build_reference(work: Path, inputs: FaultInputs) -> Reference:
    """One uninterrupted run (after the corrections are saved), watched for its events, and its snapshot."""
    home, drops = fresh_home(work, inputs)
    save_missing_corrections(home.root, drops)
    watcher = EventWatcher(home)
    run_in_process(home, drops, inputs.config)
    ended = watcher.stop()
    if RUN_STARTED not in watcher.seen:
        raise RuntimeError("the reference run left no runs record: the harness cannot time its kills")
    start = watcher.seen[RUN_STARTED]
    events = {event: round(at - start, 3) for event, at in sorted(watcher.seen.items(), key=lambda kv: kv[1])}
    return Reference(snapshot(home), events, ended - start)


def random_points(reference: Reference, count: int, rng: random.Random) -> list[KillPoint]:
    """`count` delays after the run's start record, one drawn in each of `count` equal slices of the reference run's
    length (stratified, so kills land across its phases)."""
    span = reference.duration_s / max(count, 1)
    return [KillPoint(f"random {i + 1}", RUN_STARTED, round((i + rng.random()) * span, 3)) for i in range(count)]


def run_environment(api_url: str | None) -> dict[str, str]:
    """The child run's environment: the Prefect server to report to, no analytics."""
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def start_run_process(home: HomeLayout, drops: Sequence[Path], config: Path, api_url: str | None) -> subprocess.Popen:
    """Start `breedwatch run` on the drops in a child process."""
    command = [sys.executable, "-m", "flows.cli", "run", "--home", str(home.root), "--config", str(config)]
    return subprocess.Popen(
        [*command, *map(str, drops)],
        cwd=ROOT,
        env=run_environment(api_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def kill_run_at(home: HomeLayout, process: subprocess.Popen, point: KillPoint) -> str:
    """SIGKILL the run `point.delay_s` after `point.event` appears; return the last event seen before the kill."""
    seen: list[str] = []
    fired_at: float | None = None
    while process.poll() is None:
        events = observed_events(home)
        seen.extend(e for e in events if e not in seen)
        if fired_at is None and point.event in events:
            fired_at = time.monotonic()
        if fired_at is not None and time.monotonic() - fired_at >= point.delay_s:
            process.send_signal(signal.SIGKILL)
            process.wait()
            return seen[-1] if seen else "process start"
        time.sleep(POLL_S)
    return ENDED_FIRST


def kill_correction_save(home: HomeLayout, drops: Sequence[Path], attempts: int = 20) -> tuple[str, list[str]]:
    """Start saving the corrections in a child process and SIGKILL it the moment a correction's temp file appears
    (tried again on a clean slate when every save slipped through); return where it landed and the ids it reported
    saved."""
    day = home.table_dir(CORRECTIONS.name) / f"day={CORRECTED_AT:%Y-%m-%d}"
    for _ in range(attempts):
        shutil.rmtree(home.table_dir(CORRECTIONS.name), ignore_errors=True)
        process = subprocess.Popen(
            [sys.executable, "-c", SAVER, str(home.root), *map(str, drops)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        while process.poll() is None:
            try:
                caught = any(name.endswith(".partial") for name in os.listdir(day))
            except FileNotFoundError:
                caught = False
            if caught:
                process.send_signal(signal.SIGKILL)
                saved = process.communicate()[0].split()
                return f"inside save {len(saved) + 1}", saved
        process.communicate()
    return ENDED_FIRST, []


def torn_corrections(home: HomeLayout, reported: Sequence[str], drops: Sequence[Path]) -> list[str]:
    """A killed save must leave every correction part whole with one row, every correction reported saved, and beyond
    those at most the one whose save was in flight."""
    parts = sorted(home.table_dir(CORRECTIONS.name).glob("day=*/part-*.parquet"))
    problems = [f"correction part {p.name} does not hold exactly one row" for p in parts if row_count(p) != 1]
    held = read_table(home, CORRECTIONS).column("correction_id").to_pylist()
    in_flight = [row["correction_id"] for row in correction_rows(drops)][len(reported) : len(reported) + 1]
    if not set(reported) <= set(held):
        problems.append("a correction reported saved is missing")
    beyond = [i for i in held if i not in reported]
    if len(beyond) > len(in_flight) or not set(beyond) <= set(in_flight):
        problems.append(f"{len(beyond)} corrections visible beyond those reported saved (at most the one in flight)")
    return problems


def row_count(part: Path) -> int:
    """The rows of a Parquet part, -1 when it does not read."""
    try:
        return pq.read_metadata(part).num_rows
    except (OSError, ValueError):
        return -1


def check_after(home: HomeLayout, reference: Reference) -> list[str]:
    """After the run that follows a kill: differences from the reference, duplicate keys, leftovers."""
    problems = differences(reference.snapshot, snapshot(home))
    problems += [f"lake {name}: {n} duplicate keys" for name, n in duplicate_keys(home).items()]
    return problems + leftovers(home)


def kill_once(work: Path, inputs: FaultInputs, reference: Reference, point: KillPoint, api_url: str | None) -> Outcome:
    """One kill and the run after it, on a fresh home: where the kill landed and everything found wrong."""
    home, drops = fresh_home(work, inputs)
    relations = list(reference.snapshot.catalog) + list(VOLATILE_RELATIONS)
    if point.event == CORRECTION_SAVE:
        landed, reported = kill_correction_save(home, drops)
        problems = torn_corrections(home, reported, drops) + torn_files(home, relations)
        save_missing_corrections(home.root, drops)
    else:
        save_missing_corrections(home.root, drops)
        landed = kill_run_at(home, start_run_process(home, drops, inputs.config, api_url), point)
        problems = torn_files(home, relations)
    try:
        run_in_process(home, drops, inputs.config)
    except Exception as error:  # the run after a kill must complete; anything else is a finding, not a crash
        return Outcome(point, landed, (*problems, f"the next run failed: {type(error).__name__}: {error}"))
    problems += check_after(home, reference)
    if problems:
        kept = work / f"failed-{point.name.replace(' ', '-')}"
        shutil.rmtree(kept, ignore_errors=True)
        shutil.move(home.root, kept)
    return Outcome(point, landed, tuple(problems))


def run_faults(
    work: Path,
    inputs: FaultInputs,
    points: Callable[[Reference], list[KillPoint]],
    api_url: str | None,
    on_outcome: Callable[[Outcome], None] = lambda outcome: None,
) -> tuple[Reference, list[Outcome]]:
    """The reference run, then every kill point chosen from it, each on a fresh home and followed by a full run."""
    reference = build_reference(work, inputs)
    outcomes = []
    for point in points(reference):
        outcomes.append(kill_once(work, inputs, reference, point, api_url))
        on_outcome(outcomes[-1])
    return reference, outcomes
