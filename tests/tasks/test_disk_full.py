"""A full disk while a part is written: one sentence naming the path and the space needed, no half-written file
visible, and the write (or the run) after space is freed completes."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from schemas.home import HomeLayout
from schemas.tables import MEDIA, SEGMENT_FEATURES
from tasks.lake import DiskFullError, part_writer, read_part, write_rows

ROWS = [{"media_id": f"m{i:02d}", "drop_id": "d1", "path": f"images/{i}.jpg", "kind": "image"} for i in range(20)]


def fill_disk_for(monkeypatch: pytest.MonkeyPatch, name: str, room: int = 0) -> list[int]:
    """Make os.write fail with ENOSPC for files whose name contains `name` once `room` bytes went into them (the disk
    is full for them alone); return the sizes of the writes refused."""
    real_write: Callable[[int, bytes], int] = os.write
    written: dict[str, int] = {}
    refused: list[int] = []

    def write(fd: int, data: bytes) -> int:
        target = os.readlink(f"/proc/self/fd/{fd}")
        if name not in target:
            return real_write(fd, data)
        if written.get(target, 0) + len(data) > room:
            refused.append(len(data))
            raise OSError(errno.ENOSPC, "No space left on device")
        written[target] = written.get(target, 0) + len(data)
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    return refused


def lake_files(home: HomeLayout) -> list[str]:
    """Every file under the lake, temp files included, relative to it."""
    return sorted(str(p.relative_to(home.lake)) for p in home.lake.rglob("*") if p.is_file())


def test_a_full_disk_names_the_part_and_its_size_and_leaves_nothing_half_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = HomeLayout(tmp_path / "home")
    path = home.part(MEDIA.name, MEDIA.partition, "d1", "ingest")
    refused = fill_disk_for(monkeypatch, "part-ingest.parquet")
    with pytest.raises(DiskFullError) as caught:
        write_rows(home, MEDIA, "d1", "ingest", ROWS)
    sentence = str(caught.value)
    assert caught.value.errno == errno.ENOSPC and refused
    assert sentence.startswith(f"The disk is full: writing {path} needs ") and f"({refused[0]} bytes)" in sentence
    assert sentence.count(". ") == 0 and sentence.endswith("run again."), "one sentence"
    assert not path.exists() and not [f for f in lake_files(home) if "part-ingest" in f], "no part, no temp file"

    monkeypatch.undo()  # space freed
    write_rows(home, MEDIA, "d1", "ingest", ROWS)
    assert read_part(path, MEDIA).column("media_id").to_pylist() == [row["media_id"] for row in ROWS]
    assert lake_files(home) == ["media/drop=d1/part-ingest.parquet"]


def test_a_streamed_part_that_fills_the_disk_says_at_least_what_it_had_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = HomeLayout(tmp_path / "home")
    path = home.part(SEGMENT_FEATURES.name, SEGMENT_FEATURES.partition, "d1", "segments")
    noise = np.random.default_rng(0).random((4, 6880), dtype=np.float32)  # incompressible: each row is 27 kB
    rows = [{"segment_id": f"s{i}", "drop_id": "d1", "feature_version": "v1", "mfcc": list(noise[i])} for i in range(4)]
    fill_disk_for(monkeypatch, "part-segments.parquet", room=10_000)
    with pytest.raises(DiskFullError, match=r"needs at least [0-9.]+ kB \(\d+ bytes\)") as caught:
        with part_writer(home, SEGMENT_FEATURES, "d1", "segments") as write:
            for row in rows:
                write([row])
    assert str(path) in str(caught.value) and not path.exists()
    assert lake_files(home) == [], "the temp file is removed"

    monkeypatch.undo()
    with part_writer(home, SEGMENT_FEATURES, "d1", "segments") as write:
        for row in rows:
            write([row])
    assert pq.read_metadata(path).num_rows == 4


def test_a_run_on_a_full_disk_fails_with_the_sentence_and_the_next_run_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.nightly import nightly
    from tasks.catalog import query
    from tests.drops import write_small_drop

    drop, home = write_small_drop(tmp_path / "inbox" / "d1"), tmp_path / "home"
    fill_disk_for(monkeypatch, "part-ingest.parquet")
    with pytest.raises(DiskFullError, match="^The disk is full: writing .*/lake/.*part-ingest.parquet needs"):
        nightly(drops=[str(drop)], home=str(home))
    layout = HomeLayout(home)
    assert not [f for f in lake_files(layout) if f.endswith(".partial") or "part-ingest" in f]

    monkeypatch.undo()
    summary = nightly(drops=[str(drop)], home=str(home))
    assert summary["drops"][0]["status"] == "ingested"
    runs = query(layout, "SELECT status, error FROM runs ORDER BY started_at").to_pylist()
    assert [run["status"] for run in runs] == ["failed", "completed"]
    assert "The disk is full: writing" in runs[0]["error"]
    media = query(layout, "SELECT count(*) AS n, count(DISTINCT path) AS paths FROM media").to_pylist()[0]
    assert media["n"] == media["paths"] >= summary["drops"][0]["counts"]["images"] > 0
