"""Post-training static int8 quantization of a net's convolutional parts (torch.ao FX graph mode), the deterministic
inputs it is calibrated and checked on, and the agreement gate that decides whether int8 may run instead of fp32.
Pure: where the quantized parts are cached and which engine runs them live in tasks.quantized."""

from __future__ import annotations

import copy
import hashlib
import threading
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

INT8_PROB_TOLERANCE = 0.02  # max |P int8 - P fp32| on the check set for int8 to be eligible (see agreement)
QCONFIG_BACKEND = "x86"  # its default qconfig: 7-bit activations (reduce_range), safe on AVX2 without VNNI
QUANT_VERSION = "1"  # bump when the recipe changes, so cached quantized parts are made again
CALIBRATION_ITEMS = 32
CHECK_ITEMS = 32
CALIBRATION_BATCH = 8
TRACE_LOCK = threading.Lock()  # FX tracing patches nn.Module.__call__ process-wide: one trace at a time


@dataclass(frozen=True)
class Agreement:
    """How int8 probabilities compare with fp32's on the check set: the largest absolute difference, decisions that
    changed class (female/abstain/male, or success/failure at 0.5), whether int8 is eligible, and which inputs the
    check ran on ('stored': the version's own faces or windows, stored when it was trained, held-out ones where it had
    any; 'derived': synthetic inputs derived from its label, for a version stored without them)."""

    n: int
    max_abs_diff: float
    changed: int
    flipped: int
    tolerance: float
    passed: bool
    inputs: str = "derived"

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form (cached with the plan)."""
        return asdict(self)


def decision(p: float, band: tuple[float, float]) -> int:
    """-1 at or below the band's low edge, +1 at or above its high edge, 0 inside it (abstain)."""
    low, high = band
    return -1 if p <= low else 1 if p >= high else 0


def agreement(
    reference: Sequence[float],
    candidate: Sequence[float],
    band: tuple[float, float],
    tolerance: float = INT8_PROB_TOLERANCE,
    inputs: str = "derived",
) -> Agreement:
    """int8 is eligible when every probability is within `tolerance` of fp32's and no decision flips between the two
    definite classes (a move into or out of the abstain band is counted in `changed`, not failed: with |dP| <= 0.02
    it happens only within 0.02 of a band edge); an empty check set fails."""
    diffs = [abs(float(a) - float(b)) for a, b in zip(reference, candidate, strict=True)]
    before = [decision(float(p), band) for p in reference]
    after = [decision(float(p), band) for p in candidate]
    changed = sum(a != b for a, b in zip(before, after))
    flipped = sum(a * b < 0 for a, b in zip(before, after))
    largest = max(diffs, default=0.0)
    passed = bool(diffs) and largest <= tolerance and flipped == 0
    return Agreement(len(diffs), largest, changed, flipped, tolerance, passed, inputs)


def spread(total: int, n: int) -> list[int]:
    """At most n indices of range(total), evenly spaced from the first (every one when total <= n)."""
    if total <= n:
        return list(range(total))
    return [index * total // n for index in range(n)]


def version_seed(label: str, purpose: str) -> int:
    """A 63-bit seed derived from a model version's label and what the inputs are for ('calibration' or 'check')."""
    return int.from_bytes(hashlib.sha256(f"{label}|{purpose}|{QUANT_VERSION}".encode()).digest()[:8], "big") >> 1


def synthetic_crops(label: str, purpose: str, n: int, size: int) -> Tensor:
    """n deterministic image-like uint8 crops (N x size x size x 3) for a model version: smooth colour fields
    (bilinear upsampling of 4-16 px random grids) with pixel noise and edges, so activations span what photographs
    give rather than white noise's."""
    generator = torch.Generator().manual_seed(version_seed(label, purpose))
    crops = []
    for index in range(n):
        grid = 4 + 4 * (index % 4)
        field = torch.rand((1, 3, grid, grid), generator=generator)
        smooth = nn.functional.interpolate(field, size=(size, size), mode="bilinear", align_corners=False)[0]
        noise = torch.randn((3, size, size), generator=generator) * 0.06
        crops.append((smooth + noise).clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0))
    return torch.stack(crops)


def synthetic_windows(label: str, purpose: str, n: int, mean: Tensor, std: Tensor) -> Tensor:
    """n deterministic raw MFCC windows (N x 2 x 86 x 40) for a model version: standard normal after the model's own
    per-coefficient standardisation (mean + std * z), which is what its convolutions see."""
    generator = torch.Generator().manual_seed(version_seed(label, purpose))
    z = torch.randn((n, 2, 86, mean.numel()), generator=generator)
    return mean.float().reshape(1, 1, 1, -1) + std.float().reshape(1, 1, 1, -1) * z


class PartsDone(Exception):
    """Raised after the last quantized part has run: calibration needs nothing after it."""


def stop_after_last(_module: nn.Module, _args: object, _output: object) -> None:
    """Forward hook of the last part: end the calibration run there."""
    raise PartsDone


def run_parts(model: nn.Module, parts: Sequence[str], run: Callable[[nn.Module], object]) -> None:
    """One run of the model up to the end of its last part (`parts` in forward order)."""
    hook = model.get_submodule(parts[-1]).register_forward_hook(stop_after_last)
    try:
        run(model)
    except PartsDone:
        pass
    finally:
        hook.remove()


def first_inputs(model: nn.Module, parts: Sequence[str], run: Callable[[nn.Module], object]) -> dict[str, Tensor]:
    """The input each part receives on one run of the model (the example input its tracing needs)."""
    seen: dict[str, Tensor] = {}
    hooks = [
        model.get_submodule(path).register_forward_pre_hook(
            lambda _module, args, path=path: seen.setdefault(path, args[0][:1].detach().clone())
        )
        for path in parts
    ]
    try:
        run_parts(model, parts, run)
    finally:
        for hook in hooks:
            hook.remove()
    return seen


def quantize_parts(
    model: nn.Module, parts: Sequence[str], calibration: Iterable[Callable[[nn.Module], object]]
) -> tuple[nn.Module, dict[str, Tensor]]:
    """A copy of an eval-mode float net whose named parts are static int8 (FX graph mode, QCONFIG_BACKEND's default
    qconfig: per-channel int8 weights, 7-bit histogram-calibrated activations, fp32 at each part's edges), observers
    fed by the calibration runs in their order (deterministic for the same runs; each run stops after the last part, in
    forward order), and the input each part received on the first run (the example its tracing needs). The current
    quantized engine packs the weights."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    runs = list(calibration)
    if not runs:
        raise ValueError("int8 quantization needs at least one calibration batch")
    quantized = copy.deepcopy(model).eval()
    mapping = get_default_qconfig_mapping(QCONFIG_BACKEND)
    with torch.inference_mode():
        examples = first_inputs(quantized, parts, runs[0])
    with TRACE_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in parts:
            quantized.set_submodule(path, prepare_fx(quantized.get_submodule(path), mapping, (examples[path],)))
    with torch.inference_mode():
        for run in runs:
            run_parts(quantized, parts, run)
    with TRACE_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in parts:
            quantized.set_submodule(path, convert_fx(quantized.get_submodule(path)))
    return quantized.eval(), examples
