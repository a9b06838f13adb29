"""The kill -9 harness on a small scale: a run killed inside the catalog refresh and at a random point, and a
correction's save killed mid-write, each end after the next run with the uninterrupted run's tables; and its checks
do see a duplicated part, a torn part and a changed row."""

from __future__ import annotations

import random
import shutil
from dataclasses import replace

import pytest
from prefect.settings import PREFECT_API_URL

from schemas.home import HomeLayout
from tasks.fault_kill import (
    CATALOG_REFRESH,
    CORRECTION_SAVE,
    ENDED_FIRST,
    KillPoint,
    Reference,
    differences,
    duplicate_keys,
    random_points,
    run_faults,
    snapshot,
    torn_files,
    write_inputs,
)


def small_points(reference: Reference) -> list[KillPoint]:
    """One random point, one inside the catalog refresh, one inside a correction's save."""
    return [
        *random_points(reference, 1, random.Random(0)),
        KillPoint("catalog refresh", CATALOG_REFRESH),
        KillPoint("correction save", CORRECTION_SAVE),
    ]


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory):
    """The harness run once for this module: the work folder, the reference and the outcomes."""
    work = tmp_path_factory.mktemp("faults")
    inputs = write_inputs(work / "inputs", drops=1, frames=2, keeper_photos=2)
    reference, outcomes = run_faults(work, inputs, small_points, PREFECT_API_URL.value())
    return work, reference, outcomes


def test_every_kill_ends_with_the_reference_tables(faults) -> None:
    _, reference, outcomes = faults
    assert [event.split()[0] for event in reference.events][:2] == ["run", "ingest"]
    for outcome in outcomes:
        assert outcome.ok, f"{outcome.point.name} (after {outcome.landed}): {outcome.problems}"
    landed = {outcome.point.name: outcome.landed for outcome in outcomes}
    assert landed["catalog refresh"] == CATALOG_REFRESH
    assert landed["correction save"].startswith("inside save")
    assert landed["random 1"] != ENDED_FIRST


def test_the_checks_see_duplicates_torn_parts_and_changed_rows(faults) -> None:
    work, reference, _ = faults
    home = HomeLayout(work / "home")  # the last scenario's home, identical to the reference
    assert differences(reference.snapshot, snapshot(home)) == [] and duplicate_keys(home) == {}
    faces = next(home.table_dir("faces").glob("drop=*/part-faces.parquet"))
    shutil.copyfile(faces, faces.with_name("part-again.parquet"))
    assert duplicate_keys(home)["faces"] > 0
    assert any(line.startswith("lake faces:") for line in differences(reference.snapshot, snapshot(home)))
    torn = faces.with_name("part-torn.parquet")
    torn.write_bytes(faces.read_bytes()[: faces.stat().st_size // 2])
    assert any("torn part" in line for line in torn_files(home, list(reference.snapshot.catalog)))


def test_a_changed_row_is_a_difference(faults) -> None:
    _, reference, _ = faults
    media = reference.snapshot.lake["media"]
    ok = next(i for i, row in enumerate(media) if '"status": "ok"' in row)
    changed = [row.replace('"status": "ok"', '"status": "rejected"') if i == ok else row for i, row in enumerate(media)]
    altered = replace(reference.snapshot, lake={**reference.snapshot.lake, "media": changed})
    assert changed != media
    assert differences(reference.snapshot, altered) == ["lake media: 1 rows missing, 1 extra"]
