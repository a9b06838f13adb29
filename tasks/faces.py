"""The face stage: decode upright RGB, detect in same-size batches, crop, gate on quality, write `faces`."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg

from models.faces import (
    Detection,
    DetectorSettings,
    build_mtcnn,
    count_faceless,
    crop_face,
    detect_faces,
    face_row,
    group_by_size,
    upright_rgb,
    upright_tensor,
)
from schemas.config import FacesConfig, Settings
from schemas.home import HomeLayout
from schemas.tables import FACES, MEDIA
from tasks.devices import batch_size_on, choose_device, cpu_threads, halve_on_oom
from tasks.lake import read_part, sync_filesystem, write_bytes_atomic, write_rows
from tasks.model_store import load_detector
from tasks.prefetch import one_ahead
from tasks.stages import INGEST, Computed, DropStage, StageRun, ingest_count

STAGE = "faces"
FACES_VERSION = "1"
HUMAN_PRESET = "mtcnn-human"
KEEPER_FOLDER = "faces/"
JPEG_MAGIC = b"\xff\xd8"


@dataclass(frozen=True)
class LoadedDetector:
    """A ready MTCNN and the label recorded on every face it finds."""

    mtcnn: Any
    label: str
    landmarks_trained: bool = True


def load_face_detector(home: HomeLayout, config: FacesConfig) -> LoadedDetector:
    """The configured preset: facenet-pytorch's human weights, or a fine-tuned detector from the store."""
    device = choose_device(config.device)
    if config.detector == HUMAN_PRESET:
        return LoadedDetector(build_mtcnn(DetectorSettings(), None, device), HUMAN_PRESET)
    state, card = load_detector(home, config.detector)
    settings = DetectorSettings(tuple(card["thresholds"]), int(card["min_face_size"]), float(card["factor"]))
    trained = not str(card.get("landmarks", "")).startswith("not trained")
    return LoadedDetector(build_mtcnn(settings, state, device), f"{card['name']}@v{card['version']}", trained)


def detector_label(home: HomeLayout, config: FacesConfig) -> str:
    """The exact detector version the configuration resolves to, without loading weights."""
    if config.detector == HUMAN_PRESET:
        return HUMAN_PRESET
    _, card = load_detector(home, config.detector)
    return f"{card['name']}@v{card['version']}"


def drop_media(home: HomeLayout, drop_id: str) -> list[dict[str, Any]]:
    """The usable images of one drop, from its committed ingest part."""
    part = home.part(MEDIA.name, MEDIA.partition, drop_id, "ingest")
    rows = read_part(
        part, MEDIA, ["media_id", "path", "kind", "status", "width", "height", "orientation", "animal_id"]
    ).to_pylist()
    return [row for row in rows if row["kind"] == "image" and row["status"] == "ok"]


def open_upright(path: Path) -> Image.Image:
    """Decode an image from disk, upright and in 8-bit RGB."""
    with Image.open(path) as image:
        return upright_rgb(image)


def depends(home: HomeLayout, settings: Settings) -> str:
    """What the faces of a drop depend on besides its ingest: the detector version and every result-changing setting."""
    config = settings.faces.model_dump(exclude={"batch_size", "cpu_batch_size", "device", "cpu_threads"})
    return f"{detector_label(home, settings.faces)}:{sorted(config.items())}"


def keeper_crops(
    media: dict[str, Any], image: Image.Image, config: FacesConfig
) -> list[tuple[dict[str, Any], Image.Image]]:
    """A keeper photo is already a face: the whole image, squared and resized."""
    box = (0.0, 0.0, float(image.width), float(image.height))
    crop = crop_face(image, box, None, 0.0, config.crop_size, False)
    return [(face_row(media, 0, crop, None, image.size, config), crop)]


def detection_crops(
    media: dict[str, Any], image: Image.Image, found: list[Detection], config: FacesConfig, align: bool
) -> list[tuple[dict[str, Any], Image.Image]]:
    """One crop and row per detected face, best score first (aligned on the eyes only when asked and trustworthy)."""
    pairs = []
    for index, detection in enumerate(found):
        crop = crop_face(image, detection.box, detection.landmarks, config.margin, config.crop_size, align)
        pairs.append((face_row(media, index, crop, detection, image.size, config), crop))
    return pairs


def uses_torchvision(config: FacesConfig, device: torch.device) -> bool:
    """Whether frames are decoded by torchvision (nvjpeg on CUDA): configured, or auto on a CUDA detector."""
    return config.decode == "torchvision" or (config.decode == "auto" and device.type == "cuda")


def torchvision_frames(drop_dir: Path, rows: list[dict[str, Any]], device: torch.device) -> torch.Tensor | None:
    """Same-size JPEGs decoded in one torchvision call on the device (nvjpeg on CUDA) and turned upright by their EXIF
    orientation: (B, H, W, 3) uint8; None when one is not a JPEG torchvision can decode, so the batch uses Pillow."""
    data = [torch.frombuffer(bytearray((drop_dir / row["path"]).read_bytes()), dtype=torch.uint8) for row in rows]
    if any(bytes(raw[:2].tolist()) != JPEG_MAGIC for raw in data):
        return None
    try:
        with warnings.catch_warnings():  # torchvision 0.29 points to TorchCodec, which is not among our packages
            warnings.simplefilter("ignore", DeprecationWarning)
            frames = decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
    except RuntimeError:  # CMYK, arithmetic coding, a truncated file: Pillow decodes or rejects it
        return None
    upright = [upright_tensor(frame, row["orientation"]) for frame, row in zip(frames, rows)]
    if any(tuple(frame.shape[1:]) != (row["height"], row["width"]) for frame, row in zip(upright, rows)):
        return None
    return torch.stack(upright).permute(0, 2, 3, 1)


def decode_batch(
    drop_dir: Path, rows: list[dict[str, Any]], device: torch.device, config: FacesConfig, pool: ThreadPoolExecutor
) -> tuple[list[Image.Image], list[np.ndarray] | torch.Tensor]:
    """A same-size batch as Pillow images (for crops) and as the detector's input: decoded on the device by torchvision
    when configured (the images then come back from it), else by Pillow in the thread pool (arrays the detector
    stacks)."""
    frames = torchvision_frames(drop_dir, rows, device) if uses_torchvision(config, device) else None
    if frames is not None:
        return [Image.fromarray(frame) for frame in frames.cpu().numpy()], frames
    images = list(pool.map(lambda row: open_upright(drop_dir / row["path"]), rows))
    return images, [np.asarray(image) for image in images]


def detect_batches(
    drop_dir: Path, images: list[dict[str, Any]], detector: LoadedDetector, config: FacesConfig, threads: int
) -> Iterator[tuple[dict[str, Any], Image.Image, list[Detection]]]:
    """Decode and detect same-size batches (on CUDA the next one decoded on a thread meanwhile; halved when one runs
    out of GPU memory), yielding each image with its detections."""
    by_id = {row["media_id"]: row for row in images}
    device = detector.mtcnn.device
    batches = group_by_size(
        [(row["media_id"], (row["width"], row["height"])) for row in images], batch_size_on(device, config)
    )
    with ThreadPoolExecutor(max_workers=threads) as pool:

        def decode(batch: list[Any]) -> tuple[list[Image.Image], list[np.ndarray] | torch.Tensor]:
            """One batch decoded (through the pool)."""
            return decode_batch(drop_dir, [by_id[key] for key in batch], device, config, pool)

        for batch, (decoded, frames) in zip(batches, one_ahead(decode, batches, ahead=device.type == "cuda")):
            with cpu_threads(device, config.cpu_threads):
                found = halve_on_oom(lambda part: detect_faces(detector.mtcnn, part), frames)
            yield from ((by_id[key], image, faces) for key, image, faces in zip(batch, decoded, found))


def save_crop(home: HomeLayout, drop_id: str, face_id: str, crop: Image.Image, quality: int) -> str:
    """Store a crop as JPEG in the lake (atomically, flushed to disk with the stage's others) and return its path
    relative to the home."""
    buffer = io.BytesIO()
    crop.save(buffer, format="JPEG", quality=quality)
    path = home.crop(drop_id, face_id)
    write_bytes_atomic(path, buffer.getvalue(), durable=False)  # flushed together before the stage commits
    return path.relative_to(home.root).as_posix()


def detect_faces_of(run: StageRun) -> Computed:
    """Find, crop and gate every face of one ingested drop: keeper photos whole, scene images through the detector."""
    home, drop_dir, drop_id, run_id, settings, advance = (
        run.home,
        run.drop_dir,
        run.drop_id,
        run.run_id,
        run.settings,
        run.advance,
    )
    config = settings.faces
    images = drop_media(home, drop_id)
    scenes = [row for row in images if not row["path"].startswith(KEEPER_FOLDER)]
    detector = load_face_detector(home, config) if scenes else None
    label = detector.label if detector else detector_label(home, config)
    keepers = [row for row in images if row["path"].startswith(KEEPER_FOLDER)]
    rows = keeper_rows(home, drop_dir, drop_id, run_id, keepers, label, settings, advance)
    for row, image, found in (
        detect_batches(drop_dir, scenes, detector, config, settings.runtime.io_threads) if detector else []
    ):
        pairs = detection_crops(row, image, found, config, config.align and detector.landmarks_trained)
        rows += stored_rows(
            home, drop_id, run_id, pairs, label, config, advance
        )  # memory holds one batch, not the drop
    if rows:
        sync_filesystem(home.lake)  # every crop on disk before the part and the marker that commit them
    write_rows(home, FACES, drop_id, STAGE, rows)
    counts = {
        "faces": len(rows),
        "faces_excluded": sum(r["excluded"] for r in rows),
        "images_without_face": count_faceless(scenes, rows),
    }
    message = ""
    if config.align and detector and not detector.landmarks_trained:
        message = f"faces.align ignored: {label} has untrained eye landmarks, crops are not rotated"
    return Computed("detected", counts, label, message)


FACES_STAGE = DropStage(STAGE, (INGEST,), FACES_VERSION, depends, detect_faces_of, "faces", ingest_count("images"))


def keeper_rows(
    home: HomeLayout,
    drop_dir: Path,
    drop_id: str,
    run_id: str,
    keepers: list[dict[str, Any]],
    label: str,
    settings: Settings,
    advance: Callable[[], None],
) -> list[dict[str, Any]]:
    """Crop, gate and store every keeper photo on runtime.io_threads threads (Pillow decodes, resizes and encodes
    outside the GIL: 114 photos on 2 cores 0.36 -> 0.25 s), rows in the photos' order."""

    def stored(media: dict[str, Any]) -> list[dict[str, Any]]:
        """One keeper photo's finished row, its crop stored."""
        pairs = keeper_crops(media, open_upright(drop_dir / media["path"]), settings.faces)
        return stored_rows(home, drop_id, run_id, pairs, label, settings.faces, advance)

    with ThreadPoolExecutor(max_workers=settings.runtime.io_threads) as pool:
        return [row for rows in pool.map(stored, keepers) for row in rows]


def stored_rows(
    home: HomeLayout,
    drop_id: str,
    run_id: str,
    pairs: list[tuple[dict[str, Any], Image.Image]],
    label: str,
    config: FacesConfig,
    advance: Callable[[], None],
) -> list[dict[str, Any]]:
    """One image's crops stored and rows finished, then one step of progress."""
    rows = [finish_row(home, drop_id, run_id, row, crop, label, config) for row, crop in pairs]
    advance()
    return rows


def finish_row(
    home: HomeLayout, drop_id: str, run_id: str, row: dict[str, Any], crop: Image.Image, label: str, config: FacesConfig
) -> dict[str, Any]:
    """Store the crop and complete the row with drop, crop path, detector and run."""
    crop_path = save_crop(home, drop_id, row["face_id"], crop, config.crop_jpeg_quality)
    detector = "keeper-photo" if row["source"] == "keeper" else label
    return {**row, "drop_id": drop_id, "crop_path": crop_path, "detector": detector, "run_id": run_id}
