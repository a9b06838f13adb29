"""The review queue's vocabulary: item keys, the one key per action, and what each action records."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

ItemKind = Literal["face", "animal", "encounter", "frame", "identity"]
ITEM_KINDS: tuple[str, ...] = ("face", "animal", "encounter", "frame", "identity")
CONFIRM = "confirm"
CANDIDATE = "candidate "  # + its rank: the human value is the item's candidate of that rank (1 = best match)
NEW_INDIVIDUAL = "new individual"  # the face is of no registered animal: it founds a provisional individual
CANDIDATE_KEYS = ("1", "2", "3", "4", "5")
DRAWN_BOX = "drawn box"  # the human value is the box the reviewer drew on the frame
NO_FACE = "none"  # a frame's box value: the reviewer sees no face the detector missed
AUDIT_BUCKETS = 10_000  # each item's fixed draw in 0..AUDIT_BUCKETS-1; a day's audit is a window of them
FRAME_MIN_YIELD = 0.25  # faces per frame above which a camera "usually yields faces" and its empty frames are queued
MIN_BOX_SIDE = 0.01  # a drawn box spans at least 1% of the frame's width and height
BOX_SLACK = 1e-6

# One key per action and item kind: the field it sets and the human value (CONFIRM: the machine's own call;
# DRAWN_BOX: the box drawn with the mouse). s (skip) and u (undo) act on the queue, not on an item, and are handled by
# the page.
ACTIONS: dict[str, dict[str, tuple[str, str]]] = {
    "face": {
        "c": ("sex", CONFIRM),
        "m": ("sex", "male"),
        "f": ("sex", "female"),
        "n": ("is_face", "false"),
        "b": ("box", DRAWN_BOX),
    },
    "animal": {"c": ("sex", CONFIRM), "m": ("sex", "male"), "f": ("sex", "female")},
    "encounter": {"c": ("outcome", CONFIRM), "y": ("outcome", "success"), "x": ("outcome", "failure")},
    "frame": {"e": ("box", NO_FACE), "b": ("box", DRAWN_BOX)},
    "identity": {
        "c": ("identity", CONFIRM),
        **{k: ("identity", CANDIDATE + k) for k in CANDIDATE_KEYS},
        "w": ("identity", NEW_INDIVIDUAL),
        "n": ("is_face", "false"),
    },
}
UNDECIDED = frozenset({"unknown", None})


def candidate_rank(value: str) -> int | None:
    """The rank an action's value names among an identity item's candidates (1 = best match), or None."""
    return int(value.removeprefix(CANDIDATE)) if value.startswith(CANDIDATE) else None


def correction_target(kind: str) -> str:
    """The target kind a correction made on an item of this kind records: an identity item speaks about its face."""
    return "face" if kind == "identity" else kind


def item_kind(target_kind: str, field: str) -> str:
    """The kind of item a correction was made on (correction_target's inverse, the field telling a face's identity
    from its sex, box or is_face)."""
    return "identity" if target_kind == "face" and field == "identity" else target_kind


class ReviewError(ValueError):
    """A review request that cannot be carried out, with a one-sentence reason."""


@dataclass(frozen=True)
class ItemKey:
    """Which item a queue entry is: its kind, its drop (faces and encounters) and its id."""

    kind: str
    drop_id: str
    target_id: str

    def __str__(self) -> str:
        """The key as the page sends it back: kind:drop:id (drop empty for animals)."""
        return f"{self.kind}:{self.drop_id}:{self.target_id}"


def parse_item_key(text: str) -> ItemKey:
    """Read a kind:drop:id key, raising ReviewError with a sentence when it is not one."""
    parts = text.split(":", 2)
    if len(parts) != 3 or parts[0] not in ITEM_KINDS or not parts[2] or len(text) > 400:
        raise ReviewError(
            "The item key must look like kind:drop:id with kind face, animal, encounter, frame or identity."
        )
    return ItemKey(*parts)


def box_text(box: Sequence[float]) -> str:
    """A relative box (x, y, w, h in 0..1 of the frame) as the text a corrections row stores: a JSON list."""
    return json.dumps([round(float(v), 5) for v in box])


def checked_box(box: Sequence[float] | None) -> str:
    """A drawn box as box_text, or ReviewError saying why it is not a box inside the frame."""
    if box is None or len(box) != 4:
        raise ReviewError("Draw the box first: it needs x, y, width and height relative to the frame.")
    x, y, w, h = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise ReviewError("The box's coordinates must be finite numbers.")
    if w < MIN_BOX_SIDE or h < MIN_BOX_SIDE:
        raise ReviewError(f"The box is too small: draw at least {MIN_BOX_SIDE:.0%} of the frame each way.")
    if x < -BOX_SLACK or y < -BOX_SLACK or x + w > 1 + BOX_SLACK or y + h > 1 + BOX_SLACK:
        raise ReviewError("The box must lie inside the frame (coordinates relative to it, 0 to 1).")
    return box_text((x, y, w, h))


def decide(
    kind: str,
    key: str,
    machine_call: str | None,
    box: Sequence[float] | None = None,
    candidates: Sequence[str] = (),
) -> tuple[str, str]:
    """The field and human value one key press records on an item of the given kind (box: the drawn box, relative to
    the frame, for the box action; candidates: an identity item's registered candidates, best first)."""
    actions = ACTIONS.get(kind, {})
    if key not in actions:
        allowed = ", ".join(sorted(actions))
        raise ReviewError(f"The key {key!r} is not an action on a {kind} item (use one of {allowed}).")
    field, value = actions[key]
    if value == CONFIRM:
        if machine_call in UNDECIDED:
            raise ReviewError(f"The model made no {field} call on this {kind} to confirm; choose a value instead.")
        value = str(machine_call)
    if value == DRAWN_BOX:
        value = checked_box(box)
    rank = candidate_rank(value)
    if rank is not None:
        if rank > len(candidates):
            raise ReviewError(f"This face has {len(candidates)} candidate animals; there is no candidate {rank}.")
        value = candidates[rank - 1]
    return field, value


def is_loopback_host(host: str) -> bool:
    """Whether an address to listen on is reachable only from this machine (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
