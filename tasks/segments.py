"""The audio stage: vocal segments (Raven tables or automatic detection), 2 s windows, MFCC features."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.audio_features import FEATURE_VERSION, SR, TorchMFCC, window_batches
from models.segments import (
    RowProblem,
    Segment,
    Window,
    detect_vocal_segments,
    parse_raven_table,
    vad_settings,
    window_rows,
)
from schemas.config import AudioConfig, Settings
from schemas.home import HomeLayout
from schemas.tables import ENCOUNTER_MANIFEST, MEDIA, REJECTS, SEGMENT_FEATURES, SEGMENTS
from tasks.audio import read_spans, read_whole
from tasks.devices import choose_device
from tasks.lake import part_writer, read_part, write_rows
from tasks.stages import INGEST, Computed, DropStage, StageRun, ingest_count

STAGE = "segments"
SEGMENTS_VERSION = "1"


def drop_recordings(home: HomeLayout, drop_id: str) -> list[dict[str, Any]]:
    """The usable recordings of one drop, from its committed ingest part."""
    part = home.part(MEDIA.name, MEDIA.partition, drop_id, "ingest")
    rows = read_part(part, MEDIA, ["media_id", "path", "kind", "status", "duration_s", "flags"]).to_pylist()
    return [row for row in rows if row["kind"] == "audio" and row["status"] == "ok"]


def encounters_by_recording(home: HomeLayout, drop_id: str) -> dict[str, str]:
    """encounter_id of each recording path named in encounters.csv."""
    part = home.part(ENCOUNTER_MANIFEST.name, ENCOUNTER_MANIFEST.partition, drop_id, "ingest")
    if not part.exists():
        return {}
    return {
        row["recording"]: row["encounter_id"]
        for row in read_part(part, ENCOUNTER_MANIFEST, ["recording", "encounter_id"]).to_pylist()
    }


def raven_tables(folders: Iterable[Path], suffix: str) -> dict[Path, list[str]]:
    """Names of the Raven selection tables in each folder holding recordings, sorted, each folder listed once (a glob
    per recording listed its folder once for each recording: 1,000 recordings 1 s; a walk of the whole drop read
    every image's entry too: 5 ms with 5,000 images against 0.2 ms)."""
    return {
        folder: sorted(path.name for path in folder.iterdir() if path.name.endswith(suffix) and path.is_file())
        for folder in set(folders)
        if folder.is_dir()
    }


def raven_table_for(tables: dict[Path, list[str]], drop_dir: Path, recording: str, suffix: str) -> Path | None:
    """The Raven selection table the keeper left next to a recording, if any: '<stem><suffix>' or '<stem>.*<suffix>'
    (Raven's own 'E01.Table.1.selections.txt'), the first by name when there are several. E1.wav never takes
    E10's table, and names with glob characters ('call[1].wav') match as written."""
    path = drop_dir / recording
    for name in tables.get(path.parent, []):
        if name == path.stem + suffix or (
            name.startswith(path.stem + ".") and len(name) > len(path.stem) + len(suffix)
        ):
            return path.parent / name
    return None


def find_calls(
    drop_dir: Path, media: dict[str, Any], table: Path | None, config: AudioConfig
) -> tuple[list[Segment], list[RowProblem], str | None]:
    """Calls of one recording from its Raven table, or from automatic detection when there is none."""
    if table is not None:
        relative = table.relative_to(drop_dir).as_posix()
        text = table.read_text(encoding="utf-8", errors="replace")
        calls, problems = parse_raven_table(text, media["duration_s"], relative)
        return calls, problems, relative
    recording = read_whole(drop_dir / media["path"], config.channel_pair)
    return detect_vocal_segments(recording.samples, SR, vad_settings(config)), [], None


def recording_windows(
    drop_dir: Path, media: dict[str, Any], windows: list[Window], config: AudioConfig
) -> Iterator[tuple[Window, np.ndarray]]:
    """Each window of one recording with the (frames, 2) samples of its call, read one call at a time from the file
    opened once."""
    by_call: dict[tuple[float, float], list[Window]] = {}
    for window in windows:
        by_call.setdefault((window.call.start_s, window.call.end_s), []).append(window)
    for (call_start, call_end), recording in zip(
        by_call, read_spans(drop_dir / media["path"], list(by_call), config.channel_pair)
    ):
        for window in by_call[(call_start, call_end)]:
            window.row["flags"] = recording.flags
            yield window, recording.samples


@dataclass
class DropWindows:
    """What segmenting a drop's recordings collects besides the samples: segment rows, rejects, and progress."""

    segments: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)

    def windows(
        self,
        home: HomeLayout,
        drop_dir: Path,
        drop_id: str,
        run_id: str,
        config: AudioConfig,
        advance: Callable[[], None],
    ) -> Iterator[tuple[Window, np.ndarray]]:
        """Every window of every recording of the drop with its call's samples; rows and rejects are kept as they go."""
        encounters = encounters_by_recording(home, drop_id)
        recordings = drop_recordings(home, drop_id)
        tables = raven_tables(((drop_dir / media["path"]).parent for media in recordings), config.raven_suffix)
        for media in recordings:
            table = raven_table_for(tables, drop_dir, media["path"], config.raven_suffix)
            calls, problems, table_name = find_calls(drop_dir, media, table, config)
            self.rejects += problem_rows(drop_id, run_id, problems, table_name)
            windows = window_rows(drop_id, media, encounters.get(media["path"]), calls, config)
            yield from recording_windows(drop_dir, media, windows, config)
            self.segments += [w.row for w in windows]
            advance()


def mfcc_features(mfcc: TorchMFCC, device: torch.device, windows: np.ndarray) -> np.ndarray:
    """MFCCs of a stacked batch of windows (on the CPU the MFCC computes it in its own cache-sized chunks; with freed
    memory retained, a 64-window batch stacked at once is as fast as stacking per chunk: 46 vs 48 ms)."""
    with torch.inference_mode():
        return mfcc(torch.from_numpy(windows).to(device)).cpu().numpy()


def mfcc_rows(
    mfcc: TorchMFCC, device: torch.device, batch: list[Window], windows: np.ndarray, drop_id: str
) -> list[dict[str, Any]]:
    """MFCC features (channel, frame, coefficient order) of a batch of windows."""
    features = mfcc_features(mfcc, device, windows)
    return [
        {
            "segment_id": w.row["segment_id"],
            "drop_id": drop_id,
            "feature_version": FEATURE_VERSION,
            "mfcc": f.reshape(-1),
        }
        for w, f in zip(batch, features)
    ]


def problem_rows(drop_id: str, run_id: str, problems: list[RowProblem], table: str | None) -> list[dict[str, Any]]:
    """One rejects row per bad row of a Raven table."""
    return [{"drop_id": drop_id, "path": table, "stage": STAGE, "reason": p.reason, "run_id": run_id} for p in problems]


def depends(home: HomeLayout, settings: Settings) -> str:
    """What the segments and features of a drop depend on besides its ingest: the feature version and every
    result-changing audio setting."""
    config = settings.audio.model_dump(exclude={"feature_batch", "device"})
    return f"{FEATURE_VERSION}:{sorted(config.items())}"


def segment_audio_of(run: StageRun) -> Computed:
    """Segment every recording of a drop and compute its features, one batch of features in memory at a time."""
    config = run.settings.audio
    device = choose_device(config.device)
    mfcc = TorchMFCC().to(device)
    collected = DropWindows()
    with part_writer(run.home, SEGMENT_FEATURES, run.drop_id, STAGE) as write_features:
        pairs = collected.windows(run.home, run.drop_dir, run.drop_id, run.run_id, config, run.advance)
        for batch, arrays in window_batches(pairs, config.feature_batch):
            write_features(mfcc_rows(mfcc, device, batch, arrays, run.drop_id))
    write_rows(run.home, SEGMENTS, run.drop_id, STAGE, collected.segments)
    write_rows(run.home, REJECTS, run.drop_id, STAGE, collected.rejects)
    return Computed("segmented", {"segments": len(collected.segments), "segment_rows_rejected": len(collected.rejects)})


SEGMENTS_STAGE = DropStage(
    STAGE, (INGEST,), SEGMENTS_VERSION, depends, segment_audio_of, "audio", ingest_count("audio")
)
