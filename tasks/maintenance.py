"""Work on a whole home outside the nightly flow: `breedwatch compact` and `breedwatch check`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from schemas.config import Settings
from schemas.home import HomeLayout
from schemas.tables import LAKE_TABLES
from tasks.catalog import refresh_views
from tasks.compaction import Compacted, compact_tables, merge_past_corrections
from tasks.home_version import check_home_version, open_home_for_writing
from tasks.lake import writer_lock
from tasks.part_check import DamagedPart, find_damaged, lake_parts, rebuild_advice, set_aside
from tasks.runs import recorded_runs, sweep_killed_writes


def compact_home(settings: Settings, tables: list[str] | None = None) -> list[Compacted]:
    """Compact the given tables (all by default) as the home's one writer, then refresh the catalog's views."""
    home = HomeLayout(settings.home)
    unknown = sorted(set(tables or []) - {spec.name for spec in LAKE_TABLES})
    if unknown:
        raise ValueError(f"no lake table named {', '.join(unknown)} (tables: {', '.join(s.name for s in LAKE_TABLES)})")
    kept = sorted(spec.name for spec in LAKE_TABLES if not spec.compactable and spec.name in (tables or []))
    if kept:
        raise ValueError(
            f"the lake table {', '.join(kept)} is never compacted: keepers append to it while runs compact"
        )
    with writer_lock(home):
        open_home_for_writing(home)
        sweep_killed_writes(home, recorded_runs(home))
        done = compact_tables(home, [spec for spec in LAKE_TABLES if not tables or spec.name in tables])
        merge_past_corrections(home)
        refresh_views(home, settings.view_thresholds())
    return done


@dataclass(frozen=True)
class Checked:
    """What `breedwatch check` found: how many parts it read, the damaged ones, and where those set aside went with
    the command that now rebuilds each."""

    parts: int
    damaged: list[DamagedPart]
    set_aside: dict[str, tuple[Path, str]]


def check_home(settings: Settings, repair: bool = False) -> Checked:
    """Read every lake part back whole; with repair, set the damaged ones aside (as the home's one writer), mark their
    stages stale and refresh the catalog, so every view answers without them until a run rebuilds them."""
    home = HomeLayout(settings.home)
    check_home_version(home)
    parts = lake_parts(home)
    damaged = find_damaged(home, parts)
    moved: dict[str, tuple[Path, str]] = {}
    if repair and damaged:
        with writer_lock(home):
            for part in damaged:
                target = set_aside(home, part)
                moved[part.path] = (target, rebuild_advice(home, Path(part.path), part.stages, set_aside=True))
            refresh_views(home, settings.view_thresholds())
    return Checked(len(parts), damaged, moved)
