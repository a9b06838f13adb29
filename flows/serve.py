"""Serve the nightly flow on its schedule from one process (no work pool, no other service)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect.schedules import Cron

from flows.nightly import nightly
from schemas.config import Settings
from tasks.runner import task_runner_for

DEPLOYMENT_NAME = "nightly"


def nightly_schedule(settings: Settings) -> Cron:
    """The nightly cron schedule in the configured time zone."""
    return Cron(settings.schedule.cron, timezone=settings.schedule.timezone)


def nightly_parameters(settings: Settings, config: Path | None) -> dict[str, Any]:
    """The flow parameters of a scheduled run: every new drop in the inbox."""
    return {
        "drops": None,
        "home": str(settings.home.resolve()),
        "config_file": str(config.resolve()) if config else None,
    }


def serve_nightly(settings: Settings, config: Path | None) -> None:
    """Block, starting a nightly run on the configured task runner at each scheduled time."""
    nightly.with_options(task_runner=task_runner_for(settings.runner)).serve(
        name=DEPLOYMENT_NAME,
        schedules=[nightly_schedule(settings)],
        parameters=nightly_parameters(settings, config),
        description="breedwatch nightly run over new drops in the inbox",
    )
