"""probe_image / probe_audio on generated bad and unusual files, and on the shared real files."""

from __future__ import annotations

import os
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.media_checks import FileRejected, Probe
from schemas.config import IngestConfig
from tasks.probe import probe_audio, probe_image, sha256_of
from tests.conftest import realfile
from tests.tasks.media_files import (
    HEIGHT,
    WIDTH,
    exif_block,
    garble_middle,
    jpeg_bytes,
    tone,
    truncate_file,
    write_audio,
    write_bytes,
    write_header_only_wav,
    write_image,
    write_png_claiming,
    write_raw_wav,
)

CONFIG = IngestConfig()
UTC = UTC
PILLOW_DEFAULT_LIMIT = 89_478_485


def assert_sentence(message: str, path: Path | None = None) -> None:
    """A rejects reason is one human-readable sentence, naming no server path (the rejects row has the path)."""
    assert message, "empty reason"
    if path is not None:
        assert str(path.parent) not in message, f"reason leaks the file's location: {message!r}"
    assert ".)" not in message, f"a library's full stop inside the sentence: {message!r}"
    assert message[0].isupper(), f"reason does not start with a capital: {message!r}"
    assert message.endswith("."), f"reason does not end with a full stop: {message!r}"
    assert not message.endswith(".."), message
    assert "\n" not in message and len(message) < 300, message
    assert "Traceback" not in message, message


def rejected_image(path: Path, config: IngestConfig = CONFIG) -> str:
    with pytest.raises(FileRejected) as caught:
        probe_image(path, config, "UTC")
    assert_sentence(str(caught.value), path)
    return str(caught.value)


def rejected_audio(path: Path, config: IngestConfig = CONFIG) -> str:
    with pytest.raises(FileRejected) as caught:
        probe_audio(path, config)
    assert_sentence(str(caught.value), path)
    return str(caught.value)


# ---- bad images -------------------------------------------------------------------------------------


def test_zero_byte_jpeg_is_rejected(tmp_path: Path) -> None:
    reason = rejected_image(write_bytes(tmp_path / "empty.jpg", b""))
    assert "empty" in reason


def test_jpeg_cut_in_half_is_rejected(tmp_path: Path) -> None:
    data = jpeg_bytes(size=(320, 240))
    reason = rejected_image(write_bytes(tmp_path / "half.jpg", data[: len(data) // 2]))
    assert "truncated" in reason


def test_jpeg_with_only_its_header_is_rejected(tmp_path: Path) -> None:
    rejected_image(write_bytes(tmp_path / "head.jpg", jpeg_bytes()[:200]))


def test_png_with_garbled_middle_is_rejected(tmp_path: Path) -> None:
    path = garble_middle(write_image(tmp_path / "garbled.png", size=(200, 150)))
    rejected_image(path)


def test_jpeg_with_garbled_header_is_rejected(tmp_path: Path) -> None:
    data = bytearray(jpeg_bytes())
    data[2:120] = b"\x5a" * 118  # the APP0/DQT segments become junk
    rejected_image(write_bytes(tmp_path / "garbled.jpg", bytes(data)))


@pytest.mark.parametrize("name", ["notes.png", "notes.jpg", "notes.JPEG"])
def test_text_file_with_image_extension_is_rejected(tmp_path: Path, name: str) -> None:
    reason = rejected_image(write_bytes(tmp_path / name, b"This is not a picture, just some notes.\n" * 20))
    assert "not an image" in reason


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF", "WEBP"])
def test_other_image_formats_named_jpg_are_rejected(tmp_path: Path, fmt: str) -> None:
    path = write_image(tmp_path / "photo.jpg", fmt=fmt)
    assert Image.open(path).format == fmt
    rejected_image(path)


def test_image_over_configured_pixel_limit_is_rejected(tmp_path: Path) -> None:
    path = write_image(tmp_path / "big.png", size=(40, 40))  # 1,600 pixels
    reason = rejected_image(path, IngestConfig(max_image_pixels=1000))
    assert "1,000" in reason and "40 x 40" in reason


def test_image_between_pillow_limit_and_twice_it_is_rejected_before_decoding(tmp_path: Path) -> None:
    path = write_png_claiming(tmp_path / "large.png", 10_000, 10_000)  # 1e8: Pillow only warns here
    reason = rejected_image(path)
    assert f"{PILLOW_DEFAULT_LIMIT:,}" in reason


def test_image_over_twice_pillow_limit_is_rejected(tmp_path: Path) -> None:
    path = write_png_claiming(tmp_path / "bomb.png", 20_000, 20_000)  # 4e8 > 2 x 89,478,485
    reason = rejected_image(path)
    assert "pixels" in reason


def test_decompression_bomb_reason_names_the_limit_that_applied(tmp_path: Path) -> None:
    """A configured limit above Pillow's bomb threshold must not be quoted as the limit that was exceeded."""
    path = write_png_claiming(tmp_path / "bomb.png", 20_000, 20_000)  # 400,000,000 pixels
    reason = rejected_image(path, IngestConfig(max_image_pixels=500_000_000))
    assert "500,000,000" not in reason


# ---- unusual but valid images -----------------------------------------------------------------------


def probe_ok_image(path: Path, tz: str = "UTC") -> Probe:
    probe = probe_image(path, CONFIG, tz)
    assert isinstance(probe, Probe)
    return probe


def test_plain_rgb_jpeg_has_metadata_and_no_flags(tmp_path: Path) -> None:
    probe = probe_ok_image(write_image(tmp_path / "day.jpg"))
    assert probe.flags == []
    assert probe.metadata == {
        "width": WIDTH,
        "height": HEIGHT,
        "orientation": 1,
        "image_mode": "RGB",
        "camera_make": None,
        "camera_model": None,
        "captured_at": None,
    }


def test_grayscale_night_frame_is_flagged(tmp_path: Path) -> None:
    probe = probe_ok_image(write_image(tmp_path / "night.jpg", mode="L"))
    assert probe.metadata["image_mode"] == "L" and probe.flags == ["grayscale"]


def test_sixteen_bit_png_is_flagged(tmp_path: Path) -> None:
    probe = probe_ok_image(write_image(tmp_path / "deep.png", mode="I;16"))
    assert probe.metadata["image_mode"] == "I;16" and probe.flags == ["16bit"]
    assert (probe.metadata["width"], probe.metadata["height"]) == (WIDTH, HEIGHT)


def test_rgba_png_is_flagged(tmp_path: Path) -> None:
    probe = probe_ok_image(write_image(tmp_path / "alpha.png", mode="RGBA"))
    assert probe.metadata["image_mode"] == "RGBA" and probe.flags == ["alpha"]


def test_palette_png_is_flagged(tmp_path: Path) -> None:
    probe = probe_ok_image(write_image(tmp_path / "palette.png", mode="P"))
    assert probe.flags == ["palette"]


def test_cmyk_jpeg_is_flagged(tmp_path: Path) -> None:
    probe = probe_ok_image(write_image(tmp_path / "print.jpg", mode="CMYK"))
    assert probe.metadata["image_mode"] == "CMYK" and probe.flags == ["cmyk"]


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_rotation_reports_upright_size(tmp_path: Path, orientation: int) -> None:
    probe = probe_ok_image(write_image(tmp_path / "turned.jpg", exif=exif_block(orientation=orientation)))
    assert (probe.metadata["width"], probe.metadata["height"]) == (HEIGHT, WIDTH)
    assert probe.metadata["orientation"] == orientation
    assert probe.flags == ["rotated"]


def test_exif_upside_down_keeps_size(tmp_path: Path) -> None:
    probe = probe_ok_image(write_image(tmp_path / "flipped.jpg", exif=exif_block(orientation=3)))
    assert (probe.metadata["width"], probe.metadata["height"]) == (WIDTH, HEIGHT)
    assert probe.flags == ["rotated"]


@pytest.mark.parametrize("orientation", [0, 9, 40_000, 65_535])
def test_invalid_exif_orientation_is_ignored(tmp_path: Path, orientation: int) -> None:
    """Garbage orientation values must not crash ingest nor overflow the int16 orientation column."""
    probe = probe_ok_image(write_image(tmp_path / "odd.jpg", exif=exif_block(orientation=orientation)))
    assert probe.metadata["orientation"] == 1
    assert (probe.metadata["width"], probe.metadata["height"]) == (WIDTH, HEIGHT)
    assert "rotated" not in probe.flags


def test_exif_camera_and_time_without_offset_use_drop_time_zone(tmp_path: Path) -> None:
    exif = exif_block(make="RECONYX\x00", model="HC550 HYPERFIRE\x00\x00\x00", taken="2016:09:25 18:35:10")
    path = write_image(tmp_path / "trap.jpg", exif=exif)
    assert probe_ok_image(path, "UTC").metadata["captured_at"] == datetime(2016, 9, 25, 18, 35, 10, tzinfo=UTC)
    probe = probe_ok_image(path, "Asia/Shanghai")
    assert probe.metadata["camera_make"] == "RECONYX"
    assert probe.metadata["camera_model"] == "HC550 HYPERFIRE"
    assert probe.metadata["captured_at"] == datetime(2016, 9, 25, 10, 35, 10, tzinfo=UTC)


def test_exif_time_with_offset_ignores_drop_time_zone(tmp_path: Path) -> None:
    path = write_image(tmp_path / "trap.jpg", exif=exif_block(taken="2020:01:02 03:04:05", offset="+08:00"))
    probe = probe_ok_image(path, "America/New_York")
    assert probe.metadata["captured_at"] == datetime(2020, 1, 1, 19, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("taken", "offset"),
    [
        ("0000:00:00 00:00:00", None),
        ("    :  :     :  :  ", None),
        ("garbage", "+08:00"),
        ("2020:01:02 03:04:05", "+99:99"),
        ("9999:12:31 23:59:59", "-12:00"),
    ],
)
def test_garbage_exif_time_gives_no_capture_time(tmp_path: Path, taken: str, offset: str | None) -> None:
    path = write_image(tmp_path / "trap.jpg", exif=exif_block(taken=taken, offset=offset))
    captured = probe_ok_image(path).metadata["captured_at"]
    if offset == "+99:99":  # a bad offset falls back to the drop's time zone
        assert captured == datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    else:
        assert captured is None


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_corrupt_exif_segment_does_not_crash(tmp_path: Path) -> None:
    """A JPEG whose APP1 Exif segment is junk decodes fine: accept it without EXIF facts."""
    data = jpeg_bytes()
    app1_body = b"Exif\x00\x00" + b"MM\x00\x2a\x00\x00\x00\x08" + b"\xff\xee" * 40
    app1 = b"\xff\xe1" + struct.pack(">H", len(app1_body) + 2) + app1_body
    path = write_bytes(tmp_path / "badexif.jpg", data[:2] + app1 + data[2:])
    probe = probe_ok_image(path)
    assert probe.metadata["captured_at"] is None and probe.metadata["orientation"] == 1


def test_jpeg_content_named_png_is_flagged_not_rejected(tmp_path: Path) -> None:
    probe = probe_ok_image(write_bytes(tmp_path / "really_a_jpeg.png", jpeg_bytes()))
    assert probe.flags == ["extension_mismatch"]
    assert "format" not in probe.metadata


def test_uppercase_extension_matches(tmp_path: Path) -> None:
    assert probe_ok_image(write_image(tmp_path / "DAY.JPEG")).flags == []


# ---- bad audio --------------------------------------------------------------------------------------


def test_zero_byte_wav_is_rejected(tmp_path: Path) -> None:
    assert "empty" in rejected_audio(write_bytes(tmp_path / "empty.wav", b""))


def test_header_only_wav_is_rejected(tmp_path: Path) -> None:
    assert "no samples" in rejected_audio(write_header_only_wav(tmp_path / "header.wav"))


def test_wav_cut_at_the_end_is_rejected(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "cut.wav", tone(1.0))
    truncate_file(path, path.stat().st_size - 10_001)  # mid-frame too
    reason = rejected_audio(path)
    assert "truncated" in reason and "44,100" in reason


def test_wav_cut_right_after_its_header_is_rejected(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "cut.wav", tone(1.0))
    truncate_file(path, 46)
    rejected_audio(path)


def test_float_wav_with_nan_is_rejected(tmp_path: Path) -> None:
    samples = tone(0.5)
    samples[1000, 1] = np.nan
    assert "NaN" in rejected_audio(write_raw_wav(tmp_path / "nan.wav", samples))


def test_float_wav_with_inf_is_rejected(tmp_path: Path) -> None:
    samples = tone(0.5)
    samples[-1, 0] = -np.inf
    assert "infinite" in rejected_audio(write_raw_wav(tmp_path / "inf.wav", samples))


def test_float_wav_with_nan_in_a_later_block_is_rejected(tmp_path: Path) -> None:
    samples = tone(2.0, channels=1)
    samples[80_000, 0] = np.nan  # beyond the first 65,536-frame block
    rejected_audio(write_raw_wav(tmp_path / "nan.wav", samples))


@pytest.mark.parametrize(
    "data", [b"\x00garbage\xff" * 300, b"RIFF\x10\x00\x00\x00WAVEjunk", b"Just some text, not a recording.\n" * 10]
)
def test_garbage_wav_is_rejected(tmp_path: Path, data: bytes) -> None:
    rejected_audio(write_bytes(tmp_path / "noise.wav", data))


def test_flac_cut_in_half_is_rejected(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "clip.flac", tone(3.0))
    truncate_file(path, path.stat().st_size // 2)
    rejected_audio(path)


# ---- unusual but valid audio ------------------------------------------------------------------------


def probe_ok_audio(path: Path) -> Probe:
    probe = probe_audio(path, CONFIG)
    assert isinstance(probe, Probe)
    return probe


def test_stereo_44k_wav_has_metadata_and_no_flags(tmp_path: Path) -> None:
    probe = probe_ok_audio(write_audio(tmp_path / "pair.wav", tone(2.5)))
    assert probe.flags == []
    assert probe.metadata == {
        "sample_rate": 44_100,
        "channels": 2,
        "frames": 110_250,
        "duration_s": pytest.approx(2.5),
        "sample_format": "PCM_16",
    }


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_other_sample_formats_are_accepted(tmp_path: Path, subtype: str) -> None:
    probe = probe_ok_audio(write_audio(tmp_path / "fmt.wav", tone(2.5), subtype=subtype))
    assert probe.metadata["sample_format"] == subtype and probe.metadata["frames"] == 110_250
    assert probe.flags == []


def test_raw_float_wav_is_accepted(tmp_path: Path) -> None:
    probe = probe_ok_audio(write_raw_wav(tmp_path / "float.wav", tone(2.5)))
    assert probe.metadata["sample_format"] == "FLOAT" and probe.flags == []


def test_48k_recording_is_flagged_for_resampling(tmp_path: Path) -> None:
    probe = probe_ok_audio(write_audio(tmp_path / "hi.wav", tone(2.5, rate=48_000), rate=48_000))
    assert probe.metadata["sample_rate"] == 48_000 and probe.flags == ["resample"]


def test_mono_recording_is_flagged(tmp_path: Path) -> None:
    probe = probe_ok_audio(write_audio(tmp_path / "mono.wav", tone(2.5, channels=1)))
    assert probe.metadata["channels"] == 1 and probe.flags == ["mono"]


def test_silence_is_flagged(tmp_path: Path) -> None:
    probe = probe_ok_audio(write_audio(tmp_path / "quiet.wav", np.zeros((110_250, 2), np.float32)))
    assert probe.flags == ["silent"]


def test_very_short_clip_is_flagged(tmp_path: Path) -> None:
    probe = probe_ok_audio(write_audio(tmp_path / "blip.wav", tone(0.1)))
    assert probe.metadata["frames"] == 4_410 and probe.flags == ["short"]


def test_one_frame_clip_is_accepted(tmp_path: Path) -> None:
    probe = probe_ok_audio(write_audio(tmp_path / "tick.wav", tone(1 / 44_100)))
    assert probe.metadata["frames"] == 1 and "short" in probe.flags


def test_flac_is_accepted(tmp_path: Path) -> None:
    probe = probe_ok_audio(write_audio(tmp_path / "clip.flac", tone(2.5)))
    assert probe.metadata["sample_format"] == "PCM_16" and probe.metadata["frames"] == 110_250
    assert probe.flags == []


def test_multichannel_recording_is_flagged(tmp_path: Path) -> None:
    probe = probe_ok_audio(write_audio(tmp_path / "array.wav", tone(2.5, channels=4)))
    assert probe.flags == ["multichannel"]


def test_streaming_wav_with_unset_data_size_is_accepted(tmp_path: Path) -> None:
    probe = probe_ok_audio(write_raw_wav(tmp_path / "stream.wav", tone(2.5), declared_data_bytes=0xFFFFFFFF))
    assert probe.metadata["frames"] == 110_250


def test_wav_with_chunk_after_data_is_accepted(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "tagged.wav", tone(2.5))
    with open(path, "ab") as handle:
        handle.write(b"LIST" + struct.pack("<I", 4) + b"INFO")
    assert probe_ok_audio(path).metadata["frames"] == 110_250


# ---- hashing ----------------------------------------------------------------------------------------


def test_sha256_is_chunk_size_independent(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "bytes.bin", bytes(range(256)) * 100)
    assert sha256_of(path, 7) == sha256_of(path, 1 << 20)
    assert sha256_of(write_bytes(tmp_path / "none.bin", b""), 64) == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need a POSIX system")
def test_sha256_refuses_a_named_pipe_instead_of_waiting(tmp_path: Path) -> None:
    pipe = tmp_path / "pipe.jpg"
    os.mkfifo(pipe)
    with pytest.raises(FileRejected) as caught:
        sha256_of(pipe, 1024)  # would block forever on open() without O_NONBLOCK
    assert_sentence(str(caught.value), pipe)


# ---- real files (skipped when ../shared/realdata is absent) -----------------------------------------

CAMTRAP = "cameratrapai/test_data"


def test_real_truncated_camera_trap_frame_is_rejected(realdata: Path) -> None:
    reason = rejected_image(realfile(realdata, f"{CAMTRAP}/african_elephants_truncated_file.jpg"))
    assert "truncated" in reason


def test_real_cmyk_camera_trap_frame_is_accepted(realdata: Path) -> None:
    probe = probe_ok_image(realfile(realdata, f"{CAMTRAP}/african_elephants_cmyk.jpg"))
    assert probe.metadata["image_mode"] == "CMYK" and probe.flags == ["cmyk"]
    assert (probe.metadata["width"], probe.metadata["height"]) == (2048, 1536)


def test_real_exif_rotated_frame_reports_upright_size(realdata: Path) -> None:
    # SOURCES.md: stored as JPEG 1536x2048 with EXIF orientation 6, a rotated copy of the 2048x1536 elephants frame.
    path = realfile(realdata, f"{CAMTRAP}/african_elephants_with_exif_orientation.jpg")
    assert Image.open(path).size == (1536, 2048)
    probe = probe_ok_image(path)
    assert probe.metadata["orientation"] == 6 and probe.flags == ["rotated"]
    assert (probe.metadata["width"], probe.metadata["height"]) == (2048, 1536)
    assert probe.metadata["captured_at"] == datetime(2010, 8, 4, 8, 43, 15, tzinfo=UTC)


def test_real_reconyx_exif_is_read(realdata: Path) -> None:
    probe = probe_ok_image(realfile(realdata, f"{CAMTRAP}/blank.jpg"))
    assert probe.metadata["camera_make"] == "RECONYX"
    assert probe.metadata["camera_model"] == "HC550 HYPERFIRE"  # stored NUL-padded
    assert probe.metadata["captured_at"] == datetime(2016, 9, 25, 18, 35, 10, tzinfo=UTC)
    assert probe.flags == []


def test_real_exif_time_uses_drop_time_zone(realdata: Path) -> None:
    probe = probe_ok_image(realfile(realdata, f"{CAMTRAP}/blank.jpg"), "America/Denver")
    assert probe.metadata["captured_at"] == datetime(2016, 9, 26, 0, 35, 10, tzinfo=UTC)  # MDT is UTC-6


@pytest.mark.parametrize(
    ("name", "taken"),
    [
        ("20210531082538-RCNX0031.JPG", (2021, 4, 11, 20, 43, 9)),
        ("20210531082541-RCNX0040.JPG", (2021, 4, 11, 20, 43, 15)),
    ],
)
def test_real_camtrap_dp_frames_are_read(realdata: Path, name: str, taken: tuple[int, ...]) -> None:
    probe = probe_ok_image(realfile(realdata, f"camtrap-dp/media/{name}"), "Europe/Brussels")
    assert probe.metadata["camera_make"] == "RECONYX"
    assert probe.metadata["camera_model"] == "HYPERFIRE 2 COVERT"
    assert (probe.metadata["width"], probe.metadata["height"]) == (2048, 1440)
    assert probe.metadata["captured_at"] == datetime(*taken, tzinfo=UTC) - timedelta(hours=2)  # CEST in April
    assert probe.flags == []


def test_real_multi_picture_jpeg_is_not_an_extension_mismatch(realdata: Path) -> None:
    """Bushnell frames open as Pillow's MPO (a JPEG with a second picture): still a .jpg."""
    path = realfile(realdata, "megadetector/sage-grouse-raw.jpg")
    assert Image.open(path).format == "MPO"
    probe = probe_ok_image(path)
    assert probe.flags == []
    assert probe.metadata["camera_make"] == "BUSHNELL"


def test_real_rgba_png_is_accepted(realdata: Path) -> None:
    probe = probe_ok_image(realfile(realdata, "face_recognition/32bit.png"))
    assert probe.flags == ["alpha"] and (probe.metadata["width"], probe.metadata["height"]) == (626, 1200)


def test_real_empty_2c_stub_is_rejected(realdata: Path) -> None:
    """empty_2c.wav: 45 bytes, a 2-channel 16-bit header promising 116 data bytes, followed by a single byte."""
    path = realfile(realdata, "opensoundscape/empty_2c.wav")
    assert path.stat().st_size == 45
    reason = rejected_audio(path)
    assert "no samples" in reason or "truncated" in reason


def test_real_stereo_wav_is_accepted(realdata: Path) -> None:
    probe = probe_ok_audio(realfile(realdata, "librosa-test-data/test1_44100.wav"))  # has a LIST chunk before data
    assert probe.metadata["channels"] == 2 and probe.metadata["sample_rate"] == 44_100
    assert probe.metadata["frames"] == 202_311 and probe.flags == []


def test_real_stereo_22k_wav_is_flagged_for_resampling(realdata: Path) -> None:
    probe = probe_ok_audio(realfile(realdata, "librosa-test-data/test1_22050.wav"))
    assert probe.metadata["channels"] == 2 and probe.metadata["sample_rate"] == 22_050
    assert probe.flags == ["resample"]


def test_real_mono_32k_snippet_is_accepted(realdata: Path) -> None:
    probe = probe_ok_audio(realfile(realdata, "crowsetta/Recording_1_Segment_07-snippet.wav"))
    assert probe.metadata["channels"] == 1 and probe.metadata["sample_rate"] == 32_000
    assert probe.metadata["duration_s"] == pytest.approx(10.0, abs=1e-3)
    assert probe.flags == ["mono", "resample"]


def test_real_mono_48k_audiomoth_is_accepted(realdata: Path) -> None:
    probe = probe_ok_audio(realfile(realdata, "opensoundscape/audiomoth_gps.wav"))
    assert probe.metadata["channels"] == 1 and probe.metadata["sample_rate"] == 48_000
    assert probe.metadata["frames"] == 95_999
    assert probe.flags == ["mono", "resample", "short"]  # 1.99998 s is under the 2 s default
