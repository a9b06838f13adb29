"""The audio stage: Raven tables or automatic detection, windows, stored MFCC equal to librosa's."""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow.parquet as pq
import soundfile as sf
import torch

from models.audio_features import WINDOW_SAMPLES, TorchMFCC, librosa_mfcc, relative_error, segment_window
from schemas.config import Settings
from schemas.home import HomeLayout
from schemas.tables import REJECTS, SEGMENT_FEATURES, SEGMENTS
from tasks import segments as segments_stage
from tasks.ingest import ingest_drop_dir
from tasks.lake import read_table
from tasks.segments import SEGMENTS_STAGE
from tasks.stages import run_on_drop
from tests.conftest import realfile
from tests.drops import stereo_wav

RAVEN_HEADER = "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\tNotes\n"


def run_stages(drop, home):
    """Ingest a drop and run the audio stage on it."""
    layout, settings = HomeLayout(home), Settings(home=home)
    ingest_drop_dir(drop, layout, "run-1", settings, lambda: None)
    return run_on_drop(SEGMENTS_STAGE, layout, drop, drop.name, "run-1", settings, lambda: None), layout


def test_stored_mfcc_equals_librosa_on_a_real_stereo_recording(realdata, tmp_path):
    source = realfile(realdata, "librosa-test-data/test1_44100.wav")  # stereo 44.1 kHz with a LIST chunk before data
    drop = tmp_path / "d1"
    (drop / "audio").mkdir(parents=True)
    shutil.copy(source, drop / "audio" / "rec.wav")
    (drop / "audio" / "rec.selections.txt").write_text(
        RAVEN_HEADER + "1\tSpectrogram 1\t1\t0.5\t1.3\t100\t4000\tshort call\n"
        "2\tSpectrogram 1\t1\t1.5\t4.4\t100\t4000\tlong call\n"
        "3\tSpectrogram 1\t1\tabc\t2.0\t100\t4000\tbad\n"
        "4\tSpectrogram 1\t1\t3.0\t2.0\t100\t4000\tbackwards\n"
        "5\tSpectrogram 1\t1\t1.0\t99.0\t100\t4000\tpast the end\n"
    )
    result, layout = run_stages(drop, tmp_path / "home")
    segments = read_table(layout, SEGMENTS).to_pylist()
    assert [(s["start_s"], s["end_s"], s["padded"]) for s in segments] == [(0.5, 1.3, True), (1.5, 3.5, False)]
    assert {s["source"] for s in segments} == {"raven"}
    rejects = read_table(layout, REJECTS).to_pylist()
    assert sorted(r["reason"].split(":")[0] for r in rejects) == [
        f"audio/rec.selections.txt line {n}" for n in (4, 5, 6)
    ]
    samples, rate = sf.read(source, dtype="float32", always_2d=True)
    features = {
        row["segment_id"]: np.asarray(row["mfcc"]).reshape(2, 86, 40)
        for row in read_table(layout, SEGMENT_FEATURES).to_pylist()
    }
    for segment in segments:
        reference = librosa_mfcc(segment_window(samples, segment["start_s"], segment["end_s"], rate))
        assert relative_error(features[segment["segment_id"]][None], reference[None]).max() < 1e-4
    assert result.counts == {"segments": 2, "segment_rows_rejected": 3}


def test_recordings_without_a_table_use_automatic_detection_and_link_encounters(tmp_path):
    drop = tmp_path / "d2"
    stereo_wav(drop / "audio" / "E01.wav", seed=3, seconds=4.0)
    (drop / "encounters.csv").write_text(
        "encounter_id,recording,male_id,female_id,started_at,outcome\nE01,audio/E01.wav,A2,A1,,\n"
    )
    t = np.arange(int(4.0 * 44_100)) / 44_100
    quiet = 0.01 * np.random.default_rng(1).standard_normal((t.size, 2))
    call = np.where((t > 1.0) & (t < 1.6), 0.5 * np.sin(2 * np.pi * 700 * t), 0.0)
    sf.write(drop / "audio" / "E01.wav", (quiet + call[:, None]).astype(np.float32), 44_100, subtype="PCM_16")
    result, layout = run_stages(drop, tmp_path / "home")
    (segment,) = read_table(layout, SEGMENTS).to_pylist()
    assert segment["source"] == "auto" and segment["encounter_id"] == "E01"
    assert abs(segment["call_start_s"] - 1.0) < 0.15 and abs(segment["call_end_s"] - 1.6) < 0.15
    mfcc = pq.read_table(layout.part("segment_features", "drop", "d2", "segments")).column("mfcc")
    assert len(mfcc[0]) == 2 * 86 * 40
    again = run_on_drop(SEGMENTS_STAGE, layout, drop, "d2", "run-2", Settings(home=tmp_path / "home"), lambda: None)
    assert again.status == "unchanged"


def test_mono_48k_recording_is_duplicated_resampled_and_flagged(tmp_path):
    drop = tmp_path / "d3"
    (drop / "audio").mkdir(parents=True)
    t = np.arange(48_000 * 3) / 48_000
    sf.write(drop / "audio" / "m.wav", (0.4 * np.sin(2 * np.pi * 500 * t)).astype(np.float32), 48_000)
    (drop / "audio" / "m.selections.txt").write_text(RAVEN_HEADER + "1\tSpectrogram 1\t1\t0.5\t2.5\t100\t4000\t\n")
    _, layout = run_stages(drop, tmp_path / "home")
    (segment,) = read_table(layout, SEGMENTS).to_pylist()
    assert segment["flags"] == ["mono_duplicated", "resampled_from_48000"]
    (row,) = read_table(layout, SEGMENT_FEATURES).to_pylist()
    channels = np.asarray(row["mfcc"]).reshape(2, 86, 40)
    assert np.array_equal(channels[0], channels[1])


def test_cpu_features_computed_in_the_mfcc_chunks_keep_the_window_order():
    windows = [np.random.default_rng(i).standard_normal((2, WINDOW_SAMPLES)).astype(np.float32) for i in range(11)]
    mfcc = TorchMFCC(cpu_chunk=4)
    with torch.inference_mode():
        expected = TorchMFCC(cpu_chunk=11)(torch.from_numpy(np.stack(windows))).numpy()
    np.testing.assert_array_equal(segments_stage.mfcc_features(mfcc, torch.device("cpu"), np.stack(windows)), expected)


def test_every_window_of_several_calls_gets_the_features_of_its_own_span(tmp_path):
    drop = tmp_path / "d4"
    (drop / "audio").mkdir(parents=True)
    rng = np.random.default_rng(4)
    samples = (0.2 * rng.standard_normal((44_100 * 10, 2)) * np.linspace(0.2, 1.0, 44_100 * 10)[:, None]).astype(
        np.float32
    )
    sf.write(drop / "audio" / "r.wav", samples, 44_100, subtype="FLOAT")
    (drop / "audio" / "r.selections.txt").write_text(
        RAVEN_HEADER + "1\tSpectrogram 1\t1\t6.0\t9.2\t100\t4000\tlater call first\n"
        "2\tSpectrogram 1\t1\t0.5\t4.6\t100\t4000\tearlier call\n"
    )
    _, layout = run_stages(drop, tmp_path / "home")
    segments = read_table(layout, SEGMENTS).to_pylist()
    assert sorted((s["start_s"], s["end_s"]) for s in segments) == [(0.5, 2.5), (2.5, 4.5), (6.0, 8.0), (8.0, 9.2)]
    features = {
        row["segment_id"]: np.asarray(row["mfcc"]).reshape(2, 86, 40)
        for row in read_table(layout, SEGMENT_FEATURES).to_pylist()
    }
    assert set(features) == {s["segment_id"] for s in segments}
    for segment in segments:
        reference = librosa_mfcc(segment_window(samples, segment["start_s"], segment["end_s"]))
        assert relative_error(features[segment["segment_id"]][None], reference[None]).max() < 1e-4


def test_batches_cut_into_one_reused_array_give_each_window_its_own_features(tmp_path):
    drop = tmp_path / "d5"
    (drop / "audio").mkdir(parents=True)
    rng = np.random.default_rng(5)
    recordings = {}
    for name, level in (("a", 0.3), ("b", 0.02)):
        recordings[name] = (level * rng.standard_normal((44_100 * 6, 2))).astype(np.float32)
        sf.write(drop / "audio" / f"{name}.wav", recordings[name], 44_100, subtype="FLOAT")
        (drop / "audio" / f"{name}.selections.txt").write_text(
            RAVEN_HEADER + "1\tSpectrogram 1\t1\t0.5\t5.9\t100\t4000\tcall\n"
        )
    layout, settings = HomeLayout(tmp_path / "home"), Settings(home=tmp_path / "home", audio={"feature_batch": 2})
    ingest_drop_dir(drop, layout, "run-1", settings, lambda: None)
    assert run_on_drop(SEGMENTS_STAGE, layout, drop, drop.name, "run-1", settings, lambda: None).counts["segments"] == 6
    paths = {row["media_id"]: row["path"] for row in segments_stage.drop_recordings(layout, drop.name)}
    features = {
        row["segment_id"]: np.asarray(row["mfcc"], np.float32).reshape(2, 86, 40)
        for row in read_table(layout, SEGMENT_FEATURES).to_pylist()
    }
    for segment in read_table(layout, SEGMENTS).to_pylist():  # batches of 2, 2 (one from each recording) and 2
        samples = recordings[paths[segment["media_id"]].removeprefix("audio/").removesuffix(".wav")]
        window = segment_window(samples, segment["start_s"], segment["end_s"])
        with torch.inference_mode():
            expected = TorchMFCC()(torch.from_numpy(window[None])).numpy()[0]
        np.testing.assert_array_equal(features[segment["segment_id"]], expected)


def test_each_recording_pairs_only_with_a_table_of_its_own_stem(tmp_path):
    drop = tmp_path / "d6"
    names = ("E1", "E10", "E2", "call[1]")
    for index, name in enumerate(names):
        stereo_wav(drop / "audio" / f"{name}.wav", seed=index, seconds=3.0)
    tables = {
        "E10.selections.txt": (0.5, 1.5),
        "E2.Table.1.selections.txt": (1.0, 2.0),
        "call[1].selections.txt": (0.2, 1.2),
    }
    for table, (start, end) in tables.items():
        (drop / "audio" / table).write_text(RAVEN_HEADER + f"1\tSpectrogram 1\t1\t{start}\t{end}\t100\t4000\t\n")
    _, layout = run_stages(drop, tmp_path / "home")
    paths = {row["media_id"]: row["path"] for row in segments_stage.drop_recordings(layout, drop.name)}
    sources: dict[str, set] = {}
    for segment in read_table(layout, SEGMENTS).to_pylist():
        sources.setdefault(paths[segment["media_id"]], set()).add(
            (segment["source"], segment["call_start_s"], segment["call_end_s"])
        )
    assert sources["audio/E10.wav"] == {("raven", 0.5, 1.5)}
    assert sources["audio/E2.wav"] == {("raven", 1.0, 2.0)}
    assert sources["audio/call[1].wav"] == {("raven", 0.2, 1.2)}
    assert all(source == "auto" for source, *_ in sources.get("audio/E1.wav", set()))  # not E10's table
