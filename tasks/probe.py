"""Read one file's identity and metadata from disk, or say in one sentence why it cannot be used."""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import warnings
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import soundfile as sf
from PIL import ExifTags, Image, ImageFile, UnidentifiedImageError

from models.media_checks import (
    FileRejected,
    Probe,
    audio_flags,
    check_pixel_limit,
    clean_text,
    describe,
    exif_orientation,
    image_flags,
    parse_exif_time,
    parse_wav_chunks,
    upright_size,
    wav_missing_frames,
)
from schemas.config import IngestConfig
from tasks.audio import read_float32

EXIF_IFD = ExifTags.IFD.Exif
FORMATS_BY_EXTENSION = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}
IMAGE_FORMATS = ("JPEG", "PNG")  # what later stages decode; Pillow's other readers are never tried
JPEG_VARIANTS = {"MPO": "JPEG"}  # Pillow names a JPEG carrying a second (preview) picture "MPO"
AUDIO_BLOCK_FRAMES = 1 << 16


def sha256_of(path: Path, chunk_bytes: int) -> str:
    """Hash a regular file's bytes without loading it whole; refuse pipes, sockets and devices."""
    digest = hashlib.sha256()
    # O_NONBLOCK: opening a named pipe for reading would otherwise wait forever for a writer
    with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise FileRejected("The entry is not a regular file (it is a named pipe, socket or device).")
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def probe_image(path: Path, config: IngestConfig, default_tz: str) -> Probe:
    """Open, fully decode and read the EXIF of an image; raise FileRejected if it is unusable."""
    if path.stat().st_size == 0:
        raise FileRejected("The image file is empty (0 bytes).")
    with open(path, "rb") as handle:  # a file that cannot be opened is an OSError for the caller, not a bad image
        metadata = read_image(handle, config, default_tz)
    expected = FORMATS_BY_EXTENSION.get(path.suffix.lower())
    flags = image_flags(metadata["image_mode"], metadata["orientation"], expected == metadata.pop("format"))
    return Probe(metadata=metadata, flags=flags)


def read_image(handle: BinaryIO, config: IngestConfig, default_tz: str) -> dict[str, Any]:
    """Decode an open image file completely, then read its metadata, turning every failure into a reason."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(handle, formats=IMAGE_FORMATS) as image:
                check_pixel_limit(image.size, config.max_image_pixels)
                decode_fully(image)  # before EXIF: Pillow decodes a PNG to find an eXIf chunk after its pixels
                return image_metadata(image, default_tz)
    except Image.DecompressionBombError:
        limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        raise FileRejected(f"The image has more than {limit:,} pixels, too many to open safely.") from None
    except UnidentifiedImageError:
        raise FileRejected("The file is not an image that can be read (its content is not JPEG or PNG).") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise FileRejected(f"The image is truncated or corrupt and cannot be decoded ({describe(exc)}).") from None


def decode_fully(image: Image.Image) -> None:
    """Decode every pixel so truncated or garbled data is caught now rather than mid-run."""
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        image.load()
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


def read_exif(image: Image.Image) -> tuple[Image.Exif | dict, dict]:
    """The main and Exif-IFD tags of a decoded image; junk EXIF counts as none (the pixels are fine)."""
    try:
        exif = image.getexif()
        return exif, dict(exif.get_ifd(EXIF_IFD))
    except (OSError, SyntaxError, ValueError, TypeError, KeyError, IndexError, struct.error):
        return {}, {}


def image_metadata(image: Image.Image, default_tz: str) -> dict[str, Any]:
    """Size, mode, orientation, camera and capture time from an opened image."""
    exif, exif_ifd = read_exif(image)
    orientation = exif_orientation(exif.get(ExifTags.Base.Orientation))
    width, height = upright_size(image.width, image.height, orientation)
    taken = exif_ifd.get(ExifTags.Base.DateTimeOriginal) or exif.get(ExifTags.Base.DateTime)
    offset = exif_ifd.get(ExifTags.Base.OffsetTimeOriginal)
    return {
        "format": JPEG_VARIANTS.get(image.format, image.format),
        "width": width,
        "height": height,
        "orientation": orientation,
        "image_mode": image.mode,
        "camera_make": clean_text(exif.get(ExifTags.Base.Make)),
        "camera_model": clean_text(exif.get(ExifTags.Base.Model)),
        "captured_at": parse_exif_time(clean_text(taken), clean_text(offset), default_tz),
    }


def probe_audio(path: Path, config: IngestConfig) -> Probe:
    """Read an audio file's header and every sample; raise FileRejected if it is unusable."""
    if path.stat().st_size == 0:
        raise FileRejected("The audio file is empty (0 bytes).")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise FileRejected(f"The file is not a readable audio file ({describe(exc)}).") from None
    if info.frames <= 0:
        raise FileRejected("The audio file has a header but contains no samples.")
    check_wav_complete(path, info)
    peak = scan_samples(path, info.frames)
    duration = info.frames / info.samplerate
    flags = audio_flags(info.samplerate, info.channels, duration, peak, config.short_audio_s, config.silence_peak)
    metadata = {
        "sample_rate": int(info.samplerate),
        "channels": int(info.channels),
        "frames": int(info.frames),
        "duration_s": float(duration),
        "sample_format": info.subtype,
    }
    return Probe(metadata=metadata, flags=flags)


def check_wav_complete(path: Path, info: Any) -> None:
    """Refuse a WAV whose data chunk is shorter than its header declares (soundfile does not)."""
    if info.format not in ("WAV", "WAVEX"):
        return
    chunks, fmt_body = read_riff_chunks(path)
    data = parse_wav_chunks(chunks, fmt_body)
    if data is None:
        return
    missing = wav_missing_frames(data, path.stat().st_size)
    if missing > 0:
        declared = data.declared_bytes // data.block_align
        raise FileRejected(
            f"The recording is truncated: its header declares {declared:,} frames but {missing:,} of them are missing."
        )


def read_riff_chunks(path: Path) -> tuple[list[tuple[bytes, int, int]], bytes | None]:
    """List a RIFF file's chunks as (id, body offset, declared size) and return the fmt chunk body."""
    chunks: list[tuple[bytes, int, int]] = []
    fmt_body = None
    with open(path, "rb") as handle:
        if handle.read(12)[:4] not in (b"RIFF", b"RF64"):
            return chunks, None
        while len(header := handle.read(8)) == 8:
            chunk_id, size = header[:4], int.from_bytes(header[4:], "little")
            offset = handle.tell()
            chunks.append((chunk_id, offset, size))
            if chunk_id == b"fmt ":
                fmt_body = handle.read(min(size, 64))
            if chunk_id == b"data":
                break
            handle.seek(offset + size + (size & 1))
    return chunks, fmt_body


def scan_samples(path: Path, expected_frames: int) -> float:
    """Decode every block, refusing NaN/infinite samples or a short read, and return the peak."""
    peak, frames = 0.0, 0
    try:
        with sf.SoundFile(str(path)) as handle:
            while len(block := read_float32(handle, AUDIO_BLOCK_FRAMES)):
                if not np.isfinite(block).all():
                    raise FileRejected("The recording contains NaN or infinite samples.")
                peak = max(peak, float(np.abs(block).max(initial=0.0)))
                frames += len(block)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise FileRejected(f"The recording cannot be decoded to the end ({describe(exc)}).") from None
    if frames < expected_frames:
        raise FileRejected(f"The recording is truncated: {frames:,} of {expected_frames:,} frames could be decoded.")
    return peak
