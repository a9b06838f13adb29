"""The gender stage, training from the catalog or a folder, and the animals / face_events views."""

from __future__ import annotations

import csv
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.sorting import ArtifactSort
from typer.testing import CliRunner

import tasks.gender as gender_stage
from flows.cli import app
from flows.nightly import nightly
from models.gender import calibrated_probs, folded_copy, predict_logits, preprocess
from models.gender_training import TrainingDataError, animal_posterior, fit_split, seed_split
from models.summaries import card_rates
from models.synthetic.drop_files import exif_stamp
from schemas.config import load_settings
from schemas.home import HomeLayout
from schemas.tables import DROPS, GENDER_PREDICTIONS, MEDIA
from tasks.catalog import query, refresh_views
from tasks.gender_training import evaluate_gender, labelled_faces, train_gender
from tasks.lake import write_rows
from tasks.model_store import CARD_FILE, stored_check_inputs
from tests.drops import DROP_TOML

LABELLED = {"A01": "female", "A02": "female", "A03": "female", "A04": "male", "A05": "male", "A06": "male"}
UNLABELLED = {"A07": "male", "A08": "female"}
ARTIFACT_KEYS = ("breedwatch-run-summary", "breedwatch-gender-ratio", "breedwatch-report")
TINY_RECIPE = (
    "[faces]\nmin_sharpness = 0\n[gender]\ngradcam_faces = 2\n"
    '[gender.train]\narch = "mini_xception"\ninput_size = 32\nepochs = 4\nbatch_size = 4\n'
)


def face_photo(path: Path, bright: bool, seed: int, taken: datetime | None = None) -> None:
    """A 48 px keeper face: bright for males, dark for females, with noise; EXIF-dated when `taken` is given."""
    rng = np.random.default_rng(seed)
    level = 200 if bright else 50
    pixels = np.clip(level + rng.normal(0, 20, (48, 48, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    dated = {"exif": exif_stamp("Keeper", "Cam", taken)} if taken else {}
    Image.fromarray(pixels).save(path, quality=95, **dated)


def write_face_drop(root: Path, photos: int = 3) -> Path:
    """A drop of keeper faces whose sex shows in brightness; two animals have no registered sex."""
    root.mkdir(parents=True)
    (root / "drop.toml").write_text(DROP_TOML)
    lines = ["animal_id,sex,birth_date,name"] + [f"{a},{LABELLED.get(a, '')},," for a in [*LABELLED, *UNLABELLED]]
    (root / "animals.csv").write_text("\n".join(lines) + "\n")
    for number, (animal_id, sex) in enumerate({**LABELLED, **UNLABELLED}.items()):
        for index in range(photos):
            face_photo(root / "faces" / animal_id / f"{animal_id}_{index}.jpg", sex == "male", number * 10 + index)
    return root


@pytest.fixture
def face_home(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A home with one face drop ingested (no gender model yet) and a tiny training recipe."""
    config = tmp_path / "config.toml"
    config.write_text(TINY_RECIPE)
    drop = write_face_drop(tmp_path / "inbox" / "faces-drop")
    home = tmp_path / "home"
    summary = nightly(drops=[str(drop)], home=str(home), config_file=str(config))
    assert summary["gender"][0]["status"] == "no_model"
    return home, drop, config


def count_forward_passes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count images sent through the gender net by the stage."""
    seen: list[int] = []
    original = gender_stage.predict_logits

    def counting(model, batch, *args, **kwargs):
        seen.append(len(batch))
        return original(model, batch, *args, **kwargs)

    monkeypatch.setattr(gender_stage, "predict_logits", counting)
    return seen


def test_train_predict_rerun_and_animals_view(face_home, monkeypatch) -> None:
    home, drop, config = face_home
    layout, settings = HomeLayout(home), load_settings(config, home=home)
    card = train_gender(layout, settings.gender, "panda-gender")
    assert not set(card["split"]["train"]) & set(card["split"]["test"])
    assert set(card["split"]["train"]) | set(card["split"]["validation"]) | set(card["split"]["test"]) == set(LABELLED)
    assert card["selected_on"].startswith(
        "test animals"
    )  # three labelled animals a sex: too few for a validation split
    assert card["label"] == "panda-gender@v1" and card["metrics"]["rates"]["level"].startswith("animal")
    rates = card["metrics"]["rates"]
    assert rates["face_sources"] == ["keeper"] and card["metrics"]["rates_by_source"] == {}  # one kind: no split
    stored = card_rates(json.loads((Path(card["path"]) / CARD_FILE).read_text()))
    assert (stored.n_positive, stored.n_negative) == (rates["decided_males"], rates["decided_females"]) != (0, 0)
    check = stored_check_inputs(layout, "gender", card["label"])  # int8's check set: the test animals' faces
    size = card["input_size"]
    assert check.dtype == torch.uint8 and tuple(check.shape) == (3 * len(card["split"]["test"]), size, size, 3)
    seen = count_forward_passes(monkeypatch)
    summary = nightly(drops=[str(drop)], home=str(home), config_file=str(config))
    assert summary["gender"][0]["status"] == "predicted" and sum(seen) == 24
    rows = query(
        layout, "SELECT animal_id, p_male, model_version, run_id, gradcam_path FROM gender_predictions"
    ).to_pylist()
    assert len(rows) == 24 and {r["model_version"] for r in rows} == {"panda-gender@v1"}
    assert {r["run_id"] for r in rows} == {summary["run_id"]}
    heatmaps = [r["gradcam_path"] for r in rows if r["gradcam_path"]]
    assert len(heatmaps) == 2 and all((home / path).is_file() for path in heatmaps)
    animals = {r["animal_id"]: r for r in query(layout, "SELECT * FROM animals").to_pylist()}
    for animal_id in [*LABELLED, *UNLABELLED]:
        faces = [r["p_male"] for r in rows if r["animal_id"] == animal_id]
        assert animals[animal_id]["n_faces"] == 3 and animals[animal_id]["face_source"] == "keeper"
        assert animals[animal_id]["p_male"] == pytest.approx(animal_posterior(faces), abs=1e-9)
    assert animals["A01"]["sex_known"] == "female" and animals["A07"]["sex_known"] is None
    check_report(Path(summary["report"]), summary["run_id"])
    seen.clear()
    again = nightly(drops=[str(drop)], home=str(home), config_file=str(config))
    assert again["gender"][0]["status"] == "unchanged" and seen == []


def check_report(report: Path, run_id: str) -> None:
    """The HTML is self-contained and shows the gender sections; CSVs sit next to it; artifacts are keyed."""
    html = report.read_text()
    assert "Gender ratio" in html and "panda-gender@v1" in html and 'src="data:image/jpeg;base64,' in html
    assert "Grad-CAM" in html and not re.search(r'(src|href)="(https?:)?//', html)
    animals_csv = (report.parent / "animals.csv").read_text()
    assert animals_csv.startswith("animal_id,") and "A07" in animals_csv and "data:image" not in animals_csv
    assert (report.parent / "rejects.csv").is_file() and (report.parent / "drops.csv").is_file()
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=list(ARTIFACT_KEYS))),
            sort=ArtifactSort.CREATED_DESC,
        )  # newest first: the keys keep every run's history
    assert {"breedwatch-run-summary", "breedwatch-report", "breedwatch-gender-ratio"} <= {a.key for a in artifacts}
    check_numbers_agree(report, html, next(a for a in artifacts if a.key == "breedwatch-gender-ratio"))


def check_numbers_agree(report: Path, html: str, artifact: Any) -> None:
    """The gender ratio is the same in the catalog, the CSV, the table artifact and the HTML."""
    catalog = query(
        HomeLayout(report.parents[2]),
        "SELECT level, males, females, unknown, estimate, ci_low, ci_high FROM gender_ratio",
    ).to_pylist()
    with (report.parent / "gender_ratio.csv").open() as handle:
        csv_rows = list(csv.DictReader(handle))
    table = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    assert len(catalog) == len(csv_rows) == len(table) >= 1
    for row, csv_row, artifact_row in zip(catalog, csv_rows, table):
        for key in ("males", "females", "unknown"):
            assert row[key] == int(csv_row[key]) == int(artifact_row[key])
        assert float(csv_row["estimate"]) == pytest.approx(row["estimate"]) == float(artifact_row["estimate"])
        assert f"{row['estimate']:.2f} ({row['ci_low']:.2f}-{row['ci_high']:.2f})" in html


def test_decision_band_changes_without_rerunning_the_model(face_home, tmp_path) -> None:
    home, _, config = face_home
    layout, settings = HomeLayout(home), load_settings(config, home=home)
    train_gender(layout, settings.gender, "panda-gender")
    nightly(drops=[str(face_home[1])], home=str(home), config_file=str(config))
    narrow = settings.model_copy(
        update={"gender": settings.gender.model_copy(update={"abstain_low": 0.0, "abstain_high": 1.0})}
    )
    refresh_views(layout, narrow.view_thresholds())
    assert {r["sex_predicted"] for r in query(layout, "SELECT sex_predicted FROM animals").to_pylist()} == {"unknown"}
    wide = settings.model_copy(
        update={"gender": settings.gender.model_copy(update={"abstain_low": 0.5, "abstain_high": 0.5})}
    )
    refresh_views(layout, wide.view_thresholds())
    decided = query(layout, "SELECT p_male, sex_predicted FROM animals").to_pylist()
    assert all(r["sex_predicted"] == ("male" if r["p_male"] >= 0.5 else "female") for r in decided)
    today = datetime.now(UTC).date()
    rebuilt = CliRunner().invoke(
        app, ["report", "--home", str(home), "--since", str(today - timedelta(days=1)), "--until", str(today)]
    )
    assert rebuilt.exit_code == 0, rebuilt.output
    period = home / "reports" / f"period-{today - timedelta(days=1)}_{today}"
    assert "A07" in (period / "animals.csv").read_text() and "faces-drop" in (period / "report.html").read_text()
    empty = CliRunner().invoke(app, ["report", "--home", str(home), "--until", "2000-01-01"])
    assert (
        empty.exit_code == 0 and "A07" not in (home / "reports" / "period-start_2000-01-01" / "animals.csv").read_text()
    )
    backwards = CliRunner().invoke(
        app, ["report", "--home", str(home), "--since", "2026-02-01", "--until", "2026-01-01"]
    )
    assert backwards.exit_code == 2 and "before" in backwards.output


def test_batch_equals_one_at_a_time(face_home) -> None:
    home, drop, config = face_home
    layout, settings = HomeLayout(home), load_settings(config, home=home)
    train_gender(layout, settings.gender, "panda-gender")
    model, _ = gender_stage.load_gender_model(layout, "panda-gender")
    paths = sorted((drop / "faces").rglob("*.jpg"))
    for precision, tolerance in (("fp32", 1e-5), ("bf16", 2e-2)):
        config_of = lambda size: settings.gender.model_copy(
            update={"cpu_batch_size": size, "precision": precision, "loader_workers": 0}
        )  # noqa: E731
        batched = gender_stage.predict_p_male(model, paths, config_of(16), lambda: None)
        single = gender_stage.predict_p_male(model, paths, config_of(1), lambda: None)
        assert np.allclose(batched, single, atol=tolerance), precision


def test_stage_gives_exactly_the_p_male_of_preprocessed_crops(face_home) -> None:
    home, drop, config = face_home
    layout, settings = HomeLayout(home), load_settings(config, home=home)
    train_gender(layout, settings.gender, "panda-gender")
    model, _ = gender_stage.load_gender_model(layout, "panda-gender")
    paths = sorted((drop / "faces").rglob("*.jpg"))[:5]
    config = settings.gender.model_copy(
        update={"cpu_batch_size": 3, "device": "cpu", "precision": "bf16", "loader_workers": 0}
    )
    folded, expected = folded_copy(model), []
    for start in (0, 3):  # the stage's batches, from preprocess's contiguous tensors
        batch = torch.stack([preprocess(Image.open(path), model.input_size) for path in paths[start : start + 3]])
        expected += calibrated_probs(folded, predict_logits(folded, batch, "cpu", "bf16")).tolist()
    assert gender_stage.predict_p_male(model, paths, config, lambda: None) == expected


def test_cpu_batches_follow_cpu_batch_size(face_home, monkeypatch) -> None:
    home, drop, config = face_home
    layout, settings = HomeLayout(home), load_settings(config, home=home)
    train_gender(layout, settings.gender, "panda-gender")
    model, _ = gender_stage.load_gender_model(layout, "panda-gender")
    paths = sorted((drop / "faces").rglob("*.jpg"))[:7]
    seen = count_forward_passes(monkeypatch)
    update = {"batch_size": 32, "cpu_batch_size": 3, "device": "cpu", "loader_workers": 0}
    gender_stage.predict_p_male(model, paths, settings.gender.model_copy(update=update), lambda: None)
    assert seen == [3, 3, 1]


def test_training_data_errors_are_one_sentence(tmp_path, face_home) -> None:
    home, drop, config = face_home
    settings = load_settings(config, home=home)
    empty = HomeLayout(tmp_path / "empty")
    nightly(drops=[], home=str(empty.root))
    with pytest.raises(TrainingDataError, match="no labelled faces"):
        labelled_faces(empty, None, None)
    folder = tmp_path / "folder"
    (folder / "A01").mkdir(parents=True)
    face_photo(folder / "A01" / "x.jpg", True, 1)
    with pytest.raises(TrainingDataError, match="animals.csv"):
        labelled_faces(empty, folder, None)
    (folder / "animals.csv").write_text("animal_id,sex\nA01,male\nA02,maybe\n")
    with pytest.raises(TrainingDataError, match=r"line 3.*sex"):
        labelled_faces(empty, folder, None)
    (folder / "animals.csv").write_text("animal_id,sex\nA01,male\n")
    with pytest.raises(TrainingDataError, match="all of one sex"):
        labelled_faces(empty, folder, None)
    with pytest.raises(TrainingDataError, match="at least 4 labelled animals of each sex"):
        evaluate_gender(HomeLayout(home), settings.gender, folds=4)


def test_folder_source_and_evaluation_against_hog_svm(tmp_path, face_home) -> None:
    home, drop, config = face_home
    settings = load_settings(config, home=home)
    folder = drop / "faces"
    (folder / "animals.csv").write_text((drop / "animals.csv").read_text())
    faces = labelled_faces(HomeLayout(home), folder, None)
    assert len(faces.items) == 18 and faces.source.startswith("folder")
    result = evaluate_gender(HomeLayout(home), settings.gender, folder=folder, folds=3)
    assert len(result["splits"]) == 3
    tested = [a for split in result["splits"] for a in split["test"]]
    assert sorted(tested) == sorted(LABELLED)
    for split in result["splits"]:
        assert not set(split["train"]) & set(split["test"])
        assert split["net"]["per_image"]["n"] == 6 and split["hog_svm"]["per_image"]["n"] == 6
    assert result["summary"]["net"]["per_image.accuracy"]["n"] == 3


def test_cli_train_gender_without_labels_exits_1(tmp_path) -> None:
    nightly(drops=[], home=str(tmp_path / "home"))
    result = CliRunner().invoke(app, ["train", "gender", "--home", str(tmp_path / "home")])
    assert result.exit_code == 1 and "no labelled faces" in result.output


def write_view_rows(layout: HomeLayout, faces: list[tuple[str, str | None, str, float, datetime]]) -> None:
    """media, drops and gender_predictions rows for (face_id, animal_id, camera, p_male, captured_at)."""
    media = [
        {
            "media_id": f"m{i}",
            "drop_id": "d1",
            "path": f"images/{cam}/IMG_{i}.jpg",
            "kind": "image",
            "status": "ok",
            "captured_at": at,
        }
        for i, (_, _, cam, _, at) in enumerate(faces)
    ]
    predictions = [
        {
            "face_id": face_id,
            "media_id": f"m{i}",
            "drop_id": "d1",
            "animal_id": animal,
            "p_male": p,
            "label": "male" if p >= 0.5 else "female",
            "model_version": "g@v1",
            "run_id": "r1",
        }
        for i, (face_id, animal, _, p, _) in enumerate(faces)
    ]
    write_rows(layout, MEDIA, "d1", "ingest", media)
    write_rows(layout, DROPS, "d1", "ingest", [{"drop_id": "d1", "site": "North", "deployment_id": "dep-1"}])
    write_rows(layout, GENDER_PREDICTIONS, "d1", "gender", predictions)


def test_face_events_split_cameras_by_gap(tmp_path) -> None:
    layout = HomeLayout(tmp_path / "home")
    t0 = datetime(2026, 3, 4, 13, tzinfo=UTC)
    faces = [
        ("f1", None, "cam01", 0.9, t0),
        ("f2", None, "cam01", 0.8, t0 + timedelta(seconds=60)),
        ("f3", None, "cam01", 0.2, t0 + timedelta(seconds=1000)),
        ("f4", None, "cam02", 0.3, t0),
        ("f5", "A01", "cam01", 0.7, t0),
    ]
    write_view_rows(layout, faces)
    refresh_views(layout, load_settings(None, home=layout.root).view_thresholds())
    events = query(layout, "SELECT event_id, n_faces, p_male FROM face_events ORDER BY event_id").to_pylist()
    assert [(e["event_id"], e["n_faces"]) for e in events] == [
        ("d1/cam01/e1", 2),
        ("d1/cam01/e2", 1),
        ("d1/cam02/e1", 1),
    ]
    assert events[0]["p_male"] == pytest.approx(animal_posterior([0.9, 0.8]))
    (animal,) = query(layout, "SELECT * FROM animals").to_pylist()
    assert animal["animal_id"] == "A01" and animal["site"] == "North" and animal["n_faces"] == 1


def test_disagreeing_faces_flag_the_animal(tmp_path) -> None:
    layout = HomeLayout(tmp_path / "home")
    t0 = datetime(2026, 3, 4, 13, tzinfo=UTC)
    write_view_rows(
        layout,
        [
            ("f1", "A01", "cam01", 0.95, t0),
            ("f2", "A01", "cam01", 0.9, t0),
            ("f3", "A01", "cam01", 0.05, t0),
            ("f4", "A02", "cam01", 0.95, t0),
            ("f5", "A02", "cam01", 0.9, t0),
        ],
    )
    refresh_views(layout, load_settings(None, home=layout.root).view_thresholds())
    flags = {
        r["animal_id"]: (r["flagged"], r["disagreement"]) for r in query(layout, "SELECT * FROM animals").to_pylist()
    }
    assert flags["A01"] == (True, pytest.approx(1 / 3)) and flags["A02"] == (False, 0.0)


def test_seed_split_tests_both_sexes_even_with_two_males() -> None:
    image = Image.new("RGB", (8, 8))
    counts = {"M1": 6, "M2": 12, "F1": 12, "F2": 8, "F3": 4, "F4": 7, "F5": 12}
    items = [(image, 1 if a.startswith("M") else 0, a) for a, n in counts.items() for _ in range(n)]
    train, test = seed_split(items)
    assert not set(train) & set(test) and set(train) | set(test) == set(counts)
    assert "M1" in test and "M2" in train  # the least-photographed male is held out
    assert any(a.startswith("F") for a in test)
    with pytest.raises(TrainingDataError, match="two animals of one sex"):
        seed_split([(image, 1, "M1"), (image, 0, "F1")])


def test_validation_animals_choose_the_epoch_when_each_sex_has_five_training_animals() -> None:
    image = Image.new("RGB", (8, 8))
    counts = {f"{sex}{i}": 3 + i for sex in "MF" for i in range(8)}
    items = [(image, 1 if a.startswith("M") else 0, a) for a, n in counts.items() for _ in range(n)]
    train, test = seed_split(items)
    split = fit_split(items, train, test)
    assert split.selected_on == "validation animals"
    assert set(split.fit) | set(split.select) == set(train) and not set(split.fit) & set(split.select)
    assert not set(split.select) & set(test) and {a[0] for a in split.select} == {"M", "F"}
    small = [item for item in items if item[2] in {"M0", "M1", "M2", "F0", "F1", "F2"}]
    train, test = seed_split(small)
    assert (
        fit_split(small, train, test).select == test
    )  # too few animals for a validation split: the test animals choose
