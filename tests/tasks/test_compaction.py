"""Compaction: identical views before and after, per-drop re-runs still work, idempotent, safe at a kill."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.nightly import nightly
from schemas.config import load_settings
from schemas.home import HomeLayout
from schemas.tables import LAKE_TABLES, MEDIA
from tasks.catalog import DERIVED_VIEWS, query, refresh_views
from tasks.compaction import compacted_files, compacted_keys, own_part_count, own_parts
from tasks.lake import read_table
from tasks.maintenance import compact_home
from tests.drops import write_small_drop

DROPS = ("d1", "d2", "d3")


def view_rows(home: HomeLayout) -> dict[str, list[str]]:
    """Every lake and derived view's rows as sorted strings (which run wrote a row aside: two homes' runs differ)."""
    rows = {}
    for name in [spec.name for spec in LAKE_TABLES if spec.name != "runs"] + list(DERIVED_VIEWS):
        found = query(home, f"SELECT * FROM {name}").to_pylist()
        rows[name] = sorted(repr(sorted((k, v) for k, v in row.items() if k != "run_id")) for row in found)
    return rows


def refresh(home: HomeLayout) -> None:
    """Recreate the catalog's views for a home at a new place."""
    refresh_views(home, load_settings(None, home=home.root).view_thresholds())


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Three small drops run once into a home (kept as the original; tests work on copies)."""
    root = tmp_path_factory.mktemp("compaction")
    drops = [write_small_drop(root / "inbox" / name, seed=index) for index, name in enumerate(DROPS)]
    nightly(drops=[str(drop) for drop in drops], home=str(root / "home"))
    return root / "inbox", root / "home"


def copy_home(base: tuple[Path, Path], target: Path) -> HomeLayout:
    """A copy of the base home with its views pointing at the copy."""
    shutil.copytree(base[1], target)
    home = HomeLayout(target)
    refresh(home)
    return home


def test_compaction_keeps_every_view_identical_and_is_idempotent(base, tmp_path):
    home = copy_home(base, tmp_path / "home")
    before = view_rows(home)
    tables_before = {spec.name: read_table(home, spec).num_rows for spec in LAKE_TABLES}
    done = compact_home(load_settings(None, home=home.root))
    assert sum(result.parts for result in done) > 30
    assert all(own_part_count(home, spec) == 0 for spec in LAKE_TABLES)
    assert set(compacted_keys(home, MEDIA)) == {f"drop={name}" for name in DROPS}
    assert view_rows(home) == before
    assert {spec.name: read_table(home, spec).num_rows for spec in LAKE_TABLES} == tables_before
    files = {path: path.stat().st_mtime_ns for spec in LAKE_TABLES for path in compacted_files(home, spec)}
    again = compact_home(load_settings(None, home=home.root))
    assert sum(result.parts for result in again) == 0
    assert {path: path.stat().st_mtime_ns for spec in LAKE_TABLES for path in compacted_files(home, spec)} == files
    assert view_rows(home) == before


def test_a_rerun_of_one_drop_after_compaction_matches_one_without(base, tmp_path):
    inbox = base[0]
    plain, compacted = copy_home(base, tmp_path / "plain"), copy_home(base, tmp_path / "compacted")
    compact_home(load_settings(None, home=compacted.root))
    changed = tmp_path / "d2"
    shutil.copytree(inbox / "d2", changed)
    (changed / "images" / "cam01" / "garbled.jpg").unlink()
    for home in (plain, compacted):
        for marker in home.state.glob("drop=d2/*.json"):  # as if d2 had been ingested from the changed folder
            marker.write_text(marker.read_text().replace(str(inbox / "d2"), str(changed)))
        summary = nightly(drops=[str(changed)], home=str(home.root))
        assert [(d["drop_id"], d["status"]) for d in summary["drops"]] == [("d2", "ingested")]
    assert view_rows(compacted) == view_rows(plain)
    media = query(compacted, "SELECT count(*) AS n, count(DISTINCT (drop_id, media_id)) AS k FROM media").to_pylist()
    assert media[0]["n"] == media[0]["k"]
    assert query(compacted, "SELECT count(*) AS n FROM rejects").column("n")[0].as_py() == 2  # d1's and d3's
    assert "drop=d2" not in compacted_keys(compacted, MEDIA) and "drop=d2" in own_parts(compacted, MEDIA)
    compact_home(load_settings(None, home=compacted.root))  # and it goes back in
    assert "drop=d2" in compacted_keys(compacted, MEDIA)
    assert view_rows(compacted) == view_rows(plain)


def test_own_parts_left_by_a_kill_after_the_switch_stay_hidden_and_are_swept(base, tmp_path):
    home = copy_home(base, tmp_path / "home")
    before = view_rows(home)
    saved = tmp_path / "saved"
    shutil.copytree(home.lake / "media" / "drop=d1", saved)
    compact_home(load_settings(None, home=home.root), ["media"])
    shutil.copytree(saved, home.lake / "media" / "drop=d1")  # killed before deleting the merged parts
    assert view_rows(home) == before and read_table(home, MEDIA).num_rows == len(before["media"])
    compact_home(load_settings(None, home=home.root), ["media"])
    assert not (home.lake / "media" / "drop=d1").exists()
    assert view_rows(home) == before


def test_the_nightly_run_compacts_past_the_threshold(base, tmp_path, monkeypatch):
    plain, home = copy_home(base, tmp_path / "plain"), copy_home(base, tmp_path / "home")
    write_small_drop(tmp_path / "d4", seed=4)
    monkeypatch.setenv("BREEDWATCH_LAKE__COMPACT_AFTER_PARTS", "0")
    nightly(drops=[str(tmp_path / "d4")], home=str(plain.root))
    monkeypatch.setenv("BREEDWATCH_LAKE__COMPACT_AFTER_PARTS", "2")
    summary = nightly(drops=[str(tmp_path / "d4")], home=str(home.root))
    assert set(compacted_keys(home, MEDIA)) == {f"drop={name}" for name in (*DROPS, "d4")}
    assert own_part_count(plain, MEDIA) == 4 and not compacted_files(plain, MEDIA)
    assert list(own_parts(home, next(s for s in LAKE_TABLES if s.name == "runs"))) == [f"run={summary['run_id']}"]
    assert view_rows(home) == view_rows(plain)


def test_the_compact_command(base, tmp_path):
    home = copy_home(base, tmp_path / "home")
    runner = CliRunner()
    first = runner.invoke(app, ["compact", "--home", str(home.root)])
    assert first.exit_code == 0 and "media: 3 parts of 3 keys merged into 1 files" in first.output
    assert "nothing to compact" in runner.invoke(app, ["compact", "--home", str(home.root)]).output
    wrong = runner.invoke(app, ["compact", "--home", str(home.root), "--table", "nope"])
    assert wrong.exit_code == 1 and "no lake table named nope" in wrong.output


def test_corrections_are_never_compacted(tmp_path) -> None:
    """Keepers append corrections while a run compacts: a compacted day would hide a later correction, so the table is
    left alone by compaction and refused by name."""
    from schemas.config import Settings
    from schemas.home import HomeLayout
    from schemas.tables import CORRECTIONS, LAKE_TABLES
    from tasks.compaction import compact_table, compact_tables
    from tasks.lake import write_rows
    from tasks.maintenance import compact_home

    home = HomeLayout(tmp_path / "home")
    part = write_rows(home, CORRECTIONS, "2026-12-02", "c1", [{"correction_id": "c1", "action": "set"}])
    assert compact_tables(home, [CORRECTIONS]) == [] and part.exists()
    with pytest.raises(ValueError, match="never compacted"):
        compact_table(home, CORRECTIONS)
    with pytest.raises(ValueError, match="corrections is never compacted"):
        compact_home(Settings(home=home.root), ["corrections"])
    # and identity_matches: one part for the whole home, rewritten whole, with no drop partitions to merge
    assert [spec.name for spec in LAKE_TABLES if not spec.compactable] == ["corrections", "identity_matches"]
