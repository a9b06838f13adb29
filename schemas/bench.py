"""What `breedwatch bench` measures: the drop, the repeats and the model sizes (tasks/bench/ runs it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

QUICK_ANIMALS = 4
QUICK_NAIVE_LIMIT = 12


@dataclass(frozen=True)
class BenchOptions:
    """What to bench: drop size and seed, repeats, model sizes (defaults are the production nets), extra photos,
    frames kept, how many images, faces and segments the naive way is timed on (all when None; its rate is scaled to
    the drop), whether an untimed warm-up runs first, and how many times per repeat the audio stages and bound are
    timed."""

    animals: int = 12
    seed: int = 0
    repeat: int = 3
    gender_size: int = 448  # seed 000's input, models.gender.SEED_INPUT_SIZE
    cganet_filters: int = 128
    extra_images: Path | None = None
    frames: int | None = None
    naive_limit: int | None = None
    warmup: bool = True
    audio_rounds: int = 5
    placement: Path | None = None  # set by the bench: the home whose int8 cache every scratch home copies
