"""Placing the nets on a machine: measured once, cached under the home keyed by the machine, measured again on another
machine, written into the run's settings and recorded with the run."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

import tasks.execution as execution
from models.execution import Wanted, Way, native_bf16
from schemas.config import Settings
from schemas.home import HomeLayout
from schemas.tables import RUNS
from tasks.execution import NetTrial, plan_for, read_hardware, resolve_execution, way_of
from tests.machines import AVX2_EPYC, ZEN4
from tests.pipeline_home import store_gender_model, store_mating_model


def counting_trial(calls: list[Way]) -> NetTrial:
    """A trial of a net on which bf16 channels_last is fastest, recording every timed pass."""

    def seconds_of(way: Way) -> float:
        calls.append(way)
        return {"bf16": 0.1, "fp32": 0.4}[way.precision] * (1 if way.layout == "channels_last" else 2)

    return NetTrial("gender:panda-gender@v1", Wanted(None, None, 8, None), 8, seconds_of)


def test_the_choice_is_cached_per_machine_and_measured_again_on_another(tmp_path: Path) -> None:
    cache, calls = tmp_path / "hardware" / "execution.json", []
    first = plan_for(cache, AVX2_EPYC, counting_trial(calls), 1)
    assert first.way.precision == "fp32" and first.source == "measured" and calls
    measured = len(calls)
    assert (
        plan_for(cache, AVX2_EPYC, counting_trial(calls), 1) == first and len(calls) == measured
    )  # cached: nothing timed
    moved = plan_for(cache, ZEN4, counting_trial(calls), 1)  # the home moved to a machine with native bf16
    assert len(calls) > measured and moved.way == Way("bf16", "channels_last", 8, 2)
    stored = json.loads(cache.read_text())
    assert set(stored) == {AVX2_EPYC.identity(), ZEN4.identity()}
    assert "no native bf16" in stored[AVX2_EPYC.identity()]["hardware"]


def test_a_damaged_cache_is_measured_again(tmp_path: Path) -> None:
    cache, calls = tmp_path / "execution.json", []
    cache.write_text("{not json")
    assert plan_for(cache, AVX2_EPYC, counting_trial(calls), 1).way.precision == "fp32" and calls
    assert AVX2_EPYC.identity() in json.loads(cache.read_text())


def test_resolve_writes_every_choice_into_the_settings_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    layout = HomeLayout(tmp_path / "home")
    store_gender_model(layout, 0)
    store_mating_model(layout, 0)
    settings = Settings(home=layout.root)
    resolved = resolve_execution(layout, settings)
    gender, mating = resolved.settings.gender, resolved.settings.mating
    assert gender.precision in ("fp32", "bf16", "int8") and gender.layout in ("channels_last", "contiguous")
    assert gender.cpu_batch_size in (4, 8, 16) and mating.batch_size in (32, 64, 128)
    assert gender.threads == mating.threads == read_hardware(torch.device("cpu")).cores
    assert set(resolved.plans) == {"gender", "mating"} and all(p.source == "measured" for p in resolved.plans.values())
    if not native_bf16(read_hardware(torch.device("cpu"))):
        assert gender.precision in ("fp32", "int8") and mating.precision in ("fp32", "int8")
    assert all("int8" in plan.checks for plan in resolved.plans.values())  # checked in the same measurement
    monkeypatch.setattr(execution, "time_ways", lambda *a, **k: pytest.fail("a cached choice was measured again"))
    again = resolve_execution(layout, settings)
    assert again.settings == resolved.settings
    assert resolve_execution(layout, resolved.settings).plans["gender"].source == "setting"


def test_unresolved_auto_takes_the_hardware_default_without_measuring() -> None:
    way = way_of(Settings().gender, torch.device("cpu"))
    expected = "bf16" if native_bf16(read_hardware(torch.device("cpu"))) else "fp32"
    assert way == Way(expected, "channels_last", 8, None)


def test_the_run_records_how_each_net_runs(tmp_path: Path) -> None:
    from tasks.nightly import start_run

    layout = HomeLayout(tmp_path / "home")
    store_gender_model(layout, 0)
    run_id = start_run(str(layout.root), None)
    row = pq.read_table(layout.part(RUNS.name, RUNS.partition, run_id, "run")).to_pylist()[0]
    execution_of = dict(row["execution"])
    assert (
        set(execution_of) == {"gender"} and "measured" in execution_of["gender"] and "cores" in execution_of["gender"]
    )
    saved = (layout.run_dir(run_id) / "config.toml").read_text()
    assert 'precision = "auto"' not in saved.split("[gender]")[1].split("[")[0]


def test_a_net_without_an_abstain_band_is_timed_without_an_int8_check(tmp_path: Path) -> None:
    from models.identity import build_identity_net
    from tasks.model_store import save_checkpoint

    layout = HomeLayout(tmp_path / "home")
    model = build_identity_net("mini_xception", 32, 8)
    card = {"name": "panda-identity", "arch": "mini_xception", "input_size": 32, "embedding_dim": 8}
    save_checkpoint(layout.model_dir("identity", "panda-identity"), model.state_dict(), card)
    trial = execution.identity_trial(layout, Settings().identity, torch.device("cpu"))
    assert trial is not None and trial.int8_check is None, "the identity net has no decision band to check int8 on"
    assert trial.seconds_of(Way("fp32", "contiguous", 2, 1)) > 0
