"""The breedwatch command line (console script 'breedwatch')."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# Prefect's temporary server gets 20 s to start by default; a busy 2-core station server needs more.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

import duckdb  # noqa: E402
import typer  # noqa: E402

from reports.console import run_summary_table, table_to_csv, table_to_json, table_to_rich  # noqa: E402
from schemas.config import Settings  # noqa: E402
from flows import cli_gender  # noqa: E402
from flows import cli_report  # noqa: E402
from flows import cli_bench  # noqa: E402
from flows import cli_mating  # noqa: E402
from flows import cli_simulate  # noqa: E402
from flows.cli_common import ConfigOption, HomeOption, call_flow, err, out, settings_or_exit  # noqa: E402
from flows.cli_export import camtrap_dp  # noqa: E402
from schemas.home import HomeLayout  # noqa: E402
from tasks.catalog import CatalogMissingError, query as run_query  # noqa: E402
from tasks.lake import HomeBusyError  # noqa: E402

app = typer.Typer(help="Nightly pipeline for breeding stations: drops in, catalog and reports out.", no_args_is_help=True)
YIELD_SUMMARY_SQL = (
    "SELECT drop_id AS drop, camera, night, images, faces, usable_faces AS usable, faces_per_image AS per_image "
    "FROM detector_yield WHERE list_contains(?, drop_id)"
)


def run_nightly(drops: list[str] | None, settings: Settings, config: Path | None) -> dict[str, Any]:
    """Run the nightly flow on the configured task runner and exit non-zero only if the run itself failed."""
    from flows.nightly import nightly
    from tasks.runner import task_runner_for

    try:
        on_runner = nightly.with_options(task_runner=task_runner_for(settings.runner))
        return on_runner(drops=drops, home=str(settings.home), config_file=str(config) if config else None)
    except HomeBusyError as error:
        err.print(f"error: {error}", highlight=False)
        raise typer.Exit(1) from None
    except Exception as error:  # the run failed: it is recorded in runs; say so and exit 1
        err.print(f"error: the run failed: {type(error).__name__}: {error}", highlight=False)
        raise typer.Exit(1) from None


def print_summary(summary: dict[str, Any]) -> None:
    """Print the one-screen summary and where the report is."""
    out.print(run_summary_table(summary))
    drop_ids = [drop["drop_id"] for drop in summary["drops"]]
    if drop_ids:
        detector_yield = run_query(HomeLayout(Path(summary["home"])), YIELD_SUMMARY_SQL, [drop_ids])
        out.print(table_to_rich(detector_yield, title="faces per camera and night"))
    totals = ", ".join(f"{key} {value}" for key, value in sorted(summary["counts"].items())) or "nothing to do"
    out.print(f"totals: {totals}", highlight=False)
    out.print(f"catalog: {HomeLayout(Path(summary['home'])).catalog}  (try: breedwatch query \"select kind, status, count(*) from media group by all\")", highlight=False, soft_wrap=True)
    out.print(f"report: {summary['report']}", highlight=False, soft_wrap=True)  # a path must stay copyable: never wrapped


@app.command()
def run(
    drops: Annotated[list[Path] | None, typer.Argument(help="Drop folders; default: new drops in the inbox.")] = None,
    home: HomeOption = None,
    config: ConfigOption = None,
) -> None:
    """Run the nightly flow on the given drops, or on every new drop in the inbox."""
    settings = settings_or_exit(home, config)
    summary = run_nightly([str(d) for d in drops] if drops else None, settings, config)
    print_summary(summary)


@app.command()
def demo(
    home: HomeOption = None,
    config: ConfigOption = None,
    seed: Annotated[int, typer.Option(help="Seed of the generated sample drop.")] = 0,
    animals: Annotated[int, typer.Option(help="Animals in the generated sample drop.")] = 12,
) -> None:
    """Generate a sample drop (once), train a species face detector on a separate sample archive (once), run the nightly flow."""
    from tasks.demo import gender_truth_check, prepare_demo

    settings = settings_or_exit(home, config)
    plan = prepare_demo(settings, config, seed, animals)
    for note in plan.notes:
        out.print(note, highlight=False)
    summary = run_nightly([str(plan.drop)], settings_or_exit(settings.home, plan.config), plan.config)
    out.print(gender_truth_check(HomeLayout(settings.home), plan.drop), highlight=False)
    print_summary(summary)


@app.command("sample-drop")
def sample_drop(
    out_dir: Annotated[Path, typer.Argument(metavar="OUT", help="Folder to create (must be empty or absent).")],
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same files.")] = 0,
    animals: Annotated[int, typer.Option(help="Number of animals.", min=4)] = 12,
) -> None:
    """Write a deterministic synthetic drop with its ground truth under OUT/truth/."""
    from tasks.sample_drop import write_sample_drop

    try:
        summary = write_sample_drop(out_dir, seed=seed, n_animals=animals)
    except ValueError as error:
        err.print(f"error: {error}", highlight=False)
        raise typer.Exit(2) from None
    out.print(f"wrote {out_dir}: {summary}", highlight=False)


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="SQL to run against the catalog (read-only).")],
    format: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    home: HomeOption = None,
    config: ConfigOption = None,
) -> None:
    """Answer ad-hoc SQL against the catalog."""
    if format not in ("table", "csv", "json"):
        err.print(f"error: --format must be table, csv or json, not {format!r}", highlight=False)
        raise typer.Exit(2)
    settings = settings_or_exit(home, config)
    try:
        result = run_query(HomeLayout(settings.home), sql)
    except (duckdb.Error, CatalogMissingError) as error:
        err.print(str(error), highlight=False, markup=False)
        raise typer.Exit(1) from None
    if format == "table":
        out.print(table_to_rich(result))
    else:
        typer.echo(table_to_csv(result) if format == "csv" else table_to_json(result), nl=format == "json")


train_app = typer.Typer(help="Train models on the station's own labelled data.", no_args_is_help=True)
evaluate_app = typer.Typer(help="Measure models on labelled data.", no_args_is_help=True)
app.add_typer(train_app, name="train")
app.add_typer(evaluate_app, name="evaluate")
export_app = typer.Typer(help="Export the catalog in formats other tools open (Camtrap DP, Raven).", no_args_is_help=True)
app.add_typer(export_app, name="export")
export_app.command("camtrap-dp")(camtrap_dp)
train_app.command("gender")(cli_gender.train_gender)
app.command("report")(cli_report.report)
evaluate_app.command("gender")(cli_gender.evaluate_gender)
train_app.command("mating")(cli_mating.train_mating)
evaluate_app.command("mating")(cli_mating.evaluate_mating)
export_app.command("raven")(cli_mating.export_raven)
app.command("bench")(cli_bench.bench)
app.add_typer(cli_simulate.simulate_app, name="simulate")
AnnotationsOption = Annotated[Path | None, typer.Option(help="Face boxes: CSV (path,x,y,w,h), COCO JSON or Camtrap DP observations.csv / datapackage.json.")]
ImagesOption = Annotated[Path | None, typer.Option("--images", help="Folder the annotation paths are relative to.")]
AllImagesOption = Annotated[Path | None, typer.Option(help="CSV or text list of every image, so frames without faces count for precision.")]
SampleDropOption = Annotated[Path | None, typer.Option(help="A sample drop: use its truth/boxes.csv and truth/frames.csv.")]


def annotation_sources(annotations: Path | None, images: Path | None, all_images: Path | None, sample_drop: Path | None) -> tuple[str, str, str | None]:
    """Annotations, images root and image list, from explicit options or a sample drop."""
    if sample_drop is not None:
        return str(sample_drop / "truth" / "boxes.csv"), str(sample_drop), str(sample_drop / "truth" / "frames.csv")
    if annotations is None or images is None:
        err.print("error: give --annotations and --images, or --sample-drop", highlight=False)
        raise typer.Exit(2)
    return str(annotations), str(images), str(all_images) if all_images else None


@train_app.command("detector")
def train_detector(
    annotations: AnnotationsOption = None, images: ImagesOption = None, all_images: AllImagesOption = None,
    sample_drop: SampleDropOption = None,
    name: Annotated[str, typer.Option(help="Detector name in the model store.")] = "mtcnn-panda",
    seed: Annotated[int, typer.Option(help="Seed of the held-out split and training.")] = 0,
    home: HomeOption = None, config: ConfigOption = None,
) -> None:
    """Fine-tune MTCNN's P-, R- and O-Net on annotated face boxes, starting from the human weights."""
    from flows.train import train_detector_flow

    settings = settings_or_exit(home, config)
    boxes, root, every = annotation_sources(annotations, images, all_images, sample_drop)
    card = call_flow(train_detector_flow, annotations=boxes, images_root=root, name=name, seed=seed, all_images=every,
                     home=str(settings.home), config_file=str(config) if config else None)
    metrics, human = card["metrics"], card["metrics"].get("human_baseline", {})
    out.print(f"stored {card['name']}@v{card['version']} in {card['path']} after {card['train_seconds']:.0f} s of training", highlight=False)
    out.print(f"held-out images: recall {metrics['recall']:.3f}, precision {metrics['precision']:.3f}, mean IoU {metrics['mean_iou']:.3f} "
              f"(mtcnn-human: recall {human.get('recall', 0):.3f}, precision {human.get('precision', 0):.3f})", highlight=False)
    out.print(f'use it with [faces] detector = "{card["name"]}" in your configuration', highlight=False)


@evaluate_app.command("detector")
def evaluate_detector(
    detector: Annotated[str, typer.Option(help="'mtcnn-human', a stored name, or name@vN.")] = "mtcnn-panda",
    annotations: AnnotationsOption = None, images: ImagesOption = None, all_images: AllImagesOption = None,
    sample_drop: SampleDropOption = None,
    unannotated_faceless: Annotated[bool, typer.Option(help="Images under --images without annotations have no face (count their detections as false positives).")] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the full result as JSON.")] = None,
    home: HomeOption = None, config: ConfigOption = None,
) -> None:
    """Recall, precision and mean IoU at IoU 0.5 of a face detector on a labelled set."""
    from flows.train import evaluate_detector_flow

    settings = settings_or_exit(home, config)
    boxes, root, every = annotation_sources(annotations, images, all_images, sample_drop)
    result = call_flow(evaluate_detector_flow, detector=detector, annotations=boxes, images_root=root, all_images=every,
                       unannotated_faceless=unannotated_faceless, home=str(settings.home), config_file=str(config) if config else None)
    out.print(f"{result['detector']}: recall {result['recall']:.3f}, precision {result['precision']:.3f}, "
              f"mean IoU {result['mean_iou']:.3f} on {result.get('n_images', '?')} images with {result.get('n_faces', '?')} faces "
              f"({result['seconds_per_image']:.3f} s per image)", highlight=False)
    if json_out is not None:
        json_out.write_text(json.dumps(result, indent=2, default=str))


@app.command()
def serve(home: HomeOption = None, config: ConfigOption = None) -> None:
    """Serve the nightly schedule from this process, with no other service."""
    from flows.serve import serve_nightly

    settings = settings_or_exit(home, config)
    out.print(f"serving 'nightly' on cron '{settings.schedule.cron}' ({settings.schedule.timezone}); Ctrl-C stops", highlight=False)
    serve_nightly(settings, config)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
