"""`breedwatch train mating`, `evaluate mating` and `export raven`: the mating-success model's commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from flows.cli.common import ConfigOption, HomeOption, call_flow, config_arg, err, out, settings_or_exit

FolderOption = Annotated[
    Path | None,
    typer.Option(
        "--from-folder",
        help="A folder laid out like a drop (audio/**, Raven tables, encounters.csv) instead of the catalog.",
    ),
]
SeedOption = Annotated[
    int | None, typer.Option(help="Seed of the split and the weights (default: config mating.train.seed).")
]
EpochsOption = Annotated[
    int | None, typer.Option(min=1, help="Epochs (default: config mating.train.epochs, the seed's 500).")
]
GROUPINGS = ("pair", "encounter", "none")


def print_rejects(result: dict[str, Any]) -> None:
    """Name every rejected file or table row of a training folder, one sentence each."""
    for reason in result.get("rejects", []):
        out.print(f"rejected: {reason}", highlight=False, markup=False)


def describe_data(data: dict[str, Any]) -> str:
    """One line: windows, encounters and pairs with their outcomes."""
    return (
        f"{data['n_windows']} windows ({data['n_windows_success']} success) of {data['n_encounters']} encounters "
        f"({data['n_encounters_success']} success) from {data['n_pairs']} pairs in {data['source']}"
    )


def train_mating(
    from_folder: FolderOption = None,
    name: Annotated[str | None, typer.Option(help="Model name in the store (default: config mating.model).")] = None,
    seed: SeedOption = None,
    epochs: EpochsOption = None,
    home: HomeOption = None,
    config: ConfigOption = None,
) -> None:
    """Train CGANet on encounters with a known outcome (best validation epoch kept) and store a new version."""
    from flows.train import train_mating_flow

    settings = settings_or_exit(home, config)
    model_name = name or settings.mating.model.partition("@")[0]
    card = call_flow(
        train_mating_flow,
        name=model_name,
        folder=str(from_folder) if from_folder else None,
        seed=seed,
        epochs=epochs,
        home=str(settings.home),
        config_file=config_arg(config),
    )
    print_rejects(card)
    training, metrics = card["training"], card["metrics"]
    out.print(f"trained on {describe_data(card['data'])}", highlight=False)
    out.print(
        f"stored {card['name']}@v{card['version']} in {card['path']} after {card['train_seconds']:.0f} s "
        f"(best epoch {training['best_epoch']}, temperature {card['temperature']:.3f})",
        highlight=False,
    )
    if "segment" in metrics:
        seg, enc = metrics["segment"], metrics["encounter"]
        out.print(
            f"validation ({len(card['split']['validation'])} {card['split_by']} groups): window accuracy "
            f"{seg['accuracy']:.3f} on {seg['n']}, encounter accuracy {enc['accuracy']:.3f} on {enc['n']}",
            highlight=False,
        )
    else:
        out.print(metrics["note"], highlight=False)


def print_evaluation(result: dict[str, Any]) -> None:
    """The seed-table-1 style tables (segment and encounter level) and what they were computed on."""
    out.print(f"evaluated on {describe_data(result['data'])}", highlight=False)
    folds = result["folds"]
    out.print(
        f"{folds['k']}-fold {folds['method']} grouped by {result['group_by']} ({folds['n_groups']} groups), "
        f"seed {result['seed']}, {result['settings']['epochs']} epochs, {result['seconds']:.0f} s",
        highlight=False,
    )
    if folds["note"]:
        out.print(f"note: {folds['note']}", highlight=False)
    for level, table in result["tables"].items():
        out.print(f"\n{level} level (mean ± std over folds)", highlight=False)
        out.print(table, highlight=False, markup=False)
    stored = result.get("stored")
    if stored:
        seg, enc = stored["segment"], stored["encounter"]
        out.print(
            f"\nstored {stored['model']} on all windows ({stored['n_windows_of_training_groups']} from groups it was "
            f"trained on): window accuracy {seg['accuracy']:.3f}, AUC {seg['roc_auc'] or float('nan'):.3f}; "
            f"encounter accuracy {enc['accuracy']:.3f} on {enc['n']}",
            highlight=False,
        )


def evaluate_mating(
    from_folder: FolderOption = None,
    group_by: Annotated[str, typer.Option(help="What folds never share: pair (default), encounter or none.")] = "pair",
    folds: Annotated[int | None, typer.Option(min=2, help="Folds (default: config mating.train.folds, 5).")] = None,
    epochs: EpochsOption = None,
    seed: SeedOption = None,
    model: Annotated[
        str | None, typer.Option(help="Also score this stored model ('name' or 'name@vN') on the same windows.")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the full result as JSON.")] = None,
    home: HomeOption = None,
    config: ConfigOption = None,
) -> None:
    """Cross-validated accuracy, F1, recall, precision and AUC of CGANet, SVM and FLDA (mean ± std over folds)."""
    from flows.train import evaluate_mating_flow

    if group_by not in GROUPINGS:
        err.print(f"error: --group-by must be pair, encounter or none, not {group_by!r}", highlight=False)
        raise typer.Exit(2)
    settings = settings_or_exit(home, config)
    result = call_flow(
        evaluate_mating_flow,
        folder=str(from_folder) if from_folder else None,
        group_by=group_by,
        folds=folds,
        epochs=epochs,
        seed=seed,
        model=model,
        home=str(settings.home),
        config_file=config_arg(config),
    )
    print_rejects(result)
    print_evaluation(result)
    if json_out is not None:
        json_out.write_text(json.dumps(result, indent=2, default=str))
        out.print(f"\nwrote {json_out}", highlight=False)


def export_raven(
    out_dir: Annotated[
        Path, typer.Argument(metavar="OUT", help="Folder for the tables: OUT/<drop>/<recording>.mating.selections.txt")
    ],
    drop: Annotated[str | None, typer.Option("--drop", help="Only this drop.")] = None,
    home: HomeOption = None,
    config: ConfigOption = None,
) -> None:
    """Write a Raven Pro selection table of predicted segments per recording (Channel 1 and 2, P(success) columns)."""
    from schemas.home import HomeLayout
    from tasks.catalog import CatalogMissingError
    from tasks.mating import export_raven_tables

    settings = settings_or_exit(home, config)
    try:
        written = export_raven_tables(HomeLayout(settings.home), out_dir, drop)
    except (ValueError, OSError, CatalogMissingError) as error:
        err.print(f"error: {error}", highlight=False, markup=False)
        raise typer.Exit(1) from None
    out.print(f"wrote {len(written)} Raven selection tables under {out_dir}", highlight=False)
