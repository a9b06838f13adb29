"""int8 as a candidate precision: offered on a CPU and never on CUDA, eligible only when it agrees with fp32, cached
with the machine's choice, forced by the setting end to end, and deterministic."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from models.execution import Wanted, Way, candidate_precisions
from models.gender import build_gender_net, calibrated_probs, folded_copy, normalised_pixels, predict_logits
from models.mating_training import MatingTrainSettings, build_mating_model, predict_segments
from models.quantize import CHECK_ITEMS, INT8_PROB_TOLERANCE, agreement, synthetic_crops
from schemas.config import load_settings
from schemas.home import HomeLayout
from schemas.tables import GENDER_PREDICTIONS, MATING_PREDICTIONS
from tasks.execution import NetTrial, plan_for
from tasks.faces import FACES_STAGE
from tasks.gender import GENDER_STAGE
from tasks.ingest import ingest_drop_dir
from tasks.mating import MATING_STAGE
from tasks.model_store import store_version, stored_check_inputs
from tasks.quantized import cganet_agreement, crop_agreement, int8_cganet, int8_crop_net, int8_folder
from tasks.segments import SEGMENTS_STAGE
from tasks.stages import run_on_drop
from tests.machines import AVX2_EPYC, H200, ZEN4
from tests.pipeline_home import CONFIG, staged_home


def test_int8_is_offered_on_a_cpu_for_a_quantizable_net_and_never_on_cuda() -> None:
    assert candidate_precisions(AVX2_EPYC, int8=True) == ["fp32", "int8"]
    assert candidate_precisions(ZEN4, int8=True) == ["fp32", "bf16", "int8"]
    assert "int8" not in candidate_precisions(AVX2_EPYC)  # a net that cannot be quantized (the identity net)
    assert "int8" not in candidate_precisions(H200, int8=True)


def test_agreement_fails_outside_the_tolerance_or_on_a_flip_and_over_nothing() -> None:
    reference = [0.1, 0.5, 0.9, 0.795]
    assert agreement(reference, [p + 0.01 for p in reference], (0.2, 0.8)).passed
    near = agreement(reference, [0.1, 0.5, 0.9, 0.805], (0.2, 0.8))
    assert near.passed and near.changed == 1 and near.flipped == 0  # into the band's edge, within tolerance
    assert not agreement(reference, [0.1, 0.5, 0.9 - 0.03, 0.795], (0.2, 0.8)).passed
    assert agreement([0.49], [0.51], (0.5, 0.5), tolerance=0.05).flipped == 1
    assert not agreement([0.49], [0.51], (0.5, 0.5), tolerance=0.05).passed
    assert not agreement([], [], (0.2, 0.8)).passed


def int8_fastest_trial(calls: list[Way], checks: list[int], difference: float) -> NetTrial:
    """A net on which int8 is four times faster than fp32 and whose int8 probabilities differ from fp32's by
    `difference` on its check set (counting checks)."""

    def seconds_of(way: Way) -> float:
        calls.append(way)
        return {"int8": 0.1, "fp32": 0.4, "bf16": 0.2}[way.precision] * (1 if way.layout == "channels_last" else 2)

    def int8_check() -> dict[str, object]:
        checks.append(1)
        reference = [0.1, 0.3, 0.7, 0.95]
        return {**agreement(reference, [p + difference for p in reference], (0.2, 0.8)).as_dict(), "quantize_s": 1.0}

    return NetTrial("gender:panda-gender@v1", Wanted(None, None, 8, None), 8, seconds_of, int8_check)


def test_the_gate_rejects_int8_that_disagrees_and_accepts_it_otherwise(tmp_path: Path) -> None:
    calls: list[Way] = []
    rejected = plan_for(tmp_path / "a.json", AVX2_EPYC, int8_fastest_trial(calls, [], 0.05), 1)
    assert rejected.way.precision == "fp32" and all(way.precision != "int8" for way in calls)
    assert rejected.checks["int8"]["passed"] is False and "not eligible" in rejected.describe()
    accepted = plan_for(tmp_path / "b.json", AVX2_EPYC, int8_fastest_trial(calls, [], 0.005), 1)
    assert accepted.way.precision == "int8" and accepted.checks["int8"]["passed"] is True
    assert accepted.checks["int8"]["max_abs_diff"] == pytest.approx(0.005)


def test_an_explicit_precision_wins_over_the_gate(tmp_path: Path) -> None:
    calls: list[Way] = []
    forbidden = replace(int8_fastest_trial(calls, [], 0.0), wanted=Wanted("fp32", None, 8, None))
    assert plan_for(tmp_path / "c.json", AVX2_EPYC, forbidden, 1).way.precision == "fp32"
    checks: list[int] = []
    forced = replace(int8_fastest_trial(calls, checks, 0.5), wanted=Wanted("int8", None, 8, None))
    plan = plan_for(tmp_path / "d.json", AVX2_EPYC, forced, 1)
    assert plan.way.precision == "int8" and not checks  # forced: not checked, not refused
    with pytest.raises(ValueError, match="CPU"):
        plan_for(tmp_path / "e.json", H200, forced, 1)


def test_the_checked_choice_is_cached_per_machine(tmp_path: Path) -> None:
    cache, calls, checks = tmp_path / "hardware" / "execution.json", [], []
    first = plan_for(cache, AVX2_EPYC, int8_fastest_trial(calls, checks, 0.0), 1)
    assert first.way.precision == "int8" and len(checks) == 1
    again = plan_for(cache, AVX2_EPYC, int8_fastest_trial(calls, checks, 0.0), 1)
    assert again == first and len(checks) == 1  # from the cache: neither timed nor checked again
    plan_for(cache, ZEN4, int8_fastest_trial(calls, checks, 0.0), 1)
    assert len(checks) == 2  # another machine checks and measures again
    stored = json.loads(cache.read_text())
    assert stored[AVX2_EPYC.identity()]["plans"]["gender:panda-gender@v1|None|None|8|None"]["checks"]["int8"]["passed"]


def crop_probabilities(net: torch.nn.Module, folded: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """Calibrated P(male) of uint8 crops through a net run int8."""
    return calibrated_probs(folded, predict_logits(net, normalised_pixels(pixels), "cpu", "int8"))


def test_quantization_is_deterministic_and_independent_of_the_batch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    folded = folded_copy(build_gender_net("mini_xception", 32).eval())
    first, spent = int8_crop_net(HomeLayout(tmp_path / "a"), "gender", "g@v1", folded)
    second, _ = int8_crop_net(HomeLayout(tmp_path / "b"), "gender", "g@v1", folded)
    cached, again = int8_crop_net(HomeLayout(tmp_path / "a"), "gender", "g@v1", folded)
    assert spent > 0 and again == 0 and (int8_folder(HomeLayout(tmp_path / "a"), "gender", "g@v1")).is_dir()
    pixels = synthetic_crops("other inputs", "test", 12, 32)
    whole = crop_probabilities(first, folded, pixels)
    assert torch.equal(whole, crop_probabilities(second, folded, pixels))
    assert torch.equal(whole, crop_probabilities(cached, folded, pixels))
    parts = torch.cat([crop_probabilities(first, folded, pixels[i : i + n]) for i, n in ((0, 1), (1, 4), (5, 7))])
    assert torch.equal(whole, parts)
    reference = calibrated_probs(folded, predict_logits(folded, normalised_pixels(pixels), "cpu", "fp32"))
    assert (whole - reference).abs().max() <= INT8_PROB_TOLERANCE
    other, _ = int8_crop_net(HomeLayout(tmp_path / "c"), "gender", "g@v2", folded)  # another version, other inputs
    assert int8_folder(HomeLayout(tmp_path / "c"), "gender", "g@v2").is_dir() and other is not first


def test_cganet_int8_is_deterministic_and_independent_of_the_batch(tmp_path: Path) -> None:
    model = build_mating_model(MatingTrainSettings(filters=4, hidden=4), 0).eval()
    first, _ = int8_cganet(HomeLayout(tmp_path / "a"), "m@v1", model)
    second, _ = int8_cganet(HomeLayout(tmp_path / "b"), "m@v1", model)
    windows = torch.randn((10, 2, 86, 40), generator=torch.Generator().manual_seed(3))
    cpu = torch.device("cpu")
    whole = predict_segments(first, windows, cpu, "int8").p_success
    assert torch.equal(whole, predict_segments(second, windows, cpu, "int8").p_success)
    parts = torch.cat([predict_segments(first, windows[i : i + 5], cpu, "int8").p_success for i in (0, 5)])
    assert torch.allclose(whole, parts, atol=1e-6)  # the GRUs stay float: oneDNN may sum a batch otherwise
    assert (whole - predict_segments(model, windows, cpu, "fp32").p_success).abs().max() <= INT8_PROB_TOLERANCE


def stage_predictions(tmp_path: Path, precision: str) -> tuple[dict[str, float], dict[str, float], HomeLayout]:
    """P(male) per face and p_success per window of the staged drop, both nets run in the given precision."""
    drop, home, _ = staged_home(tmp_path / precision)
    config = tmp_path / f"{precision}.toml"
    config.write_text(
        CONFIG.replace("[gender]\n", f'[gender]\nprecision = "{precision}"\ndevice = "cpu"\n')
        + f'[mating]\nprecision = "{precision}"\ndevice = "cpu"\n'
    )
    layout, settings = HomeLayout(home), load_settings(config, home=home)
    ingested = ingest_drop_dir(drop, layout, "run-1", settings, lambda: None)
    for stage in (FACES_STAGE, GENDER_STAGE, SEGMENTS_STAGE, MATING_STAGE):
        run_on_drop(stage, layout, drop, ingested.drop_id, "run-1", settings, lambda: None)

    def rows(table, stage: str, key: str, value: str) -> dict[str, float]:
        part = layout.part(table.name, table.partition, ingested.drop_id, stage)
        return {row[key]: row[value] for row in pq.read_table(part).to_pylist()}

    return (
        rows(GENDER_PREDICTIONS, "gender", "face_id", "p_male"),
        rows(MATING_PREDICTIONS, "mating", "segment_id", "p_success"),
        layout,
    )


def test_forced_int8_runs_the_stages_end_to_end_within_tolerance(tmp_path: Path) -> None:
    p_male, p_success, layout = stage_predictions(tmp_path, "int8")
    fp32_male, fp32_success, _ = stage_predictions(tmp_path, "fp32")
    assert p_male and p_success and set(p_male) == set(fp32_male) and set(p_success) == set(fp32_success)
    assert max(abs(p_male[k] - fp32_male[k]) for k in p_male) <= INT8_PROB_TOLERANCE
    assert max(abs(p_success[k] - fp32_success[k]) for k in p_success) <= INT8_PROB_TOLERANCE
    assert any((layout.execution_cache.parent / "int8").glob("gender-*")), "the quantized gender net is cached"
    assert any((layout.execution_cache.parent / "int8").glob("mating-*")), "the quantized CGANet is cached"
    assert not np.isclose(sum(p_male.values()), sum(fp32_male.values()), rtol=0, atol=0)  # int8 really ran


def test_the_gate_checks_a_version_on_its_stored_held_out_inputs(tmp_path: Path) -> None:
    torch.manual_seed(0)
    layout, folded = HomeLayout(tmp_path), folded_copy(build_gender_net("mini_xception", 32).eval())
    quantized, _ = int8_crop_net(layout, "gender", "g@v1", folded)
    held_out = synthetic_crops("faces of the test animals", "test", 5, 32)
    store_version(layout, "gender", folded.state_dict(), {"name": "g"}, held_out)
    stored = stored_check_inputs(layout, "gender", "g@v1")
    assert torch.equal(stored, held_out) and stored_check_inputs(layout, "gender", "g@v2") is None
    on_faces = crop_agreement(folded, quantized, "g@v1", (0.2, 0.8), stored)
    assert (on_faces.inputs, on_faces.n) == ("stored", 5)
    derived = crop_agreement(folded, quantized, "g@v1", (0.2, 0.8), None)  # a version stored without them
    assert (derived.inputs, derived.n) == ("derived", CHECK_ITEMS)
    other_size = crop_agreement(folded, quantized, "g@v1", (0.2, 0.8), synthetic_crops("x", "test", 5, 64))
    assert other_size.inputs == "derived"
    model = build_mating_model(MatingTrainSettings(filters=4, hidden=4), 0).eval()
    windows = torch.randn((6, 2, 86, 40), generator=torch.Generator().manual_seed(1))
    audio = cganet_agreement(model, int8_cganet(layout, "m@v1", model)[0], "m@v1", (0.4, 0.6), windows)
    assert (audio.inputs, audio.n) == ("stored", 6)
    assert "on 6 stored inputs" in described_with_check(audio.as_dict())


def described_with_check(check: dict[str, object]) -> str:
    """A plan's description carrying the given int8 check."""
    from models.execution import Plan

    return Plan(Way("fp32", "channels_last", 8, 2), "measured", {}, {"int8": check}).describe()
