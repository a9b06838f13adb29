"""`breedwatch bench`: the pipeline against the naive way and the model-only bound, on a generated drop."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import ConfigOption, HomeOption, err, out, settings_or_exit
from reports.bench import bench_table, bound_lines, check_lines, summary_lines
from schemas.bench import QUICK_ANIMALS, QUICK_NAIVE_LIMIT, BenchOptions


def bench(
    quick: Annotated[
        bool,
        typer.Option(
            help=(
                f"A drop of {QUICK_ANIMALS} animals measured once, the naive way on a sample "
                "(under two minutes on 2 CPU cores)."
            )
        ),
    ] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the results as JSON.")] = None,
    animals: Annotated[
        int | None, typer.Option(min=4, max=200, help="Animals in the generated drop (default 12, quick 4).")
    ] = None,
    repeat: Annotated[
        int | None, typer.Option(min=1, help="Repeats; medians are reported (default 3, quick 1).")
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the drop and the random weights.")] = 0,
    gender_size: Annotated[
        int,
        typer.Option(
            min=32, max=1024, help="Gender net input size (the production net's 448; smaller only for tests)."
        ),
    ] = 448,
    cganet_filters: Annotated[
        int, typer.Option(min=1, max=512, help="CGANet conv filters (the production net's 128; fewer only for tests).")
    ] = 128,
    extra_images: Annotated[
        Path | None,
        typer.Option(help="Folder of extra photos added to the drop, e.g. human faces the human MTCNN preset finds."),
    ] = None,
    frames: Annotated[
        int | None,
        typer.Option(min=0, help="Keep only this many camera-trap frames of the generated drop (default: all)."),
    ] = None,
    naive_limit: Annotated[
        int | None,
        typer.Option(
            min=1,
            help=(
                "Time the naive way on this many images, faces and segments, scaled to the drop "
                f"(default all, quick {QUICK_NAIVE_LIMIT})."
            ),
        ),
    ] = None,
    audio_rounds: Annotated[
        int,
        typer.Option(
            min=1,
            help=(
                "Times per repeat the audio stages and bound (under half a second each) are timed, "
                "each on a fresh home."
            ),
        ),
    ] = 5,
    warmup: Annotated[
        bool,
        typer.Option(
            help=(
                f"First run every way once, untimed, on a {QUICK_ANIMALS}-animal drop, "
                "so no timed repeat pays the process's first-call costs."
            )
        ),
    ] = True,
    workdir: Annotated[
        Path | None,
        typer.Option(help="Keep the drop and scratch homes in this new folder (default: a temporary folder)."),
    ] = None,
    home: HomeOption = None,
    config: ConfigOption = None,
) -> None:
    """Time the image and audio paths: the pipeline's stages, the naive way and the model-only bound, with equality
    checks."""
    from tasks.bench.run import bench_folder, run_bench
    from tasks.bench.summary import write_summary

    settings = settings_or_exit(home, config)
    options = BenchOptions(
        animals=animals or (QUICK_ANIMALS if quick else 12),
        seed=seed,
        repeat=repeat or (1 if quick else 3),
        gender_size=gender_size,
        cganet_filters=cganet_filters,
        extra_images=extra_images,
        frames=frames,
        naive_limit=naive_limit or (QUICK_NAIVE_LIMIT if quick else None),
        warmup=warmup,
        audio_rounds=audio_rounds,
    )
    try:
        with bench_folder(workdir) as folder:
            summary = run_bench(settings, options, folder, lambda line: err.print(line, highlight=False))
    except ValueError as error:
        err.print(f"error: {error}", highlight=False, markup=False)
        raise typer.Exit(1) from None
    out.print(bench_table(summary))
    for line in check_lines(summary) + bound_lines(summary) + summary_lines(summary):
        out.print(line, highlight=False, markup=False)
    if json_out is not None:
        write_summary(json_out, summary)
    if not summary["results_equal_naive"]:
        raise typer.Exit(1)
