"""The command `breedwatch check --repair` prints for a damaged part, run as printed, rebuilds that part with the same
rows and re-runs only the stage that wrote it."""

from __future__ import annotations

import shlex
from pathlib import Path

from flows.nightly import nightly
from schemas.config import load_settings
from schemas.home import HomeLayout
from schemas.tables import FACES, MEDIA
from tasks.catalog import query
from tasks.lake import read_table
from tasks.maintenance import check_home
from tests.drops import write_small_drop
from tests.tasks.test_damaged_parts import flip_bytes


def rows_of(home: HomeLayout, spec) -> list[tuple]:
    """A table's rows without run ids, sorted."""
    return sorted(
        tuple((k, str(v)) for k, v in row.items() if k != "run_id") for row in read_table(home, spec).to_pylist()
    )


def test_the_printed_command_rebuilds_the_part_and_reruns_only_its_stage(tmp_path: Path) -> None:
    drop, home = write_small_drop(tmp_path / "inbox" / "d1"), tmp_path / "home"
    nightly(drops=[str(drop)], home=str(home))
    layout = HomeLayout(home)
    faces, media = rows_of(layout, FACES), rows_of(layout, MEDIA)
    assert faces and media
    part = layout.part(FACES.name, FACES.partition, "d1", "faces")
    flip_bytes(part)

    checked = check_home(load_settings(None, home=home), repair=True)
    advice = checked.set_aside[str(part)][1]
    command = shlex.split(advice.removeprefix("rebuild it with: "))
    assert command == ["breedwatch", "run", str(drop.resolve()), "--home", str(home)]
    again = nightly(drops=command[2:-2], home=command[-1])

    assert [again[stage][0]["status"] for stage in ("faces", "audio")] == ["detected", "unchanged"]
    assert again["drops"][0]["status"] == "unchanged"
    assert rows_of(layout, FACES) == faces and rows_of(layout, MEDIA) == media
    assert query(layout, "SELECT rebuilt FROM damaged_parts").column("rebuilt").to_pylist() == [True]
