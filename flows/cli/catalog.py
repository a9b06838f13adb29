"""`breedwatch query`: ad-hoc read-only SQL against the catalog (DuckDB and the catalog code only: no torch)."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.cli.common import ConfigOption, HomeOption, err, out, settings_or_exit


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
    import duckdb

    from reports.console import table_to_csv, table_to_json, table_to_rich
    from schemas.home import HomeLayout
    from tasks.catalog import CatalogMissingError
    from tasks.catalog import query as run_query
    from tasks.home_version import HomeVersionError
    from tasks.part_check import DamagedPartError

    settings = settings_or_exit(home, config)
    try:
        result = run_query(HomeLayout(settings.home), sql)
    except (duckdb.Error, CatalogMissingError, HomeVersionError, DamagedPartError) as error:
        err.print(str(error), highlight=False, markup=False)
        raise typer.Exit(1) from None
    if format == "table":
        out.print(table_to_rich(result))
    else:
        typer.echo(table_to_csv(result) if format == "csv" else table_to_json(result), nl=format == "json")
