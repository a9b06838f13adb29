"""The breedwatch command line (console script 'breedwatch')."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

import duckdb  # noqa: E402
import typer  # noqa: E402
from rich.console import Console  # noqa: E402

from reports.console import run_summary_table, table_to_csv, table_to_json, table_to_rich  # noqa: E402
from schemas.config import ConfigError, Settings, load_settings  # noqa: E402
from schemas.home import HomeLayout  # noqa: E402
from tasks.catalog import CatalogMissingError, query as run_query  # noqa: E402
from tasks.lake import HomeBusyError  # noqa: E402

app = typer.Typer(help="Nightly pipeline for breeding stations: drops in, catalog and reports out.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)

HomeOption = Annotated[Path | None, typer.Option("--home", help="Home folder (default $BREEDWATCH_HOME or ./data).")]
ConfigOption = Annotated[Path | None, typer.Option("--config", help="TOML configuration file.")]
DEMO_DROP_PREFIX = "sample-seed"
YIELD_SUMMARY_SQL = (
    "SELECT drop_id AS drop, camera, night, images, faces, usable_faces AS usable, faces_per_image AS per_image "
    "FROM detector_yield WHERE list_contains(?, drop_id)"
)


def settings_or_exit(home: Path | None, config: Path | None) -> Settings:
    """Load the configuration or exit with code 2 and its message."""
    try:
        return load_settings(config, home=home)
    except ConfigError as error:
        err.print(f"[red]error:[/red] {error}", markup=True, highlight=False)
        raise typer.Exit(2) from None


def run_nightly(drops: list[str] | None, settings: Settings, config: Path | None) -> dict[str, Any]:
    """Run the nightly flow and exit non-zero only if the run itself failed."""
    from flows.nightly import nightly

    try:
        return nightly(drops=drops, home=str(settings.home), config_file=str(config) if config else None)
    except HomeBusyError as error:
        err.print(f"error: {error}", highlight=False)
        raise typer.Exit(1) from None
    except Exception as error:  # the run failed: it is recorded in runs; say so and exit 1
        err.print(f"error: the run failed: {type(error).__name__}: {error}", highlight=False)
        raise typer.Exit(1) from None


def print_summary(summary: dict[str, Any]) -> None:
    """Print the one-screen summary and where the report is."""
    out.print(run_summary_table(summary))
    drop_ids = [drop["drop_id"] for drop in summary["drops"]]
    if drop_ids:
        detector_yield = run_query(HomeLayout(Path(summary["home"])), YIELD_SUMMARY_SQL, [drop_ids])
        out.print(table_to_rich(detector_yield, title="faces per camera and night"))
    totals = ", ".join(f"{key} {value}" for key, value in sorted(summary["counts"].items())) or "nothing to do"
    out.print(f"totals: {totals}", highlight=False)
    out.print(f"report: {summary['report']}", highlight=False)
    out.print(f"catalog: {HomeLayout(Path(summary['home'])).catalog}  (try: breedwatch query \"select kind, status, count(*) from media group by all\")", highlight=False)


@app.command()
def run(
    drops: Annotated[list[Path] | None, typer.Argument(help="Drop folders; default: new drops in the inbox.")] = None,
    home: HomeOption = None,
    config: ConfigOption = None,
) -> None:
    """Run the nightly flow on the given drops, or on every new drop in the inbox."""
    settings = settings_or_exit(home, config)
    summary = run_nightly([str(d) for d in drops] if drops else None, settings, config)
    print_summary(summary)


@app.command()
def demo(
    home: HomeOption = None,
    config: ConfigOption = None,
    seed: Annotated[int, typer.Option(help="Seed of the generated sample drop.")] = 0,
    animals: Annotated[int, typer.Option(help="Animals in the generated sample drop.")] = 12,
) -> None:
    """Generate a sample drop in the inbox (once) and run the nightly flow on it."""
    from tasks.sample_drop import write_sample_drop

    settings = settings_or_exit(home, config)
    drop = settings.inbox_dir / f"{DEMO_DROP_PREFIX}{seed}-{animals}"
    if not drop.exists():
        summary = write_sample_drop(drop, seed=seed, n_animals=animals)
        out.print(f"generated sample drop {drop} ({summary})", highlight=False)
    print_summary(run_nightly([str(drop)], settings, config))


@app.command("sample-drop")
def sample_drop(
    out_dir: Annotated[Path, typer.Argument(metavar="OUT", help="Folder to create (must be empty or absent).")],
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same files.")] = 0,
    animals: Annotated[int, typer.Option(help="Number of animals.", min=4)] = 12,
) -> None:
    """Write a deterministic synthetic drop with its ground truth under OUT/truth/."""
    from tasks.sample_drop import write_sample_drop

    try:
        summary = write_sample_drop(out_dir, seed=seed, n_animals=animals)
    except ValueError as error:
        err.print(f"error: {error}", highlight=False)
        raise typer.Exit(2) from None
    out.print(f"wrote {out_dir}: {summary}", highlight=False)


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="SQL to run against the catalog (read-only).")],
    format: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    home: HomeOption = None,
    config: ConfigOption = None,
) -> None:
    """Answer ad-hoc SQL against the catalog."""
    if format not in ("table", "csv", "json"):
        err.print(f"error: --format must be table, csv or json, not {format!r}", highlight=False)
        raise typer.Exit(2)
    settings = settings_or_exit(home, config)
    try:
        result = run_query(HomeLayout(settings.home), sql)
    except (duckdb.Error, CatalogMissingError) as error:
        err.print(str(error), highlight=False, markup=False)
        raise typer.Exit(1) from None
    if format == "table":
        out.print(table_to_rich(result))
    else:
        typer.echo(table_to_csv(result) if format == "csv" else table_to_json(result), nl=format == "json")


@app.command()
def serve(home: HomeOption = None, config: ConfigOption = None) -> None:
    """Serve the nightly schedule from this process, with no other service."""
    from flows.serve import serve_nightly

    settings = settings_or_exit(home, config)
    out.print(f"serving 'nightly' on cron '{settings.schedule.cron}' ({settings.schedule.timezone}); Ctrl-C stops", highlight=False)
    serve_nightly(settings, config)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
