"""The review queue's vocabulary: item keys, the one key per action, and what each action records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ItemKind = Literal["face", "animal", "encounter"]
ITEM_KINDS: tuple[str, ...] = ("face", "animal", "encounter")
CONFIRM = "confirm"

# One key per action and item kind: the field it sets and the human value (CONFIRM: the machine's own call).
# s (skip) and u (undo) act on the queue, not on an item, and are handled by the page.
ACTIONS: dict[str, dict[str, tuple[str, str]]] = {
    "face": {"c": ("sex", CONFIRM), "m": ("sex", "male"), "f": ("sex", "female"), "n": ("is_face", "false")},
    "animal": {"c": ("sex", CONFIRM), "m": ("sex", "male"), "f": ("sex", "female")},
    "encounter": {"c": ("outcome", CONFIRM), "y": ("outcome", "success"), "x": ("outcome", "failure")},
}
UNDECIDED = frozenset({"unknown", None})


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
        raise ReviewError("The item key must look like kind:drop:id with kind face, animal or encounter.")
    return ItemKey(*parts)


def decide(kind: str, key: str, machine_call: str | None) -> tuple[str, str]:
    """The field and human value one key press records on an item of the given kind."""
    actions = ACTIONS.get(kind, {})
    if key not in actions:
        allowed = ", ".join(sorted(actions))
        raise ReviewError(f"The key {key!r} is not an action on a {kind} item (use one of {allowed}).")
    field, value = actions[key]
    if value == CONFIRM:
        if machine_call in UNDECIDED:
            raise ReviewError(f"The model made no {field} call on this {kind} to confirm; choose a value instead.")
        value = str(machine_call)
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
