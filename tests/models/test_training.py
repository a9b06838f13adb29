"""The shared training toolkit: one decision rule, and a calibration report that says whether a card's ECE is
sampling noise or a temperature that does not carry."""

from __future__ import annotations

import numpy as np
import pytest

from models.training import (
    ECE_TARGET,
    EpochRecord,
    binary_metrics,
    calibration_report,
    expected_calibration_error,
    is_better,
    positive,
    reliability_bins,
)


def record(epoch: int, loss: float | None, accuracy: float | None) -> EpochRecord:
    """An epoch with the given validation loss and accuracy."""
    return EpochRecord(epoch, 0.1, 1.0, 0.5, loss, accuracy, 1.0)


def test_one_decision_rule_for_every_net() -> None:
    assert positive([0.49, 0.5, 0.51]).tolist() == [0, 1, 1]
    metrics = binary_metrics([0.5, 0.2], [1, 0])
    assert metrics["accuracy"] == 1.0 and metrics["n_positive"] == 1
    assert binary_metrics([], [])["accuracy"] is None


def test_best_epoch_rule_by_loss_or_by_accuracy_then_loss() -> None:
    best = record(1, 0.5, 0.8)
    assert is_better(record(2, 0.4, 0.7), best, "val_loss") and not is_better(record(2, 0.4, 0.7), best, "val_accuracy")
    assert is_better(record(2, 0.45, 0.8), best, "val_accuracy") and not is_better(
        record(2, 0.6, 0.8), best, "val_accuracy"
    )
    assert is_better(record(2, None, None), best, "val_loss")  # without validation the last epoch is kept


def test_reliability_bins_hold_every_item_and_weigh_to_the_ece() -> None:
    rng = np.random.default_rng(0)
    p = rng.random(300)
    labels = (rng.random(300) < p).astype(int)
    bins = reliability_bins(p, labels)
    assert sum(b["n"] for b in bins) == 300
    assert all(b["low"] <= b["confidence"] <= b["high"] for b in bins)
    weighted = sum(b["n"] / 300 * abs(b["accuracy"] - b["confidence"]) for b in bins)
    assert weighted == pytest.approx(expected_calibration_error(p, labels))


def test_a_calibrated_model_on_many_items_meets_the_target() -> None:
    rng = np.random.default_rng(1)
    p = rng.random(5000)
    report = calibration_report(p, (rng.random(5000) < p).astype(int), 1.3, "faces")
    assert report["meets_target"] and report["ece"] <= ECE_TARGET and "note" not in report
    assert report["temperature"] == 1.3 and report["n"] == 5000


def test_an_overconfident_model_is_told_apart_from_sampling_noise() -> None:
    rng = np.random.default_rng(2)
    overconfident = calibration_report(np.full(200, 0.95), rng.integers(0, 2, 200), 1.0, "faces")
    assert not overconfident["meets_target"] and "does not carry to the test faces" in overconfident["note"]
    few = calibration_report([0.7] * 8, [1, 1, 1, 1, 1, 0, 0, 0], 1.0, "faces")  # ECE 0.075 on eight faces
    assert not few["meets_target"] and few["ece"] == pytest.approx(0.075)
    assert few["ece"] <= few["noise_ece_95"] and "more held-out faces are needed" in few["note"]


def test_the_gender_card_reports_calibration_on_its_test_faces() -> None:
    from models.gender_training import calibration_of

    test = {"animal_id": ["A", "A", "B", "B"], "label": [1, 1, 0, 0], "p_male": [0.9, 0.8, 0.3, 0.6]}
    card = calibration_of({"test_predictions": test}, 1.7)
    assert card["temperature"] == 1.7 and card["n"] == 4 and sum(b["n"] for b in card["reliability"]) == 4
    assert card["ece"] == pytest.approx(expected_calibration_error(test["p_male"], test["label"]))
    assert not card["meets_target"] and "held-out faces" in card["note"]
    assert calibration_of({}, 1.7) == {"method": "temperature", "temperature": 1.7}


def test_faces_of_one_animal_share_a_label_so_sampling_noise_is_wider() -> None:
    from models.training import calibrated_noise_ece

    p = [0.8] * 40
    animals = [f"A{i // 10}" for i in range(40)]  # four animals, ten faces each
    assert calibrated_noise_ece(p, animals) > 2 * calibrated_noise_ece(p)
    report = calibration_report(p, [1] * 20 + [0] * 20, 1.0, "faces", animals, "animals")
    assert report["ece"] == pytest.approx(0.3) and "more held-out animals are needed" in report["note"]


def test_run_epochs_keeps_the_best_epochs_weights_and_stops_after_patience() -> None:
    """The shared loop keeps the weights of the lowest validation loss and stops `patience` epochs after it."""
    import torch

    from models.epochs import run_epochs
    from models.training import TrainingHistory

    model = torch.nn.Linear(1, 1, bias=False)
    losses = {1: 0.9, 2: 0.5, 3: 0.7, 4: 0.8, 5: 0.1}

    def one_epoch(epoch: int) -> EpochRecord:
        """Set the weight to the epoch number and report this epoch's loss."""
        with torch.no_grad():
            model.weight.fill_(float(epoch))
        return record(epoch, losses[epoch], 0.5)

    history = TrainingHistory()
    best_state = run_epochs(model, 5, one_epoch, "val_loss", history, patience=2)
    assert [e.epoch for e in history.epochs] == [1, 2, 3, 4]
    assert history.best_epoch == 2 and history.stopped_early
    assert float(best_state["weight"]) == 2.0
    history = TrainingHistory()
    assert float(run_epochs(model, 5, one_epoch, "val_loss", history)["weight"]) == 5.0
    assert history.best_epoch == 5 and not history.stopped_early
