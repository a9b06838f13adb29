"""The model store under <home>/models: versioned checkpoints (state dicts only) with model cards."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

from schemas.home import HomeLayout
from tasks.lake import write_bytes_atomic, write_json_atomic

WEIGHTS_FILE = "weights.pt"
CARD_FILE = "model_card.json"
CHECK_INPUTS_FILE = "check_inputs.pt"  # a few real inputs of the version: int8's agreement gate runs on them
VERSION_DIR = re.compile(r"^v(\d+)$")


class ModelNotFoundError(LookupError):
    """A model named in the configuration is not in the store."""


def versions(folder: Path) -> list[int]:
    """The version numbers stored in a model's folder, ascending."""
    if not folder.is_dir():
        return []
    return sorted(
        int(m.group(1)) for p in folder.iterdir() if (m := VERSION_DIR.match(p.name)) and (p / CARD_FILE).exists()
    )


def version_folder(folder: Path, version: int) -> Path:
    """The folder of one stored version of a model (v1, v2, ...)."""
    return folder / f"v{version}"


def is_candidate(card: dict[str, Any]) -> bool:
    """Whether a card is a retrained version that was not promoted (only 'name@vN' loads it)."""
    return card.get("promotion", {}).get("promoted") is False


def in_use_version(folder: Path) -> int | None:
    """The version 'name' resolves to: the newest one that is not an unpromoted candidate (None when there is none).

    A retrain stores its comparison in the new version's card (key 'promotion'); versions trained by `breedwatch train`
    carry none, so a home without retrains resolves to its newest version as before."""
    for version in reversed(versions(folder)):
        if not is_candidate(json.loads((version_folder(folder, version) / CARD_FILE).read_text())):
            return version
    return None


def save_checkpoint(
    folder: Path, state: dict[str, Any], card: dict[str, Any], check_inputs: Any = None
) -> tuple[int, Path]:
    """Write the next version of a model: weights first, then its held-out check inputs (a tensor, when given), model
    card last (the card marks it complete)."""
    import torch  # here: the catalog's readers list model cards without torch

    version = (versions(folder) or [0])[-1] + 1
    target = version_folder(folder, version)
    for file, value in ((WEIGHTS_FILE, state), (CHECK_INPUTS_FILE, check_inputs)):
        if value is not None:
            buffer = io.BytesIO()
            torch.save(value, buffer)
            write_bytes_atomic(target / file, buffer.getvalue())
    write_json_atomic(target / CARD_FILE, {**card, "version": version})
    return version, target


def load_checkpoint(folder: Path, version: int | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load a stored version (default: the one in use, see in_use_version) as (state, card), never unpickling anything
    but tensors."""
    import torch

    available = versions(folder)
    if not available:
        raise ModelNotFoundError(f"no trained model in {folder}; train one first")
    chosen = in_use_version(folder) if version is None else version
    if chosen is None:
        raise ModelNotFoundError(f"every version in {folder} is an unpromoted candidate; name one as 'name@vN'")
    if chosen not in available:
        raise ModelNotFoundError(
            f"model version v{chosen} is not in {folder} (stored: {', '.join(f'v{v}' for v in available)})"
        )
    target = version_folder(folder, chosen)
    state = torch.load(target / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    card = json.loads((target / CARD_FILE).read_text())
    return state, card


def parse_model_ref(ref: str) -> tuple[str, int | None]:
    """Split 'name' or 'name@v3' into the name and an optional version."""
    name, _, version = ref.partition("@")
    if version and not VERSION_DIR.match(version):
        raise ValueError(f"model reference {ref!r} must look like 'name' or 'name@v3'")
    return name, int(version[1:]) if version else None


def load_detector(home: HomeLayout, ref: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fine-tuned P-, R- and O-Net state dicts and the model card of a stored detector."""
    name, version = parse_model_ref(ref)
    return load_checkpoint(home.detector_dir(name), version)


def stored_card(home: HomeLayout, kind: str, ref: str) -> dict[str, Any] | None:
    """The model card a reference resolves to ('name': the version in use), without loading weights; None when no such
    model is stored."""
    name, version = parse_model_ref(ref)
    available = versions(home.model_dir(kind, name))
    chosen = in_use_version(home.model_dir(kind, name)) if version is None else version
    if chosen is None or chosen not in available:
        return None
    return json.loads((version_folder(home.model_dir(kind, name), chosen) / CARD_FILE).read_text())


def load_model(home: HomeLayout, kind: str, ref: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """State dict and model card of a stored model of the given kind ('name' or 'name@vN')."""
    name, version = parse_model_ref(ref)
    return load_checkpoint(home.model_dir(kind, name), version)


def store_version(
    home: HomeLayout, kind: str, state: dict[str, Any], card: dict[str, Any], check_inputs: Any = None
) -> dict[str, Any]:
    """Store a trained model's state dict (and its held-out check inputs, when given) as the next version of its
    card's name; the card with version, path and label."""
    version, path = save_checkpoint(home.model_dir(kind, card["name"]), state, card, check_inputs)
    return {**card, "version": version, "path": str(path), "label": f"{card['name']}@v{version}"}


def stored_check_inputs(home: HomeLayout, kind: str, label: str) -> Any:
    """The check inputs stored with a version ('name@vN') when it was trained (a tensor), or None."""
    import torch

    name, version = parse_model_ref(label)
    file = version_folder(home.model_dir(kind, name), version) / CHECK_INPUTS_FILE
    return torch.load(file, map_location="cpu", weights_only=True) if file.is_file() else None


NO_MODEL_LABEL = "none"  # what a stage records as its model when none is stored


def label_in_use(home: HomeLayout, kind: str, ref: str) -> str:
    """The name@vN a model reference resolves to in the store, or 'none' when no such model is stored."""
    card = stored_card(home, kind, ref)
    return model_label(card) if card else NO_MODEL_LABEL


def model_label(card: dict[str, Any]) -> str:
    """The 'name@vN' every prediction row records as its model_version."""
    return f"{card['name']}@v{card['version']}"
