"""`breedwatch train identity` and `breedwatch evaluate identity`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from flows.cli.common import ConfigOption, HomeOption, call_flow, config_arg, out, settings_or_exit

FacesOption = Annotated[
    list[Path] | None,
    typer.Option("--faces", help="Keeper photos as DIR/<animal_id>/*.jpg (repeatable); none: the catalog."),
]
ArchiveOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--archive",
        help="A sample archive with truth/boxes.csv: its keeper photos and annotated camera-trap faces (repeatable).",
    ),
]
HEADLINES = ("top1", "top5", "map", "new_auroc", "baks", "baus", "geometric_mean", "n_queries")


def paths(values: list[Path] | None) -> list[str]:
    """Paths as flow parameters."""
    return [str(value) for value in values or []]


def train_identity(
    faces: FacesOption = None,
    archive: ArchiveOption = None,
    name: Annotated[str | None, typer.Option(help="Model name in the store (default: [identity] model).")] = None,
    home: HomeOption = None,
    config: ConfigOption = None,
) -> None:
    """Train the identity net with a margin loss on faces of known animals, choose its thresholds and store it."""
    from flows.train import train_identity_flow

    settings = settings_or_exit(home, config)
    card = call_flow(
        train_identity_flow,
        name=name,
        faces=paths(faces),
        archives=paths(archive),
        home=str(settings.home),
        config_file=config_arg(config),
    )
    out.print(
        f"stored {card['label']} in {card['path']}: {card['arch']} at {card['input_size']} px, "
        f"{card['embedding_dim']}-d, {card['loss']} loss, {card['n_faces']} faces, {card['train_seconds']:.0f} s of "
        f"training; match threshold {card['match_threshold']:.2f}, cluster threshold "
        f"{fmt(card['cluster_threshold'])}",
        highlight=False,
    )
    out.print(metrics_table(card["metrics"], f"identity: {card['measured_on']}"))


def evaluate_identity(
    faces: FacesOption = None,
    archive: ArchiveOption = None,
    model: Annotated[
        str | None, typer.Option(help="Identity model 'name' or 'name@vN' (default: [identity] model).")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the full result as JSON.")] = None,
    home: HomeOption = None,
    config: ConfigOption = None,
) -> None:
    """Top-1, top-5, mAP, new-individual AUROC, BAKS, BAUS and their geometric mean, open set and closed set."""
    from flows.train import evaluate_identity_flow

    settings = settings_or_exit(home, config)
    result = call_flow(
        evaluate_identity_flow,
        model=model,
        faces=paths(faces),
        archives=paths(archive),
        home=str(settings.home),
        config_file=config_arg(config),
    )
    out.print(
        f"{result['model']} on {result['n_faces']} faces of {result['n_animals']} animals ({result['n_events']} "
        f"camera events) from the {result['source']}; match threshold {result['match_threshold']:.2f}",
        highlight=False,
    )
    out.print(metrics_table(result, "identity"))
    if json_out is not None:
        json_out.write_text(json.dumps(result, indent=2, default=str))


def fmt(value: Any) -> str:
    """A metric with three decimals, a count as it is, or n/a."""
    if value is None:
        return "n/a"
    return str(value) if isinstance(value, int) else f"{value:.3f}"


def metrics_table(metrics: dict[str, Any], title: str) -> Table:
    """One row per comparison (open set, closed set and its query sources, camera faces against keeper photos)."""
    rows = {
        "open set (half the animals new)": metrics.get("open_set") or {},
        **{f"closed set: {key.replace('_', ' ')}": value for key, value in (metrics.get("closed_set") or {}).items()},
        "camera-trap faces vs keeper photos": metrics.get("camera_vs_keeper") or {},
    }
    table = Table(title=title)
    table.add_column("comparison")
    for key in HEADLINES:
        table.add_column(key.replace("_", " "), justify="right")
    for label, report in rows.items():
        if report:
            table.add_row(label, *(fmt(report.get(key)) for key in HEADLINES))
    return table
