"""Render report pages from Jinja2 templates (autoescaped, self-contained)."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape


def template_environment() -> Environment:
    """The Jinja2 environment for breedwatch templates, autoescaping HTML."""
    return Environment(
        loader=PackageLoader("reports", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_run_report(context: dict[str, Any]) -> str:
    """The HTML page of one run's report."""
    return template_environment().get_template("run_report.html.j2").render(**context)


def humanise_seconds(seconds: float) -> str:
    """'1 min 05 s' style durations for the report."""
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"
