"""`breedwatch simulate coverage`: how often the corrected share's 95% interval holds the true share."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from flows.cli.common import ConfigOption, HomeOption, err, out, settings_or_exit

simulate_app = typer.Typer(help="Simulations that check the report's statistics.", no_args_is_help=True)
GRIDS = ("full", "small")
DEMO_ANIMALS = 12  # the demo drop the CGANet is trained on; the gender net learns from its own studbook archive


def grid_axes(grid: Any) -> dict[str, list[float]]:
    """The grid's axes as JSON-ready lists."""
    return {name: list(values) for name, values in vars(grid).items()}


def summary_lines(summary: dict[str, Any], method: str) -> list[str]:
    """What a person reads first: coverage min/mean over the judged cells, width, the old interval beside them."""
    worst = summary["worst_cell"] or {}
    lines = [
        f"{method}: coverage min {summary['coverage_min']:.3f}, mean {summary['coverage_mean']:.3f} over "
        f"{summary['judged_cells']} cells (target >= {summary['target']:.2f} in every cell: "
        f"{'met' if summary['meets_target'] else str(summary['cells_below_target']) + ' cells below'}); "
        f"mean width {summary['mean_width']:.3f}; no interval (estimated Se + Sp <= 1) in "
        f"{100 * summary['no_interval_mean']:.1f}% of populations on average",
        f"worst cell: true share {worst.get('share')}, {worst.get('animals')} animals, {worst.get('validation')} "
        f"validation animals per sex, Se {worst.get('sensitivity')}, Sp {worst.get('specificity')}",
    ]
    if summary["baseline_coverage_mean"] is not None:
        lines.append(
            f"old interval (Wilson through Rogan-Gladen, rates taken as exact): coverage min "
            f"{summary['baseline_coverage_min']:.3f}, mean {summary['baseline_coverage_mean']:.3f}, "
            f"mean width {summary['baseline_mean_width']:.3f}"
        )
    return lines


@simulate_app.command("coverage")
def coverage(
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the summary and cells as JSON.")] = None,
    grid: Annotated[
        str,
        typer.Option(
            help="full: shares 0.1-0.9, 10-500 animals, 5-100 validation animals per "
            "sex, Se and Sp 0.6-0.98 (720 cells); small: 16 cells."
        ),
    ] = "full",
    populations: Annotated[int, typer.Option(min=10, help="Simulated populations per cell.")] = 2000,
    method: Annotated[str, typer.Option(help="lang-reiczigel (the report's) or bayes.")] = "lang-reiczigel",
    seed: Annotated[int, typer.Option(min=0, help="Seed of the simulation.")] = 21,
    draws: Annotated[int, typer.Option(min=100, help="Monte Carlo draws per interval of the bayes method.")] = 2000,
    baseline: Annotated[bool, typer.Option(help="Also measure the old exact-rate interval on the same draws.")] = True,
    end_to_end: Annotated[
        bool,
        typer.Option(
            "--end-to-end",
            help="Instead of the grid, run generated drops of known truth through the real pipeline (the demo's "
            "models, one home per drop under HOME/coverage/) and count how often the report's interval holds the "
            "true share.",
        ),
    ] = False,
    drops: Annotated[int, typer.Option(min=1, help="--end-to-end: generated drops, one population each.")] = 50,
    animals: Annotated[int, typer.Option(min=4, help="--end-to-end: animals in each generated drop.")] = 30,
    home: HomeOption = None,
    config: ConfigOption = None,
) -> None:
    """Coverage and mean width of the corrected male share's interval over a grid of simulated populations, or
    end to end over generated drops run through the pipeline."""
    from dataclasses import asdict

    from models.coverage import CoverageGrid, simulate_grid, summarise

    if end_to_end:
        run_end_to_end(home, config, drops, animals, seed, json_out)
        return

    if grid not in GRIDS or method not in ("lang-reiczigel", "bayes"):
        err.print(f"error: --grid must be {' or '.join(GRIDS)}, --method lang-reiczigel or bayes", highlight=False)
        raise typer.Exit(2)
    axes = (
        CoverageGrid()
        if grid == "full"
        else CoverageGrid(
            shares=(0.2, 0.5), animals=(30, 200), validation=(5, 30), sensitivities=(0.8,), specificities=(0.75, 0.95)
        )
    )
    progress = lambda done, total: err.print(f"{done}/{total} cells", highlight=False) if done % 60 == 0 else None
    results = simulate_grid(
        axes,
        populations,
        seed,
        method,
        draws=draws,
        baseline=baseline,  # type: ignore[arg-type]
        progress=progress,
    )
    summary = summarise(results)
    for line in summary_lines(summary, method):
        out.print(line, highlight=False, soft_wrap=True)
    if json_out is not None:
        document = {
            "method": method,
            "confidence": 0.95,
            "populations": populations,
            "seed": seed,
            "grid": grid_axes(axes),
            "summary": summary,
            "cells": [asdict(result) for result in results],
        }
        json_out.write_text(json.dumps(document, indent=1), encoding="utf-8")


def end_to_end_lines(summary: dict[str, Any]) -> list[str]:
    """What a person reads first of the end-to-end run."""
    coverage = summary["coverage"]
    lines = [
        f"end to end: the report's 95% interval held the true male share (among the animals it counted) in "
        f"{'n/a' if coverage is None else f'{coverage:.3f}'} of {summary['with_interval']} drops with an interval "
        f"(of {summary['drops']}; target >= {summary['target']:.2f}: {'met' if summary['meets_target'] else 'not met'}"
        f"); mean width {summary['mean_width'] or 0:.3f}; {summary['mean_counted'] or 0:.1f} animals counted per drop "
        f"on average",
    ]
    if summary["coverage_of_detected_share"] is not None:
        lines.append(
            f"against the true share among every animal with a face (abstained ones too): "
            f"{summary['coverage_of_detected_share']:.3f}"
        )
    lines += [f"no interval: {note}" for note in summary["no_interval_notes"]]
    return lines


def run_end_to_end(
    home: Path | None, config: Path | None, drops: int, animals: int, seed: int, json_out: Path | None
) -> None:
    """Prepare the demo's models once, run each generated drop through the nightly flow in a home of its own, and say
    how often the report's interval held the drop's true share."""
    from dataclasses import asdict

    from flows.cli.pipeline import run_nightly
    from models.coverage import end_to_end_summary
    from schemas.home import HomeLayout
    from tasks.coverage_drops import coverage_drop, coverage_home, drop_coverage, share_execution_cache
    from tasks.demo import prepare_demo

    settings = settings_or_exit(home, config)
    plan = prepare_demo(settings, config, seed, DEMO_ANIMALS)
    for note in plan.notes:
        err.print(note, highlight=False)
    base, results = HomeLayout(settings.home), []
    for index in range(drops):
        drop = coverage_drop(base, index, seed, animals, settings.ingest.ready_marker)
        drop_home = coverage_home(base, index)
        if not drop_home.catalog.exists():
            run_nightly([str(drop)], settings_or_exit(drop_home.root, plan.config), plan.config)
            share_execution_cache(drop_home, base)
        results.append(drop_coverage(drop_home, drop))
        err.print(f"drop {index + 1}/{drops}: {results[-1].sentence()}", highlight=False)
    summary = end_to_end_summary(results)
    for line in end_to_end_lines(summary):
        out.print(line, highlight=False, soft_wrap=True)
    if json_out is not None:
        document = {"mode": "end-to-end", "animals": animals, "seed": seed, "summary": summary}
        document["drops"] = [{**asdict(r), "true_share": r.true_share(), "covered": r.covered()} for r in results]
        json_out.write_text(json.dumps(document, indent=1), encoding="utf-8")
