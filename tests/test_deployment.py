"""The prefect.yaml deployment and the served schedule agree with the configuration and the flow."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml
from prefect.utilities.callables import parameter_schema

from flows.nightly import nightly
from flows.serve import nightly_parameters, nightly_schedule
from schemas.config import ScheduleConfig, Settings

ROOT = Path(__file__).resolve().parents[1]


def nightly_deployment() -> dict:
    """The 'nightly' entry of prefect.yaml."""
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    (deployment,) = [d for d in config["deployments"] if d["name"] == "nightly"]
    return deployment


def test_deployment_schedule_is_nightly_at_two_in_the_configured_zone():
    deployment = nightly_deployment()
    (schedule,) = deployment["schedules"]
    defaults = ScheduleConfig()
    assert schedule["cron"] == defaults.cron == "0 2 * * *"
    assert schedule["timezone"] == defaults.timezone
    assert schedule["active"] is True
    assert deployment["work_pool"]["name"] == "breedwatch-process"


def test_deployment_entrypoint_is_the_nightly_flow():
    deployment = nightly_deployment()
    module, name = deployment["entrypoint"].split(":")
    assert (ROOT / module).is_file()
    assert name == nightly.name == "nightly"


def test_deployment_parameters_validate_against_the_flow_signature():
    deployment = nightly_deployment()
    schema = parameter_schema(nightly).model_dump_for_openapi()
    jsonschema.validate(deployment["parameters"], schema)
    assert set(deployment["parameters"]) == set(schema["properties"])
    assert deployment["enforce_parameter_schema"] is True
    try:
        jsonschema.validate({**deployment["parameters"], "drops": "not-a-list"}, schema)
    except jsonschema.ValidationError:
        pass
    else:
        raise AssertionError("a non-list 'drops' parameter must be refused")


def test_served_schedule_uses_the_configured_time_zone(tmp_path):
    settings = Settings(home=tmp_path, schedule=ScheduleConfig(timezone="Asia/Shanghai"))
    schedule = nightly_schedule(settings)
    assert schedule.cron == "0 2 * * *"
    assert schedule.timezone == "Asia/Shanghai"
    parameters = nightly_parameters(settings, None)
    jsonschema.validate(parameters, parameter_schema(nightly).model_dump_for_openapi())
    assert parameters["home"] == str(tmp_path.resolve())
