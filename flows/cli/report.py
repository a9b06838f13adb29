"""`breedwatch report`: rebuild a report for a period from the catalog alone."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from flows.cli.common import ConfigOption, HomeOption, err, out, settings_or_exit

DateOption = Annotated[datetime | None, typer.Option(formats=["%Y-%m-%d"], help="YYYY-MM-DD (whole days, UTC).")]


def report(
    since: DateOption = None, until: DateOption = None, home: HomeOption = None, config: ConfigOption = None
) -> None:
    """Rebuild the HTML report and its CSVs for the drops captured between --since and --until."""
    import duckdb

    from schemas.home import HomeLayout
    from tasks.catalog import CatalogMissingError
    from tasks.report import write_period_report

    settings = settings_or_exit(home, config)
    if since and until and until < since:
        err.print(f"error: --until {until.date()} is before --since {since.date()}", highlight=False)
        raise typer.Exit(2)
    try:
        path = write_period_report(
            HomeLayout(settings.home),
            since.date() if since else None,
            until.date() if until else None,
            settings.review.base_url,
        )
    except (CatalogMissingError, duckdb.Error) as error:
        err.print(f"error: {error}", highlight=False, markup=False)
        raise typer.Exit(1) from None
    out.print(f"report: {path}", highlight=False, soft_wrap=True)
