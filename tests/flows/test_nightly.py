"""The nightly flow end to end on small generated drops: tables, catalog, report, idempotency."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
from PIL import Image

from flows.nightly import nightly
from schemas.home import HomeLayout
from tasks.catalog import query
from tests.drops import write_small_drop

DATA_TABLES = ("media", "rejects", "animal_manifest", "encounter_manifest", "drops")


def table_counts(home: Path) -> dict[str, int]:
    """Rows per data table in the catalog."""
    layout = HomeLayout(home)
    return {name: query(layout, f"SELECT count(*) AS n FROM {name}").column("n")[0].as_py() for name in DATA_TABLES}


def part_mtimes(home: Path) -> dict[str, int]:
    """Modification time of every Parquet part in the lake."""
    return {str(p): p.stat().st_mtime_ns for p in (home / "lake").rglob("part-*.parquet")}


def test_nightly_ingests_catalogues_and_reports(tmp_path):
    drop = write_small_drop(tmp_path / "inbox" / "2026-03-04_site")
    summary = nightly(drops=[str(drop)], home=str(tmp_path / "home"))
    layout = HomeLayout(tmp_path / "home")
    assert summary["drops"][0]["status"] == "ingested"
    assert summary["counts"]["images"] == 6 and summary["counts"]["audio"] == 1 and summary["counts"]["rejected"] == 1
    kinds = query(layout, "SELECT kind, status, count(*) AS n FROM media GROUP BY ALL ORDER BY ALL").to_pylist()
    assert kinds == [
        {"kind": "audio", "status": "ok", "n": 1},
        {"kind": "image", "status": "ok", "n": 6},
        {"kind": "image", "status": "rejected", "n": 1},
    ]
    frame = query(layout, "SELECT * FROM media WHERE path = ?", ["images/cam01/IMG_0000.JPG"]).to_pylist()[0]
    assert frame["camera_make"] == "RECONYX" and frame["site"] == "Test Station"
    assert frame["captured_at"].isoformat() == "2026-03-04T13:00:00+00:00"  # 21:00 in Asia/Shanghai
    rows = query(layout, "SELECT path, animal_id FROM media WHERE kind = 'image'").to_pylist()
    animals = {row["path"]: row["animal_id"] for row in rows}
    assert animals["faces/A01/f1.jpg"] == "A01" and animals["images/A02/p1.jpg"] == "A02"
    assert animals["images/cam01/IMG_0000.JPG"] is None
    recording = query(layout, "SELECT captured_at, channels, sample_rate FROM media WHERE kind = 'audio'").to_pylist()[
        0
    ]
    assert recording["channels"] == 2 and recording["sample_rate"] == 44_100
    assert recording["captured_at"].isoformat() == "2026-03-04T13:00:00+00:00"  # from encounters.csv
    (reject,) = query(layout, "SELECT path, stage, reason, run_id FROM rejects").to_pylist()
    assert reject["path"] == "images/cam01/garbled.jpg" and reject["run_id"] == summary["run_id"]
    (run,) = query(layout, "SELECT * FROM runs").to_pylist()
    assert run["status"] == "completed" and dict(run["counts"])["images"] == 6
    assert (layout.run_dir(summary["run_id"]) / "config.toml").is_file()
    html = Path(summary["report"]).read_text()
    assert "garbled.jpg" in html and "2026-03-04_site" in html


def test_rerun_adds_no_rows_and_repeats_no_work(tmp_path):
    drop = write_small_drop(tmp_path / "inbox" / "d1")
    home = tmp_path / "home"
    nightly(drops=[str(drop)], home=str(home))
    counts, mtimes = table_counts(home), part_mtimes(home)
    again = nightly(drops=[str(drop)], home=str(home))
    assert again["drops"][0]["status"] == "unchanged"
    assert table_counts(home) == counts
    assert {k: v for k, v in part_mtimes(home).items() if "/runs/" not in k} == {
        k: v for k, v in mtimes.items() if "/runs/" not in k
    }
    runs = query(HomeLayout(home), "SELECT status FROM runs").column("status").to_pylist()
    assert runs == ["completed", "completed"]


def test_inbox_mode_picks_only_new_or_changed_drops(tmp_path):
    inbox = tmp_path / "inbox"
    write_small_drop(inbox / "d1")
    config = tmp_path / "c.toml"
    config.write_text(f'inbox = "{inbox}"\n')
    first = nightly(home=str(tmp_path / "home"), config_file=str(config))
    assert [d["drop_id"] for d in first["drops"]] == ["d1"]
    write_small_drop(inbox / "d2", seed=1)
    second = nightly(home=str(tmp_path / "home"), config_file=str(config))
    assert [d["drop_id"] for d in second["drops"]] == ["d2"]
    (inbox / "d1" / "images" / "cam01" / "garbled.jpg").unlink()
    third = nightly(home=str(tmp_path / "home"), config_file=str(config))
    assert [(d["drop_id"], d["status"]) for d in third["drops"]] == [("d1", "ingested")]
    assert table_counts(tmp_path / "home")["rejects"] == 1  # d2's garbled file; d1's was replaced with its drop


def test_bad_manifest_stops_only_that_drop(tmp_path):
    good = write_small_drop(tmp_path / "inbox" / "good")
    bad = write_small_drop(tmp_path / "inbox" / "bad", seed=2)
    (bad / "animals.csv").write_text("animal_id,sex\nA01,female\nA02,stallion\n")
    summary = nightly(drops=[str(good), str(bad)], home=str(tmp_path / "home"))
    by_drop = {d["drop_id"]: d for d in summary["drops"]}
    assert by_drop["good"]["status"] == "ingested"
    assert by_drop["bad"]["status"] == "failed"
    assert "animals.csv line 3 field 'sex'" in by_drop["bad"]["message"]
    layout = HomeLayout(tmp_path / "home")
    assert query(layout, "SELECT DISTINCT drop_id FROM media").column("drop_id").to_pylist() == ["good"]
    (reject,) = query(layout, "SELECT * FROM rejects WHERE drop_id = 'bad'").to_pylist()
    assert reject["stage"] == "manifest" and reject["path"] == "animals.csv"


def test_parts_carry_schema_version(tmp_path):
    drop = write_small_drop(tmp_path / "inbox" / "d1", bad_file=False)
    nightly(drops=[str(drop)], home=str(tmp_path / "home"))
    part = tmp_path / "home" / "lake" / "media" / "drop=d1" / "part-ingest.parquet"
    assert pq.read_schema(part).metadata[b"breedwatch.schema_version"] == b"1"


def test_faces_stage_detects_crops_and_reports_yield(tmp_path, realdata):
    from tests.conftest import realfile

    drop = write_small_drop(tmp_path / "inbox" / "d1", bad_file=False)
    (drop / "images" / "cam02").mkdir()
    (drop / "images" / "cam02" / "people.jpg").write_bytes(
        realfile(realdata, "face_recognition/two_people.jpg").read_bytes()
    )
    summary = nightly(drops=[str(drop)], home=str(tmp_path / "home"))
    layout = HomeLayout(tmp_path / "home")
    faces = query(layout, "SELECT f.*, m.path FROM faces f JOIN media m USING (media_id) ORDER BY face_id").to_pylist()
    keeper = [f for f in faces if f["source"] == "keeper"]
    assert [f["path"] for f in keeper] == ["faces/A01/f1.jpg"] and keeper[0]["animal_id"] == "A01"
    assert (keeper[0]["bbox_x"], keeper[0]["bbox_w"]) == (0.0, 1.0) and keeper[0]["detector"] == "keeper-photo"
    people = [f for f in faces if f["path"] == "images/cam02/people.jpg"]
    assert len(people) == 2 and all(f["detector"] == "mtcnn-human" and f["score"] > 0.9 for f in people)
    for face in people:
        assert 0 <= face["bbox_x"] < 1 and 0 < face["bbox_w"] < 0.5 and len(face["landmarks"]) == 10
        assert face["quality"]["size_px"] > 32 and face["run_id"] == summary["run_id"]
        with Image.open(tmp_path / "home" / face["crop_path"]) as crop:
            assert crop.size == (448, 448)
    yield_rows = query(layout, "SELECT camera, images, faces FROM detector_yield ORDER BY camera").to_pylist()
    assert {"camera": "cam02", "images": 1, "faces": 2} in yield_rows
    assert "detector yield" in Path(summary["report"]).read_text().lower()
    again = nightly(drops=[str(drop)], home=str(tmp_path / "home"))
    assert again["faces"][0]["status"] == "unchanged"
