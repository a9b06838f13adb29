"""`breedwatch train detector` and `evaluate detector`: fine-tune MTCNN on annotated face boxes and measure it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import ConfigOption, HomeOption, call_flow, err, out, settings_or_exit

AnnotationsOption = Annotated[
    Path | None,
    typer.Option(help="Face boxes: CSV (path,x,y,w,h), COCO JSON or Camtrap DP observations.csv / datapackage.json."),
]
ImagesOption = Annotated[Path | None, typer.Option("--images", help="Folder the annotation paths are relative to.")]
AllImagesOption = Annotated[
    Path | None, typer.Option(help="CSV or text list of every image, so frames without faces count for precision.")
]
SampleDropOption = Annotated[
    Path | None, typer.Option(help="A sample drop: use its truth/boxes.csv and truth/frames.csv.")
]


def annotation_sources(
    annotations: Path | None, images: Path | None, all_images: Path | None, sample_drop: Path | None
) -> tuple[str, str, str | None]:
    """Annotations, images root and image list, from explicit options or a sample drop."""
    if sample_drop is not None:
        return str(sample_drop / "truth" / "boxes.csv"), str(sample_drop), str(sample_drop / "truth" / "frames.csv")
    if annotations is None or images is None:
        err.print("error: give --annotations and --images, or --sample-drop", highlight=False)
        raise typer.Exit(2)
    return str(annotations), str(images), str(all_images) if all_images else None


def train_detector(
    annotations: AnnotationsOption = None,
    images: ImagesOption = None,
    all_images: AllImagesOption = None,
    sample_drop: SampleDropOption = None,
    name: Annotated[str, typer.Option(help="Detector name in the model store.")] = "mtcnn-panda",
    seed: Annotated[int, typer.Option(help="Seed of the held-out split and training.")] = 0,
    home: HomeOption = None,
    config: ConfigOption = None,
) -> None:
    """Fine-tune MTCNN's P-, R- and O-Net on annotated face boxes, starting from the human weights."""
    from flows.train import train_detector_flow

    settings = settings_or_exit(home, config)
    boxes, root, every = annotation_sources(annotations, images, all_images, sample_drop)
    card = call_flow(
        train_detector_flow,
        annotations=boxes,
        images_root=root,
        name=name,
        seed=seed,
        all_images=every,
        home=str(settings.home),
        config_file=str(config) if config else None,
    )
    metrics, human = card["metrics"], card["metrics"].get("human_baseline", {})
    out.print(
        f"stored {card['name']}@v{card['version']} in {card['path']} after {card['train_seconds']:.0f} s of training",
        highlight=False,
    )
    out.print(
        f"held-out images: recall {metrics['recall']:.3f}, precision {metrics['precision']:.3f}, "
        f"mean IoU {metrics['mean_iou']:.3f} "
        f"(mtcnn-human: recall {human.get('recall', 0):.3f}, precision {human.get('precision', 0):.3f})",
        highlight=False,
    )
    out.print(f'use it with [faces] detector = "{card["name"]}" in your configuration', highlight=False)


def evaluate_detector(
    detector: Annotated[str, typer.Option(help="'mtcnn-human', a stored name, or name@vN.")] = "mtcnn-panda",
    annotations: AnnotationsOption = None,
    images: ImagesOption = None,
    all_images: AllImagesOption = None,
    sample_drop: SampleDropOption = None,
    unannotated_faceless: Annotated[
        bool,
        typer.Option(
            help="Images under --images without annotations have no face (count their detections as false positives)."
        ),
    ] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the full result as JSON.")] = None,
    home: HomeOption = None,
    config: ConfigOption = None,
) -> None:
    """Recall, precision and mean IoU at IoU 0.5 of a face detector on a labelled set."""
    from flows.train import evaluate_detector_flow

    settings = settings_or_exit(home, config)
    boxes, root, every = annotation_sources(annotations, images, all_images, sample_drop)
    result = call_flow(
        evaluate_detector_flow,
        detector=detector,
        annotations=boxes,
        images_root=root,
        all_images=every,
        unannotated_faceless=unannotated_faceless,
        home=str(settings.home),
        config_file=str(config) if config else None,
    )
    out.print(
        f"{result['detector']}: recall {result['recall']:.3f}, precision {result['precision']:.3f}, "
        f"mean IoU {result['mean_iou']:.3f} on {result.get('n_images', '?')} images "
        f"with {result.get('n_faces', '?')} faces "
        f"({result['seconds_per_image']:.3f} s per image)",
        highlight=False,
    )
    if json_out is not None:
        json_out.write_text(json.dumps(result, indent=2, default=str))
