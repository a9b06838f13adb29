"""Training, storing and evaluating an identity net on a small generated sample archive, through the tasks and the
CLI, and the gender net's general-to-specific init from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from flows.cli import app
from models.gender_training import TrainingDataError
from schemas.config import GenderConfig, GenderTrainConfig, IdentityConfig, IdentityTrainConfig, load_settings
from schemas.home import HomeLayout
from tasks.execution import resolve_execution
from tasks.gender_training import train_gender
from tasks.identity_training import KIND, archive_faces, load_identity_model, train_identity
from tasks.sample_drop import write_keeper_archive, write_sample_drop

TINY = {"arch": "mini_xception", "input_size": 32, "embedding_dim": 16, "epochs": 2, "batch_size": 16, "threads": 1}


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A sample archive of 8 animals (keeper photos and annotated camera-trap faces) and a studbook of 8 sexed
    animals."""
    root = tmp_path_factory.mktemp("identity")
    write_sample_drop(root / "archive", seed=5, n_animals=8)
    write_keeper_archive(root / "studbook", seed=6, n_animals=8)
    return root / "archive", root / "studbook"


def test_archive_faces_crop_every_annotated_box(archives) -> None:
    archive, _ = archives
    faces = archive_faces(archive, load_settings().faces, 64)
    boxes = (archive / "truth" / "boxes.csv").read_text().splitlines()[1:]
    cameras = [f for f in faces if f.source == "camera"]
    assert len(cameras) == len(boxes) and all(f.image.size == (64, 64) for f in cameras)
    assert all(f.animal_id.startswith("archive/A") and f.time is not None for f in faces)
    keeper_cameras = {f.camera for f in faces if f.source == "keeper"}
    assert len(keeper_cameras) == len({f.animal_id for f in faces if f.source == "keeper"})


def test_tiny_training_stores_a_card_with_both_thresholds(tmp_path, archives, one_thread) -> None:
    archive, studbook = archives
    home = HomeLayout(tmp_path / "home")
    config = IdentityConfig(train=IdentityTrainConfig(**TINY))
    card = train_identity(home, config, "panda-identity", archives=[archive])
    assert card["label"] == "panda-identity@v1"
    assert -1 <= card["match_threshold"] <= 1 and -1 <= card["cluster_threshold"] <= 1
    assert set(card["split"]) == {"train", "validation", "test"}
    assert not set(card["split"]["train"]) & set(card["split"]["test"] + card["split"]["validation"])
    assert card["data_fingerprint"] and card["train_seconds"] > 0 and card["code_version"]
    for key in ("open_set", "closed_set", "camera_vs_keeper"):
        assert key in card["metrics"]
    model, loaded = load_identity_model(home, "panda-identity")
    assert loaded["label"] == "panda-identity@v1" and loaded["embedding_dim"] == 16
    assert model.input_size == 32 and not model.training
    settings = load_settings(home=home.root)
    settings = settings.model_copy(update={"identity": settings.identity.model_copy(update={"device": "cpu"})})
    execution = resolve_execution(home, settings, sections=("identity",))
    assert execution.settings.identity.cpu_batch_size is not None and "identity" in execution.plans

    gender = GenderConfig(train=GenderTrainConfig(arch="mini_xception", input_size=32, epochs=1, init="identity@v1"))
    gender_card = train_gender(home, gender, "panda-gender", studbook / "faces", studbook / "animals.csv")
    assert gender_card["init"] == {"ref": "identity@v1", "identity_model": "panda-identity@v1"}
    plain = train_gender(
        home,
        gender.model_copy(update={"train": gender.train.model_copy(update={"init": None})}),
        "panda-gender",
        studbook / "faces",
        studbook / "animals.csv",
    )
    assert plain["init"] is None
    wrong = GenderConfig(train=GenderTrainConfig(arch="resnet18", input_size=32, epochs=1, init="identity@v1"))
    with pytest.raises(TrainingDataError, match="cannot initialise a resnet18"):
        train_gender(home, wrong, "panda-gender", studbook / "faces", studbook / "animals.csv")
    with pytest.raises(TrainingDataError, match="no identity model panda-identity@v9"):
        train_gender(
            home,
            gender.model_copy(update={"train": gender.train.model_copy(update={"init": "identity@v9"})}),
            "panda-gender",
            studbook / "faces",
            studbook / "animals.csv",
        )
    assert torch.load(home.model_dir(KIND, "panda-identity") / "v1" / "weights.pt", weights_only=True)


def test_cli_trains_and_evaluates_identity(tmp_path, archives, one_thread) -> None:
    """The command functions called with their console captured (a flow run inside CliRunner's swapped streams leaves
    Prefect's log handler writing to a closed stream, see conftest's demo_run); CliRunner only for the exit path."""
    from flows.cli.common import out
    from flows.cli.identity import evaluate_identity, train_identity

    archive, _ = archives
    home = tmp_path / "home"
    config = tmp_path / "config.toml"
    config.write_text("[identity.train]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in TINY.items()))
    result = tmp_path / "result.json"
    with out.capture() as captured:
        train_identity(faces=None, archive=[archive], name=None, home=home, config=config)
        evaluate_identity(faces=None, archive=[archive], model=None, json_out=result, home=home, config=config)
    printed = " ".join(captured.get().split())  # rich wraps lines at the console's width
    assert "stored panda-identity@v1" in printed and "match threshold" in printed and "top1" in printed
    found = json.loads(result.read_text())
    assert found["model"] == "panda-identity@v1" and found["open_set"]["n_queries"] > 0
    assert 0 <= found["camera_vs_keeper"]["top1"] <= 1
    missing = CliRunner().invoke(
        app, ["evaluate", "identity", "--archive", str(archive), "--home", str(tmp_path / "x")]
    )
    assert missing.exit_code == 1 and "no identity model" in missing.output


def test_catalog_faces_are_registered_animals_and_confirmed_identities(tmp_path) -> None:
    from datetime import UTC, datetime

    from tasks.catalog import refresh_views
    from tasks.identity_training import catalog_faces
    from tasks.review import save_correction
    from tests.review_home import DROP, media_id_of, write_review_home

    home = write_review_home(tmp_path / "home")
    before = catalog_faces(home)
    registered = {f.animal_id for f in before}
    assert before and None not in registered and all(f.source == "camera" for f in before)
    face_id = f"{media_id_of('cam01/IMG_0001.JPG')}-f0"
    row = {
        "correction_id": "c1",
        "action": "set",
        "target_kind": "face",
        "target_id": face_id,
        "drop_id": DROP,
        "media_id": media_id_of("cam01/IMG_0001.JPG"),
        "field": "identity",
        "machine_value": None,
        "human_value": "Z99",
        "reviewer": "kim",
        "created_at": datetime(2026, 1, 2, tzinfo=UTC),
    }
    save_correction(home, row)
    refresh_views(home)
    after = catalog_faces(home)
    assert len(after) == len(before) + 1
    assert [f.animal_id for f in after if f.animal_id == "Z99"] == ["Z99"]
