"""The task runner of the nightly flow's per-drop stages: Prefect's thread pool here, or a Dask cluster
(prefect-dask)."""

from __future__ import annotations

import threading

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from schemas.config import RunnerConfig

LOCAL_HOST = "127.0.0.1"


def local_cluster_kwargs(config: RunnerConfig) -> dict[str, object]:
    """A LocalCluster of worker processes on this machine, listening on localhost only, without a dashboard."""
    return {
        "n_workers": config.n_workers,
        "threads_per_worker": config.threads_per_worker,
        "processes": True,
        "host": LOCAL_HOST,
        "dashboard_address": None,
    }


def task_runner_for(config: RunnerConfig) -> TaskRunner:
    """Prefect's thread pool (n_workers threads), or DaskTaskRunner on the given scheduler or on a new local cluster."""
    if config.kind == "default":
        return ThreadPoolTaskRunner(max_workers=config.n_workers)
    from prefect_dask import DaskTaskRunner

    if config.address:
        return DaskTaskRunner(address=config.address)
    return DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs=local_cluster_kwargs(config))


def start_api_server_early() -> threading.Thread | None:
    """Start Prefect's temporary local API server on a thread (about 20 s on 2 cores) when no API URL is configured, so
    it starts while other work runs; join the thread before the first flow. None when a server is configured."""
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return None
    from prefect.server.api.server import SubprocessASGIServer

    thread = threading.Thread(target=SubprocessASGIServer().start, name="prefect-server-start", daemon=True)
    thread.start()
    return thread
