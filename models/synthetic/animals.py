"""Synthetic animals: sexes, which of them are registered, names and identity traits (males shifted on the
dimorphic ones)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

import numpy as np

Sex = Literal["female", "male"]
RGB = tuple[int, int, int]
NAME_SYLLABLES = (
    "Mei",
    "Bao",
    "Xin",
    "Le",
    "Hua",
    "Yuan",
    "Qing",
    "Ying",
    "Lun",
    "Tian",
    "Xiao",
    "Ya",
    "Fu",
    "Long",
    "Jing",
    "Shan",
    "Zhu",
    "An",
    "Ling",
    "Cheng",
)


@dataclass(frozen=True)
class TraitSpec:
    """Between-animal distribution of one identity trait; males shift by `male_shift_sd` standard deviations."""

    name: str
    mean: float
    sd: float
    male_shift_sd: float


TRAITS: tuple[TraitSpec, ...] = (
    TraitSpec("head_aspect", 1.15, 0.10, 1.0),
    TraitSpec("ear_spacing", 0.74, 0.09, 1.0),
    TraitSpec("patch_scale", 1.0, 0.20, 1.0),
    TraitSpec("ear_size", 0.34, 0.07, 0.9),
    TraitSpec("muzzle_scale", 1.0, 0.14, 0.8),
    TraitSpec("patch_elongation", 1.55, 0.12, 0.0),
    TraitSpec("patch_tilt_deg", 28.0, 6.0, 0.0),
    TraitSpec("patch_asymmetry", 0.0, 0.06, 0.0),
    TraitSpec("patch_spacing", 0.40, 0.03, 0.0),
    TraitSpec("voice_pitch", 1.0, 0.06, -0.5),
)


@dataclass(frozen=True)
class AnimalIdentity:
    """One animal: registry facts plus the stable appearance and voice parameters drawn once."""

    animal_id: str
    sex: Sex
    sex_labelled: bool
    name: str
    birth_date: date
    head_aspect: float
    ear_spacing: float
    patch_scale: float
    ear_size: float
    patch_elongation: float
    patch_tilt_deg: float
    patch_asymmetry: float
    patch_spacing: float
    muzzle_scale: float
    voice_pitch: float
    fur_tint: RGB
    marking_seed: int


def draw_sexes(rng: np.random.Generator, n: int) -> tuple[Sex, ...]:
    """True sexes of n animals, both sexes at least max(2, n/4) times."""
    floor = max(2, n // 4)
    n_male = int(np.clip(rng.binomial(n, 0.45), floor, n - floor))
    sexes: list[Sex] = ["male"] * n_male + ["female"] * (n - n_male)
    return tuple(sexes[i] for i in rng.permutation(n))


def draw_labelled(rng: np.random.Generator, sexes: tuple[Sex, ...], fraction: float = 0.6) -> tuple[bool, ...]:
    """Which animals have a registered sex: about `fraction` of each sex, never all of one."""
    labelled = [False] * len(sexes)
    for sex in ("female", "male"):
        members = [i for i, s in enumerate(sexes) if s == sex]
        k = min(len(members) - 1, max(1, round(fraction * len(members))))
        for i in rng.choice(members, size=k, replace=False):
            labelled[int(i)] = True
    return tuple(labelled)


def draw_names(rng: np.random.Generator, n: int) -> tuple[str, ...]:
    """Distinct two-syllable panda names."""
    pairs = [(a, b) for a in NAME_SYLLABLES for b in NAME_SYLLABLES if a != b]
    return tuple(f"{pairs[i][0]}{pairs[i][1].lower()}" for i in rng.choice(len(pairs), size=n, replace=False))


def draw_traits(rng: np.random.Generator, sex: Sex) -> dict[str, float]:
    """Identity traits of one animal (within 2.5 SD); sex moves the dimorphic ones by their effect size."""
    sign = 0.5 if sex == "male" else -0.5
    z = np.clip(rng.standard_normal(len(TRAITS)), -2.5, 2.5)
    return {t.name: round(t.mean + t.sd * (float(zi) + sign * t.male_shift_sd), 4) for t, zi in zip(TRAITS, z)}


def draw_identity(rng: np.random.Generator, animal_id: str, sex: Sex, sex_labelled: bool, name: str) -> AnimalIdentity:
    """One animal's birth date, fur tint, marking seed and identity traits, drawn in that order."""
    born = date(2024, 1, 1) - timedelta(days=int(rng.integers(2 * 365, 20 * 365)))
    white = int(rng.integers(228, 248))
    tint = (white, white - int(rng.integers(0, 9)), white - int(rng.integers(6, 26)))
    marking_seed = int(rng.integers(0, 2**31))
    return AnimalIdentity(
        animal_id=animal_id,
        sex=sex,
        sex_labelled=sex_labelled,
        name=name,
        birth_date=born,
        fur_tint=tint,
        marking_seed=marking_seed,
        **draw_traits(rng, sex),
    )


def draw_animals(rng: np.random.Generator, n: int) -> tuple[AnimalIdentity, ...]:
    """Draw n animals with neutral ids A01.., true sexes, a labelled subset and identity traits."""
    sexes = draw_sexes(rng, n)
    labelled = draw_labelled(rng, sexes)
    names = draw_names(rng, n)
    width = max(2, len(str(n)))
    return tuple(draw_identity(rng, f"A{i + 1:0{width}d}", sexes[i], labelled[i], names[i]) for i in range(n))


def draw_wild_animal(rng: np.random.Generator, number: int) -> AnimalIdentity:
    """The never-registered animal W<number>: no name, no registered sex, traits from the same distributions."""
    sex: Sex = "male" if rng.random() < 0.45 else "female"
    return draw_identity(rng, f"W{number:02d}", sex, False, "")
