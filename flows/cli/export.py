"""breedwatch export camtrap-dp: the catalog as a Camtrap DP 1.0.2 package (registered in flows/cli.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import ConfigOption, HomeOption, err, out, settings_or_exit
from schemas.home import HomeLayout

MEDIA_MODES = ("link", "copy", "reference")


def camtrap_dp(
    out_dir: Annotated[Path, typer.Argument(metavar="OUT", help="Folder to create for the package (absent or empty).")],
    drop: Annotated[
        list[str] | None, typer.Option("--drop", help="Export only this drop (repeatable); default: every drop.")
    ] = None,
    media: Annotated[
        str,
        typer.Option(
            help="link: hard-link media files into OUT/media (copy across disks); copy; reference: file:// paths."
        ),
    ] = "link",
    title: Annotated[str, typer.Option(help="Title of the package.")] = "breedwatch export",
    contributor: Annotated[
        str, typer.Option(help="Person or organisation credited as contributor.")
    ] = "breedwatch (automated classification)",
    project: Annotated[
        str, typer.Option(help="Title of the project the data come from.")
    ] = "breedwatch station monitoring",
    home: HomeOption = None,
    config: ConfigOption = None,
) -> None:
    """Export deployments, media, face observations (sex, individual, boxes) and mating encounters as Camtrap DP
    1.0.2."""
    import duckdb

    from schemas.camtrap import ExportSettings
    from tasks.camtrap_export import ExportError, export_camtrap_dp
    from tasks.catalog import CatalogMissingError

    if media not in MEDIA_MODES:
        err.print(f"error: --media must be one of {', '.join(MEDIA_MODES)}, not {media!r}", highlight=False)
        raise typer.Exit(2)
    settings = settings_or_exit(home, config)
    options = ExportSettings(title=title, contributor=contributor, project_title=project)
    try:
        summary = export_camtrap_dp(HomeLayout(settings.home), out_dir, options, media, drop or [])  # type: ignore[arg-type]
    except (ExportError, CatalogMissingError, duckdb.Error, OSError) as error:
        err.print(f"error: {error}", highlight=False, markup=False)
        raise typer.Exit(1) from None
    out.print(
        f"wrote {summary['path']}: {summary['deployments']} deployments, {summary['media']} media, "
        f"{summary['observations']} observations, {summary['encounters']} encounters",
        highlight=False,
    )
    for note in summary["notes"]:
        out.print(f"note: {note}", highlight=False)
