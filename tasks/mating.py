"""The mating stage: CGANet on each drop's stored MFCC windows, batched, into `mating_predictions`; Raven export."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from models.audio_features import FEATURE_VERSION
from models.execution import Way
from models.mating_training import (
    StandardisedCGANet,
    Window,
    calibrate,
    mating_model_from_state,
    predict_segments,
    prediction_rows,
)
from reports.raven import PredictedWindow, raven_selection_table
from schemas.config import MatingConfig, Settings
from schemas.home import HomeLayout
from schemas.tables import MATING_PREDICTIONS, SEGMENT_FEATURES, SEGMENTS
from tasks.catalog import query
from tasks.devices import choose_device, cpu_threads, halve_on_oom
from tasks.execution import resolve_execution, way_of
from tasks.lake import read_part, write_bytes_atomic, write_rows
from tasks.model_store import in_use_version, load_model, parse_model_ref, versions
from tasks.quantized import int8_cganet
from tasks.segments import STAGE as SEGMENTS_STAGE_NAME
from tasks.stages import NO_MODEL, Computed, DropStage, StageRun, ingest_count

STAGE = "mating"
MATING_VERSION = "2"  # 2: windows run in the way chosen for the machine (precision, layout)
KIND = "mating"
RAVEN_SUFFIX = ".mating.selections.txt"
EXPORT_SQL = """
    SELECT p.drop_id, m.path, m.sample_rate, s.start_s, s.end_s, p.p_success, p.temperature, p.segment_id,
           p.encounter_id, p.model_version
    FROM mating_predictions p
    JOIN segments s ON s.segment_id = p.segment_id AND s.drop_id = p.drop_id
    JOIN media m ON m.media_id = p.media_id AND m.drop_id = p.drop_id
    WHERE ? IS NULL OR p.drop_id = ?
    ORDER BY p.drop_id, m.path, s.start_s
"""


def resolve_model(home: HomeLayout, ref: str) -> tuple[str | None, str]:
    """(the 'name@vN' the configured model resolves to, "") or (None, why there is none), reading no weights."""
    try:
        name, version = parse_model_ref(ref)
    except ValueError as error:
        return None, f"[mating] model: {error}; mating stage skipped"
    folder = home.model_dir(KIND, name)
    stored = versions(folder)
    if not stored:
        return (
            None,
            f"no mating model '{name}' in {folder}; train one with 'breedwatch train mating' (mating stage skipped)",
        )
    if version is not None and version not in stored:
        return (
            None,
            f"mating model {ref} is not stored (have {', '.join(f'v{v}' for v in stored)}); mating stage skipped",
        )
    return f"{name}@v{version if version is not None else in_use_version(folder)}", ""


def depends(home: HomeLayout, settings: Settings) -> str:
    """What the predictions of a drop depend on besides its segments: the model version."""
    label, _ = resolve_model(home, settings.mating.model)
    return label or "no-model"


def drop_segments(home: HomeLayout, drop_id: str) -> dict[str, dict[str, Any]]:
    """media_id and encounter_id of every committed segment of a drop."""
    part = home.part(SEGMENTS.name, SEGMENTS.partition, drop_id, SEGMENTS_STAGE_NAME)
    if not part.exists():
        return {}
    rows = read_part(part, SEGMENTS, ["segment_id", "media_id", "encounter_id"]).to_pylist()
    return {row["segment_id"]: row for row in rows}


def feature_batches(home: HomeLayout, drop_id: str, batch_size: int) -> Iterator[tuple[list[str], np.ndarray]]:
    """(segment ids, MFCC (B, 2, 86, 40) float32) of the drop's current-version features, batch by batch from disk."""
    part = home.part(SEGMENT_FEATURES.name, SEGMENT_FEATURES.partition, drop_id, SEGMENTS_STAGE_NAME)
    if not part.exists():
        return
    for batch in pq.ParquetFile(part).iter_batches(
        batch_size=batch_size, columns=["segment_id", "feature_version", "mfcc"]
    ):
        table = pa.Table.from_batches([batch])
        keep = [v == FEATURE_VERSION for v in table.column("feature_version").to_pylist()]
        table = table.filter(pa.array(keep, pa.bool_()))
        if table.num_rows:
            mfcc = table.column("mfcc").combine_chunks().flatten().to_numpy(zero_copy_only=False)
            yield table.column("segment_id").to_pylist(), mfcc.astype(np.float32).reshape(-1, 2, 86, 40)


def load_mating_model(home: HomeLayout, label: str, device: torch.device) -> tuple[StandardisedCGANet, float]:
    """The stored model in eval mode on the device, and its calibration temperature."""
    state, card = load_model(home, KIND, label)
    return mating_model_from_state(state).to(device).eval(), float(card.get("temperature", 1.0))


def forward(model: StandardisedCGANet, mfcc: np.ndarray, device: torch.device, way: Way) -> list[Window]:
    """One batched forward pass in the given way: each window's p_success, per-frame P(success) (86) and attention
    (86), float32."""
    output = predict_segments(model, torch.from_numpy(np.ascontiguousarray(mfcc)), device, way.precision, way.layout)
    return list(zip(output.p_success.tolist(), output.frame_probs[..., 0].tolist(), output.attention.tolist()))


def predict_windows(
    home: HomeLayout,
    drop_id: str,
    model: StandardisedCGANet,
    config: MatingConfig,
    device: torch.device,
    context: dict[str, Any],
    advance: Callable[[], None],
) -> list[dict[str, Any]]:
    """Prediction rows of every stored window of a drop, advancing once per recording whose windows are all done; a
    batch that runs out of GPU memory is halved."""
    segments = drop_segments(home, drop_id)
    left = Counter(row["media_id"] for row in segments.values())
    rows: list[dict[str, Any]] = []
    way = way_of(config, device)
    with cpu_threads(device, way.threads):
        for ids, mfcc in feature_batches(home, drop_id, way.batch_size):
            outputs = halve_on_oom(lambda part: forward(model, part, device, way), mfcc)
            batch = prediction_rows(ids, outputs, segments, context)
            rows.extend(batch)
            for row in batch:
                left[row["media_id"]] -= 1
                if left[row["media_id"]] == 0:
                    advance()
    return rows


def predict_mating_of(run: StageRun) -> Computed:
    """Mating success of every window of one drop with the configured model; without a stored model the stage is
    skipped (status "no_model", saying why), not failed."""
    label, why = resolve_model(run.home, run.settings.mating.model)
    if label is None:
        return Computed(NO_MODEL, {}, None, why)
    config = resolve_execution(run.home, run.settings, sections=("mating",)).settings.mating
    device = choose_device(config.device)
    model, temperature = load_mating_model(run.home, label, device)
    if way_of(config, device).precision == "int8":
        model = int8_cganet(run.home, label, model)[0]
    context = {"drop_id": run.drop_id, "temperature": temperature, "model_version": label, "run_id": run.run_id}
    rows = predict_windows(run.home, run.drop_id, model, config, device, context, run.advance)
    write_rows(run.home, MATING_PREDICTIONS, run.drop_id, STAGE, rows)
    return Computed("predicted", {"mating_predictions": len(rows)}, label)


MATING_STAGE = DropStage(
    STAGE, (SEGMENTS_STAGE_NAME,), MATING_VERSION, depends, predict_mating_of, "mating", ingest_count("audio")
)


# ---------------------------------------------------------------- Raven export


def predicted_window(row: dict[str, Any]) -> PredictedWindow:
    """A Raven export window from an EXPORT_SQL row (band: the whole spectrum of the recording)."""
    temperature = row["temperature"] if row["temperature"] is not None else 1.0
    return PredictedWindow(
        start_s=row["start_s"],
        end_s=row["end_s"],
        low_hz=0.0,
        high_hz=row["sample_rate"] / 2.0,
        p_success=row["p_success"],
        p_calibrated=float(calibrate(row["p_success"], temperature)),
        segment_id=row["segment_id"],
        encounter_id=row["encounter_id"],
        model_version=row["model_version"],
    )


def raven_path(out: Path, drop_id: str, recording: str) -> Path:
    """OUT/<drop_id>/<recording path without its suffix>.mating.selections.txt."""
    relative = Path(recording)
    return out / drop_id / relative.parent / f"{relative.stem}{RAVEN_SUFFIX}"


def export_raven_tables(home: HomeLayout, out: Path, drop_id: str | None = None) -> list[Path]:
    """Write one Raven selection table per recording with predictions (of one drop, or all) and return their paths."""
    rows = query(home, EXPORT_SQL, [drop_id, drop_id]).to_pylist()
    if not rows:
        where = f"drop {drop_id}" if drop_id else "the catalog"
        raise ValueError(f"no mating predictions in {where}; train a mating model and run 'breedwatch run' first")
    recordings: dict[tuple[str, str], list[PredictedWindow]] = {}
    for row in rows:
        recordings.setdefault((row["drop_id"], row["path"]), []).append(predicted_window(row))
    written = []
    for (drop, recording), windows in recordings.items():
        path = raven_path(out, drop, recording)
        write_bytes_atomic(path, raven_selection_table(windows).encode("utf-8"))
        written.append(path)
    return written
