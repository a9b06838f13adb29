"""`breedwatch review`: the keepers' review web app (FastAPI and uvicorn imported inside the command)."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import ConfigOption, HomeOption, err, out, settings_or_exit


def read_password(password: str | None, password_file: Path | None) -> str | None:
    """The login secret from --password or the first line of --password-file; exit 2 when the file is unusable."""
    if password_file is None:
        return password or None
    try:
        secret = password_file.read_text().splitlines()[0].strip() if password_file.stat().st_size else ""
    except OSError as error:
        err.print(f"error: cannot read the password file {password_file}: {error.strerror}", highlight=False)
        raise typer.Exit(2) from None
    if len(secret) < 8:
        err.print(f"error: the password in {password_file} must be at least 8 characters", highlight=False)
        raise typer.Exit(2)
    return secret


def review(
    host: Annotated[str | None, typer.Option("--host", help="Address to listen on (default [review] host).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port to listen on (default [review] port).")] = None,
    password: Annotated[
        str | None,
        typer.Option(
            "--password",
            envvar="BREEDWATCH_REVIEW_PASSWORD",
            help="Require a login with this password (needed off loopback; prefer --password-file or the variable).",
        ),
    ] = None,
    password_file: Annotated[
        Path | None, typer.Option("--password-file", help="File whose first line is the login password.")
    ] = None,
    reviewer: Annotated[
        str | None, typer.Option("--reviewer", help="Name recorded with corrections when no login is asked.")
    ] = None,
    home: HomeOption = None,
    config: ConfigOption = None,
) -> None:
    """Review and correct the models' calls in a browser, one key per decision."""
    from schemas.home import HomeLayout
    from schemas.review import is_loopback_host

    settings = settings_or_exit(home, config)
    host = host or settings.review.host
    port = port or settings.review.port
    secret = read_password(password, password_file)
    if not is_loopback_host(host) and secret is None:
        err.print(
            f"error: refusing to listen on {host} without --password or --password-file: anyone who can reach it "
            "could change the catalog's labels",
            highlight=False,
        )
        raise typer.Exit(2)
    import uvicorn

    from flows.review.app import ReviewServer, create_app

    server = ReviewServer(
        home=HomeLayout(settings.home),
        password=secret,
        reviewer=reviewer or getpass.getuser(),
        audit_share=settings.review.audit_share,
        loopback_only=is_loopback_host(host),
        config_file=config,
    )
    shown = f"[{host}]" if ":" in host else host
    out.print(f"breedwatch review on http://{shown}:{port}/ (home {settings.home}; Ctrl-C stops it)", highlight=False)
    uvicorn.run(create_app(server), host=host, port=port, log_level="warning", server_header=False)
