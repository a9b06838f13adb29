"""Generated drops of known truth run through the real nightly pipeline, each in a home of its own that holds the
demo's trained models, and what the report said about each drop's male share (`breedwatch simulate coverage
--end-to-end`)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from models.coverage import DropCoverage
from schemas.home import HomeLayout
from tasks.catalog import query
from tasks.demo import OVERALL_RATIO_SQL, ensure_sample_drop
from tasks.sample_drop import read_truth_sexes

COVERAGE_FOLDER = "coverage"
DROP_SEED_OFFSET = 5000  # far from the seeds the demo's models were trained on (drop, +1000 archive, +2000 studbook)
ANIMALS_SQL = "SELECT animal_id, sex, n_faces FROM animals"


def link_or_copy(source: str, target: str) -> None:
    """Hard-link a file (the models are only read), or copy it where links are not possible."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


# The identity net is left out: the coverage is measured on the registered animals the report counts, whose truth
# the drop names; with it, faces of registered animals that it calls new would be counted as provisional
# individuals whose true sex this measurement cannot look up.
LEFT_OUT_KINDS = ("identity",)


def coverage_home(base: HomeLayout, index: int) -> HomeLayout:
    """A home for the index-th drop with the base home's trained models (but its identity net) and measured
    execution choices."""
    home = HomeLayout(base.root / COVERAGE_FOLDER / f"home-{index:03d}")
    if not home.models.exists():
        shutil.copytree(
            base.models,
            home.models,
            copy_function=link_or_copy,
            ignore=lambda folder, names: [n for n in names if Path(folder) == base.models and n in LEFT_OUT_KINDS],
        )
    if base.execution_cache.is_file() and not home.execution_cache.exists():
        home.execution_cache.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(base.execution_cache, home.execution_cache)
    return home


def share_execution_cache(home: HomeLayout, base: HomeLayout) -> None:
    """Keep the ways a drop's run measured in the base home, so the next drop's home reuses them (same machine)."""
    if home.execution_cache.is_file() and not base.execution_cache.exists():
        base.execution_cache.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(home.execution_cache, base.execution_cache)


def coverage_drop(base: HomeLayout, index: int, seed: int, animals: int, ready_marker: str = "") -> Path:
    """The index-th generated drop (written once, with the station's ready marker): a population the models never
    saw, with its truth under truth/."""
    drop_seed = seed + DROP_SEED_OFFSET + index
    path = base.root / COVERAGE_FOLDER / "drops" / f"sample-seed{drop_seed}-{animals}"
    ensure_sample_drop(path, drop_seed, animals, ready_marker)
    return path


def drop_coverage(home: HomeLayout, drop: Path) -> DropCoverage:
    """What the report of a home holding one drop says about its male share, beside that drop's truth."""
    truth = read_truth_sexes(drop)
    animals = query(home, ANIMALS_SQL).to_pylist()
    counted = [a["animal_id"] for a in animals if a["sex"] in ("male", "female")]
    detected = [a["animal_id"] for a in animals if (a["n_faces"] or 0) > 0]
    ratio = (query(home, OVERALL_RATIO_SQL, ["overall"]).to_pylist() or [{}])[0]
    return DropCoverage(
        drop=drop.name,
        counted=len(counted),
        counted_true_males=sum(truth.get(a) == "male" for a in counted),
        detected=len(detected),
        detected_true_males=sum(truth.get(a) == "male" for a in detected),
        corrected=ratio.get("corrected"),
        ci_low=ratio.get("corrected_ci_low"),
        ci_high=ratio.get("corrected_ci_high"),
        note=ratio.get("note"),
    )
