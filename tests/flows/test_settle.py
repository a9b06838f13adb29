"""Drops still being copied: only settled drops (quiet for settle_s, or carrying the ready marker) are ingested."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from flows.nightly import nightly
from schemas.config import IngestConfig, load_settings
from schemas.home import HomeLayout
from tasks.catalog import query
from tasks.discover import settle_remaining, walk_drop
from tests.drops import write_small_drop

SETTLE_S = 2.0


class SlowCopy:
    """Copy a drop the way a slow USB stick or network share does: every file but the recording at once, then the
    recording a kilobyte every 50 ms until told to finish."""

    def __init__(self, source: Path, target: Path) -> None:
        """Start copying source into target on a thread."""
        self.source, self.target = source, target
        self.finish = threading.Event()
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.wav"))
        self.thread = threading.Thread(target=self.copy_recording, daemon=True)
        self.thread.start()

    def copy_recording(self) -> None:
        """Write the recording in small chunks until finish is set, then the rest."""
        data = (self.source / "audio" / "E01.wav").read_bytes()
        path = self.target / "audio" / "E01.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            written = 0
            while not self.finish.is_set() and written < len(data) - 1024:
                handle.write(data[written : written + 1024])
                handle.flush()
                written += 1024
                time.sleep(0.05)
            handle.write(data[written:])

    def complete(self) -> None:
        """Let the copy finish and wait for it."""
        self.finish.set()
        self.thread.join()


def drop_parts(home: Path, drop_id: str) -> list[Path]:
    """Every lake part and commit marker of a drop."""
    return [*(home / "lake").glob(f"*/drop={drop_id}/*")]


def test_settle_remaining_counts_from_the_latest_write_and_honours_the_marker(tmp_path):
    drop = write_small_drop(tmp_path / "d1")
    config = IngestConfig(settle_s=120)
    now = time.time()
    assert 115 < settle_remaining(drop, config, now) <= 120
    assert settle_remaining(drop, config, now + 121) == 0
    assert settle_remaining(drop, IngestConfig(settle_s=0), now) == 0
    before = walk_drop(drop, config).fingerprint
    (drop / "READY").write_bytes(b"")
    assert settle_remaining(drop, config, now) == 0
    assert walk_drop(drop, config).fingerprint == before  # the marker itself is not content
    assert settle_remaining(drop, IngestConfig(settle_s=120, ready_marker=""), now) > 115


def test_ingest_settings_that_change_no_result_leave_fingerprints_alone(tmp_path):
    plain = load_settings(None, home=tmp_path)
    other = plain.model_copy(update={"ingest": IngestConfig(settle_s=5, ready_marker=".done")})
    assert plain.fingerprint() == other.fingerprint()
    assert plain.fingerprint(("ingest",)) == other.fingerprint(("ingest",))


def test_inbox_run_skips_a_drop_being_copied_and_the_next_run_takes_it(tmp_path, monkeypatch):
    monkeypatch.setenv("BREEDWATCH_INGEST__SETTLE_S", str(SETTLE_S))
    inbox, home = tmp_path / "inbox", tmp_path / "home"
    config = tmp_path / "c.toml"
    config.write_text(f'inbox = "{inbox}"\n')
    ready = write_small_drop(inbox / "d0", seed=1)
    (ready / "READY").write_bytes(b"")  # just written, but marked finished
    copy = SlowCopy(write_small_drop(tmp_path / "source"), inbox / "d1")
    try:
        first = nightly(home=str(home), config_file=str(config))
    finally:
        copy.complete()
    assert [d["drop_id"] for d in first["drops"]] == ["d0"]
    assert drop_parts(home, "d1") == []  # nothing of the half-copied drop, not even a reject
    time.sleep(SETTLE_S + 0.2)
    second = nightly(home=str(home), config_file=str(config))
    assert [(d["drop_id"], d["status"]) for d in second["drops"]] == [("d1", "ingested")]
    layout = HomeLayout(home)
    audio = query(layout, "SELECT status, frames FROM media WHERE drop_id = 'd1' AND kind = 'audio'").to_pylist()
    assert audio == [{"status": "ok", "frames": 3 * 44_100}]
    assert query(layout, "SELECT count(*) AS n FROM rejects WHERE drop_id = 'd1'").column("n")[0].as_py() == 1


def test_a_given_drop_is_waited_for_and_skipped_while_it_keeps_changing(tmp_path, monkeypatch):
    monkeypatch.setenv("BREEDWATCH_INGEST__SETTLE_S", str(SETTLE_S))
    home = tmp_path / "home"
    copy = SlowCopy(write_small_drop(tmp_path / "source"), tmp_path / "inbox" / "d1")
    try:
        first = nightly(drops=[str(copy.target)], home=str(home))
    finally:
        copy.complete()
    assert first["drops"] == [] and drop_parts(home, "d1") == []
    started = time.monotonic()
    second = nightly(drops=[str(copy.target)], home=str(home))  # just finished: this run waits for it
    assert [(d["drop_id"], d["status"]) for d in second["drops"]] == [("d1", "ingested")]
    assert time.monotonic() - started >= SETTLE_S * 0.5
    frames = query(HomeLayout(home), "SELECT frames FROM media WHERE kind = 'audio'").column("frames").to_pylist()
    assert frames == [3 * 44_100]


@pytest.mark.parametrize("name", ["a/b", ".."])
def test_ready_marker_must_be_a_file_name(name):
    with pytest.raises(ValueError, match="plain file name"):
        IngestConfig(ready_marker=name)
