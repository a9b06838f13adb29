"""Train and evaluate the species face detector: read annotation files and images, fine-tune, store the model."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from models.annotations import (
    HELD_OUT_FRACTION,
    AnnotationError,
    AnnotationSet,
    FaceAnnotation,
    LabelledImage,
    camtrap_image,
    checked_box,
    coco_face,
    coco_images,
    coco_where,
    corrected_frame_boxes,
    data_fingerprint,
    element_lines,
    faces_by_image,
    normalise_image_path,
    parse_number,
    pixel_boxes,
    split_images,
)
from models.detector_training import (
    DetectionMetrics,
    MatchResult,
    TrainingSettings,
    detection_metrics,
    fine_tune_mtcnn,
    match_detections,
    metrics_dict,
)
from models.faces import DetectorSettings, build_mtcnn, detect_faces, upright_rgb
from models.promotion import promotion_decision
from schemas.camtrap import BBOX, CamtrapMedia, CamtrapObservation, CamtrapRow
from schemas.config import FacesConfig
from schemas.home import HomeLayout
from schemas.manifest import ManifestError, parse_csv_manifest
from tasks.faces import HUMAN_PRESET, load_face_detector
from tasks.model_store import load_detector, save_checkpoint
from tasks.runs import code_version

DEFAULT_NAME = "mtcnn-panda"
BASE_WEIGHTS = "facenet-pytorch mtcnn human weights"
IOU_THRESHOLD = 0.5
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
CSV_FIELDS = ("path", "x", "y", "w", "h")
CamtrapRowModel = TypeVar("CamtrapRowModel", bound=CamtrapRow)
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
LANDMARKS_NOTE = (
    "not trained: O-Net's landmark head keeps the human weights while the layers under it changed; do not align on them"
)


# ---------------------------------------------------------------- annotation files


def csv_rows(path: Path, required: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) of a CSV file whose header must hold the required columns."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise AnnotationError(
                f"{path.name} line 1: missing column(s) {', '.join(missing)} (needs {', '.join(required)})"
            )
        for row in reader:
            yield reader.line_num, row


def load_csv_annotations(path: Path) -> AnnotationSet:
    """CSV with path, x, y, w, h per face: pixels, or fractions of the image when every value is <= 1."""
    faces = []
    for line, row in csv_rows(path, CSV_FIELDS):
        where = f"{path.name} line {line}"
        if not (row.get("path") or "").strip():
            raise AnnotationError(f"{where}: field 'path' is empty")
        values = [parse_number(row.get(f), where, f) for f in CSV_FIELDS[1:]]
        faces.append(
            FaceAnnotation(normalise_image_path(row["path"]), checked_box(values, where, CSV_FIELDS[1:]), False, where)
        )
    relative = bool(faces) and all(max(f.box) <= 1.0 for f in faces)
    return AnnotationSet(path, tuple(replace(f, relative=relative) for f in faces))


def load_coco_annotations(path: Path) -> AnnotationSet:
    """COCO JSON: `images` (id, file_name) and `annotations` (image_id, bbox [x, y, w, h] in pixels); images without
    annotations are faceless."""
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise AnnotationError(f"{path.name} line {error.lineno}: not valid JSON ({error.msg})") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("images"), list)
        or not isinstance(data.get("annotations"), list)
    ):
        raise AnnotationError(f"{path.name}: a COCO file needs the lists 'images' and 'annotations'")
    images = coco_images(path, data, element_lines(text, "images"))
    lines = element_lines(text, "annotations")
    faces = tuple(
        coco_face(path, a, images, coco_where(path, "annotations", i, lines)) for i, a in enumerate(data["annotations"])
    )
    return AnnotationSet(path, faces, tuple(sorted(set(images.values()) - {f.image for f in faces})))


def camtrap_table(path: Path, row_model: type[CamtrapRowModel], key: str) -> list[CamtrapRowModel]:
    """Every row of a package CSV, parsed strictly with the drop reader's row rules (the first bad row raises)."""
    try:
        return parse_csv_manifest(path.read_text(encoding="utf-8-sig"), path.name, row_model, key)
    except ManifestError as error:
        raise AnnotationError(str(error)) from None


def camtrap_paths(path: Path) -> tuple[Path, Path]:
    """observations.csv and media.csv of a Camtrap DP package given as folder, datapackage.json or observations.csv."""
    folder = path if path.is_dir() else path.parent
    observations, media = folder / "observations.csv", folder / "media.csv"
    for needed in (observations, media):
        if not needed.is_file():
            raise AnnotationError(f"Camtrap DP package {folder} has no {needed.name}")
    return observations, media


def load_camtrap_annotations(path: Path) -> AnnotationSet:
    """Camtrap DP observations with a bounding box (fractions) as faces; media whose observations are only blank are
    faceless. Rows are read with the same rules as a Camtrap DP drop."""
    observations_file, media_file = camtrap_paths(path)
    media = {m.mediaID: camtrap_image(m, media_file.name) for m in camtrap_table(media_file, CamtrapMedia, "mediaID")}
    faces, blank = [], set()
    for observation in camtrap_table(observations_file, CamtrapObservation, "observationID"):
        where, box = f"{observations_file.name} line {observation.csv_line}", observation.box()
        if box is not None and observation.mediaID not in media:
            raise AnnotationError(f"{where} field 'mediaID': {observation.mediaID!r} is not in {media_file.name}")
        if box is not None:
            faces.append(FaceAnnotation(media[observation.mediaID], checked_box(box, where, BBOX), True, where))
        elif observation.observationType == "blank" and observation.mediaID in media:
            blank.add(media[observation.mediaID])
    return AnnotationSet(observations_file, tuple(faces), tuple(sorted(blank - {f.image for f in faces})))


def load_annotations(path: Path) -> AnnotationSet:
    """Face boxes from a CSV file, a COCO JSON file or a Camtrap DP package (folder, datapackage.json or
    observations.csv)."""
    path = Path(path)
    if not path.exists():
        raise AnnotationError(f"annotation file {path} does not exist")
    if path.is_dir() or path.name in ("datapackage.json", "observations.csv"):
        return load_camtrap_annotations(path)
    if path.suffix.lower() == ".json":
        return load_coco_annotations(path)
    if path.suffix.lower() == ".csv":
        return load_csv_annotations(path)
    raise AnnotationError(f"{path.name}: unknown annotation format (use .csv, COCO .json or a Camtrap DP package)")


def read_image_list(path: Path) -> list[str]:
    """Image paths from the 'path' column of a CSV file (such as a sample drop's truth/frames.csv)."""
    return [
        normalise_image_path(row["path"]) for _, row in csv_rows(Path(path), ("path",)) if (row["path"] or "").strip()
    ]


def unannotated_images(images_root: Path, annotations: AnnotationSet) -> list[str]:
    """Image files under the root that the annotations do not name."""
    known = set(annotations.images())
    found = (
        p.relative_to(images_root).as_posix() for p in images_root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
    )
    return sorted(p for p in found if p not in known)


def annotation_set(
    annotations: Path, images_root: Path, all_images: Path | None, unannotated_faceless: bool
) -> AnnotationSet:
    """The annotations plus faceless images from an image list, or from the unannotated files when asked."""
    data = load_annotations(annotations)
    if all_images is not None:
        data = data.with_faceless(read_image_list(all_images))
    if unannotated_faceless:
        data = data.with_faceless(unannotated_images(Path(images_root), data))
    return data


# ---------------------------------------------------------------- images


def image_file(images_root: Path, image: str, where: str) -> Path:
    """The file of an annotated image, refusing paths that leave the images root."""
    root = Path(images_root).resolve()
    path = (root / image).resolve()
    if not path.is_relative_to(root):
        raise AnnotationError(f"{where}: image {image!r} lies outside the images folder {images_root}")
    if not path.is_file():
        raise AnnotationError(f"{where}: image {image!r} is not in {images_root}")
    return path


def load_image(images_root: Path, image: str, faces: Sequence[FaceAnnotation]) -> LabelledImage:
    """Decode one annotated image upright in RGB, with its pixel boxes and file hash."""
    where = faces[0].where if faces else f"image list entry {image!r}"
    data = image_file(images_root, image, where).read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as opened:
            rgb = np.asarray(upright_rgb(opened))
    except (UnidentifiedImageError, OSError) as error:
        raise AnnotationError(f"{where}: image {image!r} cannot be decoded ({error})") from None
    boxes = pixel_boxes(faces, rgb.shape[1], rgb.shape[0])
    return LabelledImage(image, rgb, boxes, hashlib.sha256(data).hexdigest())


def load_images(
    annotations: AnnotationSet, images_root: Path, only: Iterable[str] | None = None
) -> list[LabelledImage]:
    """Decode the images of the set (or the named subset), in sorted order."""
    grouped = faces_by_image(annotations)
    wanted = sorted(grouped) if only is None else sorted(only)
    return [load_image(images_root, image, grouped[image]) for image in wanted]


# ---------------------------------------------------------------- evaluation


def match_image(mtcnn: Any, rgb: np.ndarray, boxes: np.ndarray) -> MatchResult:
    """Detect on one image and match its detections, clipped to the frame as the faces table stores them, at IoU 0.5."""
    found = detect_faces(mtcnn, [rgb])[0]
    height, width = rgb.shape[:2]
    predicted = np.clip(np.array([d.box for d in found]).reshape(-1, 4), 0, [width, height, width, height])
    return match_detections(predicted, boxes, IOU_THRESHOLD, np.array([d.score for d in found]))


def evaluate_loaded(mtcnn: Any, images: Sequence[LabelledImage]) -> DetectionMetrics:
    """Metrics of a detector on decoded labelled images, one image per call as evaluate_detector runs it.

    MTCNN's results on a batch differ from those on single images by float rounding that its thresholds can amplify,
    so the card and `evaluate detector` use the same single-image path.
    """
    return detection_metrics([match_image(mtcnn, image.rgb, image.boxes) for image in images], IOU_THRESHOLD)


# ---------------------------------------------------------------- train and evaluate


def checked_name(name: str) -> str:
    """A detector name usable as a model-store folder and as a config reference."""
    if name == HUMAN_PRESET or not MODEL_NAME.match(name):
        raise ValueError(
            f"detector name {name!r} must be letters, digits, '.', '_' or '-' (at most 64) and not {HUMAN_PRESET!r}"
        )
    return name


def detector_card(
    name: str,
    settings: TrainingSettings,
    images: Sequence[LabelledImage],
    split: dict[str, Any],
    metrics: dict[str, Any],
    train_seconds: float,
) -> dict[str, Any]:
    """The model card stored beside the weights (save_checkpoint adds the version)."""
    return {
        "kind": "detector",
        "name": name,
        "base": BASE_WEIGHTS,
        "thresholds": list(settings.thresholds),
        "min_face_size": settings.min_face_size,
        "factor": settings.factor,
        "data_fingerprint": data_fingerprint(images),
        "split": split,
        "metrics": metrics,
        "train_seconds": round(train_seconds, 2),
        "settings": settings.as_dict(),
        "landmarks": LANDMARKS_NOTE,
        "code_version": code_version(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def train_detector(
    home: HomeLayout,
    annotations: Path,
    images_root: Path,
    name: str = DEFAULT_NAME,
    seed: int = 0,
    settings: TrainingSettings = TrainingSettings(),
    held_out_fraction: float = HELD_OUT_FRACTION,
    all_images: Path | None = None,
) -> dict[str, Any]:
    """Fine-tune MTCNN on annotated faces, evaluate on a held-out split, store a new version; returns its card."""
    checked_name(name)
    data = annotation_set(annotations, images_root, all_images, False)
    images = load_images(data, images_root)
    train, held, by = split_images([i.path for i in images], seed, held_out_fraction)
    chosen = [i for i in images if i.path in set(train)]
    started = time.perf_counter()
    result = fine_tune_mtcnn([i.rgb for i in chosen], [i.boxes for i in chosen], settings, seed)
    seconds = time.perf_counter() - started
    held_images = [i for i in images if i.path in set(held)]
    metrics = metrics_dict(
        evaluate_loaded(build_mtcnn(settings.detector(), result.states, torch.device("cpu")), held_images)
    )
    baseline = metrics_dict(evaluate_loaded(build_mtcnn(DetectorSettings(), None, torch.device("cpu")), held_images))
    split = {
        "by": by,
        "seed": seed,
        "held_out_fraction": held_out_fraction,
        "n_train": len(train),
        "n_held_out": len(held),
        "train": train,
        "held_out": held,
    }
    card = detector_card(name, settings, images, split, {**metrics, "human_baseline": baseline}, seconds)
    card["training"] = result.report
    card["sources"] = {
        "annotations": str(Path(annotations).resolve()),
        "images_root": str(Path(images_root).resolve()),
        "all_images": str(Path(all_images).resolve()) if all_images else None,
    }
    version, path = save_checkpoint(home.detector_dir(name), result.states, card)
    return {**card, "version": version, "path": str(path)}


def evaluate_detector(
    home: HomeLayout,
    ref: str,
    annotations: Path,
    images_root: Path,
    all_images: Path | None = None,
    unannotated_faceless: bool = False,
) -> dict[str, Any]:
    """Recall, precision and mean IoU at IoU 0.5 of 'mtcnn-human' or a stored detector ('name', 'name@v2') on a labelled
    set."""
    data = annotation_set(annotations, images_root, all_images, unannotated_faceless)
    detector = load_face_detector(home, FacesConfig(detector=ref))
    matches: list[MatchResult] = []
    errors: list[dict[str, Any]] = []
    started = time.perf_counter()
    for image, faces in faces_by_image(data).items():
        loaded = load_image(images_root, image, faces)
        match = match_image(detector.mtcnn, loaded.rgb, loaded.boxes)
        matches.append(match)
        if match.fp or match.fn:
            errors.append({"path": image, "missed": match.fn, "false_positives": match.fp})
    seconds = time.perf_counter() - started
    metrics = metrics_dict(detection_metrics(matches, IOU_THRESHOLD))
    return {
        "detector": detector.label,
        **metrics,
        "seconds": round(seconds, 2),
        "seconds_per_image": round(seconds / max(len(matches), 1), 4),
        "errors": errors,
    }


def sample_drop_sources(drop: Path) -> dict[str, Path]:
    """Annotations, images root and full frame list of a sample drop written by `breedwatch sample-drop`."""
    drop = Path(drop)
    return {
        "annotations": drop / "truth" / "boxes.csv",
        "images_root": drop,
        "all_images": drop / "truth" / "frames.csv",
    }


def train_detector_on_sample_drop(
    home: HomeLayout,
    drop: Path,
    name: str = DEFAULT_NAME,
    seed: int = 0,
    settings: TrainingSettings = TrainingSettings(),
) -> dict[str, Any]:
    """Train on a sample drop's camera-trap scenes (truth/boxes.csv, faceless frames from truth/frames.csv)."""
    return train_detector(home, name=name, seed=seed, settings=settings, **sample_drop_sources(drop))


def evaluate_detector_on_sample_drop(home: HomeLayout, ref: str, drop: Path) -> dict[str, Any]:
    """Evaluate a detector on every camera-trap scene of a sample drop."""
    return evaluate_detector(home, ref, **sample_drop_sources(drop))


# ---------------------------------------------------------------- retraining with keepers' boxes

CPU = torch.device("cpu")
CORRECTED_FRAMES_SQL = """
    SELECT b.drop_id, b.media_id, any_value(b.media_path) AS media_path,
           (SELECT any_value(source) FROM drops d WHERE d.drop_id = b.drop_id) AS drop_folder,
           list({'annotation': b.annotation, 'face_id': b.face_id, 'box': [b.bbox_x, b.bbox_y, b.bbox_w, b.bbox_h]}
                ORDER BY b.created_at) AS marks
    FROM box_annotations b GROUP BY b.drop_id, b.media_id ORDER BY b.drop_id, b.media_id
"""
FRAME_DETECTIONS_SQL = """
    SELECT drop_id, media_id, face_id, bbox_x, bbox_y, bbox_w, bbox_h FROM faces
    WHERE source = 'detector' AND bbox_w IS NOT NULL AND drop_id IN (SELECT DISTINCT drop_id FROM box_annotations)
"""


def corrected_image(frame: dict[str, Any], detected: dict[str, list[float]]) -> LabelledImage:
    """One reviewed frame decoded from its drop folder with its face boxes after the keepers' annotations (none left:
    a negative image), named corrections/<drop>/<path> so it never mixes with the detector's own training images."""
    where = f"keepers' boxes on {frame['drop_id']}/{frame['media_path']}"
    if not frame["drop_folder"]:
        raise AnnotationError(f"{where}: the catalog does not say where drop {frame['drop_id']} lies")
    boxes = corrected_frame_boxes(detected, frame["marks"])
    faces = [FaceAnnotation(frame["media_path"], tuple(box), True, where) for box in boxes]
    image = load_image(Path(frame["drop_folder"]), frame["media_path"], faces)
    return replace(image, path=f"corrections/{frame['drop_id']}/{frame['media_path']}")


def correction_images(home: HomeLayout) -> tuple[list[LabelledImage], dict[str, int]]:
    """The frames keepers gave boxes for (box_annotations), as training images, and how many annotations of each kind
    they carry."""
    from tasks.catalog import query

    frames = query(home, CORRECTED_FRAMES_SQL).to_pylist()
    detections: dict[tuple[str, str], dict[str, list[float]]] = {}
    for row in query(home, FRAME_DETECTIONS_SQL).to_pylist():
        box = [row["bbox_x"], row["bbox_y"], row["bbox_w"], row["bbox_h"]]
        detections.setdefault((row["drop_id"], row["media_id"]), {})[row["face_id"]] = box
    counts = Counter(mark["annotation"] for frame in frames for mark in frame["marks"])
    images = [corrected_image(frame, detections.get((frame["drop_id"], frame["media_id"]), {})) for frame in frames]
    return images, dict(sorted(counts.items()))


def with_f1(metrics: dict[str, Any]) -> dict[str, Any]:
    """Detection metrics with the F1 of their recall and precision (the detector's promotion headline)."""
    recall, precision = metrics["recall"], metrics["precision"]
    return {**metrics, "f1": round(2 * recall * precision / (recall + precision), 4) if recall + precision else 0.0}


def retrain_detector(home: HomeLayout, faces: FacesConfig) -> dict[str, Any]:
    """Fine-tune a new version of the configured detector on its own training images plus the frames keepers gave
    boxes for, with its own recipe; measure it and the version in use on the latter's held-out images; store it,
    promoted only when its F1 there is not worse."""
    name = faces.detector.partition("@")[0]
    if name == HUMAN_PRESET:
        raise AnnotationError(
            "the human-face preset has no training data to add corrections to; train a detector with "
            "'breedwatch train detector' and select it in [faces] detector"
        )
    current_states, current = load_detector(home, faces.detector)
    sources = current.get("sources")
    if not sources:
        raise AnnotationError(
            f"{current['name']}@v{current['version']}'s card does not record its annotation files (cards record them "
            "since this version); train it again with 'breedwatch train detector'"
        )
    images_root = Path(sources["images_root"])
    all_images = Path(sources["all_images"]) if sources.get("all_images") else None
    original = load_images(annotation_set(Path(sources["annotations"]), images_root, all_images, False), images_root)
    corrected, counts = correction_images(home)
    if not corrected:
        raise AnnotationError(
            "no keeper has drawn, fixed or ruled out a face box yet ('breedwatch review', keys b, e and n)"
        )
    held = set(current["split"]["held_out"])
    train = [i for i in original if i.path not in held] + corrected
    held_images = [i for i in original if i.path in held]
    settings = TrainingSettings.from_dict(current["settings"])
    seed = int(current["split"]["seed"])
    started = time.perf_counter()
    result = fine_tune_mtcnn([i.rgb for i in train], [i.boxes for i in train], settings, seed)
    seconds = time.perf_counter() - started
    before, after = (
        with_f1(metrics_dict(evaluate_loaded(build_mtcnn(settings.detector(), states, CPU), held_images)))
        for states in (current_states, result.states)
    )
    split = {**current["split"], "n_train": len(train), "train": sorted(i.path for i in train)}
    card = detector_card(name, settings, train + held_images, split, after, seconds)
    label = f"{current['name']}@v{current['version']}"
    card = {
        **card,
        "training": result.report,
        "sources": sources,
        "corrections_used": counts,
        "corrected_frames": len(corrected),
        "promotion": promotion_decision("detector", label, before, after, sorted(held)),
    }
    version, path = save_checkpoint(home.detector_dir(name), result.states, card)
    return {**card, "version": version, "path": str(path)}
