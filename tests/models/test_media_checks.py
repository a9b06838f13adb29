"""Unit tests of the pure media helpers: EXIF times, orientation, flags and WAV chunk checks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from models.channels import PIPELINE_RATE
from models.media_checks import (
    WavDataChunk,
    audio_flags,
    exif_orientation,
    image_flags,
    parse_exif_offset,
    parse_exif_time,
    parse_wav_chunks,
    upright_size,
    wav_missing_frames,
)

UTC = UTC


# ---- EXIF times -------------------------------------------------------------------------------------


def test_exif_time_without_offset_uses_utc_default() -> None:
    assert parse_exif_time("2016:09:25 18:35:10", None, "UTC") == datetime(2016, 9, 25, 18, 35, 10, tzinfo=UTC)


def test_exif_time_without_offset_uses_drop_time_zone() -> None:
    # Chengdu is UTC+8 all year: 18:35 local is 10:35 UTC.
    assert parse_exif_time("2016:09:25 18:35:10", None, "Asia/Shanghai") == datetime(
        2016, 9, 25, 10, 35, 10, tzinfo=UTC
    )


def test_exif_time_drop_time_zone_follows_daylight_saving() -> None:
    winter = parse_exif_time("2021:01:15 12:00:00", None, "Europe/Brussels")
    summer = parse_exif_time("2021:07:15 12:00:00", None, "Europe/Brussels")
    assert winter == datetime(2021, 1, 15, 11, 0, tzinfo=UTC)
    assert summer == datetime(2021, 7, 15, 10, 0, tzinfo=UTC)


def test_exif_time_offset_tag_wins_over_drop_time_zone() -> None:
    got = parse_exif_time("2020:01:02 03:04:05", "-05:30", "Asia/Shanghai")
    assert got == datetime(2020, 1, 2, 8, 34, 5, tzinfo=UTC)


def test_exif_time_is_always_utc_aware() -> None:
    got = parse_exif_time("2020:01:02 03:04:05", "+08:00", "UTC")
    assert got is not None and got.utcoffset().total_seconds() == 0
    assert got == datetime(2020, 1, 1, 19, 4, 5, tzinfo=UTC)


def test_exif_time_ignores_padding_and_subseconds() -> None:
    assert parse_exif_time(" 2016:09:25 18:35:10\x00", None, "UTC") == datetime(2016, 9, 25, 18, 35, 10, tzinfo=UTC)
    # face_recognition/obama2.jpg carries "2009:09:09 20:27:09.60:04:00"
    assert parse_exif_time("2009:09:09 20:27:09.60:04:00", None, "UTC") == datetime(2009, 9, 9, 20, 27, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "    :  :     :  :  ",
        "0000:00:00 00:00:00",
        "2016:13:25 18:35:10",
        "2016:02:30 18:35:10",
        "2016-09-25 18:35:10",
        "not a date at all",
        "2016:09:25",
        "\x00\x00\x00\x00",
    ],
)
def test_garbage_exif_time_is_none(text: str | None) -> None:
    assert parse_exif_time(text, None, "UTC") is None


@pytest.mark.parametrize(
    ("text", "offset", "tz"),
    [
        ("9999:12:31 23:59:59", "-12:00", "UTC"),
        ("0001:01:01 00:00:00", "+08:00", "UTC"),
        ("0001:01:01 00:00:00", None, "Asia/Shanghai"),
        ("9999:12:31 23:59:59", None, "America/Los_Angeles"),
    ],
)
def test_exif_time_out_of_range_in_utc_is_none_not_overflow(text: str, offset: str | None, tz: str) -> None:
    assert parse_exif_time(text, offset, tz) is None


@pytest.mark.parametrize(
    ("offset", "hours"),
    [("+08:00", 8.0), ("-05:30", -5.5), ("+00:00", 0.0), (" +01:00 ", 1.0), ("+08:00\x00", 8.0)],
)
def test_exif_offset_parses(offset: str, hours: float) -> None:
    parsed = parse_exif_offset(offset)
    assert parsed is not None
    assert parsed.utcoffset(None).total_seconds() == hours * 3600


@pytest.mark.parametrize("offset", [None, "", "      ", "+8:00", "Z", "ab:cd:", "+25:00", "-99:99", "+08:75", "08:00:"])
def test_bad_exif_offset_is_none(offset: str | None) -> None:
    assert parse_exif_offset(offset) is None


def test_bad_offset_falls_back_to_drop_time_zone() -> None:
    got = parse_exif_time("2020:01:02 03:04:05", "+25:00", "Asia/Shanghai")
    assert got == datetime(2020, 1, 1, 19, 4, 5, tzinfo=UTC)


# ---- orientation and image flags --------------------------------------------------------------------


@pytest.mark.parametrize("orientation", [5, 6, 7, 8])
def test_transposing_orientations_swap_width_and_height(orientation: int) -> None:
    assert upright_size(1536, 2048, orientation) == (2048, 1536)


@pytest.mark.parametrize("orientation", [0, 1, 2, 3, 4, 9, 65535])
def test_other_orientations_keep_size(orientation: int) -> None:
    assert upright_size(1536, 2048, orientation) == (1536, 2048)


@pytest.mark.parametrize("value", [1, 2, 3, 4, 5, 6, 7, 8])
def test_valid_exif_orientation_is_kept(value: int) -> None:
    assert exif_orientation(value) == value


@pytest.mark.parametrize("value", [None, 0, 9, 40_000, 65_535, -6, "6", b"\x00\x06", (6,), 6.0, True])
def test_invalid_exif_orientation_means_upright(value: object) -> None:
    assert exif_orientation(value) == 1


def test_plain_rgb_image_has_no_flags() -> None:
    assert image_flags("RGB", 1, True) == []


@pytest.mark.parametrize(
    ("mode", "flag"),
    [("L", "grayscale"), ("I;16", "16bit"), ("RGBA", "alpha"), ("CMYK", "cmyk"), ("P", "palette"), ("1", "bilevel")],
)
def test_unusual_modes_are_flagged(mode: str, flag: str) -> None:
    assert image_flags(mode, 1, True) == [flag]


def test_rotation_and_extension_mismatch_are_flagged() -> None:
    assert image_flags("RGB", 6, True) == ["rotated"]
    assert image_flags("RGB", 8, False) == ["rotated", "extension_mismatch"]
    assert image_flags("RGB", 1, False) == ["extension_mismatch"]


# ---- audio flags ------------------------------------------------------------------------------------


def test_pipeline_format_recording_has_no_flags() -> None:
    assert audio_flags(PIPELINE_RATE, 2, 10.0, 0.5, 2.0, 1e-4) == []


def test_unusual_recordings_are_flagged() -> None:
    assert audio_flags(48_000, 1, 0.1, 0.0, 2.0, 1e-4) == ["mono", "resample", "short", "silent"]
    assert audio_flags(44_100, 6, 3.0, 0.3, 2.0, 1e-4) == ["multichannel"]
    assert audio_flags(44_100, 2, 2.0, 1e-4, 2.0, 1e-4) == []  # thresholds are strict


# ---- WAV chunks -------------------------------------------------------------------------------------


def fmt_body(channels: int = 2, rate: int = 44_100, bits: int = 16, block_align: int | None = None) -> bytes:
    """A PCM fmt chunk body."""
    align = block_align if block_align is not None else channels * bits // 8
    return (
        (1).to_bytes(2, "little")
        + channels.to_bytes(2, "little")
        + rate.to_bytes(4, "little")
        + (rate * align).to_bytes(4, "little")
        + align.to_bytes(2, "little")
        + bits.to_bytes(2, "little")
    )


def test_parse_wav_chunks_finds_data_after_other_chunks() -> None:
    chunks = [(b"fmt ", 20, 16), (b"LIST", 44, 26), (b"data", 78, 4000)]
    assert parse_wav_chunks(chunks, fmt_body()) == WavDataChunk(offset=78, declared_bytes=4000, block_align=4)


def test_parse_wav_chunks_without_fmt_or_data_is_none() -> None:
    assert parse_wav_chunks([(b"data", 44, 100)], None) is None
    assert parse_wav_chunks([(b"data", 44, 100)], b"\x01\x00") is None
    assert parse_wav_chunks([(b"fmt ", 20, 16)], fmt_body()) is None


def test_parse_wav_chunks_zero_block_align_is_one() -> None:
    chunk = parse_wav_chunks([(b"data", 44, 100)], fmt_body(block_align=0))
    assert chunk is not None and chunk.block_align == 1


def test_complete_wav_has_no_missing_frames() -> None:
    chunk = WavDataChunk(offset=44, declared_bytes=4000, block_align=4)
    assert wav_missing_frames(chunk, 44 + 4000) == 0
    assert wav_missing_frames(chunk, 44 + 4000 + 100) == 0  # trailing chunks after data


def test_truncated_wav_reports_missing_frames() -> None:
    chunk = WavDataChunk(offset=44, declared_bytes=4000, block_align=4)
    assert wav_missing_frames(chunk, 44 + 3000) == 250
    assert wav_missing_frames(chunk, 44) == 1000  # header only
    assert wav_missing_frames(chunk, 10) == 1000  # file shorter than its header
    assert wav_missing_frames(chunk, 44 + 3999) == 0  # less than one frame short


@pytest.mark.parametrize("streaming_size", [0, 0xFFFFFFFF])
def test_streaming_data_sizes_are_not_truncation(streaming_size: int) -> None:
    chunk = WavDataChunk(offset=44, declared_bytes=streaming_size, block_align=4)
    assert wav_missing_frames(chunk, 44) == 0
    assert wav_missing_frames(chunk, 44 + 4000) == 0
