"""Compaction: the small per-key parts of a table (one per drop and stage) merged into one file per table and month.

A compacted file lake/<table>/compacted=<YYYY-MM>/part-compacted.parquet holds, besides the table's columns, `_part`:
the per-key part each row came from ("drop=d1/part-ingest.parquet"), and lists the keys it holds in its footer. A key
is served either by its own parts or by a compacted file, never both: readers (the catalog's views, read_table) skip
the own parts of every key a compacted file holds. So each change is one os.replace of a compacted file:

- compacting: write the month's file with the new keys' rows (one step: their rows now come from it), then delete
  their own parts, which readers already skip (a kill -9 in between leaves only skipped garbage, swept later);
- releasing a key for a re-run (before any write to it): write its own parts back from the file (skipped while the
  file holds it), then replace the file by one without it (one step); clear_drop removes it without writing back.

Every change holds the table's lock file, so parallel stage tasks and processes take turns."""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from schemas.home import HomeLayout
from schemas.tables import CORRECTIONS, TableSpec
from tasks.lake import conform, fsync_dir, parquet_writer, published, read_part, write_rows, write_table_atomic

COMPACTED = "compacted"
SCHEMA_MONTH = "_"  # compacted=_ holds only an empty schema part, so the compacted files' glob always matches
COMPACTED_FILE = "part-compacted.parquet"
PART_COLUMN = "_part"
KEYS_METADATA = b"breedwatch.compacted_keys"
ROW_GROUP_ROWS = 65_536
ROW_GROUP_BYTES = 64 << 20


@dataclass(frozen=True)
class Compacted:
    """What compacting one table did."""

    table: str
    keys: int
    parts: int
    files: int


def compacted_schema(spec: TableSpec) -> pa.Schema:
    """A compacted file's columns: the table's present columns and `_part`."""
    return pa.schema([*spec.schema, pa.field(PART_COLUMN, pa.string())])


def schema_part(home: HomeLayout, spec: TableSpec) -> Path:
    """The empty part that gives the compacted files' glob a match and every view the `_part` column."""
    return home.table_dir(spec.name) / f"{COMPACTED}={SCHEMA_MONTH}" / f"part-schema-v{spec.version}.parquet"


def ensure_compacted_schema_part(home: HomeLayout, spec: TableSpec) -> None:
    """Write the table's empty compacted schema part once."""
    path = schema_part(home, spec)
    if not path.exists():
        schema = pa.schema([*spec.read_schema(), pa.field(PART_COLUMN, pa.string())])
        write_table_atomic(schema.empty_table(), path)


def compacted_files(home: HomeLayout, spec: TableSpec) -> list[Path]:
    """The table's compacted files, oldest month first."""
    folder = home.table_dir(spec.name)
    return sorted(folder.glob(f"{COMPACTED}=*/{COMPACTED_FILE}"))


def file_keys(path: Path) -> dict[str, list[str]]:
    """The partition folders ('drop=d1') a compacted file holds, each with the names of the parts it came from (empty
    parts included), from the file's footer."""
    return json.loads((pq.read_schema(path).metadata or {}).get(KEYS_METADATA, b"{}"))


def compacted_keys(home: HomeLayout, spec: TableSpec) -> dict[str, Path]:
    """Each partition folder held by a compacted file, with that file."""
    return {key: path for path in compacted_files(home, spec) for key in file_keys(path)}


def is_compacted_folder(folder: Path) -> bool:
    """Whether a partition folder holds compacted files rather than one key's own parts."""
    return folder.name.startswith(f"{COMPACTED}=")


def own_parts(home: HomeLayout, spec: TableSpec) -> dict[str, list[Path]]:
    """Every key's own parts, by partition folder ('drop=d1')."""
    found: dict[str, list[Path]] = {}
    for part in sorted(home.table_dir(spec.name).glob(f"{spec.partition}=*/part-*.parquet")):
        found.setdefault(part.parent.name, []).append(part)
    return found


@contextlib.contextmanager
def table_lock(home: HomeLayout, spec: TableSpec) -> Iterator[None]:
    """Hold the table's compaction lock (threads and processes take turns)."""
    folder = home.table_dir(spec.name)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".compact.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def rebatch(tables: Iterable[pa.Table]) -> Iterator[pa.Table]:
    """Gather small tables into row groups of about ROW_GROUP_ROWS rows or ROW_GROUP_BYTES bytes."""
    pending: list[pa.Table] = []
    rows = size = 0
    for table in tables:
        if table.num_rows == 0:
            continue
        pending.append(table)
        rows, size = rows + table.num_rows, size + table.nbytes
        if rows >= ROW_GROUP_ROWS or size >= ROW_GROUP_BYTES:
            yield pa.concat_tables(pending)
            pending, rows, size = [], 0, 0
    if pending:
        yield pa.concat_tables(pending)


def write_compacted(path: Path, spec: TableSpec, keys: dict[str, list[str]], tables: Iterable[pa.Table]) -> None:
    """Replace a compacted file in one step by one holding the given keys' rows (removed when there are none)."""
    if not keys:
        path.unlink(missing_ok=True)
        fsync_dir(path.parent)
        return
    metadata = {KEYS_METADATA: json.dumps(keys, sort_keys=True), b"breedwatch.schema_version": str(spec.version)}
    schema = compacted_schema(spec).with_metadata({key: value.encode() for key, value in metadata.items()})
    with published(path) as sink, parquet_writer(sink, schema) as writer:
        for table in rebatch(tables):
            writer.write_table(table.cast(schema))


def stored_rows(path: Path, spec: TableSpec, keep: Callable[[str], bool]) -> Iterator[pa.Table]:
    """A compacted file's rows of the keys kept, in the table's present schema plus `_part`, a row group at a time."""
    file = pq.ParquetFile(path)
    for group in range(file.num_row_groups):
        table = file.read_row_group(group)
        parts = table.column(PART_COLUMN)
        mask = pa.array([keep(part.split("/", 1)[0]) for part in parts.to_pylist()], pa.bool_())
        yield conform(table, spec).append_column(PART_COLUMN, parts).filter(mask)


def labelled_part(path: Path, spec: TableSpec) -> pa.Table:
    """A key's own part in the table's present schema, each row labelled with the part's place in the table."""
    table = read_part(path, spec)
    label = f"{path.parent.name}/{path.name}"
    return table.append_column(PART_COLUMN, pa.array([label] * table.num_rows, pa.string()))


def month_of(parts: list[Path]) -> str:
    """The month (UTC) a key's newest part was written: the compacted file it joins."""
    newest = max(part.stat().st_mtime for part in parts)
    return datetime.fromtimestamp(newest, UTC).strftime("%Y-%m")


def remove_parts(parts: Iterable[Path]) -> None:
    """Delete own parts that readers already skip, and their folders once empty."""
    for part in parts:
        part.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            part.parent.rmdir()


def compact_table(home: HomeLayout, spec: TableSpec, exclude: frozenset[str] = frozenset()) -> Compacted:
    """Merge the own parts of every key (but those excluded, by key) into the compacted file of their month."""
    if not spec.compactable:
        raise ValueError(f"the lake table {spec.name} is never compacted (its parts are appended while runs compact)")
    with table_lock(home, spec):
        held = compacted_keys(home, spec)
        parts = own_parts(home, spec)
        remove_parts(part for folder, found in parts.items() if folder in held for part in found)  # killed before
        todo = {
            folder: found
            for folder, found in parts.items()
            if folder not in held and folder.split("=", 1)[1] not in exclude
        }
        months: dict[str, list[str]] = {}
        for folder, found in todo.items():
            months.setdefault(month_of(found), []).append(folder)
        for month, folders in sorted(months.items()):
            path = home.table_dir(spec.name) / f"{COMPACTED}={month}" / COMPACTED_FILE
            keys = {**(file_keys(path) if path.exists() else {}), **{f: [p.name for p in todo[f]] for f in folders}}
            earlier = stored_rows(path, spec, lambda _: True) if path.exists() else iter(())
            added = (labelled_part(part, spec) for folder in folders for part in todo[folder])
            write_compacted(path, spec, keys, (table for source in (earlier, added) for table in source))
            remove_parts(part for folder in folders for part in todo[folder])
    return Compacted(spec.name, len(todo), sum(len(found) for found in todo.values()), len(months))


def release_keys(home: HomeLayout, spec: TableSpec, keys: Iterable[str], restore: bool = True) -> int:
    """Take keys out of the table's compacted files before they are written again: their rows go back to their own
    parts (or, without restore, are dropped, as clear_drop does); return how many keys were released."""
    folders = {f"{spec.partition}={key}" for key in keys}
    if not folders or not compacted_files(home, spec):
        return 0
    with table_lock(home, spec):
        held = compacted_keys(home, spec)
        by_file: dict[Path, set[str]] = {}
        for folder in folders & held.keys():
            by_file.setdefault(held[folder], set()).add(folder)
        for path, leaving in by_file.items():
            if restore:
                restore_parts(home, spec, path, leaving)
            remaining = {folder: names for folder, names in file_keys(path).items() if folder not in leaving}
            write_compacted(path, spec, remaining, stored_rows(path, spec, lambda folder: folder not in leaving))
    return sum(len(leaving) for leaving in by_file.values())


def restore_parts(home: HomeLayout, spec: TableSpec, path: Path, folders: set[str]) -> None:
    """Write the given keys' rows of a compacted file back as their own parts (skipped while the file holds them)."""
    table_dir = home.table_dir(spec.name)
    remove_parts(part for folder in folders for part in (table_dir / folder).glob("part-*.parquet"))
    held = file_keys(path)
    pieces: dict[str, list[pa.Table]] = {
        f"{folder}/{name}": [spec.schema.empty_table()] for folder in folders for name in held.get(folder, [])
    }
    for table in stored_rows(path, spec, lambda folder: folder in folders):
        labels = table.column(PART_COLUMN).to_pylist()
        for label in dict.fromkeys(labels):
            mask = pa.array([value == label for value in labels], pa.bool_())
            pieces.setdefault(label, []).append(table.filter(mask).drop_columns([PART_COLUMN]))
    for label, tables in pieces.items():
        write_table_atomic(
            pa.concat_tables(tables), table_dir / label, {"breedwatch.schema_version": str(spec.version)}
        )


def compacted_rows(home: HomeLayout, spec: TableSpec) -> list[pa.Table]:
    """Every compacted row of a table in its present schema (without `_part`)."""
    return [
        table.drop_columns([PART_COLUMN])
        for path in compacted_files(home, spec)
        for table in stored_rows(path, spec, lambda _: True)
    ]


def own_part_count(home: HomeLayout, spec: TableSpec) -> int:
    """How many own parts a table has: what compaction would merge."""
    return sum(len(found) for found in own_parts(home, spec).values())


def compact_tables(
    home: HomeLayout, tables: Iterable[TableSpec], exclude: frozenset[str] = frozenset(), min_parts: int = 1
) -> list[Compacted]:
    """Compact every compactable table with at least min_parts own parts."""
    return [
        compact_table(home, spec, exclude)
        for spec in tables
        if spec.compactable and own_part_count(home, spec) >= max(min_parts, 1)
    ]


def release_drops(home: HomeLayout, drop_ids: list[str], tables: Iterable[TableSpec]) -> int:
    """Take drops out of the compacted files of every table partitioned by drop, each file rewritten once."""
    return sum(release_keys(home, spec, drop_ids) for spec in tables if spec.partition == "drop")


# ---------------------------------------------------------------- keepers' corrections of past days

DAY_PART = "day"  # lake/corrections/day=<D>/part-day.parquet: every correction of one past UTC day


MONTH_PART = "month"  # lake/corrections/day=<YYYY-MM>/part-month.parquet: every correction of one past month


def merge_correction_folders(home: HomeLayout, folders: list[Path], key: str, part_name: str) -> bool:
    """Write every correction of the given partition folders (once each by correction_id) as one part of partition
    `key`, then remove the parts merged and the folders they emptied; False when they hold one part or none. Killed
    between the two steps, the rows are there twice until the next merge, and live_corrections reads each
    correction once meanwhile."""
    parts = sorted(part for folder in folders for part in folder.glob("part-*.parquet"))
    if len(parts) < 2:
        return False
    rows: dict[str, dict] = {}
    for part in parts:
        for row in read_part(part, CORRECTIONS).to_pylist():
            rows.setdefault(row["correction_id"], row)
    merged = write_rows(home, CORRECTIONS, key, part_name, list(rows.values()))
    for part in parts:
        if part != merged:
            part.unlink(missing_ok=True)
            fsync_dir(part.parent)
    for folder in folders:
        if folder != merged.parent and not any(folder.iterdir()):
            folder.rmdir()
    return True


def merge_past_corrections(home: HomeLayout, today: str | None = None) -> int:
    """Merge the correction parts of every UTC day before today (YYYY-MM-DD; default: now) into one part a day, then
    the days of every month before this one into one part a month, so the review app reads a few files a month rather
    than one per correction (3,000 single parts made its next item take 1 s; a year of day parts 134 ms, of month
    parts 65 ms). Today's day is left alone: the review app appends to it; nobody writes to a past day. The number of
    days and months merged (a day is merged once, the night after it; a month once, the night after it ends)."""
    cutoff = today or datetime.now(UTC).strftime("%Y-%m-%d")
    keyed = {p.name.split("=", 1)[1]: p for p in home.table_dir(CORRECTIONS.name).glob("day=*") if p.is_dir()}
    merged = sum(merge_correction_folders(home, [f], key, DAY_PART) for key, f in sorted(keyed.items()) if key < cutoff)
    by_month: dict[str, list[Path]] = {}
    for key, folder in sorted(keyed.items()):
        if key[:7] < cutoff[:7]:
            by_month.setdefault(key[:7], []).append(folder)
    for month, month_folders in sorted(by_month.items()):
        merged += merge_correction_folders(home, month_folders, month, MONTH_PART)
    return merged
