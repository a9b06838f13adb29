"""Train and evaluate the species face detector: annotation files, images, held-out split, model store."""

from __future__ import annotations

import bisect
import csv
import hashlib
import io
import json
import math
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from models.camtrap_rows import is_remote
from models.detector_training import (
    DetectionMetrics,
    MatchResult,
    TrainingSettings,
    detection_metrics,
    fine_tune_mtcnn,
    match_detections,
    xywh_to_xyxy,
)
from models.faces import DetectorSettings, build_mtcnn, detect_faces, upright_rgb
from schemas.camtrap import BBOX, CamtrapMedia, CamtrapObservation, CamtrapRow
from schemas.config import FacesConfig
from schemas.home import HomeLayout
from schemas.manifest import ManifestError, parse_csv_manifest
from tasks.faces import HUMAN_PRESET, load_face_detector
from tasks.model_store import save_checkpoint
from tasks.runs import code_version

DEFAULT_NAME = "mtcnn-panda"
BASE_WEIGHTS = "facenet-pytorch mtcnn human weights"
IOU_THRESHOLD = 0.5
HELD_OUT_FRACTION = 0.2
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
CSV_FIELDS = ("path", "x", "y", "w", "h")
CamtrapRowModel = TypeVar("CamtrapRowModel", bound=CamtrapRow)
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
LANDMARKS_NOTE = (
    "not trained: O-Net's landmark head keeps the human weights while the layers under it changed; do not align on them"
)


class AnnotationError(ValueError):
    """An annotation file, one of its rows or an image it names cannot be used; the message says where."""


@dataclass(frozen=True)
class FaceAnnotation:
    """One annotated face: image path under the images root, box (x, y, w, h), relative or in pixels, and its source."""

    image: str
    box: tuple[float, float, float, float]
    relative: bool
    where: str


@dataclass(frozen=True)
class AnnotationSet:
    """The faces of an annotation file, plus images known to show no face."""

    source: Path
    faces: tuple[FaceAnnotation, ...]
    faceless: tuple[str, ...] = ()

    def images(self) -> list[str]:
        """Every image the set speaks about, sorted."""
        return sorted({f.image for f in self.faces} | set(self.faceless))

    def with_faceless(self, paths: Iterable[str]) -> AnnotationSet:
        """The set with the given images added as faceless where they carry no face annotation."""
        annotated = {f.image for f in self.faces}
        extra = {normalise_image_path(p) for p in paths} - annotated
        return replace(self, faceless=tuple(sorted(set(self.faceless) | extra)))


@dataclass(frozen=True)
class LabelledImage:
    """A decoded upright RGB image, its faces as pixel (x1, y1, x2, y2) rows, and the hash of its file."""

    path: str
    rgb: np.ndarray
    boxes: np.ndarray
    sha256: str


# ---------------------------------------------------------------- annotation files


def normalise_image_path(path: str) -> str:
    """A POSIX path relative to the images root, as written in annotation files."""
    return Path(path.strip().replace("\\", "/")).as_posix()


def parse_number(text: str | None, where: str, field: str) -> float:
    """A finite number from an annotation field, or an error naming file, line and field."""
    if text is None or not str(text).strip():
        raise AnnotationError(f"{where}: field '{field}' is empty")
    try:
        value = float(str(text).strip())
    except ValueError:
        raise AnnotationError(f"{where}: field '{field}' is {text!r}, not a number") from None
    if not math.isfinite(value):
        raise AnnotationError(f"{where}: field '{field}' is {text!r}, not a finite number")
    return value


def checked_box(values: Sequence[float], where: str, fields: Sequence[str]) -> tuple[float, float, float, float]:
    """(x, y, w, h) with a positive width and height."""
    for value, field in zip(values[2:], fields[2:]):
        if value <= 0:
            raise AnnotationError(f"{where}: field '{field}' is {value:g}; a box needs a positive width and height")
    return float(values[0]), float(values[1]), float(values[2]), float(values[3])


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


def element_lines(text: str, key: str) -> list[int]:
    """Line numbers where the elements of the JSON array under `key` start (empty when it cannot tell)."""
    match = re.search(rf'"{re.escape(key)}"\s*:\s*\[', text)
    if not match:
        return []
    newlines = [i for i, c in enumerate(text) if c == "\n"]
    decoder, pos, lines = json.JSONDecoder(), match.end(), []
    while True:
        pos = len(text) - len(text[pos:].lstrip())
        if pos >= len(text) or text[pos] == "]":
            return lines
        lines.append(bisect.bisect_right(newlines, pos - 1) + 1)
        try:
            _, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            return []
        pos = len(text) - len(text[pos:].lstrip())
        pos += text[pos : pos + 1] == ","


def coco_where(path: Path, key: str, index: int, lines: Sequence[int]) -> str:
    """'file line N (key[i])' for a COCO element, without the line when it is unknown."""
    line = f" line {lines[index]}" if index < len(lines) else ""
    return f"{path.name}{line} ({key}[{index}])"


def coco_images(path: Path, data: dict[str, Any], lines: Sequence[int]) -> dict[Any, str]:
    """COCO image id to file name."""
    images = {}
    for index, image in enumerate(data.get("images") or []):
        where = coco_where(path, "images", index, lines)
        if not isinstance(image, dict) or "id" not in image or not str(image.get("file_name") or "").strip():
            raise AnnotationError(f"{where}: an image needs fields 'id' and 'file_name'")
        images[image["id"]] = normalise_image_path(str(image["file_name"]))
    return images


def coco_face(path: Path, annotation: Any, images: dict[Any, str], where: str) -> FaceAnnotation:
    """One COCO annotation as a pixel face box."""
    if not isinstance(annotation, dict) or annotation.get("image_id") not in images:
        image_id = annotation.get("image_id") if isinstance(annotation, dict) else None
        raise AnnotationError(f"{where}: field 'image_id' is {image_id!r}, which is not in 'images'")
    bbox = annotation.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4:
        raise AnnotationError(f"{where}: field 'bbox' must be [x, y, width, height] in pixels, got {bbox!r}")
    fields = ("bbox[0]", "bbox[1]", "bbox[2]", "bbox[3]")
    values = [parse_number(v, where, f) for v, f in zip(bbox, fields)]
    return FaceAnnotation(images[annotation["image_id"]], checked_box(values, where, fields), False, where)


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


def camtrap_image(media: CamtrapMedia, filename: str) -> str:
    """A media row's image path: filePath, or fileName when filePath is a URL."""
    file_path = (media.fileName or "").strip() if is_remote(media) else media.filePath
    if not file_path:
        raise AnnotationError(f"{filename} line {media.csv_line} field 'fileName': empty while 'filePath' is a URL")
    return normalise_image_path(file_path)


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


def pixel_boxes(faces: Sequence[FaceAnnotation], width: int, height: int) -> np.ndarray:
    """(x1, y1, x2, y2) pixel boxes on the upright image, clipped to it."""
    rows = []
    for face in faces:
        x, y, w, h = face.box
        scale = (width, height, width, height) if face.relative else (1, 1, 1, 1)
        x1, y1, x2, y2 = xywh_to_xyxy(np.array([x, y, w, h]) * scale)[0]
        box = (max(x1, 0.0), max(y1, 0.0), min(x2, float(width)), min(y2, float(height)))
        if box[2] - box[0] < 1 or box[3] - box[1] < 1:
            raise AnnotationError(f"{face.where}: the box lies outside the {width}x{height} image {face.image!r}")
        rows.append(box)
    return np.array(rows, np.float64).reshape(-1, 4)


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


def faces_by_image(annotations: AnnotationSet) -> dict[str, list[FaceAnnotation]]:
    """Every image of the set with its faces (faceless images with none)."""
    grouped: dict[str, list[FaceAnnotation]] = {image: [] for image in annotations.images()}
    for face in annotations.faces:
        grouped[face.image].append(face)
    return grouped


def load_images(
    annotations: AnnotationSet, images_root: Path, only: Iterable[str] | None = None
) -> list[LabelledImage]:
    """Decode the images of the set (or the named subset), in sorted order."""
    grouped = faces_by_image(annotations)
    wanted = sorted(grouped) if only is None else sorted(only)
    return [load_image(images_root, image, grouped[image]) for image in wanted]


def data_fingerprint(images: Sequence[LabelledImage]) -> str:
    """sha256 over every image's path, file hash and pixel boxes."""
    digest = hashlib.sha256()
    for image in sorted(images, key=lambda i: i.path):
        boxes = ";".join(",".join(f"{v:.2f}" for v in box) for box in image.boxes)
        digest.update(f"{image.path}\t{image.sha256}\t{boxes}\n".encode())
    return digest.hexdigest()


# ---------------------------------------------------------------- split, evaluation


def split_images(
    paths: Sequence[str], seed: int, fraction: float = HELD_OUT_FRACTION
) -> tuple[list[str], list[str], str]:
    """A seeded held-out split (train, held_out, 'folder' or 'image'): whole folders (cameras) when there are at least
    1/fraction of them."""
    if len(paths) < 2:
        raise AnnotationError(f"need at least 2 annotated images to hold some out, got {len(paths)}")
    folders: dict[str, list[str]] = {}
    for path in sorted(paths):
        folders.setdefault(Path(path).parent.as_posix(), []).append(path)
    by = "folder" if len(folders) >= math.ceil(1 / fraction) else "image"
    groups = list(folders.values()) if by == "folder" else [[p] for p in sorted(paths)]
    groups.sort(key=lambda g: hashlib.sha256(f"{seed}:{g[0]}".encode()).hexdigest())
    held: list[str] = []
    for group in groups:
        if len(held) >= max(1, round(fraction * len(paths))) or len(held) + len(group) >= len(paths):
            break
        held.extend(group)
    return sorted(set(paths) - set(held)), sorted(held), by


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


def metrics_dict(metrics: DetectionMetrics) -> dict[str, Any]:
    """Metrics as JSON-ready values, ratios rounded to 4 places."""
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in vars(metrics).items()}


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
