"""Bounded memory, checked structurally: stages hold one batch at a time, never the whole drop."""

from __future__ import annotations

import gc
import shutil
import weakref
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import soundfile

import tasks.faces as faces_stage
import tasks.segments as segments_stage
from schemas.config import load_settings
from schemas.home import HomeLayout
from schemas.tables import SEGMENT_FEATURES, SEGMENTS
from tasks.ingest import ingest_drop_dir
from tasks.lake import part_writer, write_rows
from tasks.stages import run_on_drop
from tests.drops import camera_jpeg
from tests.pipeline_home import write_staged_drop


def ingested(tmp_path: Path, config: str, frames: int = 0, recordings: int = 1) -> tuple[HomeLayout, Path, object]:
    """A staged drop (plus extra same-size frames and copies of its recording, each a little quieter) ingested into a
    new home, with its settings."""
    drop = write_staged_drop(tmp_path / "d1")
    for index in range(frames):
        camera_jpeg(drop / "images" / "cam02" / f"F{index:03d}.jpg", 1000 + index)
    samples, rate = soundfile.read(drop / "audio" / "E01.wav", dtype="float32")
    for index in range(2, recordings + 1):
        soundfile.write(drop / "audio" / f"E{index:02d}.wav", samples / index, rate, subtype="PCM_16")
        shutil.copy(drop / "audio" / "E01.selections.txt", drop / "audio" / f"E{index:02d}.selections.txt")
    (tmp_path / "c.toml").write_text(config)
    settings = load_settings(tmp_path / "c.toml", home=tmp_path / "home")
    layout = HomeLayout(tmp_path / "home")
    assert ingest_drop_dir(drop, layout, "run-1", settings, lambda: None).status == "ingested"
    return layout, drop, settings


def test_faces_stage_holds_two_batches_of_decoded_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    layout, drop, settings = ingested(tmp_path, '[faces]\ncpu_batch_size = 2\ndevice = "cpu"\n', frames=8)
    alive: list[weakref.ref] = []
    most: list[int] = []
    real_open, real_detect = faces_stage.open_upright, faces_stage.detect_faces

    def tracked_open(path):
        image = real_open(path)
        alive.append(weakref.ref(image))
        return image

    def counting_detect(mtcnn, arrays):
        gc.collect()
        most.append(sum(ref() is not None for ref in alive))
        return real_detect(mtcnn, arrays)

    monkeypatch.setattr(faces_stage, "open_upright", tracked_open)
    monkeypatch.setattr(faces_stage, "detect_faces", counting_detect)
    result = run_on_drop(faces_stage.FACES_STAGE, layout, drop, "d1", "run-1", settings, lambda: None)
    assert result.status == "detected" and len(most) >= 6 and len(alive) >= 14
    assert (
        max(most) <= 2 + 2 + 1
    )  # this batch, the next one being decoded, the last image of the previous one being cropped


@pytest.mark.parametrize("feature_batch", [1, 64])
def test_segments_stage_writes_features_one_batch_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, feature_batch: int
) -> None:
    layout, drop, settings = ingested(
        tmp_path, f'[audio]\nfeature_batch = {feature_batch}\ndevice = "cpu"\n', recordings=2
    )
    writes: list[int] = []
    real = segments_stage.part_writer

    def recording_writer(*args):
        writer = real(*args)
        append = writer.__enter__()

        class Recorder:
            def __enter__(self):
                return lambda rows: (writes.append(len(rows)), append(rows))

            def __exit__(self, *exc):
                return writer.__exit__(*exc)

        return Recorder()

    monkeypatch.setattr(segments_stage, "part_writer", recording_writer)
    result = run_on_drop(segments_stage.SEGMENTS_STAGE, layout, drop, "d1", "run-1", settings, lambda: None)
    n_segments = result.counts["segments"]
    recordings = {
        row["media_id"]
        for row in pq.read_table(layout.part(SEGMENTS.name, SEGMENTS.partition, "d1", "segments")).to_pylist()
    }
    assert n_segments >= 2 and len(recordings) >= 2
    assert writes == ([1] * n_segments if feature_batch == 1 else [n_segments])  # batches fill across recordings
    stored = pq.read_table(layout.part(SEGMENT_FEATURES.name, SEGMENT_FEATURES.partition, "d1", "segments"))
    assert (
        stored.num_rows == n_segments
        and stored.schema.metadata[b"breedwatch.schema_version"] == str(SEGMENT_FEATURES.version).encode()
    )


def test_streamed_part_equals_a_whole_part_and_appears_only_on_success(tmp_path: Path) -> None:
    layout = HomeLayout(tmp_path)
    rows = [
        {"segment_id": f"s{i}", "media_id": "m", "drop_id": "d", "start_s": float(i), "end_s": i + 2.0}
        for i in range(5)
    ]
    whole = pq.read_table(write_rows(layout, SEGMENTS, "d", "whole", rows))
    with part_writer(layout, SEGMENTS, "d", "streamed") as write:
        write(rows[:2])
        write([])
        write(rows[2:])
    streamed = pq.read_table(layout.part(SEGMENTS.name, SEGMENTS.partition, "d", "streamed"))
    assert streamed.equals(whole) and streamed.schema.metadata == whole.schema.metadata
    with pytest.raises(RuntimeError):
        with part_writer(layout, SEGMENTS, "d", "broken") as write:
            write(rows)
            raise RuntimeError("killed mid-part")
    folder = layout.part(SEGMENTS.name, SEGMENTS.partition, "d", "broken").parent
    assert sorted(p.name for p in folder.iterdir()) == ["part-streamed.parquet", "part-whole.parquet"]
