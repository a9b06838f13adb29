"""`breedwatch backup` and `breedwatch restore`: the station's irreplaceable data in one verified archive (no torch)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import ConfigOption, HomeOption, err, out, settings_or_exit


def backup(
    out_file: Annotated[Path, typer.Argument(metavar="OUT", help="The archive to write, a new .tar file.")],
    with_drops: Annotated[bool, typer.Option("--with-drops", help="Also carry the inbox's raw drops.")] = False,
    home: HomeOption = None,
    config: ConfigOption = None,
) -> None:
    """Write the lake (corrections, crops and commit markers included), the model store, home.json and the
    configuration into one .tar with a SHA-256 manifest; safe while a nightly run writes; the catalog is not carried
    (restore rebuilds it)."""
    from tasks.backup import BackupError, backup_home
    from tasks.lake import DiskFullError, byte_size

    settings = settings_or_exit(home, config)
    try:
        manifest = backup_home(settings, out_file, config, with_drops)
    except (BackupError, DiskFullError) as error:
        err.print(f"error: {error}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(1) from None
    for kind, group in sorted(manifest.took.items()):
        out.print(f"{kind}: {group.files} files, {byte_size(group.bytes)}", highlight=False)
    out.print(f"wrote {out_file} ({len(manifest.files)} files; not carried: the catalog, caches, reports)")


def restore(
    archive: Annotated[Path, typer.Argument(help="A .tar written by 'breedwatch backup'.")],
    target: Annotated[
        Path | None, typer.Argument(metavar="HOME", help="The home to restore into (default: --home).")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace the lake, models and configuration of a home that is not empty.")
    ] = False,
    home: HomeOption = None,
    config: ConfigOption = None,
) -> None:
    """Verify every file of a backup against its SHA-256, write it into an empty (or, with --force, replaced) home and
    rebuild the catalog; a damaged backup or one from a newer breedwatch is refused before anything is written."""
    from tasks.backup import BackupError, restore_home
    from tasks.home_version import HomeVersionError
    from tasks.lake import DiskFullError, HomeBusyError

    settings = settings_or_exit(target or home, config)
    try:
        restored = restore_home(archive, settings, force)
    except (BackupError, HomeVersionError, HomeBusyError, DiskFullError) as error:
        err.print(f"error: {error}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(1) from None
    manifest = restored.manifest
    out.print(
        f"restored {len(manifest.files)} files from {archive} (made {manifest.created_at} by breedwatch "
        f"{manifest.breedwatch_version}) into {settings.home}; catalog rebuilt with {len(restored.views)} views",
        highlight=False,
        soft_wrap=True,
    )
