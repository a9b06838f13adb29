"""`breedwatch bench`: the pipeline's image and audio stages against the naive way and the model-only bound, in one
process.

On one generated drop (tasks.sample_drop) in a scratch folder, each repeat ingests the drop into a fresh home and times
(a) the pipeline's own stages as the nightly flow runs them (faces, gender, segments, mating), (b) the naive way
(per-image MTCNN.detect, per-face fp32 gender net in default layout, per-segment librosa MFCC and CGANet one segment
at a time) and (c) the model-only bound (the same forward passes on tensors already in memory, in the fastest way this
hardware offers: every native precision in each memory layout, each way's rate reported). How the pipeline's nets run
is chosen once before the repeats, as a nightly run chooses it at its start. The audio path takes under half a
second, so its pipeline stages and bound are timed `audio_rounds` times per repeat, each round on a fresh home. The
pipeline's stored results are compared with the naive way's. Models are randomly initialised (weights do not change
speed) and nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from schemas.bench import QUICK_ANIMALS, BenchOptions
from schemas.config import Settings
from schemas.home import HomeLayout
from tasks.bench.repeat import run_repeat
from tasks.bench.scratch import bench_settings, store_models, write_drop
from tasks.bench.summary import summarise
from tasks.devices import choose_device, retain_freed_memory
from tasks.execution import Execution, resolve_execution
from tasks.faces import HUMAN_PRESET


def run_bench(
    base: Settings, options: BenchOptions, folder: Path, report: Callable[[str], None] = lambda _: None
) -> dict[str, Any]:
    """Generate the drop in `folder` and run every repeat there; the summary of the median repeat timings."""
    if options.repeat < 1 or options.audio_rounds < 1:
        raise ValueError(f"repeat and audio rounds must be at least 1, got {options.repeat} and {options.audio_rounds}")
    if options.extra_images is not None and not options.extra_images.is_dir():
        raise ValueError(f"extra images folder {options.extra_images} does not exist")
    device = choose_device(base.faces.device)
    retained = retain_freed_memory(base.runtime.retain_freed_mb)  # before any way runs: all three share the allocator
    report(f"writing a sample drop of {options.animals} animals")
    drop_dir = write_drop(folder, options)
    report("choosing how the nets run on this machine (measured once, not timed)")
    execution = place_nets(folder / "placement", base, options)
    for line in execution.lines():
        report(f"  {line}")
    base = base.model_copy(update={"gender": execution.settings.gender, "mating": execution.settings.mating})
    options = replace(options, placement=folder / "placement")  # its quantized nets, as a station's home keeps them
    if options.warmup:
        report(f"warming up on a drop of {QUICK_ANIMALS} animals (untimed)")
        warm_up(folder / "warmup", drop_dir, base, options, device)
    repeats = []
    for index in range(options.repeat):
        report(f"repeat {index + 1} of {options.repeat}: pipeline, naive way, model-only bound")
        repeats.append(run_repeat(folder / f"home-{index}", drop_dir, base, options, device))
    return {
        **summarise(repeats, device, options),
        "retain_freed_mb": base.runtime.retain_freed_mb if retained else 0,
        "execution": execution.lines(),
    }


def place_nets(folder: Path, base: Settings, options: BenchOptions) -> Execution:
    """How the bench's nets run on this machine, chosen once on a placement home as the nightly run chooses at its start
    (what the station's settings leave to 'auto' is measured there), for every repeat."""
    layout = HomeLayout(folder)
    store_models(layout, options)
    return resolve_execution(layout, bench_settings(base, folder, HUMAN_PRESET))


def warm_up(folder: Path, drop_dir: Path, base: Settings, options: BenchOptions, device: torch.device) -> None:
    """Run every way once, untimed, on a small drop (the timed drop itself when it is that small already): the
    process's first-call costs (lazy imports, librosa's mel filters: 0.7 s; the nets' first kernels for each input
    size) are paid once per nightly process, not per drop, so no repeat pays them."""
    small = warmup_options(options)
    run_repeat(
        folder / "home",
        drop_dir if small == options else write_drop(folder, small),
        base,
        replace(small, audio_rounds=1),
        device,
    )


def warmup_options(options: BenchOptions) -> BenchOptions:
    """The warm-up's drop: the timed drop's cameras, frames and extra photos on 4 animals, so that every way has seen
    every image size (MTCNN's kernels are prepared per pyramid level size: a photo's first detection 10-60 ms
    slower)."""
    return replace(options, animals=QUICK_ANIMALS)


@contextlib.contextmanager
def bench_folder(workdir: Path | None) -> Iterator[Path]:
    """The scratch folder: a new temporary one removed afterwards, or the given one (new or empty), kept."""
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="breedwatch-bench-") as folder:
            yield Path(folder)
        return
    if workdir.exists() and any(workdir.iterdir()):
        raise ValueError(f"bench folder {workdir} is not empty; give a new or empty folder")
    workdir.mkdir(parents=True, exist_ok=True)
    yield workdir
