"""The nightly flow on a 2-worker local Dask cluster writes the same tables as on the default runner; [runner] picks the
runner."""

from __future__ import annotations

from pathlib import Path

from distributed import LocalCluster
from prefect.task_runners import ThreadPoolTaskRunner
from prefect_dask import DaskTaskRunner

from flows.nightly import nightly
from schemas.config import RunnerConfig
from schemas.home import HomeLayout
from schemas.tables import LAKE_TABLES
from tasks.lake import read_table
from tasks.runner import local_cluster_kwargs, task_runner_for
from tests.pipeline_home import PINNED_CONFIG, store_gender_model, store_mating_model, write_staged_drop

RUN_DEPENDENT = {"run_id"}


def table_contents(home: Path) -> dict[str, list[tuple]]:
    """Every lake table's rows (the runs table and run ids left out), sorted."""
    tables = {}
    for spec in LAKE_TABLES:
        if spec.name == "runs":
            continue
        rows = read_table(HomeLayout(home), spec).to_pylist()
        tables[spec.name] = sorted(tuple((k, str(v)) for k, v in row.items() if k not in RUN_DEPENDENT) for row in rows)
    return tables


def run_on(runner_config: RunnerConfig, drop: Path, home: Path, config: Path) -> dict:
    """One nightly run of the drop into a home holding the tiny models, on the runner the configuration names."""
    layout = HomeLayout(home)
    store_gender_model(layout, 0)
    store_mating_model(layout, 0)
    flow = nightly.with_options(task_runner=task_runner_for(runner_config))
    return flow(drops=[str(drop)], home=str(home), config_file=str(config))


def test_runner_config_picks_the_task_runner() -> None:
    assert isinstance(task_runner_for(RunnerConfig()), ThreadPoolTaskRunner)
    assert isinstance(task_runner_for(RunnerConfig(kind="dask", address="tcp://127.0.0.1:8786")), DaskTaskRunner)
    local = task_runner_for(RunnerConfig(kind="dask", n_workers=3, threads_per_worker=2))
    assert isinstance(local, DaskTaskRunner) and local.cluster_kwargs == local_cluster_kwargs(
        RunnerConfig(kind="dask", n_workers=3, threads_per_worker=2)
    )
    assert (
        local.cluster_kwargs["n_workers"] == 3
        and local.cluster_kwargs["threads_per_worker"] == 2
        and local.cluster_kwargs["host"] == "127.0.0.1"
    )


def test_dask_cluster_and_default_runner_write_identical_tables(tmp_path: Path) -> None:
    drop = write_staged_drop(tmp_path / "inbox" / "d1")
    config = tmp_path / "config.toml"
    config.write_text(PINNED_CONFIG)
    default = run_on(RunnerConfig(kind="default"), drop, tmp_path / "default", config)
    with LocalCluster(**local_cluster_kwargs(RunnerConfig(kind="dask", n_workers=2, threads_per_worker=1))) as cluster:
        dask = run_on(RunnerConfig(kind="dask", address=cluster.scheduler_address), drop, tmp_path / "dask", config)
        ran_on_dask = {str(entry[0]).rsplit("-", 1)[0] for entry in cluster.scheduler.transition_log}
    assert {"ingest_drop", "find_faces", "predict_gender", "segment_audio", "predict_mating"} <= ran_on_dask
    for summary in (default, dask):
        assert [summary[s][0]["status"] for s in ("faces", "gender", "audio", "mating")] == [
            "detected",
            "predicted",
            "segmented",
            "predicted",
        ]
    expected, got = table_contents(tmp_path / "default"), table_contents(tmp_path / "dask")
    assert {name: len(rows) for name, rows in got.items()} == {name: len(rows) for name, rows in expected.items()}
    assert all(
        expected[name]
        for name in ("media", "faces", "gender_predictions", "segments", "segment_features", "mating_predictions")
    )
    assert got == expected


def test_deployment_entrypoint_reads_the_runner_from_the_environment(monkeypatch) -> None:
    import importlib

    import flows.deployed

    monkeypatch.setenv("BREEDWATCH_RUNNER__KIND", "dask")
    monkeypatch.setenv("BREEDWATCH_RUNNER__ADDRESS", "tcp://10.0.0.5:8786")
    runner = importlib.reload(flows.deployed).nightly_on_runner.task_runner
    assert isinstance(runner, DaskTaskRunner) and runner.address == "tcp://10.0.0.5:8786"
    monkeypatch.delenv("BREEDWATCH_RUNNER__KIND")
    monkeypatch.delenv("BREEDWATCH_RUNNER__ADDRESS")
    assert isinstance(importlib.reload(flows.deployed).nightly_on_runner.task_runner, ThreadPoolTaskRunner)
