"""`breedwatch retrain identity`: a new identity net trained on the catalog's identities, keepers' namings included,
compared with the version in use on held-out animals and stored promoted only when it is not worse."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from models.gender_training import TrainingDataError
from schemas.config import IdentityConfig, IdentityTrainConfig, Settings
from schemas.home import HomeLayout
from tasks.catalog import refresh_views
from tasks.identity_training import retrain_identity, train_identity
from tasks.model_store import stored_card
from tasks.review import save_correction
from tests.review_home import DROP, media_id_of, write_review_home

TINY = {"arch": "mini_xception", "input_size": 32, "embedding_dim": 16, "epochs": 2, "batch_size": 16, "threads": 1}
# Eight more registered animals with three keeper-named faces each, beside the review home's A01 and A02.
ANIMAL_FACES = tuple(
    (f"A{a:02d}/p{k}.jpg", f"A{a:02d}", round(0.08 * a + 0.01 * k, 3)) for a in range(3, 11) for k in (1, 2, 3)
)


@pytest.fixture()
def home(tmp_path: Path) -> HomeLayout:
    """A home whose catalog holds faces of ten registered animals and five camera-trap faces of none."""
    return write_review_home(tmp_path / "home", extra_faces=ANIMAL_FACES)


def name_face(home: HomeLayout, frame: str, animal: str) -> None:
    """A keeper names the one face of a frame, as the review app saves it."""
    media_id = media_id_of(frame)
    save_correction(
        home,
        {
            "correction_id": f"name-{media_id}",
            "action": "set",
            "target_kind": "face",
            "target_id": f"{media_id}-f0",
            "drop_id": DROP,
            "media_id": media_id,
            "field": "identity",
            "human_value": animal,
            "reviewer": "kim",
            "created_at": datetime.now(UTC),
        },
    )


def test_retrain_compares_with_the_version_in_use_and_counts_keepers_namings(home: HomeLayout, one_thread) -> None:
    config = IdentityConfig(train=IdentityTrainConfig(**TINY))
    with pytest.raises(TrainingDataError, match="no identity model 'panda-identity' in the store"):
        retrain_identity(home, config)
    first = train_identity(home, config, "panda-identity")
    name_face(home, "cam01/IMG_0001.JPG", "A03")
    refresh_views(home, Settings().view_thresholds())
    card = retrain_identity(home, config)
    assert card["label"] == "panda-identity@v2" and card["corrections_used"] == {"identity_confirmations": 1}
    promotion = card["promotion"]
    assert promotion["current"] == first["label"] and promotion["metric"] == "open_set.top1"
    assert not set(promotion["held_out"]) & set(first["split"]["train"]), "compared on animals v1 never trained on"
    assert promotion["promoted"] == (
        promotion["new_value"] is not None and promotion["new_value"] >= (promotion["current_value"] or 0)
    )
    in_use = stored_card(home, "identity", "panda-identity")
    assert in_use["version"] == (2 if promotion["promoted"] else 1)
