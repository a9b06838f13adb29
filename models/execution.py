"""How a net runs on the hardware in front of it: the machine's capabilities, the candidate ways (precision, memory
layout, batch size, threads) and the choice among them. Pure: reading the machine and timing live in tasks.execution."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

Precision = Literal["fp32", "bf16", "amp", "int8"]
Layout = Literal["channels_last", "contiguous"]
Source = Literal["setting", "hardware", "measured"]

LAYOUTS: tuple[Layout, ...] = ("channels_last", "contiguous")
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})  # /proc/cpuinfo names of the bf16 dot-product instructions
AVX512_CAPABILITIES = frozenset({"AVX512", "AVX512_BF16", "AMX"})  # torch's ATen dispatch levels that use them
ONEDNN_BF16_ISAS = frozenset(
    {
        "",
        "ALL",
        "AVX512_CORE_BF16",
        "AVX512_CORE_FP16",
        "AVX512_CORE_AMX",
        "AVX512_CORE_AMX_FP16",
        "AVX10_1_512",
        "AVX10_1_512_AMX",
        "AVX10_1_512_AMX_FP16",
        "AVX10_2_512",
        "AVX10_2_512_AMX_2",
    }
)
MIN_CUDA_AMP = (7, 0)  # tensor cores for fp16 (Volta)
MIN_CUDA_BF16 = (8, 0)  # bf16 tensor cores (Ampere)
PRUNE_FACTOR = 3.0  # a way this many times slower than the best on its first pass is not timed further
MIN_PASS_S = 0.05  # a timed pass repeats a short call until it has run this long


@dataclass(frozen=True)
class Hardware:
    """What a machine offers the nets: its CPU (model, flags, torch's dispatch level, oneDNN's cap, usable cores), its
    GPU (name and compute capability, when one is used) and the torch build."""

    device: Literal["cpu", "cuda"]
    cpu_model: str
    cpu_flags: frozenset[str]
    cpu_capability: str
    onednn_max_isa: str
    cores: int
    gpu_name: str | None = None
    gpu_capability: tuple[int, int] | None = None
    torch_version: str = ""

    def identity(self) -> str:
        """A short key of everything that changes which way is fastest: moving a home to another machine changes it."""
        data = {**asdict(self), "cpu_flags": sorted(self.cpu_flags)}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def describe(self) -> str:
        """The machine in words, e.g. 'cpu AMD EPYC (AVX2, no native bf16), 2 cores, torch 2.14.1'."""
        bf16 = "native bf16" if native_bf16(self) else "no native bf16"
        if self.device == "cuda":
            return f"cuda {self.gpu_name} (compute {self.gpu_capability}), {bf16}, torch {self.torch_version}"
        return f"cpu {self.cpu_model} ({self.cpu_capability}, {bf16}), {self.cores} cores, torch {self.torch_version}"


@dataclass(frozen=True)
class Way:
    """One way to run a net: autocast precision, memory layout of its 4-d tensors, batch size and CPU threads."""

    precision: Precision
    layout: Layout
    batch_size: int
    threads: int | None

    def label(self) -> str:
        """e.g. 'bf16 channels_last b8'."""
        return f"{self.precision} {self.layout} b{self.batch_size}"


@dataclass(frozen=True)
class Wanted:
    """A net's settings: None wherever the hardware is to choose."""

    precision: Precision | None
    layout: Layout | None
    batch_size: int | None
    threads: int | None


@dataclass(frozen=True)
class Plan:
    """The way a net will run, how it was chosen (setting, hardware or measured), the measured items per second of
    every way that was tried (label -> rate) and the correctness checks a candidate precision had to pass (precision
    -> models.quantize.Agreement as a dict)."""

    way: Way
    source: Source
    rates: dict[str, float] = field(default_factory=dict)
    checks: dict[str, dict[str, object]] = field(default_factory=dict)

    def describe(self) -> str:
        """e.g. 'fp32 channels_last b8, 2 threads (measured: fp32 channels_last b8 10.5/s, ...)'."""
        threads = f", {self.way.threads} threads" if self.way.threads else ""
        tried = ", ".join(f"{label} {rate:.1f}/s" for label, rate in self.rates.items())
        checked = "".join(
            f"; {precision} vs fp32 max |dP| {check['max_abs_diff']:.1e} on {check['n']} "
            f"{check.get('inputs', 'derived')} inputs ({'eligible' if check['passed'] else 'not eligible'}, "
            f"tolerance {check['tolerance']}"
            f"{', quantized in ' + str(check['quantize_s']) + ' s' if check.get('quantize_s') else ''})"
            for precision, check in self.checks.items()
        )
        return f"{self.way.label()}{threads} ({self.source}{': ' + tried if tried else ''}{checked})"

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form (the cache's and the run record's)."""
        return {"way": asdict(self.way), "source": self.source, "rates": dict(self.rates), "checks": dict(self.checks)}

    @staticmethod
    def from_dict(data: dict[str, object]) -> Plan:
        """Read back as_dict's form."""
        return Plan(
            Way(**data["way"]),  # type: ignore[arg-type]
            data["source"],  # type: ignore[arg-type]
            dict(data.get("rates", {})),  # type: ignore[call-overload]
            dict(data.get("checks", {})),  # type: ignore[call-overload]
        )


def native_bf16(hardware: Hardware) -> bool:
    """Whether bf16 runs natively: on CUDA from compute capability 8.0, on a CPU only with AVX512_BF16 or AMX that
    torch's dispatch and oneDNN are allowed to use (elsewhere oneDNN emulates it, about 5x slower than fp32)."""
    if hardware.device == "cuda":
        return hardware.gpu_capability is not None and hardware.gpu_capability >= MIN_CUDA_BF16
    return (
        bool(hardware.cpu_flags & NATIVE_BF16_FLAGS)
        and hardware.cpu_capability in AVX512_CAPABILITIES
        and hardware.onednn_max_isa.upper() in ONEDNN_BF16_ISAS
    )


def candidate_precisions(hardware: Hardware, int8: bool = False) -> list[Precision]:
    """Precisions worth trying here: fp32 always; fp16 AMP on CUDA with tensor cores; bf16 only where it is native;
    int8 on a CPU for a net that can be quantized (`int8`), never on CUDA."""
    found: list[Precision] = ["fp32"]
    if hardware.device == "cuda" and hardware.gpu_capability is not None and hardware.gpu_capability >= MIN_CUDA_AMP:
        found.append("amp")
    if native_bf16(hardware):
        found.append("bf16")
    if int8 and hardware.device == "cpu":
        found.append("int8")
    return found


def default_precision(hardware: Hardware) -> Precision:
    """The precision chosen without measuring: fp16 AMP on a CUDA GPU with tensor cores, bf16 on a CPU with native bf16,
    else fp32."""
    candidates = candidate_precisions(hardware)
    if "amp" in candidates:
        return "amp"
    return "bf16" if "bf16" in candidates else "fp32"


def default_threads(hardware: Hardware, nets_at_once: int = 1) -> int | None:
    """CPU threads per net: the usable cores shared among the nets running at once; None (unused) on CUDA."""
    return None if hardware.device == "cuda" else max(1, hardware.cores // max(nets_at_once, 1))


def batch_candidates(start: int) -> list[int]:
    """Batch sizes tried around a starting one: half, itself and double."""
    return sorted({max(1, start // 2), start, start * 2})


def planned_threads(wanted: Wanted, hardware: Hardware, nets_at_once: int) -> int | None:
    """The threads setting when given, else the hardware's default."""
    return wanted.threads if wanted.threads is not None else default_threads(hardware, nets_at_once)


def first_round(
    wanted: Wanted,
    hardware: Hardware,
    start_batch: int,
    threads: int | None,
    precisions: Sequence[Precision] | None = None,
) -> list[Way]:
    """The precision and layout ways to try at the starting batch size (each fixed where it is set; the candidate
    precisions default to the hardware's)."""
    precisions = [wanted.precision] if wanted.precision else list(precisions or candidate_precisions(hardware))
    layouts = [wanted.layout] if wanted.layout else list(LAYOUTS)
    batch = wanted.batch_size or start_batch
    return [Way(p, layout, batch, threads) for p in precisions for layout in layouts]


def fixed_plan(
    wanted: Wanted,
    hardware: Hardware,
    start_batch: int,
    nets_at_once: int,
    precisions: Sequence[Precision] | None = None,
) -> Plan | None:
    """The plan when nothing is left to measure (every setting given, or one candidate each), else None."""
    ways = first_round(wanted, hardware, start_batch, planned_threads(wanted, hardware, nets_at_once), precisions)
    if len(ways) > 1 or wanted.batch_size is None:
        return None
    explicit = wanted.precision is not None and wanted.layout is not None
    return Plan(ways[0], "setting" if explicit else "hardware")


def choose_way(
    wanted: Wanted,
    hardware: Hardware,
    start_batch: int,
    nets_at_once: int,
    measure: Callable[[Sequence[Way]], dict[Way, float]],
    precisions: Sequence[Precision] | None = None,
    checks: dict[str, dict[str, object]] | None = None,
) -> Plan:
    """The fastest way a net can run here: every setting that is given is kept; what is left is chosen from the
    hardware when one candidate remains, else measured: precision and layout at the starting batch size, then the
    batch size around it at the winner. `measure` returns items per second of each way it is given; `precisions` are
    the eligible candidates (default: the hardware's), `checks` what made them eligible (kept with the plan)."""
    fixed = fixed_plan(wanted, hardware, start_batch, nets_at_once, precisions)
    if fixed is not None:
        return replace(fixed, checks=dict(checks or {}))
    ways = first_round(wanted, hardware, start_batch, planned_threads(wanted, hardware, nets_at_once), precisions)
    rates = dict(measure(ways))
    best = max(rates, key=rates.__getitem__)
    if wanted.batch_size is None:
        rates.update(
            measure([replace(best, batch_size=b) for b in batch_candidates(best.batch_size) if b != best.batch_size])
        )
    best = max(rates, key=rates.__getitem__)
    return Plan(best, "measured", {way.label(): rate for way, rate in rates.items()}, dict(checks or {}))


def time_ways(
    ways: Sequence[Way], seconds_of: Callable[[Way], float], items_of: Callable[[Way], int], passes: int = 2
) -> dict[Way, float]:
    """Items per second of each way: one untimed warm-up pass, then the best of `passes` timed passes, each repeating
    the call until it has run MIN_PASS_S (a small net's batch takes milliseconds, within the timer's noise); a way
    whose first timed pass is PRUNE_FACTOR times slower per item than the best so far is not timed again."""
    rates: dict[Way, float] = {}

    def one_pass(way: Way) -> float:
        """Mean seconds of a call of the way over at least MIN_PASS_S."""
        total, calls = 0.0, 0
        while calls == 0 or total < MIN_PASS_S:
            total, calls = total + seconds_of(way), calls + 1
        return total / calls

    for way in ways:
        seconds_of(way)
        best = one_pass(way)
        fastest = max(rates.values(), default=0.0)
        if items_of(way) / max(best, 1e-9) * PRUNE_FACTOR >= fastest:
            for _ in range(passes - 1):
                best = min(best, one_pass(way))
        rates[way] = items_of(way) / max(best, 1e-9)
    return rates
