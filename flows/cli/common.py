"""What every breedwatch command shares: the consoles, the --home and --config options, error exits (light imports
only)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from schemas.config import Settings

out = Console()
err = Console(stderr=True)

HomeOption = Annotated[Path | None, typer.Option("--home", help="Home folder (default $BREEDWATCH_HOME or ./data).")]
ConfigOption = Annotated[Path | None, typer.Option("--config", help="TOML configuration file.")]


def settings_or_exit(home: Path | None, config: Path | None) -> Settings:
    """Load the configuration or exit with code 2 and its message."""
    from schemas.config import ConfigError, load_settings

    try:
        return load_settings(config, home=home)
    except ConfigError as error:
        err.print(f"[red]error:[/red] {error}", markup=True, highlight=False)
        raise typer.Exit(2) from None


def call_flow(flow_function: Any, **parameters: Any) -> dict[str, Any]:
    """Run a training or evaluation flow; a data or model error becomes one line and exit code 1."""
    try:
        return flow_function(**parameters)
    except (ValueError, LookupError, OSError) as error:
        err.print(f"error: {error}", highlight=False, markup=False)
        raise typer.Exit(1) from None


def config_arg(config: Path | None) -> str | None:
    """The configuration file as a flow parameter."""
    return str(config) if config else None
