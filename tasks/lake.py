"""The Parquet lake: atomic part writes, stage commit markers, the writer lock."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import io
import json
import os
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from schemas.home import HomeLayout
from schemas.tables import LAKE_TABLES, TableSpec

TEMP_PREFIX = ".tmp-"
SCHEMA_PARTITION = "_schema"


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class HomeBusyError(RuntimeError):
    """Another breedwatch process is writing this home."""


class DiskFullError(OSError):
    """A lake file could not be written because the disk (or the quota) holding it is full; str() is one sentence."""

    def __str__(self) -> str:
        """The sentence naming the path and the space needed, without OSError's '[Errno 28]' prefix."""
        return str(self.strerror)


def byte_size(count: int) -> str:
    """A byte count for people: '812 B', '3.4 MB' (powers of 1000, as df -H prints)."""
    size = float(count)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def disk_full(path: Path, needed: int, exact: bool) -> DiskFullError:
    """The one-sentence error for a file that did not fit: its path, the bytes it needed and what is free there."""
    try:
        free = byte_size(shutil.disk_usage(path.parent).free)
    except OSError:
        free = "an unknown amount"
    amount = byte_size(needed) if exact else f"at least {byte_size(needed)}"
    return DiskFullError(
        errno.ENOSPC,
        f"The disk is full: writing {path} needs {amount} ({needed} bytes) and {free} is free there; nothing "
        "half-written was kept, so free some space and run again.",
    )


class TempSink(io.RawIOBase):
    """A new temp file written with os.write (the one call a full disk fails), counting the bytes it was given."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self.given = 0

    def writable(self) -> bool:
        """Always: the sink only writes."""
        return True

    def write(self, data: Any) -> int:
        """Write every byte of data (os.write may take fewer than asked) and return how many."""
        view = memoryview(data).cast("B")
        count = len(view)
        self.given += count
        while view:
            view = view[os.write(self.fd, view) :]
        return count

    def tell(self) -> int:
        """Bytes written so far (the file is only appended to)."""
        return self.given

    def fsync(self) -> None:
        """Flush the file's bytes to disk."""
        os.fsync(self.fd)

    def close(self) -> None:
        """Close the file descriptor once."""
        if not self.closed:
            os.close(self.fd)
        super().close()


@contextlib.contextmanager
def published(path: Path, size: int | None = None, durable: bool = True) -> Iterator[TempSink]:
    """Yield a temp file beside path that becomes path (flushed when durable, then renamed) only when the block ends
    without error; otherwise it is removed, and a full disk becomes a DiskFullError naming path and the bytes needed
    (size when the caller knows it, else what it had written when the disk filled)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.parent / f"{TEMP_PREFIX}{uuid.uuid4().hex}-{path.name}.partial"
    sink = TempSink(temp)
    try:
        with sink:
            yield sink
            if durable:
                sink.fsync()
        os.replace(temp, path)
    except OSError as error:
        if error.errno not in DISK_FULL or isinstance(error, DiskFullError):
            raise
        raise disk_full(path, size if size is not None else sink.given, size is not None) from error
    finally:
        temp.unlink(missing_ok=True)
    if durable:
        fsync_dir(path.parent)


def publish_file(finished: Path, path: Path) -> None:
    """Flush a file another writer finished (a DuckDB database built beside path) and rename it over path, durably."""
    with open(finished, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(finished, path)
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entry table so a rename survives a power cut."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes_atomic(path: Path, data: bytes, durable: bool = True) -> None:
    """Write a file so that readers see either the old one or the whole new one, flushed to disk at once unless not
    durable (the caller then calls sync_filesystem once before committing: 127 face crops took 48 ms with two fsyncs
    each and 6 ms without on this server's SSD, and on a station's hard disk each fsync takes milliseconds)."""
    with published(path, len(data), durable) as sink:
        sink.write(data)


def sync_filesystem(path: Path) -> None:
    """Flush everything written to the filesystem holding path to disk in one call: syncfs(2) on Linux, else sync(2)."""
    syncfs = getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None) if sys.platform == "linux" else None
    if syncfs is None:
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        if syncfs(fd) != 0:
            raise OSError(ctypes.get_errno(), f"could not flush {path} to disk")
    finally:
        os.close(fd)


def write_table_atomic(table: pa.Table, path: Path, metadata: dict[str, str] | None = None) -> None:
    """Write one Parquet part through a temp file, fsync and rename."""
    if metadata:
        merged = dict(table.schema.metadata or {})
        merged.update({key.encode(): value.encode() for key, value in metadata.items()})
        table = table.replace_schema_metadata(merged)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **parquet_options(table.schema))
    write_bytes_atomic(path, sink.getvalue().to_pybytes())


def parquet_options(schema: pa.Schema) -> dict[str, Any]:
    """How every lake file is written: zstd, floats byte-stream-split, and a CRC on every page, so a flipped byte is
    found when the part is read back (breedwatch check) instead of read as a wrong value."""
    return {"compression": "zstd", "write_page_checksum": True, **float_encoding(schema)}


def parquet_writer(sink: TempSink, schema: pa.Schema) -> pq.ParquetWriter:
    """A streaming Parquet writer into a temp file of `published`, with the lake's options."""
    return pq.ParquetWriter(sink, schema, **parquet_options(schema))


def leaf_paths(field: pa.Field, prefix: str = "") -> Iterator[tuple[str, pa.DataType]]:
    """Parquet column paths of a field's leaves with their types ('mfcc.list.element', 'quality.size_px')."""
    path = f"{prefix}{field.name}"
    if pa.types.is_struct(field.type):
        for child in field.type:
            yield from leaf_paths(child, f"{path}.")
    elif pa.types.is_list(field.type) or pa.types.is_fixed_size_list(field.type) or pa.types.is_large_list(field.type):
        yield from leaf_paths(pa.field("element", field.type.value_type), f"{path}.list.")
    else:
        yield path, field.type


def float_encoding(schema: pa.Schema) -> dict[str, Any]:
    """Writer options storing float columns byte-stream-split instead of trying a dictionary first (64 MFCC rows:
    3 ms and 1.5 MB against 27 ms and 2.3 MB), other columns as before."""
    leaves = [leaf for field in schema for leaf in leaf_paths(field)]
    floats = [path for path, kind in leaves if pa.types.is_floating(kind)]
    return {
        "use_dictionary": [path for path, kind in leaves if path not in floats],
        "column_encoding": dict.fromkeys(floats, "BYTE_STREAM_SPLIT"),
    }


def rows_to_table(rows: Sequence[dict[str, Any]], spec: TableSpec) -> pa.Table:
    """Build a table with the spec's exact schema from row dicts (missing keys become null)."""
    columns = {field.name: [row.get(field.name) for row in rows] for field in spec.schema}
    return pa.Table.from_pydict(columns, schema=spec.schema)


def write_rows(home: HomeLayout, spec: TableSpec, key: str, part_name: str, rows: Sequence[dict[str, Any]]) -> Path:
    """Write rows as one atomic part of a table's partition (taking the key out of a compacted file first) and return
    its path."""
    from tasks.compaction import release_keys

    release_keys(home, spec, [key])
    path = home.part(spec.name, spec.partition, key, part_name)
    write_table_atomic(rows_to_table(rows, spec), path, {"breedwatch.schema_version": str(spec.version)})
    return path


@contextlib.contextmanager
def part_writer(
    home: HomeLayout, spec: TableSpec, key: str, part_name: str
) -> Iterator[Callable[[Sequence[dict[str, Any]]], None]]:
    """Yield a function that appends rows to a part as one row group per call; the part appears atomically only when
    the block ends without error, so memory holds one batch of rows, not the whole part (the key is taken out of a
    compacted file first)."""
    from tasks.compaction import release_keys

    release_keys(home, spec, [key])
    path = home.part(spec.name, spec.partition, key, part_name)
    metadata = {**(spec.schema.metadata or {}), b"breedwatch.schema_version": str(spec.version).encode()}
    with published(path) as sink, parquet_writer(sink, spec.schema.with_metadata(metadata)) as writer:
        yield lambda rows: writer.write_table(rows_to_table(rows, spec)) if rows else None


def conform(table: pa.Table, spec: TableSpec, columns: Sequence[str] | None = None) -> pa.Table:
    """A part of any older version in the spec's present schema (or those of its columns asked for): renamed columns
    under their new names, columns added since as nulls, columns dropped since left out."""
    renames = spec.old_names()
    table = table.rename_columns([renames.get(name, name) for name in table.column_names])
    fields = [spec.schema.field(name) for name in columns] if columns is not None else list(spec.schema)
    arrays = [
        table.column(field.name).cast(field.type)
        if field.name in table.column_names
        else pa.nulls(table.num_rows, field.type)
        for field in fields
    ]
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def read_part(path: Path, spec: TableSpec, columns: Sequence[str] | None = None) -> pa.Table:
    """One part in the spec's present schema whatever version wrote it, reading only the columns asked for."""
    wanted = list(columns) if columns is not None else spec.schema.names
    present = set(pq.read_schema(path).names)
    older = {new: old for old, new in spec.old_names().items() if old in present}
    stored = [name if name in present else older[name] for name in wanted if name in present or name in older]
    return conform(pq.read_table(path, columns=stored), spec, wanted)


def read_table(home: HomeLayout, spec: TableSpec) -> pa.Table:
    """Read every committed part of a table, own parts and compacted files (temp files are never matched)."""
    from tasks.compaction import compacted_keys, compacted_rows, own_parts

    held = compacted_keys(home, spec)
    parts = [part for folder, found in own_parts(home, spec).items() if folder not in held for part in found]
    tables = [read_part(part, spec) for part in parts] + compacted_rows(home, spec)
    return pa.concat_tables(tables) if tables else spec.schema.empty_table()


def ensure_schema_parts(home: HomeLayout) -> None:
    """Write an empty part per table so views always have every column of every version, even before any data."""
    from tasks.compaction import ensure_compacted_schema_part

    for spec in LAKE_TABLES:
        path = home.table_dir(spec.name) / SCHEMA_PARTITION / f"part-schema-v{spec.version}.parquet"
        if not path.exists():
            write_table_atomic(spec.read_schema().empty_table(), path)
        ensure_compacted_schema_part(home, spec)


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write a small JSON document atomically."""
    write_bytes_atomic(path, json.dumps(payload, indent=2, sort_keys=True, default=str).encode())


def read_marker(home: HomeLayout, drop_id: str, stage: str) -> dict[str, Any] | None:
    """The commit marker of a stage for a drop, or None when the stage has not finished it."""
    path = home.stage_marker(drop_id, stage)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def write_marker(home: HomeLayout, drop_id: str, stage: str, payload: dict[str, Any]) -> None:
    """Commit a stage for a drop: written last, after every part of the stage is in place."""
    write_json_atomic(home.stage_marker(drop_id, stage), payload)


def clear_drop(home: HomeLayout, drop_id: str) -> None:
    """Remove every part (own or compacted), crop and commit marker of a drop, so its next ingest starts clean."""
    from tasks.compaction import release_keys

    for spec in LAKE_TABLES:
        if spec.partition == "drop":
            release_keys(home, spec, [drop_id], restore=False)
    for part in home.lake.glob(f"*/drop={drop_id}/part-*.parquet") if home.lake.exists() else []:
        part.unlink(missing_ok=True)
    for folder in (home.lake / "crops" / f"drop={drop_id}", home.state / f"drop={drop_id}"):
        for path in folder.glob("*") if folder.exists() else []:
            path.unlink(missing_ok=True)


def sweep_temp_files(home: HomeLayout, folders: Sequence[Path] = ()) -> int:
    """Delete temp files a killed run left in the lake and in `folders`, and return how many there were."""
    count = 0
    for folder in (home.lake, *folders):
        for temp in folder.rglob(f"{TEMP_PREFIX}*.partial") if folder.exists() else []:
            temp.unlink(missing_ok=True)
            count += 1
    return count


@contextlib.contextmanager
def writer_lock(home: HomeLayout) -> Iterator[None]:
    """Hold the home's writer lock, failing at once if another process has it."""
    home.root.mkdir(parents=True, exist_ok=True)
    with open(home.lock, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise HomeBusyError(
                f"another breedwatch run is writing {home.root}; try again when it has finished"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
