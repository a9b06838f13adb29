"""Pure checks and conversions of media metadata: EXIF times, orientation, flags, WAV headers, pixel limits."""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from models.channels import PIPELINE_RATE

EXIF_TIME_FORMAT = "%Y:%m:%d %H:%M:%S"
EXIF_OFFSET = re.compile(r"^([+-])(\d{2}):(\d{2})$")
MAX_OFFSET_HOURS = 14  # real UTC offsets run from -12:00 to +14:00
TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}
IMAGE_MODE_FLAGS = {
    "L": "grayscale",
    "LA": "grayscale",
    "1": "bilevel",
    "CMYK": "cmyk",
    "RGBA": "alpha",
    "P": "palette",
    "I;16": "16bit",
    "I;16B": "16bit",
    "I;16L": "16bit",
    "I": "32bit_integer",
    "F": "float",
}


def parse_exif_time(text: str | None, offset: str | None, default_tz: str) -> datetime | None:
    """Read an EXIF 'YYYY:MM:DD HH:MM:SS' time as UTC, using its offset tag or the drop's time zone."""
    if not text:
        return None
    try:
        local = datetime.strptime(text.strip().rstrip("\x00")[:19], EXIF_TIME_FORMAT)
    except ValueError:
        return None
    tzinfo = parse_exif_offset(offset) or ZoneInfo(default_tz)
    try:
        return local.replace(tzinfo=tzinfo).astimezone(UTC)
    except (OverflowError, ValueError):  # e.g. year 9999 west of Greenwich falls outside datetime's range
        return None


def parse_exif_offset(offset: str | None) -> timezone | None:
    """Read an EXIF OffsetTime value such as '+08:00'; None when absent or not a real offset."""
    match = EXIF_OFFSET.match(offset.strip().strip("\x00").strip()) if offset else None
    if match is None:
        return None
    sign, hours, minutes = match.groups()
    if int(hours) > MAX_OFFSET_HOURS or int(minutes) >= 60:
        return None
    delta = timedelta(hours=int(hours), minutes=int(minutes))
    return timezone(-delta if sign == "-" else delta)


def exif_orientation(value: object) -> int:
    """The EXIF Orientation tag as 1-8; anything else (missing, junk, out of range) means upright, 1."""
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 8:
        return value
    return 1


def upright_size(width: int, height: int, orientation: int) -> tuple[int, int]:
    """The size of an image once its EXIF orientation is applied."""
    return (height, width) if orientation in TRANSPOSING_ORIENTATIONS else (width, height)


def image_flags(mode: str, orientation: int, extension_matches: bool) -> list[str]:
    """Flags for valid but unusual images that later stages convert."""
    flags = [IMAGE_MODE_FLAGS[mode]] if mode in IMAGE_MODE_FLAGS else []
    if orientation not in (0, 1):
        flags.append("rotated")
    if not extension_matches:
        flags.append("extension_mismatch")
    return flags


def audio_flags(
    sample_rate: int, channels: int, duration_s: float, peak: float, short_s: float, silence_peak: float
) -> list[str]:
    """Flags for valid but unusual recordings that later stages convert or skip."""
    flags: list[str] = []
    if channels == 1:
        flags.append("mono")
    elif channels > 2:
        flags.append("multichannel")
    if sample_rate != PIPELINE_RATE:
        flags.append("resample")
    if duration_s < short_s:
        flags.append("short")
    if peak < silence_peak:
        flags.append("silent")
    return flags


@dataclass(frozen=True)
class WavDataChunk:
    """Where a WAV file's sample data starts and how many bytes its header promises."""

    offset: int
    declared_bytes: int
    block_align: int


def parse_wav_chunks(chunks: list[tuple[bytes, int, int]], fmt_body: bytes | None) -> WavDataChunk | None:
    """Find the data chunk among (id, offset of body, declared size) triples, with the frame size from fmt."""
    if fmt_body is None or len(fmt_body) < 14:
        return None
    block_align = struct.unpack_from("<H", fmt_body, 12)[0]
    for chunk_id, offset, size in chunks:
        if chunk_id == b"data":
            return WavDataChunk(offset=offset, declared_bytes=size, block_align=max(block_align, 1))
    return None


def wav_missing_frames(chunk: WavDataChunk, file_size: int) -> int:
    """How many frames the header promises that the file does not contain (0 when complete)."""
    if chunk.declared_bytes in (0, 0xFFFFFFFF):  # streaming writers leave the size unset
        return 0
    available = max(file_size - chunk.offset, 0)
    missing_bytes = chunk.declared_bytes - available
    return max(missing_bytes // chunk.block_align, 0) if missing_bytes > 0 else 0


class FileRejected(Exception):
    """A file that cannot be used; the message is one sentence for the rejects table."""


@dataclass
class Probe:
    """What ingest learned about one readable, valid file."""

    metadata: dict[str, Any] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)


def check_pixel_limit(size: tuple[int, int], max_pixels: int) -> None:
    """Refuse images larger than the configured pixel limit before decoding them."""
    width, height = size
    if width * height > max_pixels:
        raise FileRejected(f"The image is {width} x {height} pixels, more than the limit of {max_pixels:,}.")


def describe(exc: BaseException) -> str:
    """A library error as a short clause: no file path (libsndfile puts one in), no full stop, never empty."""
    text = getattr(exc, "error_string", None) or str(exc)  # soundfile's error_string is the message without the path
    text = " ".join(str(text).split()).rstrip(".")
    return text or type(exc).__name__


def clean_text(value: object) -> str | None:
    """Strip the padding cameras leave in EXIF strings."""
    if value is None:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
    text = text.strip().strip("\x00").strip()
    return text or None
