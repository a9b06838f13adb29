"""The mating stage and its data: catalog training data, nightly inference, re-runs, the encounters view, Raven
export."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from flows.nightly import nightly
from models.bench.checks import BF16_PROB_TOLERANCE
from models.mating_training import (
    MatingTrainSettings,
    StandardisedCGANet,
    build_mating_model,
    calibrate,
    encounter_call,
    fold_groups,
    grouped_folds,
    rollup_encounters,
)
from models.segments import parse_raven_table
from schemas.config import MatingConfig, load_settings
from schemas.home import HomeLayout
from tasks.catalog import query, refresh_views
from tasks.mating import export_raven_tables, predict_windows
from tasks.mating_training import catalog_data, folder_data, train_mating
from tasks.model_store import save_checkpoint
from tests.mating_drops import RATE, TINY_CONFIG, encounter_audio, raven_table, six_pairs, write_encounter_drop

DROP = "d1"
ENCOUNTERS = [*six_pairs(), ("E07", "M1", "F1", ""), ("E08", "M7", "F7", "")]


def make_drop(root):
    """Six labelled encounters of six pairs, two unlabelled ones, and a recording of no encounter."""
    drop = write_encounter_drop(root / DROP, ENCOUNTERS)
    sf.write(drop / "audio" / "loose.wav", encounter_audio(99, "success"), RATE, subtype="PCM_16")
    (drop / "audio" / "loose.selections.txt").write_text(raven_table(((0.5, 2.0),)))
    return drop


def run(drop, home, config):
    """One nightly run over the drop."""
    return nightly(drops=[str(drop)], home=str(home), config_file=str(config))


@pytest.fixture(scope="module")
def predicted(tmp_path_factory):
    """A home after a nightly run, a stored CGANet with random weights (temperature 0.5) and a second run."""
    root = tmp_path_factory.mktemp("mating")
    config = root / "c.toml"
    config.write_text(TINY_CONFIG)
    drop, home = make_drop(root), root / "home"
    run(drop, home, config)
    layout = HomeLayout(home)
    model = build_mating_model(MatingTrainSettings(filters=4, hidden=4), seed=3)
    save_checkpoint(layout.model_dir("mating", "cganet"), model.state_dict(), {"name": "cganet", "temperature": 0.5})
    summary = run(drop, home, config)
    return layout, summary


def test_catalog_training_data_joins_labelled_segments(predicted):
    layout, _ = predicted
    data = catalog_data(layout)
    windows = query(layout, "SELECT segment_id, encounter_id FROM segments ORDER BY segment_id").to_pylist()
    labelled = {"E01": 1, "E02": 0, "E03": 1, "E04": 0, "E05": 1, "E06": 0}
    expected = [w for w in windows if w["encounter_id"] in labelled]
    assert data.segment_ids == [w["segment_id"] for w in expected] and len(expected) == 18
    assert data.encounters == [f"{DROP}/{w['encounter_id']}" for w in expected]
    assert data.y.tolist() == [labelled[w["encounter_id"]] for w in expected]
    number = {e: e[1:].lstrip("0") for e in labelled}
    assert data.pairs == [f"M{number[w['encounter_id']]}|F{number[w['encounter_id']]}" for w in expected]
    stored = query(layout, "SELECT mfcc FROM segment_features WHERE segment_id = ?", [data.segment_ids[4]]).to_pylist()
    assert np.array_equal(data.x[4].reshape(-1), np.asarray(stored[0]["mfcc"], np.float32))


def test_folds_never_share_a_pair(predicted):
    layout, _ = predicted
    data = catalog_data(layout)
    pairs = np.asarray(data.pairs)
    for group_by in ("pair", "encounter"):
        plan = grouped_folds(fold_groups(group_by, data.pairs, data.encounters), data.y.tolist(), 5, seed=0)
        assert len(plan) == 5
        for train, test in plan:
            assert not set(pairs[train]) & set(pairs[test])


def test_nightly_predicts_every_window_with_the_stored_model(predicted):
    layout, summary = predicted
    (mating,) = summary["mating"]
    assert mating["status"] == "predicted" and mating["model"] == "cganet@v1"
    rows = query(layout, "SELECT * FROM mating_predictions ORDER BY segment_id").to_pylist()
    segments = query(layout, "SELECT segment_id, media_id, encounter_id FROM segments ORDER BY segment_id").to_pylist()
    assert [(r["segment_id"], r["media_id"], r["encounter_id"]) for r in rows] == [tuple(s.values()) for s in segments]
    assert len(rows) == mating["counts"]["mating_predictions"] == 8 * 3 + 1
    for row in rows:
        assert len(row["frame_p_success"]) == 86 and len(row["attention"]) == 86
        assert row["p_success"] == pytest.approx(np.mean(row["frame_p_success"]), abs=1e-6)
        assert sum(row["attention"]) == pytest.approx(1.0, abs=1e-4)
        assert (row["model_version"], row["run_id"], row["temperature"]) == ("cganet@v1", summary["run_id"], 0.5)


@pytest.mark.parametrize("precision, tolerance", [("fp32", 1e-6), ("bf16", BF16_PROB_TOLERANCE)])
def test_batched_and_one_at_a_time_predictions_are_equal(predicted, precision, tolerance):
    layout, _ = predicted
    model = build_mating_model(MatingTrainSettings(filters=4, hidden=4), seed=5).eval()
    context = {"drop_id": DROP, "temperature": 1.0, "model_version": "m@v1", "run_id": "r"}
    cpu = torch.device("cpu")
    batched = predict_windows(
        layout, DROP, model, MatingConfig(batch_size=64, precision=precision), cpu, context, lambda: None
    )
    single = predict_windows(
        layout, DROP, model, MatingConfig(batch_size=1, precision="fp32"), cpu, context, lambda: None
    )
    assert [r["segment_id"] for r in batched] == [r["segment_id"] for r in single] and len(batched) == 25
    for a, b in zip(batched, single):
        assert a["p_success"] == pytest.approx(b["p_success"], abs=tolerance)
        np.testing.assert_allclose(a["frame_p_success"], b["frame_p_success"], atol=tolerance)
        np.testing.assert_allclose(a["attention"], b["attention"], atol=tolerance)
        assert a["p_success"] == pytest.approx(np.mean(a["frame_p_success"]), abs=1e-6)  # Eq. 4 sums in float32


def view_against_rollup(layout: HomeLayout, low: float, high: float) -> None:
    """The encounters view equals rollup_encounters on the stored frame probabilities, with the band and temperature."""
    rows = query(
        layout,
        "SELECT encounter_id, frame_p_success, temperature FROM mating_predictions WHERE encounter_id IS NOT NULL",
    ).to_pylist()
    probs = np.stack(
        [
            np.stack(
                [np.asarray(r["frame_p_success"], np.float64), 1.0 - np.asarray(r["frame_p_success"], np.float64)],
                axis=1,
            )
            for r in rows
        ]
    )
    expected = rollup_encounters([r["encounter_id"] for r in rows], probs, low, high)
    view = {r["encounter_id"]: r for r in query(layout, "SELECT * FROM encounters").to_pylist()}
    assert sorted(view) == [e.encounter_id for e in expected] == [e for e, *_ in ENCOUNTERS]
    for rolled in expected:
        row = view[rolled.encounter_id]
        assert row["p_success"] == pytest.approx(rolled.p_success, abs=1e-9)
        assert row["n_segments"] == row["n_predicted"] == rolled.n_segments == 3
        assert row["p_calibrated"] == pytest.approx(calibrate(rolled.p_success, 0.5), abs=1e-9)
        assert row["predicted"] == encounter_call(calibrate(rolled.p_success, 0.5), low, high)
        assert row["outcome_known"] == (rolled.encounter_id not in ("E07", "E08"))
        if low == high == 0.5:  # the seed's rule: calibration never moves a call across 0.5
            assert row["predicted"] == rolled.predicted


def test_encounters_view_equals_the_pure_rollup_and_its_band_changes_without_rerunning(predicted):
    layout, _ = predicted
    view_against_rollup(layout, 0.4, 0.6)
    try:
        refresh_views(layout, {"mating.abstain_low": 0.5, "mating.abstain_high": 0.5})
        view_against_rollup(layout, 0.5, 0.5)
    finally:
        refresh_views(layout, load_settings(None, home=layout.root).view_thresholds())


def test_raven_export_is_read_back_by_the_raven_parser(predicted, tmp_path):
    layout, _ = predicted
    written = export_raven_tables(layout, tmp_path / "raven", DROP)
    assert len(export_raven_tables(layout, tmp_path / "every", None)) == len(written) == 9
    with pytest.raises(ValueError, match="no mating predictions in drop nope"):
        export_raven_tables(layout, tmp_path / "none", "nope")
    assert sorted(p.name for p in written) == sorted(
        [f"{e}.mating.selections.txt" for e, *_ in ENCOUNTERS] + ["loose.mating.selections.txt"]
    )
    windows = query(
        layout,
        "SELECT m.path, s.start_s, s.end_s, p.p_success FROM mating_predictions p JOIN segments s "
        "USING (segment_id) JOIN media m ON m.media_id = p.media_id ORDER BY s.start_s",
    ).to_pylist()
    for path in written:
        text = path.read_text()
        segments, problems = parse_raven_table(text, 8.0, path.name)
        mine = [w for w in windows if w["path"] == f"audio/{path.name.replace('.mating.selections.txt', '.wav')}"]
        assert problems == [] and [(s.start_s, s.end_s) for s in segments] == [(w["start_s"], w["end_s"]) for w in mine]
        lines = [line.split("\t") for line in text.splitlines()]
        assert lines[0][:7] == [
            "Selection",
            "View",
            "Channel",
            "Begin Time (s)",
            "End Time (s)",
            "Low Freq (Hz)",
            "High Freq (Hz)",
        ]
        assert [row[2] for row in lines[1:]] == ["1", "2"] * len(mine)
        assert [float(row[7]) for row in lines[1::2]] == pytest.approx([w["p_success"] for w in mine], abs=1e-4)


def test_training_folder_names_every_bad_row_and_recording_and_uses_the_good_ones(tmp_path):
    folder = write_encounter_drop(tmp_path / "labelled", six_pairs())
    bad_rows = (
        "4\tSpectrogram 1\t1\tabc\t2.0\t100\t4000\n"
        "5\tSpectrogram 1\t1\t3.0\t2.0\t100\t4000\n"
        "6\tSpectrogram 1\t1\t1.0\t99\t100\t4000\n"
    )
    (folder / "audio" / "E01.selections.txt").write_text(raven_table(extra_rows=bad_rows))
    whole = (folder / "audio" / "E02.wav").read_bytes()
    (folder / "audio" / "cut.wav").write_bytes(whole[: len(whole) // 3])
    data = folder_data(HomeLayout(tmp_path / "home"), folder, load_settings(None, home=tmp_path / "home"))
    assert sorted(r.split(":")[0] for r in data.rejects if "selections" in r) == [
        f"audio/E01.selections.txt line {n}" for n in (5, 6, 7)
    ]
    assert any("cut.wav" in r or "truncated" in r for r in data.rejects) and len(data.rejects) == 4
    assert data.encounters.count("labelled/E01") == 3 and len(data.y) == 18


class ForwardCounter:
    """Counts forward passes of every StandardisedCGANet (patched in for one test)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        original = StandardisedCGANet.forward

        def counted(model, mfcc):
            """The real forward pass, counted."""
            self.calls += 1
            return original(model, mfcc)

        monkeypatch.setattr(StandardisedCGANet, "forward", counted)


def part_mtime(layout: HomeLayout, table: str) -> int:
    """Modification time of the drop's part of a lake table."""
    return next(layout.table_dir(table).glob(f"drop={DROP}/part-*.parquet")).stat().st_mtime_ns


def test_train_store_predict_and_rerun_only_what_changed(tmp_path, monkeypatch):
    config = tmp_path / "c.toml"
    config.write_text(TINY_CONFIG)
    drop, home = make_drop(tmp_path), tmp_path / "home"
    layout, settings = HomeLayout(home), load_settings(config, home=home)
    first = run(drop, home, config)
    assert (
        first["mating"][0]["status"] == "no_model"
        and "train one with 'breedwatch train mating'" in first["mating"][0]["message"]
    )
    assert query(layout, "SELECT count(*) AS n FROM mating_predictions").column("n")[0].as_py() == 0
    threads = torch.get_num_threads()
    card = train_mating(layout, settings, "cganet", seed=1)
    assert torch.get_num_threads() == threads  # [mating.train] threads = 1 held only while training
    assert card["version"] == 1 and card["data"]["n_encounters"] == 6 and len(card["training"]["epochs"]) == 2
    assert not set(card["split"]["train"]) & set(card["split"]["validation"])
    assert {p.name for p in (home / "models" / "mating" / "cganet" / "v1").iterdir()} == {
        "weights.pt",
        "check_inputs.pt",  # some validation windows: int8's agreement check runs on them
        "model_card.json",
    }
    segments_written = part_mtime(layout, "segments")
    counter = ForwardCounter(monkeypatch)
    second = run(drop, home, config)
    assert second["mating"][0]["status"] == "predicted" and counter.calls > 0
    assert second["audio"][0]["status"] == "unchanged" and part_mtime(layout, "segments") == segments_written
    counter.calls = 0
    third = run(drop, home, config)
    assert third["mating"][0]["status"] == "unchanged" and counter.calls == 0
    train_mating(layout, settings, "cganet", seed=2)
    fourth = run(drop, home, config)
    assert [fourth["audio"][0]["status"], fourth["mating"][0]["status"]] == ["unchanged", "predicted"]
    assert counter.calls > 0 and part_mtime(layout, "segments") == segments_written
    versions = (
        query(layout, "SELECT DISTINCT model_version FROM mating_predictions").column("model_version").to_pylist()
    )
    unlabelled = (
        query(layout, "SELECT p_success FROM encounters WHERE NOT outcome_known").column("p_success").to_pylist()
    )
    assert versions == ["cganet@v2"] and len(unlabelled) == 2 and all(0.0 < p < 1.0 for p in unlabelled)
