"""A model card's panels in the run report: its headline numbers and its plots."""

from __future__ import annotations

from typing import Any

from reports.plots import confusion_plot, data_uri, reliability_plot, roc_plot


def card_plots(card: dict[str, Any]) -> list[dict[str, str]]:
    """ROC curve, reliability diagram and confusion matrices of a model card's held-out predictions, as embedded
    images."""
    plots = []
    metrics = card.get("metrics", {})
    held_out = metrics.get("test_predictions") or card.get("test_predictions")
    if held_out:
        score_key = "p_male" if "p_male" in held_out else "p_success"
        png = roc_plot(held_out.get(score_key, []), held_out.get("label", []), "ROC, held-out faces")
        if png:
            plots.append({"title": "ROC curve", "image": data_uri(png)})
    calibration = card.get("calibration") or metrics.get("calibration") or {}
    reliability = reliability_plot(
        calibration.get("reliability", []), f"reliability, ECE {calibration.get('ece', 0):.3f}"
    )
    if reliability:
        plots.append({"title": "reliability diagram", "image": data_uri(reliability)})
    net = metrics.get("net", {})
    classes = card.get("classes", ["female", "male"])
    for level in ("per_image", "per_animal"):
        matrix = net.get(level, {}).get("confusion_matrix")
        if matrix:
            plots.append(
                {
                    "title": f"confusion {level.replace('_', ' ')}",
                    "image": data_uri(confusion_plot(matrix, classes, level.replace("_", " "))),
                }
            )
    return plots


def scalar_metrics(card: dict[str, Any]) -> list[tuple[str, Any]]:
    """The card's headline numbers: flat metrics, per-image and per-animal net metrics, calibration."""
    metrics, flat = card.get("metrics", {}), []
    for prefix, block in (
        ("", metrics),
        ("image ", metrics.get("net", {}).get("per_image", {})),
        ("animal ", metrics.get("net", {}).get("per_animal", {})),
        ("calibration ", card.get("calibration", {})),
    ):
        flat += [
            (prefix + key, value)
            for key, value in block.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        ]
    return flat


def error_rate_rows(card: dict[str, Any]) -> list[dict[str, Any]]:
    """The card's per-animal sensitivity and specificity with counts and Wilson intervals: over all test faces, then
    measured on each face source alone (keeper photos, detector faces) when the card has them."""
    metrics = card.get("metrics", {})
    overall = metrics.get("rates")
    if not isinstance(overall, dict) or "decided_males" not in overall:
        return []
    blocks = [("+".join(overall.get("face_sources") or []) or "all test faces", overall)]
    blocks += sorted((metrics.get("rates_by_source") or {}).items())
    return [
        {
            "faces": faces.replace("+", " and "),
            "sensitivity": rates.get("sensitivity"),
            "sensitivity_counts": f"{rates.get('males_called_male', '?')}/{rates.get('decided_males')}",
            "sensitivity_ci": rates.get("sensitivity_ci"),
            "specificity": rates.get("specificity"),
            "specificity_counts": f"{rates.get('females_called_female', '?')}/{rates.get('decided_females')}",
            "specificity_ci": rates.get("specificity_ci"),
        }
        for faces, rates in blocks
    ]
