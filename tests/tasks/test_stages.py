"""The stage protocol: one runner skips committed work, and a new model version re-runs exactly the stages whose
declared dependencies it changes (and the stages that read them)."""

from __future__ import annotations

from pathlib import Path

from schemas.config import load_settings
from schemas.home import HomeLayout
from tasks.ingest import ingest_drop_dir
from tasks.stage_registry import STAGES
from tasks.stages import Computed, DropStage, StageRun, is_current, run_on_drop
from tests.pipeline_home import staged_home, store_gender_model, store_mating_model


def run_all(layout: HomeLayout, drop: Path, settings, run_id: str) -> dict[str, str]:
    """Ingest, then every registered stage in order: each stage's status by name."""
    ingest_drop_dir(drop, layout, run_id, settings, lambda: None)
    return {
        name: run_on_drop(stage, layout, drop, drop.name, run_id, settings).status for name, stage in STAGES.items()
    }


def test_a_new_model_version_reruns_only_the_stages_it_affects(tmp_path: Path) -> None:
    drop, home, config = staged_home(tmp_path)
    layout, settings = HomeLayout(home), load_settings(config, home=home)
    assert run_all(layout, drop, settings, "run-1") == {
        "faces": "detected",
        "gender": "predicted",
        "identify": "no_model",
        "segments": "segmented",
        "mating": "predicted",
    }
    again = run_all(layout, drop, settings, "run-2")
    assert again.pop("identify") == "no_model", "a stage without its model still says why it predicted nothing"
    assert set(again.values()) == {"unchanged"}
    store_gender_model(layout, 1)
    assert run_all(layout, drop, settings, "run-3") == {
        "faces": "unchanged",
        "gender": "predicted",
        "identify": "no_model",
        "segments": "unchanged",
        "mating": "unchanged",
    }
    store_mating_model(layout, 1)
    assert run_all(layout, drop, settings, "run-4") == {
        "faces": "unchanged",
        "gender": "unchanged",
        "identify": "no_model",
        "segments": "unchanged",
        "mating": "predicted",
    }


def test_a_stage_reading_another_follows_its_fingerprint(tmp_path: Path) -> None:
    drop, home, config = staged_home(tmp_path)
    layout, settings = HomeLayout(home), load_settings(config, home=home)
    run_all(layout, drop, settings, "run-1")
    calls: list[str] = []

    def compute(run: StageRun) -> Computed:
        calls.append(run.run_id)
        return Computed("summarised", {"rows": 1})

    after_gender = DropStage("summary", ("gender",), "1", lambda home, settings: "", compute, "gender", lambda *_: 0)
    assert run_on_drop(after_gender, layout, drop, drop.name, "run-1", settings).status == "summarised"
    assert run_on_drop(after_gender, layout, drop, drop.name, "run-2", settings).status == "unchanged"
    assert is_current(after_gender, layout, drop.name, settings)
    store_gender_model(layout, 2)
    run_on_drop(STAGES["gender"], layout, drop, drop.name, "run-3", settings)
    assert not is_current(after_gender, layout, drop.name, settings)
    assert run_on_drop(after_gender, layout, drop, drop.name, "run-4", settings).status == "summarised"
    assert calls == ["run-1", "run-4"]


def test_without_a_model_the_stage_says_why_on_every_run(tmp_path: Path) -> None:
    drop, home, config = staged_home(tmp_path)
    layout = HomeLayout(home)
    settings = load_settings(config, home=home)
    settings = settings.model_copy(update={"mating": settings.mating.model_copy(update={"model": "absent"})})
    ingest_drop_dir(drop, layout, "run-1", settings, lambda: None)
    run_on_drop(STAGES["segments"], layout, drop, drop.name, "run-1", settings)
    for run_id in ("run-1", "run-2"):
        result = run_on_drop(STAGES["mating"], layout, drop, drop.name, run_id, settings)
        assert result.status == "no_model" and "no mating model 'absent'" in result.message
