"""One drop mixing good, unusual and broken files through ingest_drop_dir: every bad file is one rejects row."""

from __future__ import annotations

import os
import shutil
import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from schemas.config import Settings
from schemas.home import HomeLayout
from schemas.tables import MEDIA, REJECTS
from tasks.ingest import DropResult, ingest_drop_dir
from tasks.lake import read_table
from tests.tasks.media_files import (
    exif_block,
    garble_middle,
    jpeg_bytes,
    tone,
    write_audio,
    write_bytes,
    write_header_only_wav,
    write_image,
    write_png_claiming,
    write_raw_wav,
)

RUN_ID = "run-test-1"
UTC = UTC

GOOD_IMAGES = {
    "faces/mei/face1.jpg",
    "faces/mei/face_gray.png",
    "images/mei/portrait.jpg",
    "images/cam1/day.jpg",
    "images/cam1/night_gray.jpg",
    "images/cam1/deep16.png",
    "images/cam1/alpha.png",
    "images/cam1/cmyk.jpg",
    "images/cam1/rotated.jpg",
    "images/cam1/linked_inside.jpg",
}
GOOD_AUDIO = {
    "audio/pair.wav",
    "audio/mono48k.wav",
    "audio/u8.wav",
    "audio/pcm24.wav",
    "audio/float.wav",
    "audio/silence.wav",
    "audio/blip.wav",
    "audio/night/clip.flac",
}
DUPLICATE = "images/cam1/day_copy.jpg"
DISCOVER_REJECTS = {
    "images/cam1/broken.jpg",
    "images/cam1/outside.jpg",
    "images/cam1/clip.gif",
    "images/cam_ext",
}
INGEST_REJECTS = {
    "images/cam1/empty.jpg",
    "images/cam1/half.jpg",
    "images/cam1/garbled.png",
    "images/cam1/notes.png",
    "images/cam1/huge.png",
    "images/cam1/large.png",
    "audio/header_only.wav",
    "audio/cut.wav",
    "audio/nan.wav",
    "audio/inf.wav",
    "audio/garbage.wav",
}
IGNORED = {".hidden", "notes.txt", "images/cam1/.hidden.jpg", "audio/pair.selections.txt", "archive/original.jpg"}


def assert_sentence(message: str) -> None:
    """A rejects reason is one human-readable sentence."""
    assert message and message[0].isupper() and message.endswith("."), message
    assert not message.endswith("..") and "\n" not in message, message


def build_mixed_drop(root: Path) -> Path:
    """The drop of the issue: good files, every bad kind, links, ignored files and a duplicate."""
    drop = root / "drop-2024-05-01"
    outside = root / "outside"
    write_image(outside / "secret.jpg")
    (outside / "more").mkdir()
    write_image(outside / "more" / "frame.jpg")

    (drop / "images" / "cam1").mkdir(parents=True)
    (drop / "drop.toml").write_text('site = "Wolong"\ntimezone = "Asia/Shanghai"\n')
    (drop / "animals.csv").write_text("animal_id,sex,birth_date,name\nmei,female,2015-08-01,Mei Mei\n")
    (drop / "encounters.csv").write_text(
        "encounter_id,recording,male_id,female_id,started_at,outcome\nenc1,audio/pair.wav,bao,mei,2024-05-01T06:00:00,success\n"
    )
    (drop / "notes.txt").write_text("keeper notes, not media\n")
    (drop / ".hidden").write_text("editor state\n")

    write_image(drop / "faces/mei/face1.jpg")
    write_image(drop / "faces/mei/face_gray.png", mode="L")
    write_image(drop / "images/mei/portrait.jpg", size=(40, 40))
    day = write_image(
        drop / "images/cam1/day.jpg",
        size=(64, 48),
        exif=exif_block(make="RECONYX", model="HC550 HYPERFIRE", taken="2024:05:01 06:30:00"),
    )
    shutil.copyfile(day, drop / DUPLICATE)
    write_image(drop / "images/cam1/night_gray.jpg", mode="L", size=(50, 30))
    write_image(drop / "images/cam1/deep16.png", mode="I;16")
    write_image(drop / "images/cam1/alpha.png", mode="RGBA", size=(30, 30))
    write_image(drop / "images/cam1/cmyk.jpg", mode="CMYK", size=(36, 20))
    write_image(drop / "images/cam1/rotated.jpg", size=(60, 20), exif=exif_block(orientation=6))
    write_image(drop / "archive/original.jpg", size=(44, 22))
    (drop / "images/cam1/linked_inside.jpg").symlink_to("../../archive/original.jpg")
    write_image(drop / "images/cam1/.hidden.jpg")

    write_audio(drop / "audio/pair.wav", tone(2.5))
    (drop / "audio/pair.selections.txt").write_text("Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\n")
    write_audio(drop / "audio/mono48k.wav", tone(2.5, rate=48_000, channels=1), rate=48_000)
    write_audio(drop / "audio/u8.wav", tone(2.5, amplitude=0.3), subtype="PCM_U8")
    write_audio(drop / "audio/pcm24.wav", tone(2.5, amplitude=0.4), subtype="PCM_24")
    write_audio(drop / "audio/float.wav", tone(2.5, amplitude=0.6), subtype="FLOAT")
    write_audio(drop / "audio/silence.wav", np.zeros((110_250, 2), np.float32))
    write_audio(drop / "audio/blip.wav", tone(0.1))
    write_audio(drop / "audio/night/clip.flac", tone(2.2))

    (drop / "images/cam1/broken.jpg").symlink_to("does-not-exist.jpg")
    (drop / "images/cam1/outside.jpg").symlink_to(outside / "secret.jpg")
    (drop / "images/cam_ext").symlink_to(outside / "more", target_is_directory=True)
    write_bytes(drop / "images/cam1/clip.gif", b"GIF89a" + b"\x00" * 40)
    write_bytes(drop / "images/cam1/empty.jpg", b"")
    half = jpeg_bytes(size=(160, 120))
    write_bytes(drop / "images/cam1/half.jpg", half[: len(half) // 2])
    garble_middle(write_image(drop / "images/cam1/garbled.png", size=(200, 150)))
    write_bytes(drop / "images/cam1/notes.png", b"Not a picture: remember to charge the batteries.\n" * 5)
    write_png_claiming(drop / "images/cam1/huge.png", 20_000, 20_000)
    write_png_claiming(drop / "images/cam1/large.png", 10_000, 10_000)
    write_header_only_wav(drop / "audio/header_only.wav")
    cut = write_audio(drop / "audio/cut.wav", tone(1.0))
    cut.write_bytes(cut.read_bytes()[:-5_000])
    nan, inf = tone(0.3), tone(0.3, amplitude=0.2)
    nan[500, 0] = np.nan
    inf[700, 1] = np.inf
    write_raw_wav(drop / "audio/nan.wav", nan)
    write_raw_wav(drop / "audio/inf.wav", inf)
    write_bytes(drop / "audio/garbage.wav", bytes((i * 97 + 13) % 256 for i in range(2_000)))
    return drop


def ingest(drop: Path, settings: Settings) -> tuple[DropResult, int]:
    """Ingest one drop, returning its result and how many files were reported as done."""
    done = []
    result = ingest_drop_dir(drop, HomeLayout(settings.home), RUN_ID, settings, lambda: done.append(1))
    return result, len(done)


def rows(settings: Settings, spec, drop_id: str) -> list[dict]:
    """One drop's rows of a lake table."""
    return [row for row in read_table(HomeLayout(settings.home), spec).to_pylist() if row["drop_id"] == drop_id]


def lake_files(settings: Settings) -> dict[str, int]:
    """Every file under the lake with its modification time."""
    lake = HomeLayout(settings.home).lake
    return {str(path.relative_to(lake)): path.stat().st_mtime_ns for path in lake.rglob("*") if path.is_file()}


@pytest.fixture
def mixed(tmp_path: Path) -> tuple[Path, Settings, DropResult, int]:
    drop = build_mixed_drop(tmp_path)
    settings = Settings(home=tmp_path / "home")
    result, advanced = ingest(drop, settings)
    return drop, settings, result, advanced


def test_mixed_drop_is_ingested_with_counts(mixed) -> None:
    _, _, result, advanced = mixed
    assert result.status == "ingested", result.message
    assert result.drop_id == "drop-2024-05-01"
    assert result.counts == {
        "images": len(GOOD_IMAGES),
        "audio": len(GOOD_AUDIO),
        "duplicates": 1,
        "rejected": len(DISCOVER_REJECTS) + len(INGEST_REJECTS),
    }
    assert advanced == len(GOOD_IMAGES) + len(GOOD_AUDIO) + 1 + len(INGEST_REJECTS)


def test_every_bad_file_is_exactly_one_rejects_row(mixed) -> None:
    _, settings, result, _ = mixed
    rejects = rows(settings, REJECTS, result.drop_id)
    paths = Counter(row["path"] for row in rejects)
    assert set(paths) == DISCOVER_REJECTS | INGEST_REJECTS
    assert max(paths.values()) == 1
    for row in rejects:
        expected_stage = "discover" if row["path"] in DISCOVER_REJECTS else "ingest"
        assert row["stage"] == expected_stage, row
        assert row["run_id"] == RUN_ID
        assert_sentence(row["reason"])
    reasons = {row["path"]: row["reason"] for row in rejects}
    assert "broken symbolic link" in reasons["images/cam1/broken.jpg"]
    assert "outside the drop" in reasons["images/cam1/outside.jpg"]
    assert "outside the drop" in reasons["images/cam_ext"]
    assert "'.gif'" in reasons["images/cam1/clip.gif"]
    assert "empty" in reasons["images/cam1/empty.jpg"]
    assert "truncated" in reasons["images/cam1/half.jpg"]
    assert "not an image" in reasons["images/cam1/notes.png"]
    assert "pixels" in reasons["images/cam1/huge.png"] and "pixels" in reasons["images/cam1/large.png"]
    assert "no samples" in reasons["audio/header_only.wav"]
    assert "truncated" in reasons["audio/cut.wav"]
    assert "NaN or infinite" in reasons["audio/nan.wav"] and "NaN or infinite" in reasons["audio/inf.wav"]


def test_every_good_file_has_an_ok_media_row(mixed) -> None:
    _, settings, result, _ = mixed
    media = rows(settings, MEDIA, result.drop_id)
    ok = {row["path"]: row for row in media if row["status"] == "ok"}
    assert set(ok) == GOOD_IMAGES | GOOD_AUDIO
    assert all(ok[path]["kind"] == "image" for path in GOOD_IMAGES)
    assert all(ok[path]["kind"] == "audio" for path in GOOD_AUDIO)
    rejected = {row["path"] for row in media if row["status"] == "rejected"}
    assert rejected == INGEST_REJECTS  # hashed files keep their identity; links and bad names never get a row
    assert Counter(row["media_id"] for row in media).most_common(1)[0][1] == 1
    listed = {row["path"] for row in media} | {p for row in media for p in row["duplicate_paths"]}
    everything = listed | DISCOVER_REJECTS
    assert everything == GOOD_IMAGES | GOOD_AUDIO | {DUPLICATE} | DISCOVER_REJECTS | INGEST_REJECTS
    assert not everything & IGNORED


def test_mixed_drop_metadata_and_flags(mixed) -> None:
    _, settings, result, _ = mixed
    media = {row["path"]: row for row in rows(settings, MEDIA, result.drop_id)}
    day = media["images/cam1/day.jpg"]
    assert day["duplicate_paths"] == [DUPLICATE]
    assert (day["camera_make"], day["camera_model"]) == ("RECONYX", "HC550 HYPERFIRE")
    assert day["captured_at"] == datetime(2024, 4, 30, 22, 30, tzinfo=UTC)  # drop.toml: Asia/Shanghai
    assert (day["width"], day["height"], day["site"]) == (64, 48, "Wolong")
    assert media["faces/mei/face1.jpg"]["animal_id"] == "mei"
    assert media["images/mei/portrait.jpg"]["animal_id"] == "mei"  # listed in animals.csv
    assert media["images/cam1/night_gray.jpg"]["animal_id"] is None
    assert (media["images/cam1/rotated.jpg"]["width"], media["images/cam1/rotated.jpg"]["height"]) == (20, 60)
    expected_flags = {
        "faces/mei/face_gray.png": ["grayscale"],
        "images/cam1/night_gray.jpg": ["grayscale"],
        "images/cam1/deep16.png": ["16bit"],
        "images/cam1/alpha.png": ["alpha"],
        "images/cam1/cmyk.jpg": ["cmyk"],
        "images/cam1/rotated.jpg": ["rotated"],
        "images/cam1/linked_inside.jpg": [],
        "audio/pair.wav": [],
        "audio/mono48k.wav": ["mono", "resample"],
        "audio/u8.wav": [],
        "audio/pcm24.wav": [],
        "audio/float.wav": [],
        "audio/silence.wav": ["silent"],
        "audio/blip.wav": ["short"],
        "audio/night/clip.flac": [],
    }
    assert {path: media[path]["flags"] for path in expected_flags} == expected_flags
    pair = media["audio/pair.wav"]
    assert (pair["sample_rate"], pair["channels"], pair["frames"]) == (44_100, 2, 110_250)
    assert pair["captured_at"] == datetime(2024, 4, 30, 22, 0, tzinfo=UTC)  # from encounters.csv
    assert media["audio/u8.wav"]["sample_format"] == "PCM_U8"
    assert media["audio/pcm24.wav"]["sample_format"] == "PCM_24"


def test_second_ingest_is_unchanged_and_rewrites_nothing(mixed) -> None:
    drop, settings, first, _ = mixed
    before = lake_files(settings)
    assert before
    again, advanced = ingest(drop, settings)
    assert again.status == "unchanged"
    assert again.counts == first.counts
    assert advanced == 0
    assert lake_files(settings) == before


def test_unreadable_file_is_rejected(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("running as root: root can still read a chmod 000 file, so it cannot be made unreadable")
    drop = tmp_path / "drop-locked"
    write_image(drop / "images/cam1/ok.jpg")
    locked = write_image(drop / "images/cam1/locked.jpg", size=(20, 20))
    locked.chmod(0)
    try:
        settings = Settings(home=tmp_path / "home")
        result, _ = ingest(drop, settings)
        assert result.status == "ingested" and result.counts["images"] == 1 and result.counts["rejected"] == 1
        (reject,) = rows(settings, REJECTS, result.drop_id)
        assert (reject["path"], reject["stage"]) == ("images/cam1/locked.jpg", "ingest")
        assert "permission denied" in reject["reason"]
        assert_sentence(reject["reason"])
    finally:
        locked.chmod(0o644)


def test_permission_denied_file_is_rejected_even_as_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same case with the refusal simulated, so it is also checked where tests run as root."""
    drop = tmp_path / "drop-denied"
    write_image(drop / "images/cam1/ok.jpg")
    write_image(drop / "images/cam1/locked.jpg", size=(20, 20))
    real_open = os.open

    def refusing_open(path, flags, *args, **kwargs):
        if str(path).endswith("locked.jpg"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing_open)
    settings = Settings(home=tmp_path / "home")
    result, _ = ingest(drop, settings)
    assert result.status == "ingested" and result.counts["images"] == 1 and result.counts["rejected"] == 1
    (reject,) = rows(settings, REJECTS, result.drop_id)
    assert (reject["path"], reject["stage"]) == ("images/cam1/locked.jpg", "ingest")
    assert "permission denied" in reject["reason"]
    assert_sentence(reject["reason"])


# ---- malformed manifests ----------------------------------------------------------------------------

GOOD_ANIMALS = "animal_id,sex,birth_date,name\nmei,female,2015-08-01,Mei Mei\nbao,male,,Bao\n"
GOOD_ENCOUNTERS = (
    "encounter_id,recording,male_id,female_id,started_at,outcome\n"
    "enc1,audio/pair.wav,bao,mei,2024-05-01T06:00:00,success\n"
    "enc2,audio/pair.wav,bao,mei,,\n"
)

MANIFEST_CASES = {
    "animals-bad-sex": (
        "animals.csv",
        "animal_id,sex,birth_date,name\nmei,female,2015-08-01,Mei Mei\nbao,unicorn,,Bao\n",
        "line 3",
        "sex",
    ),
    "encounters-missing-column": (
        "encounters.csv",
        "encounter_id,recording,male_id,started_at,outcome\nenc1,audio/pair.wav,bao,,\n",
        "line 1",
        "female_id",
    ),
    "encounters-recording-not-in-drop": (
        "encounters.csv",
        "encounter_id,recording,male_id,female_id,started_at,outcome\n"
        "enc1,audio/pair.wav,bao,mei,,\nenc2,audio/missing.wav,bao,mei,,\n",
        "line 3",
        "recording",
    ),
    "drop-toml-syntax-error": ("drop.toml", 'site = "Wolong"\ntimezone = Asia/Shanghai\n', "line 2", None),
    "drop-toml-unknown-time-zone": (
        "drop.toml",
        'site = "Wolong"\ntimezone = "Mars/Olympus_Mons"\n',
        "line 2",
        "timezone",
    ),
}


def build_small_drop(root: Path, name: str) -> Path:
    """A valid drop with good manifests, one image and one recording."""
    drop = root / name
    write_image(drop / "faces/mei/face1.jpg")
    write_audio(drop / "audio/pair.wav", tone(2.5))
    (drop / "drop.toml").write_text('site = "Wolong"\ntimezone = "Asia/Shanghai"\n')
    (drop / "animals.csv").write_text(GOOD_ANIMALS)
    (drop / "encounters.csv").write_text(GOOD_ENCOUNTERS)
    return drop


@pytest.mark.parametrize("case", sorted(MANIFEST_CASES))
def test_malformed_manifest_fails_the_drop_only(tmp_path: Path, case: str) -> None:
    filename, text, line, field = MANIFEST_CASES[case]
    bad = build_small_drop(tmp_path, "drop-bad")
    (bad / filename).write_text(text)
    settings = Settings(home=tmp_path / "home")

    result, _ = ingest(bad, settings)
    assert result.status == "failed"
    assert filename in result.message and line in result.message, result.message
    if field:
        assert field in result.message, result.message
    (reject,) = rows(settings, REJECTS, "drop-bad")
    assert (reject["path"], reject["stage"], reject["run_id"]) == (filename, "manifest", RUN_ID)
    assert filename in reject["reason"] and line in reject["reason"]
    assert reject["reason"].endswith(".") and not reject["reason"].endswith("..")
    assert rows(settings, MEDIA, "drop-bad") == []

    good = build_small_drop(tmp_path, "drop-good")
    ok, _ = ingest(good, settings)
    assert ok.status == "ingested", ok.message
    assert ok.counts == {"images": 1, "audio": 1, "duplicates": 0, "rejected": 0}
    assert {row["path"] for row in rows(settings, MEDIA, "drop-good")} == {"faces/mei/face1.jpg", "audio/pair.wav"}
    assert rows(settings, REJECTS, "drop-good") == []
    assert rows(settings, REJECTS, "drop-bad") == [reject]
    assert ingest(bad, settings)[0].status == "failed"  # still failing, still one row
    assert len(rows(settings, REJECTS, "drop-bad")) == 1


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need a POSIX system")
def test_named_pipe_in_drop_is_rejected_not_waited_on(tmp_path: Path) -> None:
    """A FIFO named like a photo cannot be read even by root; ingest must refuse it rather than hang."""
    drop = tmp_path / "drop-pipe"
    write_image(drop / "images/cam1/ok.jpg")
    pipe = drop / "images/cam1/pipe.jpg"
    pipe.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(pipe)
    settings = Settings(home=tmp_path / "home")
    outcome: list[DropResult] = []
    worker = threading.Thread(target=lambda: outcome.append(ingest(drop, settings)[0]), daemon=True)
    worker.start()
    worker.join(timeout=30)
    if worker.is_alive():  # unblock the reader so the test process can exit, then fail
        os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(timeout=10)
        pytest.fail("ingest waited forever on a named pipe")
    (result,) = outcome
    assert result.status == "ingested" and result.counts["images"] == 1 and result.counts["rejected"] == 1
    (reject,) = rows(settings, REJECTS, result.drop_id)
    assert (reject["path"], reject["stage"]) == ("images/cam1/pipe.jpg", "ingest")
    assert_sentence(reject["reason"])


# ---- regressions found while writing these tests ----


def test_rejected_file_with_same_bytes_does_not_hide_good_file(tmp_path: Path) -> None:
    drop = tmp_path / "drop-misfiled"
    good = write_image(drop / "images/cam1/a.png")
    write_bytes(drop / "audio/a.wav", good.read_bytes())  # the same photo misfiled as a recording
    settings = Settings(home=tmp_path / "home")
    result, _ = ingest(drop, settings)
    ok = {row["path"] for row in rows(settings, MEDIA, result.drop_id) if row["status"] == "ok"}
    assert ok == {"images/cam1/a.png"}
    assert result.counts["images"] == 1


def test_identical_rejected_files_are_not_counted_as_duplicates(tmp_path: Path) -> None:
    drop = tmp_path / "drop-empties"
    write_image(drop / "images/cam1/ok.jpg")
    write_bytes(drop / "images/cam1/empty.jpg", b"")
    write_bytes(drop / "audio/empty.wav", b"")
    result, _ = ingest(drop, Settings(home=tmp_path / "home"))
    assert result.counts == {"images": 1, "audio": 0, "duplicates": 0, "rejected": 2}


def test_missing_recording_line_number_counts_blank_lines(tmp_path: Path) -> None:
    drop = build_small_drop(tmp_path, "drop-blank-lines")
    (drop / "encounters.csv").write_text(
        "encounter_id,recording,male_id,female_id,started_at,outcome\n\n"
        "enc1,audio/pair.wav,bao,mei,,\n\nenc2,audio/missing.wav,bao,mei,,\n"
    )
    result, _ = ingest(drop, Settings(home=tmp_path / "home"))
    assert result.status == "failed" and "line 5" in result.message, result.message


def test_media_rows_record_file_size(tmp_path: Path) -> None:
    drop = build_small_drop(tmp_path, "drop-sizes")
    settings = Settings(home=tmp_path / "home")
    ingest(drop, settings)
    for row in rows(settings, MEDIA, "drop-sizes"):
        assert row["size_bytes"] == (drop / row["path"]).stat().st_size


def test_manifest_reject_reason_reads_as_a_sentence(tmp_path: Path) -> None:
    drop = build_small_drop(tmp_path, "drop-sentence")
    (drop / "animals.csv").write_text("animal_id,sex\nmei,unicorn\n")
    settings = Settings(home=tmp_path / "home")
    ingest(drop, settings)
    (reject,) = rows(settings, REJECTS, "drop-sentence")
    assert_sentence(reject["reason"])
    assert "Value error" not in reject["reason"]
