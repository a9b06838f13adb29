"""Corrections are data: append-only parts outside any drop, applied by the views over the machine's values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from schemas.config import Settings
from schemas.home import HomeLayout
from schemas.review import ReviewError
from schemas.tables import CORRECTIONS, FACES, GENDER_PREDICTIONS
from tasks.catalog import query, refresh_views
from tasks.lake import clear_drop, read_table, write_rows
from tasks.review import next_items, record_review, save_correction, undo_last
from tests.review_home import DROP, FACES_P_MALE, face_rows, gender_rows, media_id_of, write_review_home

DAY = "2026-12-02"
TIMING = {"seconds_spent": 2.0, "keystrokes": 1}


@pytest.fixture()
def home(tmp_path: Path) -> HomeLayout:
    return write_review_home(tmp_path / "home")


def face_key(frame: str) -> str:
    """The queue key of the one face on a frame of the review home."""
    return f"face:{DROP}:{media_id_of(frame)}-f0"


def face_call(home: HomeLayout, frame: str) -> dict:
    """The face_calls row of the face on a frame."""
    sql = "SELECT * FROM face_calls WHERE media_id = ?"
    return query(home, sql, [media_id_of(frame)]).to_pylist()[0]


def review(home: HomeLayout, key: str, action: str, reviewer: str = "kim") -> dict:
    """One key press on an item, as the app records it."""
    return record_review(home, key, action, reviewer, TIMING, DAY, 0.05)


def test_a_correction_changes_the_views_with_source_human_without_a_refresh(home: HomeLayout) -> None:
    frame = "cam01/IMG_0001.JPG"
    assert (face_call(home, frame)["sex"], face_call(home, frame)["sex_source"]) == ("male", "machine")
    row = review(home, face_key(frame), "f")
    assert (row["machine_value"], row["human_value"], row["model_version"]) == ("male", "female", "panda-gender@v1")
    parts = list((home.lake / "corrections").glob("day=*/part-*.parquet"))
    assert [p.parent.name for p in parts] == [f"day={row['created_at']:%Y-%m-%d}"]
    call = face_call(home, frame)
    assert (call["sex"], call["sex_source"], call["sex_machine"]) == ("female", "human", "male")
    assert call["reviewer"] == "kim"
    predictions = query(home, "SELECT label FROM gender_predictions WHERE face_id = ?", [call["face_id"]])
    assert predictions.column("label").to_pylist() == ["male"], "predictions are never overwritten"

    review(home, "animal::A02", "m")
    review(home, f"encounter:{DROP}:E01", "x")
    animal = query(home, "SELECT sex, sex_source, sex_predicted FROM animals WHERE animal_id = 'A02'").to_pylist()[0]
    assert animal == {"sex": "male", "sex_source": "human", "sex_predicted": "unknown"}
    sql = "SELECT outcome_final, outcome_source, predicted FROM encounters WHERE encounter_id = 'E01'"
    encounter = query(home, sql)
    assert encounter.to_pylist() == [{"outcome_final": "failure", "outcome_source": "human", "predicted": "unknown"}]
    registry = query(home, "SELECT sex, sex_source FROM animals WHERE animal_id = 'A01'").to_pylist()[0]
    assert registry == {"sex": "female", "sex_source": "registry"}


def test_not_a_face_leaves_the_animal_posterior_and_confirm_records_the_machine_value(home: HomeLayout) -> None:
    before = query(home, "SELECT p_male, n_faces FROM animals WHERE animal_id = 'A02'").to_pylist()[0]
    review(home, face_key("A02/p2.jpg"), "n")
    after = query(home, "SELECT p_male, n_faces FROM animals WHERE animal_id = 'A02'").to_pylist()[0]
    assert (before["n_faces"], after["n_faces"]) == (2, 1) and after["p_male"] == pytest.approx(0.9)
    assert face_call(home, "A02/p2.jpg")["is_face"] is False
    confirmed = review(home, face_key("cam01/IMG_0002.JPG"), "c")
    assert confirmed["machine_value"] == confirmed["human_value"] == "female"
    with pytest.raises(ReviewError, match="no outcome call"):
        review(home, f"encounter:{DROP}:E01", "c")  # in the abstain band: nothing to confirm
    with pytest.raises(ReviewError, match="not an action"):
        review(home, f"encounter:{DROP}:E01", "m")


def test_undo_is_a_new_row_and_restores_the_machine_value(home: HomeLayout) -> None:
    frame = "cam01/IMG_0005.JPG"
    made = review(home, face_key(frame), "f")
    undone = undo_last(home, "kim")
    assert undone["undoes"] == made["correction_id"] and undone["action"] == "undo"
    assert (face_call(home, frame)["sex"], face_call(home, frame)["sex_source"]) == ("male", "machine")
    rows = read_table(home, CORRECTIONS).to_pylist()
    assert sorted(r["action"] for r in rows) == ["set", "undo"], "undo deletes nothing"
    with pytest.raises(ReviewError, match="nothing of yours"):
        undo_last(home, "kim")


def test_two_reviewers_both_keep_their_rows_and_the_later_wins(home: HomeLayout) -> None:
    key = "animal::A02"
    first = review(home, key, "m", reviewer="kim")
    second = review(home, key, "f", reviewer="lee")
    assert second["created_at"] > first["created_at"]
    rows = query(home, "SELECT reviewer, human_value FROM corrections ORDER BY created_at").to_pylist()
    assert rows == [{"reviewer": "kim", "human_value": "male"}, {"reviewer": "lee", "human_value": "female"}]
    assert query(home, "SELECT sex, sex_reviewer FROM animals WHERE animal_id = 'A02'").to_pylist() == [
        {"sex": "female", "sex_reviewer": "lee"}
    ]
    # an earlier timestamp written later (a slow reviewer's clock) does not win over a later decision
    late = {**first, "correction_id": "0" * 32, "human_value": "male", "created_at": first["created_at"] - timedelta(1)}
    save_correction(home, late)
    assert query(home, "SELECT sex FROM animals WHERE animal_id = 'A02'").to_pylist() == [{"sex": "female"}]
    undo_last(home, "lee")  # lee's undo brings back kim's value, not the machine's
    assert query(home, "SELECT sex, sex_source FROM animals WHERE animal_id = 'A02'").to_pylist() == [
        {"sex": "male", "sex_source": "human"}
    ]


def test_clearing_and_rewriting_the_drop_keeps_every_correction(home: HomeLayout) -> None:
    frame = "cam01/IMG_0001.JPG"
    review(home, face_key(frame), "f")
    review(home, f"encounter:{DROP}:E01", "y")
    clear_drop(home, DROP)
    assert read_table(home, CORRECTIONS).num_rows == 2
    rebuilt = write_review_home(home.root)  # the drop ingested and predicted again, the catalog refreshed
    assert (face_call(rebuilt, frame)["sex"], face_call(rebuilt, frame)["sex_source"]) == ("female", "human")
    assert query(rebuilt, "SELECT outcome_final FROM encounters WHERE encounter_id = 'E01'").to_pylist() == [
        {"outcome_final": "success"}
    ]


def test_a_face_correction_follows_its_face_to_a_new_detectors_boxes(home: HomeLayout) -> None:
    """A new detector version re-detects: new boxes, new face ids. The correction names the frame (content hash) and
    the box the reviewer saw; it applies to the new face overlapping that box at IoU > 0.5, and to no other."""
    frame, moved = "cam01/IMG_0001.JPG", "cam01/IMG_0002.JPG"
    review(home, face_key(frame), "f")
    review(home, face_key(moved), "m")
    clear_drop(home, DROP)
    faces = face_rows(home, detector="mtcnn-panda@v2", box=(0.27, 0.22, 0.38, 0.5))  # IoU about 0.86 with v1's
    for face in faces:
        face["face_id"] = face["face_id"].replace("-f0", "-f1")  # the new detector numbers its faces differently
        if face["media_id"] == media_id_of(moved):
            face["bbox_x"] = 0.7  # a different face on that frame: IoU 0 with the reviewed box
    write_rows(home, FACES, DROP, "faces", faces)
    write_rows(home, GENDER_PREDICTIONS, DROP, "gender", gender_rows(faces, "panda-gender@v2"))
    refresh_views(home, Settings().view_thresholds())
    followed = face_call(home, frame)
    assert followed["face_id"].endswith("-f1") and followed["detector"] == "mtcnn-panda@v2"
    assert (followed["sex"], followed["sex_source"]) == ("female", "human")
    assert followed["model_version"] == "panda-gender@v2"
    assert (face_call(home, moved)["sex_source"], face_call(home, moved)["sex"]) == ("machine", "female")
    reviewed = query(home, "SELECT count(*) AS n FROM face_calls WHERE reviewed").to_pylist()
    assert reviewed == [{"n": 1}]


def test_reviewed_items_leave_the_queue_and_the_audit_slice_is_seeded_by_day(home: HomeLayout) -> None:
    everything = next_items(home, DAY, 0.05, [], limit=100)
    assert len(everything) == len(FACES_P_MALE) + 2 + 2 == everything[0]["remaining"]
    assert everything[0]["value"] == max(item["value"] for item in everything if not item["audit"])
    assert next_items(home, DAY, 0.05, [], limit=100) == everything, "the same day draws the same audit slice"
    assert not any(item["audit"] for item in next_items(home, DAY, 0.0, [], limit=100))
    half = [item["audit"] for item in next_items(home, DAY, 0.5, [], limit=100)]
    assert 0 < sum(half) < len(half)

    top = everything[0]
    review(home, top["key"], "m" if top["kind"] != "encounter" else "y")
    left = next_items(home, DAY, 0.05, [], limit=100)
    assert top["key"] not in {item["key"] for item in left} and len(left) == len(everything) - 1
    skipped = next_items(home, DAY, 0.05, [left[0]["key"]], limit=1)
    assert skipped[0]["key"] == left[1]["key"]
    row = read_table(home, CORRECTIONS).to_pylist()[0]
    assert row["queue_reason"] == top["reason"] and row["audit"] == top["audit"] and row["keystrokes"] == 1


def test_a_correction_survives_its_temp_file_being_swept_mid_write(home: HomeLayout, monkeypatch) -> None:
    """A nightly run's start sweeps temp files; a correction being written then is written again, not lost."""
    import tasks.lake as lake

    real_replace, calls = lake.os.replace, []

    def swept_once(source, target):
        calls.append(source)
        if len(calls) == 1:
            Path(source).unlink()  # what sweep_temp_files does to a .tmp-*.partial file
        return real_replace(source, target)

    monkeypatch.setattr(lake.os, "replace", swept_once)
    row = review(home, "animal::A02", "f")
    assert len(calls) == 2 and read_table(home, CORRECTIONS).column("correction_id").to_pylist() == [
        row["correction_id"]
    ]
    assert datetime.now(UTC) - row["created_at"] < timedelta(minutes=5)
