"""Small generated media files for the ingest tests: good, unusual and broken ones."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import ExifTags, Image

WIDTH, HEIGHT = 48, 32


def gradient(mode: str = "RGB", size: tuple[int, int] = (WIDTH, HEIGHT)) -> Image.Image:
    """A small image with real content (compresses like a photo, not like a flat colour)."""
    width, height = size
    ramp = (np.add.outer(np.arange(height) * 7, np.arange(width) * 5) % 256).astype(np.uint8)
    rgb = Image.fromarray(np.stack([ramp, ramp[::-1], 255 - ramp], axis=-1), "RGB")
    if mode == "I;16":
        return Image.fromarray(ramp.astype(np.uint16) * 257)  # uint16 arrays become mode I;16
    return rgb.convert(mode)


def exif_block(
    orientation: int | None = None,
    make: str | None = None,
    model: str | None = None,
    taken: str | None = None,
    offset: str | None = None,
) -> Image.Exif:
    """An EXIF block with the tags breedwatch reads."""
    exif = Image.Exif()
    if orientation is not None:
        exif[ExifTags.Base.Orientation] = orientation
    if make is not None:
        exif[ExifTags.Base.Make] = make
    if model is not None:
        exif[ExifTags.Base.Model] = model
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    if taken is not None:
        sub[ExifTags.Base.DateTimeOriginal] = taken
    if offset is not None:
        sub[ExifTags.Base.OffsetTimeOriginal] = offset
    return exif


def write_image(
    path: Path,
    mode: str = "RGB",
    fmt: str | None = None,
    size: tuple[int, int] = (WIDTH, HEIGHT),
    exif: Image.Exif | None = None,
) -> Path:
    """Save a small generated image; the format follows the extension unless given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = fmt or ("PNG" if path.suffix.lower() == ".png" else "JPEG")
    kwargs = {"exif": exif} if exif is not None else {}
    gradient(mode, size).save(path, fmt, **kwargs)
    return path


def jpeg_bytes(size: tuple[int, int] = (WIDTH, HEIGHT), exif: Image.Exif | None = None) -> bytes:
    """A valid JPEG file's bytes."""
    buffer = io.BytesIO()
    gradient("RGB", size).save(buffer, "JPEG", quality=90, **({"exif": exif} if exif is not None else {}))
    return buffer.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk with its CRC."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def write_png_claiming(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header claims huge dimensions (cheap stand-in for a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data + png_chunk(b"IEND", b""))
    return path


def garble_middle(path: Path, length: int = 64) -> Path:
    """Overwrite bytes in the middle of a file with junk, keeping its size."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + length] = bytes((37 * i + 11) % 256 for i in range(length))
    path.write_bytes(bytes(data))
    return path


def truncate_file(path: Path, keep: int) -> Path:
    """Cut a file down to its first `keep` bytes (negative: drop that many from the end)."""
    data = path.read_bytes()
    path.write_bytes(data[:keep])
    return path


def tone(seconds: float, rate: int = 44_100, channels: int = 2, amplitude: float = 0.5) -> np.ndarray:
    """A (frames, channels) float32 sine, a slightly different pitch per channel."""
    t = np.arange(int(round(seconds * rate))) / rate
    columns = [amplitude * np.sin(2 * np.pi * (440 + 110 * c) * t) for c in range(channels)]
    return np.stack(columns, axis=1).astype(np.float32)


def write_audio(path: Path, samples: np.ndarray, rate: int = 44_100, subtype: str = "PCM_16") -> Path:
    """Write audio with libsndfile (format from the extension)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), samples, rate, subtype=subtype)
    return path


def write_raw_wav(path: Path, samples: np.ndarray, rate: int = 44_100, declared_data_bytes: int | None = None) -> Path:
    """A float32 WAV (format 3) written byte by byte, so NaN, inf and header sizes are exactly as given."""
    samples = np.asarray(samples, dtype="<f4")
    frames, channels = samples.shape
    data = samples.tobytes()
    size = len(data) if declared_data_bytes is None else declared_data_bytes
    fmt = struct.pack("<HHIIHH", 3, channels, rate, rate * channels * 4, channels * 4, 32)
    riff_size = (4 + 8 + len(fmt) + 8 + size) & 0xFFFFFFFF
    header = b"RIFF" + struct.pack("<I", riff_size) + b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + b"data" + struct.pack("<I", size & 0xFFFFFFFF) + data)
    return path


def write_header_only_wav(path: Path, channels: int = 2, rate: int = 44_100) -> Path:
    """A 16-bit PCM WAV with a header and no samples at all."""
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * channels * 2, channels * 2, 16)
    header = b"RIFF" + struct.pack("<I", 36) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + b"data" + struct.pack("<I", 0))
    return path


def write_bytes(path: Path, data: bytes) -> Path:
    """Write given bytes, creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
