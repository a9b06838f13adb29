"""Frames in the review app: empty frames of a face-yielding camera are queued, the whole frame is shown with its
boxes, a keeper draws or fixes a box, and the boxes become detector annotations (box_annotations)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schemas.home import HomeLayout
from schemas.tables import MEDIA
from tasks import review as review_tasks
from tasks.catalog import query
from tasks.lake import write_rows
from tests.flows.test_review_app import client_for, opened
from tests.review_home import DROP, EMPTY_FRAMES, media_id_of, write_review_home


@pytest.fixture()
def framed_home(tmp_path: Path) -> HomeLayout:
    """The review home with its frames on disk in a drop folder, two of cam01's frames without a face."""
    return write_review_home(tmp_path / "home", drop_folder=tmp_path / "inbox" / DROP)


def queue(home: HomeLayout) -> list[dict]:
    """The whole open queue, best first, with no audit draw."""
    return review_tasks.next_items(home, "2026-12-02", 0.0, [], limit=100)


def test_empty_frames_of_a_camera_that_yields_faces_are_queued(framed_home: HomeLayout) -> None:
    frames = [item for item in queue(framed_home) if item["kind"] == "frame"]
    assert sorted(item["target_id"] for item in frames) == sorted(media_id_of(p) for p in EMPTY_FRAMES)
    # cam01: 5 faces on 7 frames; an empty frame ranks at half the camera's yield
    assert all(item["value"] == pytest.approx(0.5 * 5 / 7) for item in frames)
    assert all("camera cam01 that yields 0.71 faces per frame" in item["reason"] for item in frames)


def test_a_box_drawn_on_an_empty_frame_a_fixed_box_and_rulings_become_annotations(framed_home: HomeLayout) -> None:
    client = client_for(framed_home, audit_share=0.0)
    headers = {"X-CSRF-Token": opened(client)}
    empty, other = (f"frame:{DROP}:{media_id_of(p)}" for p in EMPTY_FRAMES)
    skip = [item["key"] for item in queue(framed_home) if item["key"] not in (empty, other)]
    item = client.post("/api/next", json={"skip": skip}, headers=headers).json()["item"]
    assert item["kind"] == "frame" and item["key"] in (empty, other) and item["boxes"] == []
    assert [a["key"] for a in item["actions"]] == ["e", "b"] and item["model_version"] == "mtcnn-panda@v1"
    shown = client.get(item["frame"])
    assert shown.status_code == 200 and shown.headers["content-type"] == "image/jpeg"

    def review(key: str, action: str, box: list[float] | None = None):
        body = {"key": key, "action": action, "skip": skip, **({"box": box} if box is not None else {})}
        return client.post("/api/review", json=body, headers=headers)

    for box, reason in (
        (None, "Draw the box first"),
        ([0.8, 0.8, 0.5, 0.5], "inside the frame"),
        ([0.1, 0.1, 0.001, 0.2], "too small"),
    ):
        refused = review(item["key"], "b", box)
        assert refused.status_code == 400 and reason in refused.json()["error"], refused.text
    drawn = review(item["key"], "b", [0.1, 0.2, 0.3, 0.4])
    assert drawn.status_code == 200, drawn.text
    assert drawn.json()["saved"]["human_value"] == "[0.1, 0.2, 0.3, 0.4]"
    assert drawn.json()["saved"]["machine_value"] == "none"
    second = empty if item["key"] == other else other
    assert drawn.json()["item"]["key"] == second, "the frame leaves the queue, the other empty frame is next"
    assert review(second, "e").status_code == 200

    face_key = next(i["key"] for i in queue(framed_home) if i["kind"] == "face" and "IMG_0001" not in i["key"])
    face = client.post("/api/next", json={"skip": [k for k in skip if k != face_key]}, headers=headers).json()
    face = face["item"]
    assert face["key"] == face_key and face["frame"] and [b["current"] for b in face["boxes"]] == [True]
    fixed = review(face_key, "b", [0.2, 0.2, 0.3, 0.3])
    assert fixed.status_code == 200 and json.loads(fixed.json()["saved"]["machine_value"])[2] == 0.4
    assert review(face_key, "n").status_code == 200  # and then the keeper rules it not a face at all

    rows = query(framed_home, "SELECT * FROM box_annotations ORDER BY annotation").to_pylist()
    assert [r["annotation"] for r in rows] == ["drawn", "fixed", "no_face", "not_a_face"]
    by_kind = {r["annotation"]: r for r in rows}
    drawn_row, fixed_row = by_kind["drawn"], by_kind["fixed"]
    assert [drawn_row[k] for k in ("bbox_x", "bbox_y", "bbox_w", "bbox_h")] == [0.1, 0.2, 0.3, 0.4]
    assert drawn_row["media_path"].startswith("images/cam01/") and drawn_row["face_id"] is None
    assert fixed_row["face_id"] == face_key.split(":")[2] and fixed_row["bbox_w"] == 0.3
    assert by_kind["no_face"]["bbox_x"] is None and by_kind["not_a_face"]["bbox_w"] == 0.4
    assert by_kind["no_face"]["media_id"] == second.split(":")[2]

    undone = client.post("/api/undo", headers=headers).json()
    assert undone["item"]["key"] == face_key
    left = {r["annotation"] for r in query(framed_home, "SELECT annotation FROM box_annotations").to_pylist()}
    assert left == {"drawn", "fixed", "no_face"}


def test_frames_are_served_by_id_and_never_out_of_their_drop_folder(framed_home: HomeLayout, tmp_path: Path) -> None:
    client = client_for(framed_home)
    opened(client)
    outside = tmp_path / "secret.jpg"
    outside.write_bytes((tmp_path / "inbox" / DROP / "images" / EMPTY_FRAMES[0]).read_bytes())
    (tmp_path / "inbox" / DROP / "images" / "cam01" / "link.jpg").symlink_to(outside)
    rows = [
        {"media_id": "linked", "drop_id": DROP, "path": "images/cam01/link.jpg", "kind": "image", "status": "ok"},
        {"media_id": "gone", "drop_id": DROP, "path": "images/cam01/gone.jpg", "kind": "image", "status": "ok"},
    ]
    write_rows(framed_home, MEDIA, DROP, "extra", rows)
    assert client.get(f"/frames/{DROP}/linked").status_code == 403
    missing = client.get(f"/frames/{DROP}/gone")
    assert missing.status_code == 404 and "no longer in the drop folder" in missing.json()["error"]
    assert client.get(f"/frames/{DROP}/nothing").status_code == 404
    assert client.get(f"/frames/{DROP}/{media_id_of(EMPTY_FRAMES[0])}").status_code == 200
