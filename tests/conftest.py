"""Shared fixtures: one Prefect test server for the session, real-data location, small drops."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# Tests write a drop and run on it at once: drops settle at once unless a test asks otherwise
# (tests/flows/test_settle.py, and the demo, which marks its drop ready, run with the real rule).
os.environ.setdefault("BREEDWATCH_INGEST__SETTLE_S", "0")
# The test server's start waits this long (a loaded machine, such as one training a net beside the suite, took over
# the 60 s this once was and every flow test errored); a caller may set it higher.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "300")

import pytest  # noqa: E402
from prefect.testing.utilities import prefect_test_harness  # noqa: E402

REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"


@pytest.fixture(scope="session", autouse=True)
def prefect_backend():
    """One temporary Prefect server and database for every test that runs a flow."""
    with prefect_test_harness(server_startup_timeout=None):  # the startup setting set above
        yield


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The shared real files; tests that use them skip when the folder is absent."""
    if not REALDATA.is_dir():
        pytest.skip(f"real data folder {REALDATA} is absent")
    return REALDATA


def realfile(realdata: Path, relative: str) -> Path:
    """One real file, skipping the test when it is missing."""
    path = realdata / relative
    if not path.exists():
        pytest.skip(f"real file {relative} is absent")
    return path


@pytest.fixture()
def one_thread():
    """Tiny training loops run in one intra-op thread: on a busy 2-core host, 2 threads can be 40x slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`breedwatch demo` once per session in a fresh home (about two minutes on 2 cores): the home and what it printed.

    The command function is called with its console captured, not through CliRunner: a first flow run inside
    CliRunner's swapped streams would leave Prefect's log handler writing to a closed stream for later tests."""
    from flows.cli.common import out
    from flows.cli.pipeline import demo

    home = tmp_path_factory.mktemp("demo") / "home"
    with pytest.MonkeyPatch.context() as patch, out.capture() as captured:
        patch.delenv("BREEDWATCH_INGEST__SETTLE_S", raising=False)  # the demo's own ready marker must do it
        demo(home=home, config=None, seed=0, animals=12)
    return home, captured.get()
