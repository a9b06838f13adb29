"""Face box annotations (CSV, COCO, Camtrap DP) as data: parsing read values, pixel boxes, the held-out split."""

from __future__ import annotations

import bisect
import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from models.camtrap_rows import is_remote
from models.detector_training import box_iou, xywh_to_xyxy
from schemas.camtrap import CamtrapMedia

HELD_OUT_FRACTION = 0.2


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


def camtrap_image(media: CamtrapMedia, filename: str) -> str:
    """A media row's image path: filePath, or fileName when filePath is a URL."""
    file_path = (media.fileName or "").strip() if is_remote(media) else media.filePath
    if not file_path:
        raise AnnotationError(f"{filename} line {media.csv_line} field 'fileName': empty while 'filePath' is a URL")
    return normalise_image_path(file_path)


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


def faces_by_image(annotations: AnnotationSet) -> dict[str, list[FaceAnnotation]]:
    """Every image of the set with its faces (faceless images with none)."""
    grouped: dict[str, list[FaceAnnotation]] = {image: [] for image in annotations.images()}
    for face in annotations.faces:
        grouped[face.image].append(face)
    return grouped


def data_fingerprint(images: Sequence[LabelledImage]) -> str:
    """sha256 over every image's path, file hash and pixel boxes."""
    digest = hashlib.sha256()
    for image in sorted(images, key=lambda i: i.path):
        boxes = ";".join(",".join(f"{v:.2f}" for v in box) for box in image.boxes)
        digest.update(f"{image.path}\t{image.sha256}\t{boxes}\n".encode())
    return digest.hexdigest()


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


def corrected_frame_boxes(
    detected: Mapping[str, Sequence[float]], marks: Sequence[Mapping[str, Any]], match_iou: float = 0.5
) -> list[tuple[float, ...]]:
    """A frame's face boxes (relative x, y, w, h) for detector training after the keepers' box annotations
    (box_annotations rows): the detector's boxes by face id, a fixed box replacing its face's, a detection ruled not a
    face dropped (its face id, or its box at IoU > match_iou), every drawn box added; a frame confirmed empty keeps
    what the detector found there (nothing, as it was queued)."""
    boxes = {face_id: tuple(box) for face_id, box in detected.items()}
    for mark in marks:
        if mark["annotation"] == "fixed" and mark.get("face_id") in boxes:
            boxes[mark["face_id"]] = tuple(mark["box"])
    for mark in marks:
        if mark["annotation"] == "not_a_face":
            ruled = xywh_to_xyxy(np.array([mark["box"]], np.float64))
            boxes = {
                face_id: box
                for face_id, box in boxes.items()
                if face_id != mark.get("face_id")
                and box_iou(xywh_to_xyxy(np.array([box], np.float64)), ruled)[0, 0] <= match_iou
            }
    return [*boxes.values(), *(tuple(mark["box"]) for mark in marks if mark["annotation"] == "drawn")]
