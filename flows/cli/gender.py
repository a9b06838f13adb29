"""`breedwatch train gender` and `breedwatch evaluate gender`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from flows.cli.common import ConfigOption, HomeOption, call_flow, config_arg, out, settings_or_exit

FolderOption = Annotated[
    Path | None, typer.Option("--folder", help="Faces as FOLDER/<animal_id>/*.jpg instead of the catalog.")
]
AnimalsOption = Annotated[
    Path | None, typer.Option("--animals", help="animals.csv with animal_id and sex (default FOLDER/animals.csv).")
]


def optional(path: Path | None) -> str | None:
    """A path as a flow parameter."""
    return str(path) if path else None


def train_gender(
    folder: FolderOption = None,
    animals: AnimalsOption = None,
    name: Annotated[str | None, typer.Option(help="Model name in the store (default: [gender] model).")] = None,
    home: HomeOption = None,
    config: ConfigOption = None,
) -> None:
    """Train the seed-000 gender net on animals of known sex (identity-disjoint split), calibrate it and store it."""
    from flows.train import train_gender_flow

    settings = settings_or_exit(home, config)
    card = call_flow(
        train_gender_flow,
        name=name,
        folder=optional(folder),
        animals_csv=optional(animals),
        home=str(settings.home),
        config_file=config_arg(config),
    )
    net, hog = card["metrics"]["net"], card["metrics"]["hog_svm"]
    out.print(
        f"stored {card['label']} in {card['path']}: {card['arch']} at {card['input_size']} px, "
        f"{card['n_faces']} faces, "
        f"{card['train_seconds']:.0f} s of training, temperature {card['calibration']['temperature']:.2f}",
        highlight=False,
    )
    out.print(
        f"held-out animals {', '.join(card['split']['test'])}: "
        f"per image accuracy {fmt(net['per_image'].get('accuracy'))} "
        f"(HOG+SVM {fmt(hog['per_image'].get('accuracy'))}), per animal {fmt(net['per_animal'].get('accuracy'))}",
        highlight=False,
    )


def evaluate_gender(
    folder: FolderOption = None,
    animals: AnimalsOption = None,
    folds: Annotated[int | None, typer.Option(help="k folds by animal instead of the seed's single split.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the full result as JSON.")] = None,
    home: HomeOption = None,
    config: ConfigOption = None,
) -> None:
    """Per-image and per-animal accuracy, AUC, F1, calibration and confusion of the net and of HOG + linear SVM."""
    from flows.train import evaluate_gender_flow

    settings = settings_or_exit(home, config)
    result = call_flow(
        evaluate_gender_flow,
        folder=optional(folder),
        animals_csv=optional(animals),
        folds=folds,
        home=str(settings.home),
        config_file=config_arg(config),
    )
    out.print(
        f"{result['arch']} at {result['input_size']} px, {result['epochs']} epochs; {result['n_faces']} faces of "
        f"{result['n_animals']} animals from the {result['source']}; "
        f"{len(result['splits'])} identity-disjoint split(s)",
        highlight=False,
    )
    out.print(metrics_table(result["summary"]))
    for number, split in enumerate(result["splits"], 1):
        out.print(
            f"split {number}: test animals {', '.join(split['test'])}; net confusion per image [[TN, FP], [FN, TP]] "
            f"{split['net']['per_image'].get('confusion_matrix')}, "
            f"per animal {split['net']['per_animal'].get('confusion_matrix')}",
            highlight=False,
        )
    if json_out is not None:
        json_out.write_text(json.dumps(result, indent=2, default=str))


def fmt(value: float | None) -> str:
    """A metric with three decimals, or n/a."""
    return "n/a" if value is None else f"{value:.3f}"


def metrics_table(summary: dict[str, dict[str, Any]]) -> Table:
    """Net against HOG + SVM, mean ± std over splits for each metric."""
    table = Table(title="gender: held-out animals (mean ± std over splits)")
    table.add_column("metric")
    for model in ("net", "hog_svm"):
        table.add_column("net" if model == "net" else "HOG + linear SVM", justify="right")
    for metric in summary["net"]:
        cells = []
        for model in ("net", "hog_svm"):
            value = summary[model].get(metric)
            cells.append("n/a" if value is None else f"{value['mean']:.3f} ± {value['std']:.3f}")
        table.add_row(metric.replace("_", " "), *cells)
    return table
