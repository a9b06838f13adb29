"""Past days' corrections are merged into one part a day (the review app reads a file a day, not one per correction);
today's are left alone, nothing is lost or doubled, and a merge killed half-way leaves each correction counted once."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq

from schemas.home import HomeLayout
from schemas.tables import CORRECTIONS
from tasks.catalog import query
from tasks.compaction import DAY_PART, merge_past_corrections
from tasks.lake import read_part, write_rows
from tests.review_home import write_review_home

DAYS = ("2026-11-30", "2026-12-01", "2026-12-02")  # the last one is "today"


def save(home: HomeLayout, day: str, index: int) -> None:
    """One correction saved as the review app saves it: a part of its own under its UTC day."""
    created = datetime.fromisoformat(day).replace(hour=10, minute=index, tzinfo=UTC)
    row = {
        "correction_id": f"{day}-{index}",
        "action": "set",
        "target_kind": "animal",
        "target_id": f"A{index:02d}",
        "drop_id": "d1",
        "field": "sex",
        "human_value": "male" if index % 2 else "female",
        "reviewer": "kim",
        "created_at": created,
    }
    write_rows(home, CORRECTIONS, day, row["correction_id"], [row])


def live(home: HomeLayout) -> list[tuple]:
    """Every live correction's id and value, sorted."""
    rows = query(home, "SELECT correction_id, human_value FROM live_corrections ORDER BY correction_id").to_pylist()
    return [(r["correction_id"], r["human_value"]) for r in rows]


def parts(home: HomeLayout, day: str) -> list[str]:
    """The part files of one day's corrections."""
    return sorted(p.name for p in (home.table_dir("corrections") / f"day={day}").glob("part-*.parquet"))


def test_past_days_become_one_part_each_and_every_correction_stays(tmp_path: Path) -> None:
    home = write_review_home(tmp_path / "home")
    for day in DAYS:
        for index in range(4):
            save(home, day, index)
    before = live(home)
    assert len(before) == 12
    assert merge_past_corrections(home, today=DAYS[-1]) == 2
    assert parts(home, DAYS[0]) == parts(home, DAYS[1]) == [f"part-{DAY_PART}.parquet"]
    assert len(parts(home, DAYS[-1])) == 4, "today's parts are the review app's: left alone"
    assert live(home) == before
    assert merge_past_corrections(home, today=DAYS[-1]) == 0, "nothing left to merge"
    save(home, DAYS[0], 9)  # a late part beside a merged day is merged in the next time
    assert merge_past_corrections(home, today=DAYS[-1]) == 1 and parts(home, DAYS[0]) == ["part-day.parquet"]
    assert len(live(home)) == 13


def test_a_merge_killed_before_removing_its_parts_counts_each_correction_once(tmp_path: Path) -> None:
    home = write_review_home(tmp_path / "home")
    for index in range(3):
        save(home, DAYS[0], index)
    folder = home.table_dir("corrections") / f"day={DAYS[0]}"
    merged = [row for part in sorted(folder.glob("part-*.parquet")) for row in read_part(part, CORRECTIONS).to_pylist()]
    write_rows(home, CORRECTIONS, DAYS[0], DAY_PART, merged)  # the merged part written, the singles not yet removed
    assert query(home, "SELECT count(*) AS n FROM corrections").to_pylist() == [{"n": 6}]
    assert len(live(home)) == 3
    assert merge_past_corrections(home, today=DAYS[-1]) == 1
    assert parts(home, DAYS[0]) == ["part-day.parquet"] and pq.read_table(folder / "part-day.parquet").num_rows == 3
    assert query(home, "SELECT count(*) AS n FROM corrections").to_pylist() == [{"n": 3}]


def test_past_months_become_one_part_each_and_this_month_keeps_its_days(tmp_path: Path) -> None:
    home = write_review_home(tmp_path / "home")
    days = ("2026-10-30", "2026-10-31", "2026-11-01", "2026-11-15", "2026-12-01", "2026-12-02")
    for day in days:
        for index in range(2):
            save(home, day, index)
    before = live(home)
    assert merge_past_corrections(home, today="2026-12-02") == 5 + 2, "five past days, then October and November"
    folders = sorted(p.name for p in home.table_dir("corrections").glob("day=*"))
    assert folders == ["day=2026-10", "day=2026-11", "day=2026-12-01", "day=2026-12-02"]
    assert parts(home, "2026-10") == parts(home, "2026-11") == ["part-month.parquet"]
    assert parts(home, "2026-12-01") == ["part-day.parquet"] and len(parts(home, "2026-12-02")) == 2
    assert live(home) == before
    assert merge_past_corrections(home, today="2026-12-02") == 0, "nothing left to merge"
