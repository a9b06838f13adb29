"""Work on a whole home outside the nightly flow: `breedwatch compact`."""

from __future__ import annotations

from schemas.config import Settings
from schemas.home import HomeLayout
from schemas.tables import LAKE_TABLES
from tasks.catalog import refresh_views
from tasks.compaction import Compacted, compact_tables
from tasks.home_version import open_home_for_writing
from tasks.lake import sweep_temp_files, writer_lock


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
        sweep_temp_files(home)
        done = compact_tables(home, [spec for spec in LAKE_TABLES if not tables or spec.name in tables])
        refresh_views(home, settings.view_thresholds())
    return done
