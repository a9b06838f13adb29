"""kill -9 at N points of a nightly run (default 20): each next run must end with the tables of an uninterrupted run.

Builds a reference home by one uninterrupted run over small generated drops (two 4-animal sample drops, trimmed, with
random-weight nets so every stage runs), then N times on a fresh copy of the inputs: starts `breedwatch run` as a
child process, SIGKILLs it (N - 2 random points spread over the run's length, one inside the catalog refresh) or
SIGKILLs a review correction's save mid-write (one point), runs the flow again to completion and compares every lake
table and catalog relation with the reference (sorted rows; left out: the run_id columns and the runs table and view,
which differ by design), checks no key names two rows and nothing is left behind.

    .venv/bin/python scripts/fault_kill.py [--kills 20] [--seed 0] [--work DIR] [--json FILE]

Prints a table of kill points and outcomes; exits 1 on any difference. Homes that failed are kept under the work
folder (a temporary one unless --work is given)."""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

from tasks.fault_kill import (  # noqa: E402
    CATALOG_REFRESH,
    CORRECTION_SAVE,
    KillPoint,
    Outcome,
    Reference,
    random_points,
    run_faults,
    write_inputs,
)


def chosen_points(kills: int, seed: int) -> Callable[[Reference], list[KillPoint]]:
    """The kill points drawn from the reference: kills - 2 random, one inside the catalog refresh, one inside a
    correction's save."""

    def points(reference: Reference) -> list[KillPoint]:
        drawn = random_points(reference, max(kills - 2, 0), random.Random(seed))
        return [*drawn, KillPoint("catalog refresh", CATALOG_REFRESH), KillPoint("correction save", CORRECTION_SAVE)]

    return points


def print_row(outcome: Outcome) -> None:
    """One line of the outcome table, printed as soon as the kill is done."""
    delay = f"{outcome.point.delay_s:7.2f}" if outcome.point.delay_s else "      -"
    verdict = "identical" if outcome.ok else "; ".join(outcome.problems)
    print(f"{outcome.point.name:<16} {outcome.point.event:<16} {delay}  {outcome.landed:<26} {verdict}", flush=True)


def api_server_url() -> str:
    """The Prefect API every run reports to: the configured one, else a temporary local server started here."""
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return PREFECT_API_URL.value()
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start()
    return server.api_url


def main() -> int:
    """Generate the inputs, run the reference and the kills, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from tasks.execution import cpu_identity, usable_cores

    with tempfile.TemporaryDirectory(prefix="fault-kill-") as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        inputs = write_inputs(work / "inputs")
        api_url = api_server_url()
        print(f"{'kill point':<16} {'after event':<16} {'delay s':>7}  {'landed after':<26} outcome", flush=True)
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            reference, outcomes = run_faults(work, inputs, chosen_points(args.kills, args.seed), api_url, print_row)
    failed = [outcome for outcome in outcomes if not outcome.ok]
    cpu, _ = cpu_identity()
    summary = {
        "cpu": f"{cpu}, {usable_cores()} usable cores",
        "reference_events_s": reference.events,
        "reference_run_s": round(reference.duration_s, 2),
        "kills": len(outcomes),
        "identical": len(outcomes) - len(failed),
        "outcomes": [{**asdict(outcome), "ok": outcome.ok} for outcome in outcomes],
    }
    print(
        f"{len(outcomes) - len(failed)} of {len(outcomes)} kills ended with the reference's tables ({summary['cpu']})"
    )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
