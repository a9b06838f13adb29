"""Lake parts: float columns stored byte-stream-split, read back exactly by pyarrow and DuckDB."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from schemas.home import HomeLayout
from schemas.tables import FACES, SEGMENT_FEATURES
from tasks.lake import float_encoding, part_writer, sync_filesystem, write_bytes_atomic, write_rows


def encodings(path: Path) -> dict[str, tuple[str, ...]]:
    """Each leaf column's encodings in the first row group of a Parquet file."""
    group = pq.ParquetFile(path).metadata.row_group(0)
    return {group.column(i).path_in_schema: group.column(i).encodings for i in range(group.num_columns)}


def test_float_leaves_are_byte_stream_split_and_strings_keep_dictionaries() -> None:
    options = float_encoding(FACES.schema)
    assert {"bbox_x", "landmarks.list.element", "quality.sharpness"} <= set(options["column_encoding"])
    assert "face_id" in options["use_dictionary"] and "bbox_x" not in options["use_dictionary"]


def test_written_parts_read_back_exactly(tmp_path: Path) -> None:
    home = HomeLayout(tmp_path)
    mfcc = np.random.default_rng(0).standard_normal((3, 2 * 86 * 40)).astype(np.float32) * 40
    with part_writer(home, SEGMENT_FEATURES, "d1", "segments") as write:
        write(
            [
                {"segment_id": f"s{i}", "drop_id": "d1", "feature_version": "1", "mfcc": row}
                for i, row in enumerate(mfcc)
            ]
        )
    face = {
        "face_id": "f1",
        "media_id": "m1",
        "drop_id": "d1",
        "bbox_x": 0.25,
        "landmarks": [0.5] * 10,
        "quality": {"size_px": 64.0, "sharpness": 12.5, "score": 0.99},
        "excluded": False,
    }
    faces_part = write_rows(home, FACES, "d1", "faces", [face])
    features_part = home.part(SEGMENT_FEATURES.name, SEGMENT_FEATURES.partition, "d1", "segments")
    assert "BYTE_STREAM_SPLIT" in encodings(features_part)["mfcc.list.element"]
    assert "BYTE_STREAM_SPLIT" in encodings(faces_part)["quality.sharpness"]
    assert "RLE_DICTIONARY" in encodings(faces_part)["face_id"]
    stored = np.array(pq.read_table(features_part).column("mfcc").to_pylist(), dtype=np.float32)
    np.testing.assert_array_equal(stored, mfcc)
    row = duckdb.execute(
        "select bbox_x, landmarks[2], quality.sharpness from read_parquet(?)", [str(faces_part)]
    ).fetchone()
    assert row == (0.25, 0.5, 12.5)
    first = duckdb.execute(
        "select mfcc[7] from read_parquet(?) where segment_id = 's2'", [str(features_part)]
    ).fetchone()[0]
    assert first == float(mfcc[2, 6])


def test_files_written_without_durability_skip_fsync_and_are_still_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    write_bytes_atomic(tmp_path / "crops" / "a.jpg", b"first")
    assert len(synced) == 2  # the file, then its folder
    write_bytes_atomic(tmp_path / "crops" / "a.jpg", b"second", durable=False)
    write_bytes_atomic(tmp_path / "crops" / "b.jpg", b"third", durable=False)
    assert len(synced) == 2
    assert (tmp_path / "crops" / "a.jpg").read_bytes() == b"second" and (
        tmp_path / "crops" / "b.jpg"
    ).read_bytes() == b"third"
    assert sorted(p.name for p in (tmp_path / "crops").iterdir()) == ["a.jpg", "b.jpg"]  # no temp file left
    sync_filesystem(tmp_path)
    with pytest.raises(FileNotFoundError):
        sync_filesystem(tmp_path / "missing")
