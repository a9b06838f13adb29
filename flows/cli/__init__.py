"""The breedwatch command line (console script 'breedwatch'): one module per command group, each importing its heavy
libraries (torch, Prefect's flows, scikit-learn) inside the commands that need them, so `--help` and `query` answer at
once."""

from __future__ import annotations

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# Prefect's temporary server gets 20 s to start by default; a busy 2-core station server needs more.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

import typer  # noqa: E402

from flows.cli import (  # noqa: E402
    backup,
    bench,
    catalog,
    check,
    compact,
    detector,
    export,
    gender,
    identity,
    mating,
    pipeline,
    report,
    retrain,
    review,
    simulate,
)

app = typer.Typer(
    help="Nightly pipeline for breeding stations: drops in, catalog and reports out.", no_args_is_help=True
)
train_app = typer.Typer(help="Train models on the station's own labelled data.", no_args_is_help=True)
evaluate_app = typer.Typer(help="Measure models on labelled data.", no_args_is_help=True)
export_app = typer.Typer(
    help="Export the catalog in formats other tools open (Camtrap DP, Raven).", no_args_is_help=True
)
app.add_typer(train_app, name="train")
app.add_typer(evaluate_app, name="evaluate")
app.add_typer(export_app, name="export")
app.add_typer(simulate.simulate_app, name="simulate")

app.command()(pipeline.run)
app.command()(pipeline.demo)
app.command("sample-drop")(pipeline.sample_drop)
app.command()(pipeline.serve)
app.command()(catalog.query)
app.command("report")(report.report)
app.command("bench")(bench.bench)
app.command("review")(review.review)
app.command("compact")(compact.compact)
app.command("retrain")(retrain.retrain)
app.command("check")(check.check)
app.command("backup")(backup.backup)
app.command("restore")(backup.restore)
export_app.command("camtrap-dp")(export.camtrap_dp)
export_app.command("raven")(mating.export_raven)
train_app.command("gender")(gender.train_gender)
evaluate_app.command("gender")(gender.evaluate_gender)
train_app.command("identity")(identity.train_identity)
evaluate_app.command("identity")(identity.evaluate_identity)
train_app.command("mating")(mating.train_mating)
evaluate_app.command("mating")(mating.evaluate_mating)
train_app.command("detector")(detector.train_detector)
evaluate_app.command("detector")(detector.evaluate_detector)


def main() -> None:
    """Console-script entry point."""
    app()
