"""Backup and restore: a restored home answers every catalog view with the same rows, corrections included; a damaged
backup, one from a newer breedwatch and a non-empty target are refused before anything is written."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

import tasks.backup as backup_module
from flows.cli import app
from schemas.backup import MANIFEST_NAME
from schemas.config import Settings, load_settings
from schemas.home import HomeLayout
from schemas.tables import CORRECTIONS, MEDIA
from tasks.backup import BackupError, backup_home, restore_home
from tasks.catalog import refresh_views
from tasks.compaction import compact_tables
from tasks.home_version import HomeVersionError, open_home_for_writing
from tasks.lake import write_rows
from tasks.review import record_review, undo_last
from tasks.runs import save_run_config
from tests.review_home import DROP, FACES_P_MALE, media_id_of, write_review_home

TIMING = {"seconds_spent": 2.0, "keystrokes": 1}
# The station's own decision band, which the restored catalog must apply too.
STATION = {"gender": {"abstain_low": 0.3, "abstain_high": 0.7}}


@pytest.fixture()
def source(tmp_path: Path) -> HomeLayout:
    """A home with predictions, crops, keepers' corrections (one undone), a model, a run's configuration, one
    compacted table, a temp file of a write in flight and a hardware cache."""
    home = write_review_home(tmp_path / "home")
    open_home_for_writing(home)
    for key, action in (
        (f"face:{DROP}:{media_id_of(FACES_P_MALE[0][0])}-f0", "f"),
        ("animal::A02", "m"),
        (f"encounter:{DROP}:E01", "x"),
        ("animal::A01", "m"),
    ):
        record_review(home, key, action, "kim", TIMING, "2026-12-02", 0.05)
    undo_last(home, "kim")
    card = {"name": "panda-gender", "arch": "mini_xception", "input_size": 32, "metrics": {}}
    (home.model_dir("gender", "panda-gender") / "v1").mkdir(parents=True)
    (home.model_dir("gender", "panda-gender") / "v1" / "model_card.json").write_text(json.dumps(card))
    (home.model_dir("gender", "panda-gender") / "v1" / "weights.pt").write_bytes(b"\x80weights" * 100)
    station = Settings.model_validate({**STATION, "home": home.root})
    save_run_config(home, "20261202T020000Z-abcdef", station)
    compact_tables(home, [MEDIA])
    (home.lake / "faces" / f"drop={DROP}" / ".tmp-0123-part-faces.parquet.partial").write_bytes(b"half a part")
    home.execution_cache.parent.mkdir(parents=True)
    home.execution_cache.write_text("{}")
    refresh_views(home, station.view_thresholds())
    return home


def catalog_rows(home: HomeLayout) -> dict[str, list[tuple[Any, ...]]]:
    """Every view's and table's rows in the catalog, sorted, floats rounded, the home's own path taken out."""
    root = str(home.root.resolve())

    def plain(value: Any) -> Any:
        if isinstance(value, float):
            return round(value, 9)
        if isinstance(value, str):
            return value.replace(root, "<home>")
        if isinstance(value, list | tuple):
            return tuple(plain(item) for item in value)
        if isinstance(value, dict):
            return tuple(sorted((key, plain(item)) for key, item in value.items()))
        return value

    with duckdb.connect(str(home.catalog), read_only=True) as con:
        names = [row[0] for row in con.sql("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()]
        names += [row[0] for row in con.sql("SELECT table_name FROM duckdb_tables()").fetchall()]
        return {
            name: sorted((plain(row) for row in con.sql(f'SELECT * FROM "{name}"').fetchall()), key=repr)
            for name in names
        }


def test_a_restored_home_answers_every_view_with_the_same_rows(source: HomeLayout, tmp_path: Path) -> None:
    archive = tmp_path / "station.tar"
    manifest = backup_home(load_settings(None, home=source.root), archive)
    names = set(manifest.files)
    assert "home.json" in names
    assert any(name.startswith("lake/corrections/day=") for name in names)
    assert any(name.startswith("lake/crops/") for name in names) and "runs/20261202T020000Z-abcdef/config.toml" in names
    assert any("/compacted=" in name for name in names) and "models/gender/panda-gender/v1/weights.pt" in names
    assert not [n for n in names if ".partial" in n or n.startswith(("hardware/", "breedwatch.duckdb", "inbox/"))]
    assert manifest.took["corrections"].files == 5 and manifest.snapshot_attempts == 1
    assert manifest.home_version["tables"]["corrections"] == CORRECTIONS.version

    restored = HomeLayout(tmp_path / "restored")
    restore_home(archive, load_settings(None, home=restored.root))
    before, after = catalog_rows(source), catalog_rows(restored)
    assert sorted(after) == sorted(before)
    assert after == before
    compared = {name: len(rows) for name, rows in before.items()}
    assert compared["corrections"] == 5 and compared["live_corrections"] == 3 and compared["faces"] == 9
    assert sum(compared.values()) > 50 and sum(1 for n in compared.values() if n) >= 15, compared
    human = [row for row in after["animals"] if "human" in row]
    assert len(human) == 1, "A02's correction survives; A01's was undone"
    for name in (n for n in names if n.startswith("lake/crops/")):
        assert (restored.root / name).read_bytes() == (source.root / name).read_bytes()


def test_a_part_published_while_the_snapshot_is_taken_makes_it_start_again(
    source: HomeLayout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = backup_module.link_into
    late = source.part(MEDIA.name, MEDIA.partition, "d2", "ingest")

    def link_while_a_run_writes(path: Path, target: Path) -> Any:
        if not late.exists():
            write_rows(source, MEDIA, "d2", "ingest", [{"media_id": "m2", "drop_id": "d2", "path": "images/x.jpg"}])
        return real(path, target)

    monkeypatch.setattr(backup_module, "link_into", link_while_a_run_writes)
    manifest = backup_home(load_settings(None, home=source.root), tmp_path / "b.tar")
    assert manifest.snapshot_attempts == 2 and "lake/media/drop=d2/part-ingest.parquet" in manifest.files
    assert not list(source.root.glob(".backup-*")), "the snapshot folder is removed"


def flip_byte_of(archive: Path, name: str) -> None:
    """Flip one byte in the middle of a member's data, as bit rot would."""
    with tarfile.open(archive) as tar:
        member = tar.getmember(name)
    data = bytearray(archive.read_bytes())
    data[member.offset_data + member.size // 2] ^= 0x01
    archive.write_bytes(bytes(data))


def test_a_damaged_backup_is_refused_naming_the_file_and_nothing_is_written(source: HomeLayout, tmp_path: Path) -> None:
    archive = tmp_path / "station.tar"
    manifest = backup_home(load_settings(None, home=source.root), archive)
    correction = next(name for name in manifest.files if name.startswith("lake/corrections/"))
    flip_byte_of(archive, correction)
    target = tmp_path / "restored"
    with pytest.raises(BackupError, match=f"is damaged: {correction} does not match the SHA-256"):
        restore_home(archive, load_settings(None, home=target))
    assert not target.exists() or not [p for p in target.iterdir() if p.name != ".writer.lock"]


def rewrite_manifest(archive: Path, change: dict[str, Any]) -> None:
    """Rewrite an archive with its manifest's home_version updated (as a newer breedwatch would record it)."""
    with tarfile.open(archive) as tar:
        members = [(member, tar.extractfile(member).read()) for member in tar.getmembers()]
    with tarfile.open(archive, "w") as tar:
        for member, data in members:
            if member.name == MANIFEST_NAME:
                manifest = json.loads(data)
                manifest["home_version"]["tables"].update(change)
                data = json.dumps(manifest).encode()
                member.size = len(data)
            tar.addfile(member, io.BytesIO(data))


def test_a_backup_from_a_newer_schema_and_a_non_empty_home_are_refused(source: HomeLayout, tmp_path: Path) -> None:
    archive = tmp_path / "station.tar"
    backup_home(load_settings(None, home=source.root), archive)
    with pytest.raises(BackupError, match="is not empty"):
        restore_home(archive, load_settings(None, home=source.root))
    newer = tmp_path / "newer.tar"
    newer.write_bytes(archive.read_bytes())
    rewrite_manifest(newer, {"faces": 99})
    with pytest.raises(HomeVersionError, match=r"table faces v99 \(this code: v\d+\), newer than this breedwatch"):
        restore_home(newer, load_settings(None, home=tmp_path / "other"))
    assert not (tmp_path / "other").exists()


def test_the_commands_back_up_with_drops_and_restore_over_a_home_with_force(source: HomeLayout, tmp_path: Path) -> None:
    drop = source.root / "inbox" / "d9"
    drop.mkdir(parents=True)
    (drop / "animals.csv").write_text("animal_id,sex\nA01,female\n")
    runner = CliRunner()
    plain, with_drops = tmp_path / "plain.tar", tmp_path / "drops.tar"
    result = runner.invoke(app, ["backup", str(plain), "--home", str(source.root)])
    assert result.exit_code == 0, result.output
    assert "corrections: 5 files" in result.output
    result = runner.invoke(app, ["backup", str(with_drops), "--with-drops", "--home", str(source.root)])
    assert result.exit_code == 0, result.output and "drops: 1 files" in result.output
    with tarfile.open(plain) as tar:
        assert not [name for name in tar.getnames() if name.startswith("inbox/")]
    with tarfile.open(with_drops) as tar:
        assert "inbox/d9/animals.csv" in tar.getnames()

    target = tmp_path / "target"
    (target / "lake").mkdir(parents=True)
    result = runner.invoke(app, ["restore", str(with_drops), str(target)])
    assert result.exit_code == 1 and "is not empty" in result.output
    result = runner.invoke(app, ["restore", str(with_drops), str(target), "--force"])
    assert result.exit_code == 0, result.output
    assert (target / "inbox" / "d9" / "animals.csv").exists() and catalog_rows(HomeLayout(target)) == catalog_rows(
        source
    )
