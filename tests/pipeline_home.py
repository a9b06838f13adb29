"""A small drop with images, keeper faces and a recording with its Raven table, and tiny stored models, so every
per-drop stage (faces, gender, segments, mating) does real work in tests."""

from __future__ import annotations

from pathlib import Path

import torch

from models.gender import build_gender_net
from models.mating_training import MatingTrainSettings, build_mating_model
from schemas.home import HomeLayout
from tasks.model_store import save_checkpoint
from tests.drops import write_small_drop

RAVEN = (
    "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\n"
    "1\tSpectrogram 1\t1\t0.2\t1.4\t100\t4000\n2\tSpectrogram 1\t1\t1.5\t2.9\t100\t4000\n"
)
CONFIG = "[faces]\nmin_sharpness = 0\n[gender]\ngradcam_faces = 1\nloader_workers = 0\n"
# The nets' way fixed: two homes measure apart and may choose differently, and bf16 or another batch size changes the
# last bits of a probability.
PINNED_CONFIG = CONFIG.replace(
    "[gender]\n", '[gender]\nprecision = "fp32"\nlayout = "channels_last"\ncpu_batch_size = 8\n'
) + ('[mating]\nprecision = "fp32"\nlayout = "channels_last"\nbatch_size = 64\n')


def write_staged_drop(root: Path, seed: int = 0) -> Path:
    """write_small_drop plus a Raven table for its recording (two calls)."""
    drop = write_small_drop(root, seed=seed)
    (drop / "audio" / "E01.selections.txt").write_text(RAVEN)
    return drop


def store_gender_model(layout: HomeLayout, seed: int) -> str:
    """Store a new version of a tiny random mini-Xception as 'panda-gender'; its name@vN."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_gender_net("mini_xception", 32)
    card = {"name": "panda-gender", "arch": "mini_xception", "input_size": 32}
    version, _ = save_checkpoint(layout.model_dir("gender", "panda-gender"), model.state_dict(), card)
    return f"panda-gender@v{version}"


def store_mating_model(layout: HomeLayout, seed: int) -> str:
    """Store a new version of a tiny random CGANet as 'cganet'; its name@vN."""
    model = build_mating_model(MatingTrainSettings(filters=4, hidden=4), seed)
    version, _ = save_checkpoint(
        layout.model_dir("mating", "cganet"), model.state_dict(), {"name": "cganet", "temperature": 1.0}
    )
    return f"cganet@v{version}"


def staged_home(root: Path) -> tuple[Path, Path, Path]:
    """(drop, home, config): the drop, a home holding both tiny models, and the test configuration."""
    drop, home, config = write_staged_drop(root / "inbox" / "d1"), root / "home", root / "config.toml"
    config.write_text(CONFIG)
    layout = HomeLayout(home)
    store_gender_model(layout, 0)
    store_mating_model(layout, 0)
    return drop, home, config
