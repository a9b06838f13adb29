"""How nets run on a machine: 'auto' follows the hardware's capabilities (injected here, not the host's), settings win,
and measuring picks the fastest candidate."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from models.execution import (
    Hardware,
    Plan,
    Wanted,
    Way,
    candidate_precisions,
    choose_way,
    default_precision,
    native_bf16,
    time_ways,
)
from tests.machines import AVX2_EPYC, H200, ZEN4

SAPPHIRE = Hardware(
    device="cpu",
    cpu_model="Xeon 8480",
    cpu_flags=frozenset({"avx2", "avx512f", "amx_bf16", "amx_tile"}),
    cpu_capability="AVX512",
    onednn_max_isa="",
    cores=8,
    torch_version="2.14.1",
)
AUTO = Wanted(precision=None, layout=None, batch_size=None, threads=None)


def rates_by_precision(table: dict[str, float]):
    """A measure() whose items per second depend on the precision and layout only, recording every way it is given."""
    seen: list[Way] = []

    def measure(ways: Sequence[Way]) -> dict[Way, float]:
        seen.extend(ways)
        return {way: table[f"{way.precision} {way.layout}"] + way.batch_size / 100 for way in ways}

    return measure, seen


def test_bf16_is_native_only_with_avx512_bf16_or_amx_that_torch_and_onednn_may_use() -> None:
    assert not native_bf16(AVX2_EPYC)
    assert native_bf16(ZEN4) and native_bf16(SAPPHIRE)
    capped = Hardware(**{**ZEN4.__dict__, "onednn_max_isa": "AVX2"})
    dispatched = Hardware(**{**ZEN4.__dict__, "cpu_capability": "AVX2"})
    assert not native_bf16(capped) and not native_bf16(dispatched)
    assert native_bf16(H200)


def test_auto_precision_is_fp32_without_native_bf16_and_bf16_with_it() -> None:
    assert candidate_precisions(AVX2_EPYC) == ["fp32"] and default_precision(AVX2_EPYC) == "fp32"
    assert candidate_precisions(ZEN4) == ["fp32", "bf16"] and default_precision(ZEN4) == "bf16"
    assert candidate_precisions(H200) == ["fp32", "amp", "bf16"] and default_precision(H200) == "amp"


def test_auto_never_tries_emulated_bf16_and_picks_the_fastest_measured_way() -> None:
    table = {"fp32 channels_last": 10.0, "fp32 contiguous": 8.0, "bf16 channels_last": 2.0, "bf16 contiguous": 0.3}
    measure, seen = rates_by_precision(table)
    plan = choose_way(AUTO, AVX2_EPYC, 8, 1, measure)
    assert plan.way == Way("fp32", "channels_last", 16, 2) and plan.source == "measured"
    assert {way.precision for way in seen} == {"fp32"}
    assert {way.batch_size for way in seen} == {4, 8, 16}


def test_with_native_bf16_the_measured_winner_is_bf16() -> None:
    table = {"fp32 channels_last": 10.0, "fp32 contiguous": 8.0, "bf16 channels_last": 30.0, "bf16 contiguous": 20.0}
    measure, seen = rates_by_precision(table)
    plan = choose_way(AUTO, ZEN4, 8, 1, measure)
    assert plan.way.precision == "bf16" and plan.way.layout == "channels_last"
    assert {(way.precision, way.layout) for way in seen} == {
        (p, lay) for p in ("fp32", "bf16") for lay in ("channels_last", "contiguous")
    }
    assert set(plan.rates) == {way.label() for way in seen}


def test_explicit_settings_win_and_are_not_measured() -> None:
    measure, seen = rates_by_precision({})
    wanted = Wanted(precision="bf16", layout="contiguous", batch_size=3, threads=1)
    plan = choose_way(wanted, AVX2_EPYC, 8, 1, measure)
    assert plan == Plan(Way("bf16", "contiguous", 3, 1), "setting") and not seen


def test_a_fixed_precision_still_measures_what_is_left() -> None:
    measure, seen = rates_by_precision({"fp32 channels_last": 1.0, "fp32 contiguous": 5.0})
    plan = choose_way(Wanted("fp32", None, 8, None), ZEN4, 8, 2, measure)
    assert plan.way == Way("fp32", "contiguous", 8, 1)  # two cores shared by two nets
    assert {way.precision for way in seen} == {"fp32"} and {way.batch_size for way in seen} == {8}


def test_one_candidate_left_is_the_hardware_s_choice_without_measuring() -> None:
    measure, seen = rates_by_precision({})
    plan = choose_way(Wanted(None, "channels_last", 8, None), AVX2_EPYC, 8, 1, measure)
    assert plan.way == Way("fp32", "channels_last", 8, 2) and plan.source == "hardware" and not seen


def test_machines_with_other_capabilities_have_other_identities() -> None:
    assert AVX2_EPYC.identity() != ZEN4.identity()
    assert AVX2_EPYC.identity() == Hardware(**AVX2_EPYC.__dict__).identity()
    assert AVX2_EPYC.identity() != Hardware(**{**AVX2_EPYC.__dict__, "torch_version": "2.15.0"}).identity()


def test_time_ways_keeps_the_best_pass_and_stops_timing_a_hopeless_way() -> None:
    calls: dict[str, int] = {}
    seconds = {"fp32": [1.0, 0.5, 0.4], "bf16": [9.0, 9.0, 9.0]}

    def seconds_of(way: Way) -> float:
        calls[way.precision] = calls.get(way.precision, 0) + 1
        return seconds[way.precision][calls[way.precision] - 1]

    ways = [Way("fp32", "channels_last", 4, 1), Way("bf16", "channels_last", 4, 1)]
    rates = time_ways(ways, seconds_of, lambda way: way.batch_size, passes=2)
    assert rates[ways[0]] == pytest.approx(4 / 0.4)
    assert rates[ways[1]] == pytest.approx(4 / 9.0)
    assert calls == {"fp32": 3, "bf16": 2}  # warm-up plus one pass: 9 s per 4 items is over 3x the best


def test_a_pass_over_a_fast_batch_repeats_it_until_it_has_run_long_enough() -> None:
    from models.execution import MIN_PASS_S

    calls: list[Way] = []

    def seconds_of(way: Way) -> float:
        calls.append(way)
        return 0.001

    way = Way("fp32", "channels_last", 8, 1)
    rates = time_ways([way], seconds_of, lambda w: w.batch_size, passes=2)
    assert rates[way] == pytest.approx(8 / 0.001)
    assert len(calls) >= 1 + 2 * round(MIN_PASS_S / 0.001)  # the warm-up, then two passes of 50 calls each
