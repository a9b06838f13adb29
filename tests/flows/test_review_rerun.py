"""Corrections survive the nightly flow: a re-run and a new gender model version keep the keeper's values."""

from __future__ import annotations

from pathlib import Path

from flows.nightly import nightly
from schemas.home import HomeLayout
from tasks.catalog import query
from tasks.review import record_review
from tests.pipeline_home import staged_home, store_gender_model

DAY = "2026-12-02"


def test_corrections_survive_a_rerun_and_a_new_gender_model(tmp_path: Path) -> None:
    drop, home, config = staged_home(tmp_path)
    layout = HomeLayout(home)
    nightly(drops=[str(drop)], home=str(home), config_file=str(config))
    face = query(layout, "SELECT drop_id, face_id, sex_machine FROM face_calls ORDER BY face_id LIMIT 1").to_pylist()[0]
    flipped = "m" if face["sex_machine"] == "female" else "f"
    timing = {"seconds_spent": 1.0, "keystrokes": 1}
    record_review(layout, f"face:{face['drop_id']}:{face['face_id']}", flipped, "kim", timing, DAY, 0.05)
    record_review(layout, f"encounter:{face['drop_id']}:E01", "x", "kim", timing, DAY, 0.05)

    def human_values() -> tuple[list[dict], list[dict]]:
        faces = query(layout, "SELECT face_id, sex, sex_source, model_version FROM face_calls WHERE reviewed")
        encounters = query(layout, "SELECT outcome_final, outcome_source FROM encounters WHERE encounter_id = 'E01'")
        return faces.to_pylist(), encounters.to_pylist()

    reviewed, encounter = human_values()
    assert [(r["face_id"], r["sex_source"]) for r in reviewed] == [(face["face_id"], "human")]
    assert encounter == [{"outcome_final": "failure", "outcome_source": "human"}]
    nightly(drops=[str(drop)], home=str(home), config_file=str(config))
    assert human_values() == (reviewed, encounter)
    version = store_gender_model(layout, seed=1)
    nightly(drops=[str(drop)], home=str(home), config_file=str(config))
    faces, encounter_after = human_values()
    assert [(r["face_id"], r["sex"], r["sex_source"]) for r in faces] == [
        (r["face_id"], r["sex"], "human") for r in reviewed
    ]
    assert faces[0]["model_version"] == version and encounter_after == encounter
    assert query(layout, "SELECT count(*) AS n FROM corrections").to_pylist() == [{"n": 2}]
