"""No repeated work: a re-run on unchanged inputs does no forward pass; a new model version re-runs only its stage."""

from __future__ import annotations

from pathlib import Path

import pytest

import tasks.faces as faces_stage
import tasks.gender as gender_stage
import tasks.mating as mating_stage
import tasks.segments as segments_stage
from flows.nightly import nightly
from schemas.home import HomeLayout
from tasks.lake import read_marker
from tests.pipeline_home import staged_home, store_gender_model

STAGES = ("faces", "gender", "segments", "mating")


def count_model_calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int]]:
    """Record the batch size of every MTCNN, gender net, MFCC and CGANet call the stages make."""
    calls: dict[str, list[int]] = {"mtcnn": [], "gender": [], "mfcc": [], "cganet": []}
    patches = (
        (faces_stage, "detect_faces", "mtcnn", 1),
        (gender_stage, "predict_logits", "gender", 1),
        (segments_stage, "mfcc_rows", "mfcc", 2),
        (mating_stage, "forward", "cganet", 1),
    )
    for module, name, key, batch_arg in patches:
        real = getattr(module, name)

        def counting(*args, real=real, key=key, batch_arg=batch_arg, **kwargs):
            calls[key].append(len(args[batch_arg]))
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, counting)
    return calls


def markers(home: Path) -> dict[str, dict]:
    """The committed marker of every per-drop stage of drop d1."""
    return {stage: read_marker(HomeLayout(home), "d1", stage) for stage in STAGES}


def part_mtimes(home: Path, table: str) -> dict[str, int]:
    """Modification time of every Parquet part of one lake table."""
    return {str(p): p.stat().st_mtime_ns for p in (home / "lake" / table).rglob("part-*.parquet")}


def test_rerun_does_no_forward_pass_and_a_new_gender_model_reruns_only_gender(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drop, home, config = staged_home(tmp_path)
    calls = count_model_calls(monkeypatch)
    first = nightly(drops=[str(drop)], home=str(home), config_file=str(config))
    assert [first[s][0]["status"] for s in ("faces", "gender", "audio", "mating")] == [
        "detected",
        "predicted",
        "segmented",
        "predicted",
    ]
    assert calls["mtcnn"] and calls["gender"] and calls["mfcc"] and calls["cganet"]
    before, faces_parts = markers(home), part_mtimes(home, "faces")
    for seen in calls.values():
        seen.clear()
    again = nightly(drops=[str(drop)], home=str(home), config_file=str(config))
    assert {again[s][0]["status"] for s in ("faces", "gender", "audio", "mating")} == {"unchanged"}
    assert calls == {"mtcnn": [], "gender": [], "mfcc": [], "cganet": []} and markers(home) == before

    label = store_gender_model(HomeLayout(home), seed=1)
    newer = nightly(drops=[str(drop)], home=str(home), config_file=str(config))
    after = markers(home)
    assert newer["gender"][0]["status"] == "predicted" and after["gender"]["model"] == label == "panda-gender@v2"
    assert sum(calls["gender"]) == first["gender"][0]["counts"]["gender_predictions"] > 0
    assert calls["mtcnn"] == [] and calls["mfcc"] == [] and calls["cganet"] == []
    assert {s: after[s] for s in ("faces", "segments", "mating")} == {
        s: before[s] for s in ("faces", "segments", "mating")
    }
    assert part_mtimes(home, "faces") == faces_parts
