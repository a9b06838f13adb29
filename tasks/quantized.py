"""int8 nets on the CPU: quantized once per model version (calibrated on inputs derived from the version, see
models.quantize), cached under the home as TorchScript parts, run by oneDNN's quantized kernels."""

from __future__ import annotations

import copy
import os
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from models.execution import Precision
from models.gender import calibrated_probs, normalised_pixels, predict_logits
from models.mating_training import predict_segments
from models.quantize import (
    CALIBRATION_BATCH,
    CALIBRATION_ITEMS,
    CHECK_ITEMS,
    QUANT_VERSION,
    TRACE_LOCK,
    Agreement,
    agreement,
    quantize_parts,
    synthetic_crops,
    synthetic_windows,
)
from schemas.home import HomeLayout

# oneDNN honours ONEDNN_MAX_CPU_ISA (so a capped run is an honest AVX2 figure) and is as fast as the x86 engine
# natively; fbgemm ignores that cap (FBGEMM_ENABLE_INSTRUCTIONS caps it).
ENGINE = "onednn"

Calibration = Callable[[], list[Callable[[nn.Module], object]]]


def use_int8_engine() -> None:
    """Make oneDNN the engine that packs and runs quantized weights in this process."""
    if ENGINE in torch.backends.quantized.supported_engines and torch.backends.quantized.engine != ENGINE:
        torch.backends.quantized.engine = ENGINE


def int8_folder(home: HomeLayout, kind: str, label: str) -> Path:
    """Where a model version's quantized parts are cached: beside the execution cache, by kind, version and recipe."""
    return home.execution_cache.parent / "int8" / f"{kind}-{label.replace('@', '-')}-q{QUANT_VERSION}"


def cached_parts(folder: Path, parts: Sequence[str]) -> dict[str, Path] | None:
    """Each part's TorchScript file when all of them are cached, else None."""
    files = {path: folder / f"{path}.pt" for path in parts}
    return files if all(file.is_file() for file in files.values()) else None


def save_script(module: nn.Module, example: torch.Tensor, file: Path) -> None:
    """Trace a quantized part on its example input and save it atomically."""
    file.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the quantization scales are constants; TorchScript's deprecation notice
        traced = torch.jit.trace(module, example, check_trace=False)
        temporary = file.with_suffix(f".tmp{os.getpid()}")
        torch.jit.save(traced, str(temporary))
    os.replace(temporary, file)


def int8_net(
    home: HomeLayout, kind: str, label: str, model: nn.Module, parts: Sequence[str], calibration: Calibration
) -> tuple[nn.Module, float]:
    """A copy of the eval-mode float net with its parts int8, and the seconds spent quantizing (0 when cached):
    loaded from the home's cache, else quantized on the calibration runs and cached (loading traces nothing, so it is
    safe while other nets run in other threads)."""
    use_int8_engine()
    folder = int8_folder(home, kind, label)
    spent = 0.0
    if cached_parts(folder, parts) is None:
        start = time.perf_counter()
        quantized, examples = quantize_parts(model, parts, calibration())
        with TRACE_LOCK:
            for path in parts:
                save_script(quantized.get_submodule(path), examples[path], folder / f"{path}.pt")
        spent = time.perf_counter() - start
    files = cached_parts(folder, parts) or {}
    net = copy.deepcopy(model).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript's deprecation notice
        for path, file in files.items():
            net.set_submodule(path, torch.jit.load(str(file), map_location="cpu"))
    return net, spent


def int8_crop_net(home: HomeLayout, kind: str, label: str, folded: nn.Module) -> tuple[nn.Module, float]:
    """A face-crop net (BatchNorm folded) with its int8_parts quantized, calibrated on CALIBRATION_ITEMS synthetic
    crops derived from the version's label in batches of CALIBRATION_BATCH; and the seconds quantizing took."""
    size = int(folded.input_size)

    def calibration() -> list[Callable[[nn.Module], object]]:
        crops = synthetic_crops(label, "calibration", CALIBRATION_ITEMS, size)
        return [lambda net, batch=batch: net(normalised_pixels(batch)) for batch in crops.split(CALIBRATION_BATCH)]

    return int8_net(home, kind, label, folded, folded.int8_parts(), calibration)


def int8_cganet(home: HomeLayout, label: str, model: nn.Module) -> tuple[nn.Module, float]:
    """A CGANet with its convolutions int8, calibrated on synthetic MFCC windows derived from the version's label
    (standard normal after the model's own standardisation); and the seconds quantizing took."""

    def calibration() -> list[Callable[[nn.Module], object]]:
        windows = synthetic_windows(label, "calibration", 2 * CALIBRATION_ITEMS, model.input_mean, model.input_std)
        return [lambda net, batch=batch: net(batch) for batch in windows.split(2 * CALIBRATION_BATCH)]

    return int8_net(home, "mating", label, model, model.int8_parts(), calibration)


def crop_agreement(
    folded: nn.Module, quantized: nn.Module, label: str, band: tuple[float, float], held_out: torch.Tensor | None
) -> Agreement:
    """Calibrated P(male) of the int8 net against the float net's on the face crops stored with the version when it
    was trained (N x S x S x 3 uint8), else on CHECK_ITEMS synthetic crops of the version (a set apart from the
    calibration one)."""
    size = int(folded.input_size)
    usable = held_out is not None and len(held_out) > 0 and tuple(held_out.shape[1:]) == (size, size, 3)
    crops = held_out if usable else synthetic_crops(label, "check", CHECK_ITEMS, size)
    cpu = torch.device("cpu")

    def probabilities(net: nn.Module, precision: Precision) -> list[float]:
        return [
            p
            for batch in crops.split(CALIBRATION_BATCH)
            for p in calibrated_probs(
                folded, predict_logits(net, normalised_pixels(batch), cpu, precision, "channels_last")
            ).tolist()
        ]

    inputs = "stored" if usable else "derived"
    return agreement(probabilities(folded, "fp32"), probabilities(quantized, "int8"), band, inputs=inputs)


def cganet_agreement(
    model: nn.Module, quantized: nn.Module, label: str, band: tuple[float, float], held_out: torch.Tensor | None
) -> Agreement:
    """p_success of the int8 CGANet against the float one's on the MFCC windows stored with the version when it was
    trained (N x 2 x 86 x 40), else on synthetic check windows of the version."""
    usable = held_out is not None and len(held_out) > 0 and tuple(held_out.shape[1:]) == (2, 86, 40)
    windows = (
        held_out.float()
        if usable
        else synthetic_windows(label, "check", 2 * CHECK_ITEMS, model.input_mean, model.input_std)
    )
    cpu = torch.device("cpu")

    def probabilities(net: nn.Module, precision: Precision) -> list[float]:
        return predict_segments(net, windows, cpu, precision, "channels_last").p_success.tolist()

    inputs = "stored" if usable else "derived"
    return agreement(probabilities(model, "fp32"), probabilities(quantized, "int8"), band, inputs=inputs)
