"""Retraining from keepers' corrections: labels (undo respected, the keeper over the registry), a new version measured
against the one in use on its held-out animals, promoted or kept as a candidate that 'name' does not resolve to."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.audio_features import FEATURE_VERSION
from models.gender_training import TrainingDataError
from models.promotion import promotion_decision
from schemas.config import Settings, load_settings
from schemas.home import HomeLayout
from schemas.tables import ANIMALS_MANIFEST, ENCOUNTER_MANIFEST, FACES, SEGMENT_FEATURES, SEGMENTS
from tasks.catalog import refresh_views
from tasks.gender_training import catalog_faces, retrain_gender, train_gender
from tasks.lake import write_rows
from tasks.mating import resolve_model
from tasks.mating_training import catalog_data, retrain_mating, train_mating
from tasks.model_store import CARD_FILE, load_model, save_checkpoint, stored_card
from tasks.review import record_review, undo_last
from tests.review_home import DROP, media_id_of, write_review_home

DAY = "2026-12-02"
TIMING = {"seconds_spent": 1.0, "keystrokes": 1}
TINY_RECIPE = '[gender.train]\narch = "mini_xception"\ninput_size = 32\nepochs = 2\nbatch_size = 4\n'
EXTRA = {"M1": "male", "M2": "male", "M3": "male", "F1": "female", "F2": "female", "F3": "female"}


def review(home: HomeLayout, key: str, action: str) -> dict:
    """One key press, as the review app records it."""
    return record_review(home, key, action, "kim", TIMING, DAY, 0.05)


def face_key(frame: str) -> str:
    """The queue key of the one face on a frame of the review home."""
    return f"face:{DROP}:{media_id_of(frame)}-f0"


def face_group(frame: str) -> str:
    """The training group of a face sexed on its own."""
    return f"face:{DROP}/{media_id_of(frame)}-f0"


@pytest.fixture()
def home(tmp_path: Path) -> HomeLayout:
    return write_review_home(tmp_path / "home")


def labels(home: HomeLayout) -> dict[str, set[int]]:
    """Training group -> the labels (0 female, 1 male) of its faces."""
    found: dict[str, set[int]] = {}
    for _, label, group in catalog_faces(home).items:
        found.setdefault(group, set()).add(label)
    return found


def test_corrections_become_gender_labels_the_keeper_wins_and_undo_is_respected(home: HomeLayout) -> None:
    assert labels(home) == {"A01": {0}}, "before any review only the registry's female A01 is labelled"
    review(home, "animal::A02", "m")  # A02 has no registry sex: the keeper's word labels its faces
    review(home, face_key("cam01/IMG_0001.JPG"), "f")  # a face of no known animal, sexed on its own
    review(home, face_key("cam01/IMG_0002.JPG"), "m")
    undo_last(home, "kim")  # ... and undone: no label
    review(home, "animal::A01", "m")  # the keeper over the registry's female
    review(home, face_key("A01/p1.jpg"), "n")  # not a face: left out
    assert labels(home) == {"A01": {1}, "A02": {1}, face_group("cam01/IMG_0001.JPG"): {0}}
    assert len(catalog_faces(home).items) == 4  # A01 p2, A02 p1 and p2, IMG_0001
    assert catalog_faces(home).corrections == {
        "face_sex": 1,
        "animal_sex": 2,
        "animal_sex_over_registry": 1,
        "not_a_face": 1,
    }


def test_a_face_correction_against_its_animal_trains_as_a_group_of_its_own(home: HomeLayout) -> None:
    review(home, face_key("A01/p2.jpg"), "m")  # A01 is registered female
    assert labels(home) == {"A01": {0}, face_group("A01/p2.jpg"): {1}}


def test_conflicting_registry_sexes_are_a_clear_error_until_a_keeper_settles_them(home: HomeLayout) -> None:
    write_rows(home, ANIMALS_MANIFEST, "d0", "ingest", [{"drop_id": "d0", "animal_id": "A01", "sex": "male"}])
    refresh_views(home, Settings().view_thresholds())
    with pytest.raises(TrainingDataError, match="disagree on the sex of A01; fix them or set its sex"):
        catalog_faces(home)
    review(home, "animal::A01", "f")
    assert labels(home) == {"A01": {0}}


def test_outcome_corrections_become_mating_labels_over_encounters_csv(home: HomeLayout) -> None:
    segments = [{"segment_id": f"{e}-s0", "media_id": "m", "drop_id": DROP, "encounter_id": e} for e in ("E01", "E02")]
    write_rows(home, SEGMENTS, DROP, "segments", segments)
    mfcc = [0.0] * (2 * 86 * 40)
    features = [
        {"segment_id": s["segment_id"], "drop_id": DROP, "feature_version": FEATURE_VERSION, "mfcc": mfcc}
        for s in segments
    ]
    write_rows(home, SEGMENT_FEATURES, DROP, "segments", features)
    refresh_views(home, Settings().view_thresholds())
    assert catalog_data(home).y.tolist() == [], "encounters without an outcome are no labels"
    review(home, f"encounter:{DROP}:E01", "y")
    review(home, f"encounter:{DROP}:E02", "x")
    review(home, f"encounter:{DROP}:E02", "y")  # the latest live correction wins
    data = catalog_data(home)
    assert dict(zip(data.encounters, data.y.tolist())) == {f"{DROP}/E01": 1, f"{DROP}/E02": 1}
    assert data.corrections == {"encounter_outcome": 2, "encounter_outcome_over_registry": 0}
    undo_last(home, "kim")
    data = catalog_data(home)
    assert dict(zip(data.encounters, data.y.tolist())) == {f"{DROP}/E01": 1, f"{DROP}/E02": 0}


def test_promotion_needs_a_new_version_not_worse_on_the_headline() -> None:
    better = promotion_decision(
        "gender", "g@v1", {"per_image": {"accuracy": 0.7}}, {"per_image": {"accuracy": 0.7}}, []
    )
    worse = promotion_decision("gender", "g@v1", {"per_image": {"accuracy": 0.8}}, {"per_image": {"accuracy": 0.7}}, [])
    unmeasured = promotion_decision("mating", "c@v1", {"segment": {"accuracy": 0.5}}, {"segment": {}}, [])
    assert (better["promoted"], worse["promoted"], unmeasured["promoted"]) == (True, False, False)
    assert worse["reason"] == "0.700 is worse than g@v1's 0.800" and worse["metric"] == "per_image.accuracy"


def test_name_resolves_to_the_newest_version_that_is_not_a_candidate(tmp_path: Path) -> None:
    layout = HomeLayout(tmp_path / "home")
    folder = layout.model_dir("mating", "cganet")
    save_checkpoint(folder, {}, {"name": "cganet"})
    save_checkpoint(folder, {}, {"name": "cganet", "promotion": {"promoted": True}})
    save_checkpoint(folder, {}, {"name": "cganet", "promotion": {"promoted": False}})
    assert stored_card(layout, "mating", "cganet")["version"] == 2
    assert load_model(layout, "mating", "cganet")[1]["version"] == 2
    assert resolve_model(layout, "cganet") == ("cganet@v2", "")
    assert stored_card(layout, "mating", "cganet@v3")["version"] == 3, "a candidate still loads by its version"
    save_checkpoint(folder, {}, {"name": "cganet"})  # a plain `train` after it is in use again, as before
    assert stored_card(layout, "mating", "cganet")["version"] == 4


def bright_crop(path: Path, male: bool, seed: int) -> None:
    """A noisy 48 px crop: bright for males, dark for females."""
    rng = np.random.default_rng(seed)
    base = 200 if male else 50
    pixels = np.clip(base + rng.normal(0, 20, (48, 48, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def add_registered_animals(home: HomeLayout) -> None:
    """Six more registered animals (three of each sex), three keeper faces each, in drop d2."""
    faces, manifest = [], []
    for number, (animal, sex) in enumerate(EXTRA.items()):
        manifest.append({"drop_id": "d2", "animal_id": animal, "sex": sex})
        for index in range(3):
            face_id = f"{animal}-{index}"
            bright_crop(home.crop("d2", face_id), sex == "male", number * 10 + index)
            crop = str(home.crop("d2", face_id).relative_to(home.root))
            faces.append(
                {"face_id": face_id, "media_id": face_id, "drop_id": "d2", "animal_id": animal, "source": "keeper"}
                | {"excluded": False, "crop_path": crop, "run_id": "r1"}
            )
    write_rows(home, ANIMALS_MANIFEST, "d2", "ingest", manifest)
    write_rows(home, FACES, "d2", "faces", faces)
    refresh_views(home, Settings().view_thresholds())


def test_retrain_measures_both_versions_on_the_same_held_out_animals(home: HomeLayout, tmp_path, one_thread) -> None:
    add_registered_animals(home)
    config = tmp_path / "config.toml"
    config.write_text(TINY_RECIPE)
    settings = load_settings(config, home=home.root)
    first = train_gender(home, settings.gender, "panda-gender")
    review(home, "animal::A02", "m")
    review(home, face_key("A01/p1.jpg"), "n")
    card = retrain_gender(home, settings.gender)
    promotion = card["promotion"]
    assert card["label"] == "panda-gender@v2" and card["split"]["test"] == first["split"]["test"]
    assert promotion["current"] == "panda-gender@v1" and promotion["held_out"] == sorted(first["split"]["test"])
    assert "A02" in card["split"]["train"] + card["split"]["validation"]
    assert card["corrections_used"]["animal_sex"] == 1 and card["corrections_used"]["not_a_face"] == 1
    assert promotion["new_value"] == card["metrics"]["per_image"]["accuracy"]
    assert promotion["promoted"] == (promotion["new_value"] >= promotion["current_value"])
    stored = json.loads((Path(card["path"]) / CARD_FILE).read_text())
    assert stored["promotion"] == json.loads(json.dumps(promotion)), "the comparison is stored in the card"
    in_use = 2 if promotion["promoted"] else 1
    assert stored_card(home, "gender", "panda-gender")["version"] == in_use


def test_a_worse_retrain_stays_a_candidate(home: HomeLayout, tmp_path, one_thread, monkeypatch) -> None:
    add_registered_animals(home)
    config = tmp_path / "config.toml"
    config.write_text(TINY_RECIPE)
    settings = load_settings(config, home=home.root)
    train_gender(home, settings.gender, "panda-gender")
    import tasks.gender_training as gender_training

    real = gender_training.split_metrics
    calls: list[str] = []

    def new_worse(model, items, train_ids, test_ids, seed, sources=None):  # the new version first, the current second
        metrics = real(model, items, train_ids, test_ids, seed, sources)
        calls.append("measured")
        if len(calls) == 1:
            metrics["net"]["per_image"]["accuracy"] = -1.0
        return metrics

    monkeypatch.setattr(gender_training, "split_metrics", new_worse)
    card = retrain_gender(home, settings.gender)
    assert card["promotion"]["promoted"] is False and card["promotion"]["new_value"] == -1.0
    assert stored_card(home, "gender", "panda-gender")["version"] == 1
    assert stored_card(home, "gender", "panda-gender@v2")["promotion"]["promoted"] is False


def test_retrain_without_a_model_in_use_says_so(home: HomeLayout) -> None:
    with pytest.raises(TrainingDataError, match="no gender model 'panda-gender' in the store to compare with"):
        retrain_gender(home, Settings().gender)


MATING_RECIPE = "[mating.train]\nepochs = 2\nfilters = 4\nhidden = 4\nbatch_size = 8\nthreads = 1\n"


def labelled_windows(home: HomeLayout) -> None:
    """Six pairs, two encounters each with two windows: pairs P0-P2 succeed, P3-P5 fail (encounters.csv)."""
    rng = np.random.default_rng(0)
    manifest, segments, features = [], [], []
    for pair in range(6):
        for number in range(2):
            encounter = f"P{pair}E{number}"
            outcome = "success" if pair < 3 else "failure"
            manifest.append(
                {"drop_id": "d3", "encounter_id": encounter, "male_id": f"M{pair}", "female_id": f"F{pair}"}
                | {"outcome": outcome}
            )
            for window in range(2):
                segment = f"{encounter}-s{window}"
                segments.append({"segment_id": segment, "media_id": "m", "drop_id": "d3", "encounter_id": encounter})
                level = 1.0 if outcome == "success" else -1.0
                mfcc = (level + rng.normal(0, 0.5, 2 * 86 * 40)).astype(np.float32).tolist()
                features.append(
                    {"segment_id": segment, "drop_id": "d3", "feature_version": FEATURE_VERSION, "mfcc": mfcc}
                )
    write_rows(home, ENCOUNTER_MANIFEST, "d3", "ingest", manifest)
    write_rows(home, SEGMENTS, "d3", "segments", segments)
    write_rows(home, SEGMENT_FEATURES, "d3", "segments", features)
    refresh_views(home, Settings().view_thresholds())


def test_mating_retrain_uses_outcome_corrections_and_the_current_validation_pairs(
    home: HomeLayout, tmp_path: Path
) -> None:
    labelled_windows(home)
    config = tmp_path / "config.toml"
    config.write_text(MATING_RECIPE)
    settings = load_settings(config, home=home.root)
    first = train_mating(home, settings, "cganet")
    assert first["split"]["validation"], "the seed's grouped validation part holds some pairs"
    review(home, "encounter:d3:P0E0", "x")  # a keeper overrides encounters.csv
    card = retrain_mating(home, settings)
    promotion = card["promotion"]
    assert promotion["current"] == "cganet@v1" and promotion["held_out"] == sorted(first["split"]["validation"])
    assert card["split"]["validation"] == first["split"]["validation"] and card["split_by"] == "pair"
    assert card["corrections_used"] == {"encounter_outcome": 1, "encounter_outcome_over_registry": 1}
    assert promotion["new_value"] == card["metrics"]["segment"]["accuracy"]
    assert promotion["promoted"] == (promotion["new_value"] >= promotion["current_value"])
    assert resolve_model(home, "cganet")[0] == ("cganet@v2" if promotion["promoted"] else "cganet@v1")


def test_cli_retrain_says_in_one_sentence_what_it_cannot_do(home: HomeLayout, capsys) -> None:
    import typer

    from flows.cli.retrain import retrain

    for kind, sentence in (
        ("detector", "the human-face preset has no training data"),
        ("gender", "no gender model 'panda-gender' in the store to compare with"),
    ):
        with pytest.raises(typer.Exit) as exited:  # the command itself: CliRunner's streams upset Prefect's logging
            retrain(kind, home=home.root)
        assert exited.value.exit_code == 1 and sentence in capsys.readouterr().err
