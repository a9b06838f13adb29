"""`breedwatch run`, `demo`, `sample-drop` and `serve`: the nightly flow and the sample data it is shown on."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flows.cli.common import ConfigOption, HomeOption, err, out, settings_or_exit

if TYPE_CHECKING:
    from schemas.config import Settings

YIELD_SUMMARY_SQL = (
    "SELECT drop_id AS drop, camera, night, images, faces, usable_faces AS usable, faces_per_image AS per_image "
    "FROM detector_yield WHERE list_contains(?, drop_id)"
)


def run_nightly(drops: list[str] | None, settings: Settings, config: Path | None) -> dict[str, Any]:
    """Run the nightly flow on the configured task runner and exit non-zero only if the run itself failed."""
    from flows.nightly import nightly
    from tasks.home_version import HomeVersionError
    from tasks.lake import DiskFullError, HomeBusyError
    from tasks.runner import task_runner_for

    try:
        on_runner = nightly.with_options(task_runner=task_runner_for(settings.runner))
        return on_runner(drops=drops, home=str(settings.home), config_file=str(config) if config else None)
    except (HomeBusyError, HomeVersionError, DiskFullError) as error:  # one sentence that says what to do
        err.print(f"error: {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except Exception as error:  # the run failed: it is recorded in runs; say so and exit 1
        err.print(f"error: the run failed: {type(error).__name__}: {error}", highlight=False)
        raise typer.Exit(1) from None


def print_summary(summary: dict[str, Any]) -> None:
    """Print the one-screen summary and where the report is."""
    from reports.console import run_summary_table, table_to_rich
    from schemas.home import HomeLayout
    from tasks.catalog import query as run_query

    out.print(run_summary_table(summary))
    drop_ids = [drop["drop_id"] for drop in summary["drops"]]
    if drop_ids:
        detector_yield = run_query(HomeLayout(Path(summary["home"])), YIELD_SUMMARY_SQL, [drop_ids])
        out.print(table_to_rich(detector_yield, title="faces per camera and night"))
    totals = ", ".join(f"{key} {value}" for key, value in sorted(summary["counts"].items())) or "nothing to do"
    out.print(f"totals: {totals}", highlight=False)
    out.print(
        f"catalog: {HomeLayout(Path(summary['home'])).catalog}  "
        '(try: breedwatch query "select kind, status, count(*) from media group by all")',
        highlight=False,
        soft_wrap=True,
    )
    out.print(
        f"report: {summary['report']}", highlight=False, soft_wrap=True
    )  # a path must stay copyable: never wrapped


def run(
    drops: Annotated[list[Path] | None, typer.Argument(help="Drop folders; default: new drops in the inbox.")] = None,
    home: HomeOption = None,
    config: ConfigOption = None,
) -> None:
    """Run the nightly flow on the given drops, or on every new drop in the inbox."""
    settings = settings_or_exit(home, config)
    summary = run_nightly([str(d) for d in drops] if drops else None, settings, config)
    print_summary(summary)


def demo(
    home: HomeOption = None,
    config: ConfigOption = None,
    seed: Annotated[int, typer.Option(help="Seed of the generated sample drop.")] = 0,
    animals: Annotated[int, typer.Option(help="Animals in the generated sample drop.")] = 12,
) -> None:
    """Generate a sample drop (once), train a species face detector on a separate sample archive (once), run the nightly
    flow."""
    from schemas.home import HomeLayout
    from tasks.demo import gender_truth_check, individuals_check, prepare_demo
    from tasks.runner import start_api_server_early

    settings = settings_or_exit(home, config)
    server = start_api_server_early()  # starts while the demo's models train
    plan = prepare_demo(settings, config, seed, animals)
    for note in plan.notes:
        out.print(note, highlight=False)
    if server is not None:
        server.join()
    drops = [str(plan.drop), str(plan.traps_night)]
    summary = run_nightly(drops, settings_or_exit(settings.home, plan.config), plan.config)
    out.print(gender_truth_check(HomeLayout(settings.home), [plan.drop, plan.traps_night]), highlight=False)
    out.print(individuals_check(HomeLayout(settings.home), plan.traps_night, plan.traps_night.name), highlight=False)
    print_summary(summary)


def sample_drop(
    out_dir: Annotated[Path, typer.Argument(metavar="OUT", help="Folder to create (must be empty or absent).")],
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same files.")] = 0,
    animals: Annotated[int, typer.Option(help="Number of animals.", min=4)] = 12,
    night: Annotated[
        int, typer.Option(help="Night of the population, from 0; later nights hold camera-trap frames only.")
    ] = 0,
    wild: Annotated[int, typer.Option(help="Never-registered animals that only the camera traps see.")] = 0,
    traps_only: Annotated[
        bool, typer.Option("--traps-only", help="Camera-trap frames only: no keeper photos, animals.csv or audio.")
    ] = False,
) -> None:
    """Write a deterministic synthetic drop with its ground truth under OUT/truth/."""
    from tasks.sample_drop import write_sample_drop

    try:
        summary = write_sample_drop(
            out_dir, seed=seed, n_animals=animals, night=night, n_wild=wild, traps_only=traps_only
        )
    except ValueError as error:
        err.print(f"error: {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    out.print(f"wrote {out_dir}: {summary}", highlight=False, soft_wrap=True)


def serve(home: HomeOption = None, config: ConfigOption = None) -> None:
    """Serve the nightly schedule from this process, with no other service."""
    from flows.serve import serve_nightly

    settings = settings_or_exit(home, config)
    out.print(
        f"serving 'nightly' on cron '{settings.schedule.cron}' ({settings.schedule.timezone}); Ctrl-C stops",
        highlight=False,
    )
    serve_nightly(settings, config)
