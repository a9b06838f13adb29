"""Gender training: seed 000's split, augmentation, training, temperature, metrics, per-animal posterior, HOG + SVM."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from models.gender import predict_probs
from models.gender_training import (
    GenderTrainSettings,
    animal_posterior,
    calibrate,
    data_fingerprint,
    decide_sex,
    disagreement,
    disagreement_flag,
    eval_batch,
    evaluate_predictions,
    fit_temperature,
    gender_model_card,
    hog_svm_baseline,
    identity_disjoint_split,
    identity_disjoint_split_by_sex,
    image_counts,
    items_of,
    kfold_by_animal,
    train_gender_net,
    train_transform,
)
from models.training import binary_metrics, expected_calibration_error


def odds_to_p(odds: float) -> float:
    """Probability from odds."""
    return odds / (1 + odds)


# ---------------------------------------------------------------- splits


def test_seed_split_on_a_worked_example() -> None:
    counts = {
        "P01": 151,
        "P02": 20,
        "P03": 80,
        "P04": 20,
        "P05": 2,
        "P06": 45,
        "P07": 33,
        "P08": 20,
        "P09": 12,
        "P10": 60,
        "P11": 7,
        "P12": 20,
    }
    # ranked: P01 151, P03 80, P10 60, P06 45, P07 33, P02 20, P04 20, P08 20, P12 20, P09 12, P11 7, P05 2
    train, test = identity_disjoint_split(counts)
    assert train == ["P01", "P03", "P06", "P07", "P02", "P04", "P12", "P09", "P11", "P05"]
    assert test == ["P10", "P08"]
    assert not set(train) & set(test)
    assert set(train) | set(test) == set(counts)


def test_seed_split_is_about_8_to_2_by_animals_and_images() -> None:
    rng = np.random.default_rng(0)
    counts = {f"P{i:03d}": int(n) for i, n in enumerate(np.clip(rng.lognormal(3.0, 0.6, 221), 2, 151))}
    train, test = identity_disjoint_split(counts)
    assert not set(train) & set(test)
    assert len(test) == 44  # 221 animals: every fifth from the third, as in the seed's table 1 (44 test pandas)
    share = sum(counts[a] for a in test) / sum(counts.values())
    assert 0.17 < share < 0.23


def test_seed_split_within_each_sex_puts_both_sexes_in_test() -> None:
    counts = {f"A{i}": 10 + i for i in range(10)}
    sexes = {f"A{i}": int(i < 3) for i in range(10)}
    train, test = identity_disjoint_split_by_sex(counts, sexes)
    assert {sexes[a] for a in test} == {0, 1}
    assert not set(train) & set(test) and set(train) | set(test) == set(counts)


def test_kfold_by_animal_partitions_the_animals() -> None:
    ids = [f"A{i:02d}" for i in range(11)]
    folds = kfold_by_animal(ids, 5, seed=3)
    assert len(folds) == 5
    assert sorted(a for _, test in folds for a in test) == sorted(ids)
    assert all(not set(train) & set(test) for train, test in folds)
    sexes = {a: i % 2 for i, a in enumerate(ids)}
    assert all({sexes[a] for a in test} == {0, 1} for _, test in kfold_by_animal(ids, 3, 0, sexes))
    assert kfold_by_animal(ids, 5, seed=3) == folds


# ---------------------------------------------------------------- posterior and decision


def test_posterior_pools_face_evidence() -> None:
    assert animal_posterior([0.7]) == pytest.approx(0.7)
    for pooling in ("independent", "sqrt_n", "mean"):
        assert animal_posterior([0.7], pooling=pooling) == pytest.approx(0.7)
    assert animal_posterior([0.7, 0.7], pooling="independent") == pytest.approx(odds_to_p((7 / 3) ** 2))
    assert animal_posterior([0.7, 0.7], pooling="sqrt_n") == pytest.approx(odds_to_p((7 / 3) ** math.sqrt(2)))
    assert animal_posterior([0.7, 0.7], pooling="mean") == pytest.approx(0.7)
    assert animal_posterior([0.9, 0.1, 0.6]) == pytest.approx(odds_to_p(1.5 ** (1 / math.sqrt(3))))
    ten = [0.7] * 10
    assert animal_posterior(ten, pooling="independent") > 0.9997  # the over-confidence the default avoids
    assert 0.9 < animal_posterior(ten) < 0.99


def test_posterior_prior_clip_and_face_prior() -> None:
    assert animal_posterior([]) == 0.5
    assert animal_posterior([], prior=0.3) == pytest.approx(0.3)
    assert animal_posterior([0.5], prior=0.3) == pytest.approx(0.3)
    assert animal_posterior([0.7], prior=0.3) == pytest.approx(odds_to_p(3 / 7 * 7 / 3))
    assert animal_posterior([1.0], pooling="independent") == pytest.approx(1 - 1e-4)
    assert 0 < animal_posterior([0.0, 0.0, 0.0]) < 1e-4
    # faces calibrated on a 30 % male training set: p = 0.3 carries no evidence
    assert animal_posterior([0.3, 0.3], face_prior=0.3) == pytest.approx(0.5)


def test_decide_sex_abstains_inside_the_band() -> None:
    assert decide_sex(0.8) == "male" and decide_sex(0.95) == "male"
    assert decide_sex(0.2) == "female" and decide_sex(0.01) == "female"
    assert decide_sex(0.5) == "unknown" and decide_sex(0.79) == "unknown" and decide_sex(0.21) == "unknown"
    assert decide_sex(0.65, abstain_low=0.4, abstain_high=0.6) == "male"


def test_disagreement_counts_confident_faces_on_the_minority_side() -> None:
    assert disagreement([0.9, 0.9, 0.9, 0.1]) == pytest.approx(0.25)
    assert disagreement_flag([0.9, 0.9, 0.9, 0.1])
    assert disagreement([0.9, 0.9, 0.9, 0.9, 0.2]) == pytest.approx(0.2)
    assert not disagreement_flag([0.9, 0.9, 0.9, 0.9, 0.2])
    assert disagreement([0.9, 0.6, 0.5, 0.4]) == 0.0  # unconfident faces do not count
    assert disagreement([]) == 0.0
    assert disagreement([0.1, 0.95]) == pytest.approx(0.5)


# ---------------------------------------------------------------- metrics and calibration


def test_ece_on_known_cases() -> None:
    labels = [1] * 6 + [0] * 4
    assert expected_calibration_error([0.8] * 10, labels) == pytest.approx(0.2)
    # two bins: confidence 0.9 with 90 % right, confidence 0.6 (female side) with 60 % right
    p = [0.9] * 10 + [0.4] * 10
    y = [1] * 9 + [0] + [0] * 6 + [1] * 4
    assert expected_calibration_error(p, y) == pytest.approx(0.0)
    assert expected_calibration_error([1.0, 0.0], [1, 0]) == pytest.approx(0.0)
    assert expected_calibration_error([], []) == 0.0


def test_binary_metrics_match_a_hand_count() -> None:
    m = binary_metrics([0.9, 0.8, 0.3, 0.6, 0.2, 0.1], [1, 1, 1, 0, 0, 0])
    assert m["confusion_matrix"] == [[2, 1], [1, 2]]
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["roc_auc"] == pytest.approx(8 / 9)
    assert binary_metrics([0.2, 0.4], [1, 1])["roc_auc"] is None
    json.dumps(m)


def test_fit_temperature_recovers_the_scale() -> None:
    rng = np.random.default_rng(0)
    true_logit = rng.normal(0, 2, 4000)
    labels = (rng.random(4000) < 1 / (1 + np.exp(-true_logit))).astype(int)
    logits = np.stack([np.zeros_like(true_logit), 3.0 * true_logit], axis=1)
    assert fit_temperature(logits, labels) == pytest.approx(3.0, rel=0.1)
    assert fit_temperature(np.zeros((0, 2)), []) == 1.0
    assert fit_temperature(logits[labels == 1], labels[labels == 1]) == 1.0  # one class: nothing to calibrate


def test_evaluate_predictions_per_image_and_per_animal() -> None:
    p = [
        0.7,
        0.85,
        0.4,
        0.8,  # A: male, one face wrong
        0.3,
        0.35,
        0.2,  # B: female
        0.55,
        0.45,  # C: male, undecided
        0.9,
        0.1,
        0.9,
        0.1,
    ]  # D: female, conflicting
    y = [1, 1, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0]
    ids = ["A"] * 4 + ["B"] * 3 + ["C"] * 2 + ["D"] * 4
    result = evaluate_predictions(p, y, ids)
    assert result["per_image"]["n"] == 13
    assert result["per_image"]["accuracy"] == pytest.approx(9 / 13)
    animals = {row["animal_id"]: row for row in result["animals"]}
    assert animals["A"]["decision"] == "male" and animals["B"]["decision"] == "female"
    assert animals["C"]["decision"] == "unknown" and animals["D"]["decision"] == "unknown"
    assert animals["D"]["flagged"] and not animals["A"]["flagged"]
    per_animal = result["per_animal"]
    assert per_animal["n"] == 4 and per_animal["n_decided"] == 2 and per_animal["n_unknown"] == 2
    assert per_animal["accuracy_decided"] == 1.0 and per_animal["coverage"] == 0.5
    assert per_animal["unknown"] == ["C", "D"] and per_animal["flagged"] == ["D"]
    json.dumps(result)
    with pytest.raises(ValueError, match="both labels"):
        evaluate_predictions([0.5, 0.5], [0, 1], ["A", "A"])


# ---------------------------------------------------------------- data


def noisy_face(rng: np.random.Generator, bright: bool, size: int = 40) -> Image.Image:
    """A trivially separable synthetic 'face': bright (male) or dark (female) noise."""
    return Image.fromarray(np.clip(rng.normal(175 if bright else 70, 30, (size, size, 3)), 0, 255).astype(np.uint8))


def striped_face(rng: np.random.Generator, vertical: bool, size: int = 64) -> Image.Image:
    """Stripes whose direction is the class: a task HOG separates and brightness does not."""
    period = rng.integers(6, 10)
    ramp = np.sin(np.arange(size) * 2 * np.pi / period + rng.uniform(0, 6.3))
    field = np.tile(ramp, (size, 1)) if vertical else np.tile(ramp[:, None], (1, size))
    values = 128 + 80 * field + rng.normal(0, 20, (size, size))
    return Image.fromarray(np.clip(values, 0, 255).astype(np.uint8)).convert("RGB")


@pytest.fixture(scope="module")
def bright_dark_items() -> list[tuple[Image.Image, int, str]]:
    """Twelve animals of four faces each, sex = brightness."""
    rng = np.random.default_rng(0)
    return [(noisy_face(rng, a % 2 == 1), a % 2, f"A{a:02d}") for a in range(12) for _ in range(4)]


def test_data_fingerprint_ignores_order_and_sees_labels(bright_dark_items) -> None:
    items = bright_dark_items[:6]
    assert data_fingerprint(items) == data_fingerprint(items[::-1])
    relabelled = [(items[0][0], 1 - items[0][1], items[0][2]), *items[1:]]
    assert data_fingerprint(relabelled) != data_fingerprint(items)


def test_augmentation_gives_normalised_crops_of_the_input_size() -> None:
    settings = GenderTrainSettings(input_size=48)
    assert settings.base_size() == 55 and GenderTrainSettings().base_size() == 512
    torch.manual_seed(0)
    out = train_transform(settings)(torch.randint(0, 256, (3, 55, 55), dtype=torch.uint8))
    assert out.shape == (3, 48, 48) and out.dtype == torch.float32
    assert float(out.min()) < -0.5 and float(out.max()) > 0.5


def test_hog_svm_baseline_runs_and_returns_the_same_metrics() -> None:
    rng = np.random.default_rng(1)
    labels = [i % 2 for i in range(40)]
    images = [striped_face(rng, bool(y)) for y in labels]
    result = hog_svm_baseline(images[:30], labels[:30], images[30:], labels[30:], size=64, test_animal_ids=None)
    assert result["per_image"]["accuracy"] > 0.9 and result["per_image"]["roc_auc"] > 0.9
    test_ids = [f"T{i % 2}{i // 4}" for i in range(10)]  # test animals, each of one label
    full = hog_svm_baseline(images[:30], labels[:30], images[30:], labels[30:], size=64, test_animal_ids=test_ids)
    assert set(full) == {"per_image", "per_animal", "animals"} and full["per_animal"]["n"] == len(set(test_ids))


def test_tiny_training_learns_brightness_and_records_a_card(bright_dark_items, one_thread) -> None:
    train_ids, test_ids = identity_disjoint_split(image_counts(bright_dark_items))
    train, test = items_of(bright_dark_items, train_ids), items_of(bright_dark_items, test_ids)
    assert not {a for _, _, a in train} & {a for _, _, a in test}
    settings = GenderTrainSettings(arch="resnet18", input_size=32, epochs=5, lr=0.03, freeze_blocks=0)
    seen = []
    model, history = train_gender_net(train, test, settings, seed=0, progress=seen.append)
    assert [r.epoch for r in history.epochs] == [1, 2, 3, 4, 5] and seen == history.epochs
    assert history.best_epoch in range(1, 6) and all(r.lr == pytest.approx(0.03) for r in history.epochs)
    temperature = calibrate(model, test)
    x, y = eval_batch(test, 32)
    result = evaluate_predictions(
        predict_probs(model, x, precision="fp32").tolist(), y.tolist(), [a for _, _, a in test]
    )
    assert result["per_image"]["accuracy"] > 0.9
    card = gender_model_card(
        settings, 0, data_fingerprint(train), {"train": train_ids, "val": test_ids}, history, temperature, result
    )
    assert json.loads(json.dumps(card))["calibration"]["temperature"] == pytest.approx(temperature)


def test_training_is_deterministic_for_a_seed(bright_dark_items, one_thread) -> None:
    settings = GenderTrainSettings(arch="mini_xception", input_size=32, epochs=2, freeze_blocks=0, lr_step_epochs=1)
    train, val = bright_dark_items[:32], bright_dark_items[32:]
    first, h1 = train_gender_net(train, val, settings, seed=7)
    second, h2 = train_gender_net(train, val, settings, seed=7)
    assert [r.lr for r in h1.epochs] == pytest.approx([0.003, 0.0015])  # StepLR halves every lr_step_epochs
    assert [r.train_loss for r in h1.epochs] == [r.train_loss for r in h2.epochs]
    for key, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[key]), key
    _, h3 = train_gender_net(train, val, settings, seed=8)
    assert [r.train_loss for r in h3.epochs] != [r.train_loss for r in h1.epochs]


def test_training_refuses_one_sex_and_zero_epochs(bright_dark_items) -> None:
    females = [item for item in bright_dark_items if item[1] == 0]
    with pytest.raises(ValueError, match="both sexes"):
        train_gender_net(females, [], GenderTrainSettings(input_size=32, epochs=1), seed=0)
    with pytest.raises(ValueError, match="epochs"):
        train_gender_net(bright_dark_items, [], GenderTrainSettings(input_size=32, epochs=0), seed=0)
