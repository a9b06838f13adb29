"""The report shows a card's calibration: its reliability diagram beside the ROC curve, and the card's sentence when
ECE misses the target."""

from __future__ import annotations

from models.training import calibration_report
from reports.model_cards import card_plots


def test_a_card_with_calibration_gets_a_reliability_diagram() -> None:
    calibration = calibration_report([0.9, 0.8, 0.3, 0.6, 0.95, 0.1], [1, 1, 0, 0, 1, 0], 1.4, "faces")
    card = {"classes": ["female", "male"], "calibration": calibration, "metrics": {}}
    titles = [plot["title"] for plot in card_plots(card)]
    assert titles == ["reliability diagram"]
    assert all(plot["image"].startswith("data:image/png;base64,") for plot in card_plots(card))
    assert card_plots({"calibration": {"method": "temperature", "temperature": 1.0}, "metrics": {}}) == []
