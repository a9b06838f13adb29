"""A damaged part (flipped bytes): `breedwatch check` names the file and the command that rebuilds it, --repair sets
it aside so the rest of the catalog answers, and the damaged_parts table says when it has been rebuilt."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from flows.cli import app
from schemas.config import load_settings
from schemas.home import HomeLayout
from schemas.tables import FACES, GENDER_PREDICTIONS
from tasks.catalog import query, refresh_views
from tasks.lake import read_marker, write_marker, write_rows
from tasks.maintenance import check_home
from tasks.part_check import DamagedPartError, find_damaged
from tasks.review import record_review
from tests.review_home import DROP, FACES_P_MALE, face_rows, media_id_of, write_review_home

SOURCE = "/srv/inbox/d1"


@pytest.fixture()
def home(tmp_path: Path) -> HomeLayout:
    """The review home, with the commit markers a run leaves (the ingest marker records the drop's folder)."""
    layout = write_review_home(tmp_path / "home")
    write_marker(layout, DROP, "ingest", {"fingerprint": "i1", "source": SOURCE, "counts": {}, "run_id": "r1"})
    write_marker(layout, DROP, "faces", {"fingerprint": "f1", "counts": {"faces": 9}, "run_id": "r1"})
    return layout


def flip_bytes(path: Path) -> None:
    """Flip two bytes at the end of the largest column chunk, inside its last page's data, as bit rot would (page
    headers and the footer are left whole, so only the page's CRC can tell)."""
    group = pq.read_metadata(path).row_group(0)
    chunk = max((group.column(i) for i in range(group.num_columns)), key=lambda c: c.total_compressed_size)
    end = (chunk.dictionary_page_offset or chunk.data_page_offset) + chunk.total_compressed_size
    data = bytearray(path.read_bytes())
    data[end - 3] ^= 0xFF
    data[end - 2] ^= 0xFF
    path.write_bytes(bytes(data))


def count(home: HomeLayout, view: str) -> int:
    """Rows of one catalog view."""
    return query(home, f"SELECT count(*) AS n FROM {view}").column("n")[0].as_py()


def test_check_names_the_damaged_part_and_the_command_and_repair_keeps_the_catalog_answering(
    home: HomeLayout,
) -> None:
    part = home.part(FACES.name, FACES.partition, DROP, "faces")
    assert find_damaged(home) == [], "every part written here reads back whole"
    flip_bytes(part)
    [damaged] = find_damaged(home)
    flag = f"--home {home.root}"
    assert damaged.path == str(part) and damaged.stages == [(DROP, "faces")]
    assert "CRC checksum verification failed" in damaged.reason
    assert damaged.rebuild == f"rebuild it with: breedwatch check --repair {flag} && breedwatch run {SOURCE} {flag}"

    settings = load_settings(None, home=home.root)
    checked = check_home(settings, repair=True)
    target, advice = checked.set_aside[str(part)]
    assert not part.exists() and target.parent == home.damaged / FACES.name / f"drop={DROP}" and target.exists()
    assert advice == f"rebuild it with: breedwatch run {SOURCE} {flag}"
    assert read_marker(home, DROP, "faces")["fingerprint"].startswith("damaged part set aside")
    assert read_marker(home, DROP, "ingest")["fingerprint"] == "i1", "only the stage that wrote the part re-runs"
    assert (count(home, "faces"), count(home, "media"), count(home, "gender_predictions")) == (0, 9, 9)
    assert count(home, "animals") == 2 and count(home, "gender_ratio") > 0
    health = query(home, "SELECT path, table_name, rebuild, rebuilt FROM damaged_parts").to_pylist()
    assert health == [{"path": str(part), "table_name": "faces", "rebuild": advice, "rebuilt": False}]

    write_rows(home, FACES, DROP, "faces", face_rows(home))  # what `breedwatch run` does for that stage
    refresh_views(home, settings.view_thresholds())
    assert count(home, "faces") == 9
    assert query(home, "SELECT rebuilt FROM damaged_parts").column("rebuilt").to_pylist() == [True]
    assert check_home(settings).damaged == []


def test_a_damaged_correction_is_restored_from_a_backup_and_a_runs_part_is_only_history(home: HomeLayout) -> None:
    key = f"face:{DROP}:{media_id_of(FACES_P_MALE[0][0])}-f0"
    record_review(home, key, "f", "kim", {"seconds_spent": 1.0, "keystrokes": 1}, "2026-12-02", 0.05)
    [correction] = list((home.lake / "corrections").glob("day=*/part-*.parquet"))
    flip_bytes(correction)
    [damaged] = find_damaged(home)
    assert damaged.path == str(correction) and damaged.stages == []
    assert "no run can write again: restore a backup" in damaged.rebuild
    assert f"copy OTHER/lake/corrections/{correction.parent.name}/{correction.name} back" in damaged.rebuild


def test_a_query_that_meets_an_unreadable_part_names_it_and_the_command(home: HomeLayout) -> None:
    part = home.part(GENDER_PREDICTIONS.name, GENDER_PREDICTIONS.partition, DROP, "gender")
    part.write_bytes(part.read_bytes()[:-40])  # the footer is cut: DuckDB itself cannot read it
    with pytest.raises(DamagedPartError) as caught:
        query(home, "SELECT count(*) FROM gender_predictions")
    assert str(caught.value).startswith(f"The lake part {part} could not be read (")
    assert str(caught.value).endswith(
        f"run breedwatch check --home {home.root} to list the damaged parts and the command that rebuilds each."
    )
    assert count(home, "media") == 9, "views that do not read the part still answer"

    runner = CliRunner()
    listed = runner.invoke(app, ["check", "--home", str(home.root)])
    assert listed.exit_code == 1 and f"{part} is damaged" in listed.output and "1 damaged" in listed.output
    repaired = runner.invoke(app, ["check", "--repair", "--home", str(home.root)])
    assert repaired.exit_code == 0 and "set aside as" in repaired.output
    assert count(home, "gender_predictions") == 0 and count(home, "animals") == 2
