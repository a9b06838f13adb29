"""`breedwatch check`: read every lake part back whole and say how to rebuild the damaged ones (no torch)."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.cli.common import ConfigOption, HomeOption, err, out, settings_or_exit


def check(
    repair: Annotated[
        bool,
        typer.Option("--repair", help="Set damaged parts aside under lake/_damaged/ so the next run rebuilds them."),
    ] = False,
    home: HomeOption = None,
    config: ConfigOption = None,
) -> None:
    """Read every lake part against its page checksums; list each damaged part with the command that rebuilds it
    (exit 1 while any is left in place), and with --repair set them aside so every view answers without them."""
    from tasks.home_version import HomeVersionError
    from tasks.lake import HomeBusyError
    from tasks.maintenance import check_home

    settings = settings_or_exit(home, config)
    try:
        checked = check_home(settings, repair)
    except (HomeBusyError, HomeVersionError) as error:
        err.print(f"error: {error}", highlight=False, markup=False)
        raise typer.Exit(1) from None
    for part in checked.damaged:
        if part.path in checked.set_aside:
            target, advice = checked.set_aside[part.path]
            out.print(f"{part.path} is damaged ({part.reason}): set aside as {target}; {advice}", soft_wrap=True)
        else:
            out.print(f"{part.path} is damaged ({part.reason}); {part.rebuild}", highlight=False, soft_wrap=True)
    out.print(f"{checked.parts} parts read, {len(checked.damaged)} damaged", highlight=False)
    if len(checked.set_aside) < len(checked.damaged):
        raise typer.Exit(1)
