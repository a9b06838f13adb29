"""How each net runs on this machine: read the hardware, measure the candidate ways on the stored net on first use,
cache the choice under the home keyed by the machine, and write it into a run's settings at the run's start."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from models.execution import (
    Hardware,
    Plan,
    Precision,
    Wanted,
    Way,
    candidate_precisions,
    choose_way,
    default_precision,
    fixed_plan,
    time_ways,
)
from models.gender import folded_copy, normalised_pixels, predict_logits
from models.identity import embed_pixels
from models.mating_training import predict_segments
from models.quantize import Agreement
from schemas.config import GenderConfig, IdentityConfig, MatingConfig, Settings
from schemas.home import HomeLayout
from tasks.devices import choose_device, cpu_threads
from tasks.lake import write_json_atomic
from tasks.model_store import model_label, stored_card, stored_check_inputs
from tasks.quantized import cganet_agreement, crop_agreement, int8_cganet, int8_crop_net

CPUINFO = Path("/proc/cpuinfo")
GENDER_START_BATCH = {"cpu": 8, "cuda": 32}
IDENTITY_START_BATCH = {"cpu": 16, "cuda": 64}
MATING_START_BATCH = {"cpu": 64, "cuda": 256}


def cpu_identity(cpuinfo: Path = CPUINFO) -> tuple[str, frozenset[str]]:
    """The CPU's model name and feature flags from /proc/cpuinfo (the platform's processor name and no flags
    elsewhere)."""
    if not cpuinfo.is_file():
        return platform.processor() or platform.machine(), frozenset()
    fields: dict[str, str] = {}
    for line in cpuinfo.read_text().splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields.get("model name", platform.machine()), frozenset(fields.get("flags", "").split())


def usable_cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def read_hardware(device: torch.device) -> Hardware:
    """What this machine offers the nets on the given device (torch's CPU dispatch level and oneDNN's ISA cap
    included, as ATEN_CPU_CAPABILITY and ONEDNN_MAX_CPU_ISA set them)."""
    model, flags = cpu_identity()
    gpu = device.type == "cuda"
    return Hardware(
        device="cuda" if gpu else "cpu",
        cpu_model=model,
        cpu_flags=flags,
        cpu_capability=torch.backends.cpu.get_cpu_capability(),
        onednn_max_isa=os.environ.get("ONEDNN_MAX_CPU_ISA", ""),
        cores=usable_cores(),
        gpu_name=torch.cuda.get_device_name(device) if gpu else None,
        gpu_capability=tuple(torch.cuda.get_device_capability(device)) if gpu else None,  # type: ignore[arg-type]
        torch_version=torch.__version__,
    )


def synchronised(work: Callable[[], Any], device: torch.device) -> float:
    """Wall seconds of one call, CUDA work waited for."""
    start = time.perf_counter()
    work()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


@dataclass(frozen=True)
class NetTrial:
    """One stored net to place: its cache key, its settings, the batch size measuring starts from, the seconds of
    one batch in a given way (the net is loaded on the first call only, so a cached plan loads nothing) and, for a
    net that can run int8, its agreement check against fp32 (models.quantize.Agreement as a dict, with the seconds
    quantizing took)."""

    key: str
    wanted: Wanted
    start_batch: int
    seconds_of: Callable[[Way], float]
    int8_check: Callable[[], dict[str, object]] | None = None


Agreeing = Callable[[torch.nn.Module, torch.nn.Module, str, tuple[float, float], torch.Tensor | None], Agreement]


@dataclass
class Int8Candidate:
    """A stored net's int8 copy, quantized once when first asked for, and its check against the float net on the
    version's stored check inputs (tasks.quantized's agreement for that kind of net)."""

    home: HomeLayout
    kind: str
    label: str
    band: tuple[float, float]
    net: Callable[[], torch.nn.Module]
    quantize: Callable[[torch.nn.Module], tuple[torch.nn.Module, float]]
    agreement: Agreeing

    @functools.cached_property
    def quantized(self) -> tuple[torch.nn.Module, float]:
        """The int8 net and the seconds quantizing took."""
        return self.quantize(self.net())

    def check(self) -> dict[str, object]:
        """The int8 net's agreement with the float one (models.quantize.Agreement as a dict) and the seconds quantizing
        took."""
        model, seconds = self.quantized
        held_out = stored_check_inputs(self.home, self.kind, self.label)
        found = self.agreement(self.net(), model, self.label, self.band, held_out)
        return {**found.as_dict(), "quantize_s": round(seconds, 2)}


def batch_field(config: GenderConfig | MatingConfig | IdentityConfig, device: torch.device) -> str:
    """The config field holding a net's batch size on a device: cpu_batch_size on the CPU where the net has one."""
    return "cpu_batch_size" if device.type == "cpu" and hasattr(config, "cpu_batch_size") else "batch_size"


def wanted_of(config: GenderConfig | MatingConfig | IdentityConfig, batch_size: int | None) -> Wanted:
    """A net's settings with 'auto' and unset as None."""
    return Wanted(
        None if config.precision == "auto" else config.precision,
        None if config.layout == "auto" else config.layout,
        batch_size,
        config.threads,
    )


CropForward = Callable[[torch.nn.Module, torch.Tensor, torch.device, Way], Any]


def crop_net_trial(
    home: HomeLayout,
    kind: str,
    config: GenderConfig | IdentityConfig,
    device: torch.device,
    load: Callable[[str], torch.nn.Module],
    forward: CropForward,
    quantizable: bool = False,
) -> NetTrial | None:
    """A configured net of face crops (BatchNorm folded, as its stage runs it) timed on random uint8 crops by its
    stage's forward pass, int8 too when `quantizable` (checked against fp32 within its abstain band); None without a
    stored model."""
    card = stored_card(home, kind, config.model)
    if card is None:
        return None
    label = model_label(card)

    @functools.cache
    def net() -> torch.nn.Module:
        return folded_copy(load(label))

    int8 = (
        Int8Candidate(
            home,
            kind,
            label,
            (config.abstain_low, config.abstain_high),  # quantizable nets are the gender nets, which have a band
            net,
            lambda folded: int8_crop_net(home, kind, label, folded),
            crop_agreement,
        )
        if quantizable
        else None
    )

    def seconds_of(way: Way) -> float:
        size = net().input_size
        pixels = torch.randint(
            0, 256, (way.batch_size, size, size, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
        )
        model = int8.quantized[0] if int8 is not None and way.precision == "int8" else net()
        with cpu_threads(device, way.threads):
            return synchronised(lambda: forward(model, pixels, device, way), device)

    batch_size = getattr(config, batch_field(config, device))
    start = start_batches(config)[device.type]
    return NetTrial(
        f"{kind}:{label}", wanted_of(config, batch_size), start, seconds_of, int8.check if int8 is not None else None
    )


def gender_logits(model: torch.nn.Module, pixels: torch.Tensor, device: torch.device, way: Way) -> torch.Tensor:
    """The gender stage's forward pass: crops normalised on the device, logits in the given way."""
    return predict_logits(model, normalised_pixels(pixels.to(device)), device, way.precision, way.layout)


def gender_trial(home: HomeLayout, config: GenderConfig, device: torch.device) -> NetTrial | None:
    """The configured gender net timed on random crops; None without one."""

    def load(ref: str) -> torch.nn.Module:
        from tasks.gender_training import load_gender_model

        return load_gender_model(home, ref)[0]

    return crop_net_trial(home, "gender", config, device, load, gender_logits, quantizable=True)


def identity_trial(home: HomeLayout, config: IdentityConfig, device: torch.device) -> NetTrial | None:
    """The configured identity net timed embedding random crops; None without one."""

    def load(ref: str) -> torch.nn.Module:
        from tasks.identity_training import load_identity_model

        return load_identity_model(home, ref)[0]

    return crop_net_trial(home, "identity", config, device, load, embed_pixels)


def mating_trial(home: HomeLayout, config: MatingConfig, device: torch.device) -> NetTrial | None:
    """The configured CGANet timed on random MFCC windows; None without one."""
    card = stored_card(home, "mating", config.model)
    if card is None:
        return None
    label = model_label(card)

    @functools.cache
    def net() -> torch.nn.Module:
        from tasks.mating import load_mating_model

        return load_mating_model(home, label, device)[0]

    band = (config.abstain_low, config.abstain_high)
    int8 = Int8Candidate(
        home, "mating", label, band, net, lambda model: int8_cganet(home, label, model), cganet_agreement
    )

    def seconds_of(way: Way) -> float:
        mfcc = torch.randn((way.batch_size, 2, 86, 40), generator=torch.Generator().manual_seed(0))
        model = int8.quantized[0] if way.precision == "int8" else net()
        with cpu_threads(device, way.threads):
            return synchronised(lambda: predict_segments(model, mfcc, device, way.precision, way.layout), device)

    return NetTrial(
        f"mating:{label}",
        wanted_of(config, config.batch_size),
        MATING_START_BATCH[device.type],
        seconds_of,
        int8.check,
    )


def read_cache(path: Path) -> dict[str, Any]:
    """The home's execution cache ({machine identity: {"hardware": ..., "plans": {key: plan}}}); empty when absent or
    unreadable (it is only a cache: what it lacks is measured again)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def cache_key(trial: NetTrial) -> str:
    """The cache entry of a net under its settings (a changed setting is measured again)."""
    wanted = trial.wanted
    return f"{trial.key}|{wanted.precision}|{wanted.layout}|{wanted.batch_size}|{wanted.threads}"


def plan_for(cache: Path, hardware: Hardware, trial: NetTrial, nets_at_once: int) -> Plan:
    """The way a net runs on this machine: fixed by its settings or the hardware, else from the home's cache when this
    machine placed it before, else measured and cached. On a CPU a quantizable net's int8 is a candidate only when
    its agreement check passes (run in the same first-use measurement and cached with the plan); a set precision is
    kept unchecked."""
    if trial.wanted.precision == "int8" and (hardware.device != "cpu" or trial.int8_check is None):
        raise ValueError(f"precision 'int8' runs only on the CPU and for the gender and mating nets ({trial.key})")
    offered = candidate_precisions(hardware, int8=trial.int8_check is not None)
    fixed = fixed_plan(trial.wanted, hardware, trial.start_batch, nets_at_once, offered)
    if fixed is not None:
        return fixed
    machine = read_cache(cache).get(hardware.identity(), {})
    cached = machine.get("plans", {}).get(cache_key(trial))
    if cached is not None:
        with contextlib.suppress(KeyError, TypeError, ValueError):
            return Plan.from_dict(cached)
    precisions, checks = eligible_precisions(trial, offered)
    plan = choose_way(
        trial.wanted,
        hardware,
        trial.start_batch,
        nets_at_once,
        lambda ways: time_ways(ways, trial.seconds_of, lambda way: way.batch_size),
        precisions,
        checks,
    )
    data = read_cache(cache)
    plans = {**data.get(hardware.identity(), {}).get("plans", {}), cache_key(trial): plan.as_dict()}
    write_json_atomic(cache, {**data, hardware.identity(): {"hardware": hardware.describe(), "plans": plans}})
    return plan


def eligible_precisions(
    trial: NetTrial, offered: list[Precision]
) -> tuple[list[Precision], dict[str, dict[str, object]]]:
    """The offered precisions less int8 when its agreement check fails (the check run only when int8 is offered and
    left to choose), and the checks run."""
    if "int8" not in offered or trial.wanted.precision is not None or trial.int8_check is None:
        return offered, {}
    check = trial.int8_check()
    eligible = [p for p in offered if p != "int8" or check["passed"]]
    return eligible, {"int8": check}


def nets_at_once(settings: Settings) -> int:
    """How many nets share this machine's cores: the local Dask cluster's worker processes, else one."""
    runner = settings.runner
    return runner.n_workers if runner.kind == "dask" and not runner.address else 1


@dataclass(frozen=True)
class Execution:
    """A run's settings with every automatic choice of the nets made, each net's plan and its hardware in words (by
    config section)."""

    settings: Settings
    plans: dict[str, Plan]
    hardware: dict[str, str]

    def lines(self) -> list[str]:
        """One line per net, for the run's log and record."""
        return [f"{net}: {plan.describe()} on {self.hardware[net]}" for net, plan in self.plans.items()]


TRIALS: dict[str, Callable[[HomeLayout, Any, torch.device], NetTrial | None]] = {
    "gender": gender_trial,
    "mating": mating_trial,
    "identity": identity_trial,
}


def resolve_execution(
    home: HomeLayout, settings: Settings, cache: Path | None = None, sections: tuple[str, ...] = tuple(TRIALS)
) -> Execution:
    """Choose precision, layout, batch size and threads of the configured nets (gender, mating and identity, or the
    given sections; a section without a stored model is left alone) for this machine, cached under the home (or in
    `cache`), and return the settings with those choices written in."""
    updates: dict[str, Any] = {}
    plans: dict[str, Plan] = {}
    described: dict[str, str] = {}
    for section in sections:
        make_trial = TRIALS[section]
        config = getattr(settings, section)
        device = choose_device(config.device)
        trial = make_trial(home, config, device)
        if trial is None:
            continue
        hardware = read_hardware(device)
        plan = plans[section] = plan_for(cache or home.execution_cache, hardware, trial, nets_at_once(settings))
        described[section] = hardware.describe()
        updates[section] = config.model_copy(
            update={
                "precision": plan.way.precision,
                "layout": plan.way.layout,
                "threads": plan.way.threads,
                batch_field(config, device): plan.way.batch_size,
            }
        )
    return Execution(settings.model_copy(update=updates), plans, described)


def start_batches(config: GenderConfig | MatingConfig | IdentityConfig) -> dict[str, int]:
    """The batch size measuring starts from on each device kind for a net's config section."""
    if isinstance(config, GenderConfig):
        return GENDER_START_BATCH
    return IDENTITY_START_BATCH if isinstance(config, IdentityConfig) else MATING_START_BATCH


def way_of(config: GenderConfig | MatingConfig | IdentityConfig, device: torch.device) -> Way:
    """The way a net's config names on a device; what is still 'auto' or unset (a stage called without
    resolve_execution) takes the hardware's default precision, channels_last, the starting batch size and torch's
    threads, without measuring."""
    batch_size = getattr(config, batch_field(config, device))
    start = start_batches(config)[device.type]
    precision = default_precision(read_hardware(device)) if config.precision == "auto" else config.precision
    layout = "channels_last" if config.layout == "auto" else config.layout
    return Way(precision, layout, batch_size or start, config.threads)
