"""Prepare `breedwatch demo`: the sample drop, a species detector trained on a separate sample archive, its config."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from schemas.config import Settings
from schemas.home import HomeLayout
from tasks.detector_training import train_detector_on_sample_drop
from tasks.lake import write_bytes_atomic
from tasks.model_store import versions
from tasks.sample_drop import write_sample_drop

DEMO_DETECTOR = "mtcnn-panda"
ARCHIVE_SEED_OFFSET = 1000
DEMO_CONFIG = "demo.toml"


@dataclass(frozen=True)
class DemoPlan:
    """What the demo will run: its drop, its configuration file and what was prepared for it."""

    drop: Path
    config: Path
    notes: list[str]


def ensure_sample_drop(path: Path, seed: int, animals: int) -> str | None:
    """Write a sample drop once; say so when it was written."""
    if path.exists():
        return None
    return f"generated sample drop {path}: {write_sample_drop(path, seed=seed, n_animals=animals)}"


def ensure_demo_detector(home: HomeLayout, archive: Path) -> str | None:
    """Train the demo's species detector on an annotated sample archive unless one is stored."""
    if versions(home.detector_dir(DEMO_DETECTOR)):
        return None
    card = train_detector_on_sample_drop(home, archive, DEMO_DETECTOR)
    metrics = card["metrics"]
    return (f"trained {DEMO_DETECTOR}@v{card['version']} on {archive} in {card['train_seconds']:.0f} s: held-out recall "
            f"{metrics['recall']:.2f}, precision {metrics['precision']:.2f}")


def write_demo_config(home: HomeLayout, user_config: Path | None) -> Path:
    """The user's configuration (if any) with the demo's trained detector selected."""
    data = tomllib.loads(user_config.read_text()) if user_config else {}
    data.setdefault("faces", {})["detector"] = DEMO_DETECTOR
    path = home.root / DEMO_CONFIG
    write_bytes_atomic(path, tomli_w.dumps(data).encode())
    return path


def prepare_demo(settings: Settings, user_config: Path | None, seed: int, animals: int) -> DemoPlan:
    """Generate the demo drop and the detector archive, train the detector once, write the demo config."""
    home = HomeLayout(settings.home)
    drop = settings.inbox_dir / f"sample-seed{seed}-{animals}"
    archive = home.root / "training" / f"detector-archive-seed{seed + ARCHIVE_SEED_OFFSET}"
    notes = [ensure_sample_drop(drop, seed, animals), ensure_sample_drop(archive, seed + ARCHIVE_SEED_OFFSET, animals)]
    notes.append(ensure_demo_detector(home, archive))
    return DemoPlan(drop, write_demo_config(home, user_config), [note for note in notes if note])
