"""`breedwatch compact`: merge the lake's small per-drop parts into one file per table and month (no torch)."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.cli.common import ConfigOption, HomeOption, err, out, settings_or_exit


def compact(
    table: Annotated[
        list[str] | None, typer.Option("--table", help="Only this table (repeatable); default: every table.")
    ] = None,
    home: HomeOption = None,
    config: ConfigOption = None,
) -> None:
    """Merge the parts of every drop into one file per table and month, atomically; re-running a drop still works.
    The nightly run does this on its own once a table has lake.compact_after_parts parts."""
    from tasks.home_version import HomeVersionError
    from tasks.lake import HomeBusyError
    from tasks.maintenance import compact_home

    settings = settings_or_exit(home, config)
    try:
        done = compact_home(settings, table)
    except (HomeBusyError, HomeVersionError, ValueError) as error:
        err.print(f"error: {error}", highlight=False, markup=False)
        raise typer.Exit(1) from None
    for result in done:
        out.print(
            f"{result.table}: {result.parts} parts of {result.keys} keys merged into {result.files} files",
            highlight=False,
        )
    if not any(result.parts for result in done):
        out.print("nothing to compact", highlight=False)
