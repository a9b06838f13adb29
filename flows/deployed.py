"""Entrypoint of work-pool deployments: the nightly flow on the task runner that the worker's environment configures.

A deployment whose entrypoint is `flows/deployed.py:nightly_on_runner` reads [runner] from BREEDWATCH_RUNNER__*
variables (set them in the work pool's job variables), e.g. BREEDWATCH_RUNNER__KIND=dask and
BREEDWATCH_RUNNER__ADDRESS=tcp://scheduler:8786; `breedwatch run` and `breedwatch serve` read the TOML instead.
"""

from __future__ import annotations

from flows.nightly import nightly
from schemas.config import load_settings
from tasks.runner import task_runner_for

nightly_on_runner = nightly.with_options(task_runner=task_runner_for(load_settings().runner))
