"""Whether a retrained model replaces the one in use: both measured on the same held-out data, the new one promoted
only when it is not worse on its kind's headline metric (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Headline:
    """The metric a kind's promotion is decided on: its path in a metrics dict and what it is, in words."""

    path: tuple[str, ...]
    meaning: str


# Accuracy, because it is what keepers see (the share of calls that are right); per image and per window because the
# held-out animals and validation encounters are few, and a per-animal or per-encounter accuracy over three of them
# moves in steps of a third.
HEADLINES: dict[str, Headline] = {
    "gender": Headline(("per_image", "accuracy"), "per-image accuracy on the current version's held-out animals"),
    "mating": Headline(("segment", "accuracy"), "per-window accuracy on the current version's validation groups"),
    # F1 of recall and precision at IoU 0.5: recall alone would promote a detector that finds faces everywhere.
    "detector": Headline(("f1",), "face F1 (recall and precision at IoU 0.5) on the current version's held-out images"),
    # Open-set top-1 (each half of the animals in turn left out of the gallery): the right animal first among the
    # registered ones, on animals neither version trained on.
    "identity": Headline(("open_set", "top1"), "open-set top-1 on held-out animals neither version trained on"),
}


def headline_value(kind: str, metrics: dict[str, Any]) -> float | None:
    """The headline metric of a kind read from a metrics dict (None when it was not measured)."""
    value: Any = metrics
    for key in HEADLINES[kind].path:
        value = value.get(key) if isinstance(value, dict) else None
    return None if value is None else float(value)


def promotion_decision(
    kind: str, current: str, current_metrics: dict[str, Any], new_metrics: dict[str, Any], held_out: list[str]
) -> dict[str, Any]:
    """The card's 'promotion' block: both versions' headline values on the same held-out data, and whether the new one
    is promoted (not worse; a tie promotes, so more labels win when they cost nothing)."""
    headline = HEADLINES[kind]
    before, after = headline_value(kind, current_metrics), headline_value(kind, new_metrics)
    promoted = after is not None and (before is None or after >= before)
    if after is None:
        reason = "the new version could not be measured on the held-out data, so it stays a candidate"
    elif before is None:
        reason = f"the current version {current} could not be measured there, so the new one is promoted"
    else:
        verb = "is not worse than" if promoted else "is worse than"
        reason = f"{after:.3f} {verb} {current}'s {before:.3f}"
    return {
        "promoted": promoted,
        "metric": ".".join(headline.path),
        "meaning": headline.meaning,
        "current": current,
        "current_value": before,
        "new_value": after,
        "held_out": sorted(held_out),
        "reason": reason,
        "current_metrics": current_metrics,
    }
