"""The review queue read from the catalog (read-only), corrections saved as new lake parts, images served from the
home."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from models.identity_matching import provisional_id
from schemas.home import HomeLayout
from schemas.review import (
    AUDIT_BUCKETS,
    NEW_INDIVIDUAL,
    NO_FACE,
    ItemKey,
    ReviewError,
    box_text,
    correction_target,
    decide,
    parse_item_key,
)
from schemas.tables import CORRECTIONS
from tasks.catalog import CatalogMissingError, face_follows, retry_while_locked
from tasks.lake import write_rows

SAVE_ATTEMPTS = 3
SERVED_FOLDERS = ("lake/crops", "lake/gradcam")
SERVED_SUFFIXES = (".jpg", ".jpeg", ".png")
AUDIT_EVERY = 20  # one audit item per twenty shown, about the 5% audit slice
ATTACH_SQL = "ATTACH $path AS review_catalog (READ_ONLY)"  # the alias USE and DETACH name below


def matches_item(c: str, i: str) -> str:
    """SQL: the live correction c speaks about the review item i. A face correction follows its face as face_calls
    does: same frame and a box overlapping at IoU > 0.5 (without boxes, the same face id), a face item by its sex, box
    or is_face rows and an identity item by its identity or is_face rows; animals by id; encounters and frames by drop
    and id."""
    face = f"{c}.drop_id = {i}.drop_id AND {c}.media_id = {i}.media_id AND {face_follows(c, i, 'target_id')}"
    return (
        f"CASE {i}.kind WHEN 'face' THEN {c}.target_kind = 'face' AND {c}.field <> 'identity' AND {face} "
        f"WHEN 'identity' THEN {c}.target_kind = 'face' AND {c}.field IN ('identity', 'is_face') AND {face} "
        f"WHEN 'animal' THEN {c}.target_kind = 'animal' AND {c}.target_id = {i}.target_id "
        f"ELSE {c}.target_kind = {i}.kind AND {c}.drop_id = {i}.drop_id AND {c}.target_id = {i}.target_id END"
    )


# Items a keeper has decided, read live from the corrections (a few rows) at every request: faces joined to the
# items of their frame, the other kinds straight from their keys.
LIVE_SQL = """
    CREATE OR REPLACE TEMP TABLE live AS
    SELECT correction_id, target_kind, drop_id, target_id, media_id, bbox_x, bbox_y, bbox_w, bbox_h, field,
           human_value, reviewer, created_at
    FROM live_corrections
"""
REVIEWED_SQL = f"""
    reviewed AS (
        SELECT i.key FROM review_items i
        JOIN live c ON c.target_kind = 'face' AND i.kind IN ('face', 'identity') AND c.media_id = i.media_id
        WHERE {matches_item("c", "i")}
        UNION SELECT 'animal::' || target_id FROM live WHERE target_kind = 'animal'
        UNION SELECT target_kind || ':' || drop_id || ':' || target_id FROM live
              WHERE target_kind IN ('encounter', 'frame')
    )"""
# A day's audit slice: the items whose fixed draw falls in a window of audit_buckets starting at the day's offset, so
# each day draws a fresh random share without hashing every item on every request.
AUDIT_DRAW = "(audit_u + $day_offset) % $buckets < $audit_buckets"
AUDIT_ORDER = "(audit_u + $day_offset) % $buckets"

# The next open items: the best of the ranked part and of the day's audit draw (each a top-N, not a sort of the
# whole queue), interleaved so one item in AUDIT_EVERY is an audit item.
QUEUE_SQL = f"""
    WITH {REVIEWED_SQL}, open_items AS (
        SELECT key, kind, drop_id, target_id, value, reason, {AUDIT_DRAW} AS audit, {AUDIT_ORDER} AS audit_order
        FROM review_items ANTI JOIN reviewed USING (key) WHERE NOT list_contains($skip, key)
    ), ranked AS (
        SELECT *, row_number() OVER (ORDER BY value DESC, key) AS rank_in_part FROM (
            SELECT * FROM open_items WHERE NOT audit ORDER BY value DESC, key LIMIT $limit)
    ), drawn AS (
        SELECT *, row_number() OVER (ORDER BY audit_order, key) AS rank_in_part FROM (
            SELECT * FROM open_items WHERE audit ORDER BY audit_order, key LIMIT $limit)
    )
    SELECT key, kind, drop_id, target_id, value, reason, audit, (SELECT count(*) FROM open_items) AS remaining
    FROM (SELECT * FROM ranked UNION ALL BY NAME SELECT * FROM drawn)
    ORDER BY CASE WHEN audit THEN $every * rank_in_part
                  ELSE rank_in_part + (rank_in_part - 1) // ($every - 1) END, audit, key
    LIMIT $limit
"""
ONE_ITEM_SQL = f"""
    WITH {REVIEWED_SQL}
    SELECT key, kind, value, reason, {AUDIT_DRAW} AS audit, key IN (SELECT key FROM reviewed) AS reviewed
    FROM review_items WHERE key = $key
"""
ITEM_SQL = "SELECT * FROM review_items WHERE key = ?"
# The latest live human value of each field on one item (its review_items row as i).
LIVE_VALUES_SQL = f"""
    SELECT c.field, c.human_value, c.reviewer FROM live c, (SELECT * FROM review_items WHERE key = ?) i
    WHERE {matches_item("c", "i")}
    QUALIFY row_number() OVER (PARTITION BY c.field ORDER BY c.created_at DESC, c.correction_id DESC) = 1
"""
FRAME_FILE_SQL = """
    SELECT m.path, (SELECT any_value(source) FROM drops d WHERE d.drop_id = m.drop_id) AS drop_folder
    FROM media m WHERE m.drop_id = ? AND m.media_id = ? AND m.kind = 'image' LIMIT 1
"""
# What the page shows of a face or identity item beyond its queue row, read from catalog tables when it is shown (a
# few milliseconds): the machine's row of the face with its frame's path and hash, then the frame's detector boxes
# and the registry's sex of its animal.
FACE_MACHINE_SQL = """
    SELECT *, label AS sex_machine, kind AS machine_kind FROM face_machine
    WHERE drop_id = $drop_id AND face_id = $face_id LIMIT 1
"""
FACE_PAGE_FIELDS = (
    "animal_id",
    "source",
    "crop_path",
    "gradcam_path",
    "detector",
    "sex_machine",
    "individual_machine",
    "machine_kind",
    "established",
    "media_path",
    "media_sha256",
)
FACE_FRAME_SQL = """
    SELECT (SELECT list({'face_id': face_id, 'box': [bbox_x, bbox_y, bbox_w, bbox_h]} ORDER BY face_id)
            FROM detector_boxes WHERE drop_id = $drop_id AND media_id = $media_id) AS boxes,
           (SELECT sex_known FROM registered_animals WHERE animal_id = $animal_id) AS sex_known
"""
LAST_LIVE_SQL = """
    SELECT * FROM live_corrections WHERE reviewer = ? ORDER BY created_at DESC, correction_id DESC LIMIT 1
"""


@functools.cache
def attach_host() -> tuple[duckdb.DuckDBPyConnection, threading.Lock]:
    """The process's in-memory DuckDB that attaches the catalog read-only for each request, and the lock that gives it
    to one request at a time. Attaching costs a few milliseconds where opening a new database costs tens, and the
    catalog file is held only while a request reads it."""
    return duckdb.connect(), threading.Lock()


def attach_catalog(host: duckdb.DuckDBPyConnection, catalog: Path) -> None:
    """Attach the catalog read-only as review_catalog and make it the default, waiting briefly while a writer holds
    it."""
    retry_while_locked(lambda: host.execute(ATTACH_SQL, {"path": str(catalog)}))
    host.execute("USE review_catalog")


@contextlib.contextmanager
def review_session(home: HomeLayout) -> Iterator[duckdb.DuckDBPyConnection]:
    """The catalog for one request, with the live corrections read once into the temp table `live`."""
    with catalog_reader(home) as con:
        con.execute(LIVE_SQL)
        yield con


@contextlib.contextmanager
def catalog_reader(home: HomeLayout) -> Iterator[duckdb.DuckDBPyConnection]:
    """The catalog, read-only, for one request (never for writing, so a nightly refresh is never blocked)."""
    if not home.catalog.exists():
        raise CatalogMissingError(f"no catalog at {home.catalog}: run 'breedwatch run' (or 'make demo') first")
    host, lock = attach_host()
    with lock:
        attach_catalog(host, home.catalog)
        try:
            yield host
        finally:
            host.execute("USE memory")
            host.execute("DETACH review_catalog")


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | dict[str, Any]) -> list[dict[str, Any]]:
    """Run parameterised SQL and return row dicts."""
    return con.sql(sql, params=params).to_arrow_table().to_pylist()


def queue_params(day: str, audit_share: float) -> dict[str, Any]:
    """The queue's parameters: the day sets the audit window's offset, the share its size."""
    offset = int(hashlib.md5(day.encode()).hexdigest(), 16) % AUDIT_BUCKETS
    return {"day_offset": offset, "buckets": AUDIT_BUCKETS, "audit_buckets": round(audit_share * AUDIT_BUCKETS)}


def box_of(row: dict[str, Any]) -> list[float] | None:
    """A row's relative face box (bbox_x, bbox_y, bbox_w, bbox_h), if it has one."""
    box = [row.get(name) for name in ("bbox_x", "bbox_y", "bbox_w", "bbox_h")]
    return None if any(v is None for v in box) else [float(v) for v in box]


def open_queue_rows(
    con: duckdb.DuckDBPyConnection, day: str, audit_share: float, skip: list[str], limit: int
) -> list[dict[str, Any]]:
    """The next open items of the queue in a review session, best first, audit items interleaved one in twenty."""
    params = {**queue_params(day, audit_share), "skip": skip, "every": AUDIT_EVERY, "limit": limit}
    return rows(con, QUEUE_SQL, params)


def next_items(home: HomeLayout, day: str, audit_share: float, skip: list[str], limit: int = 1) -> list[dict[str, Any]]:
    """The next open items of the queue, best first, audit items interleaved one in twenty."""
    with review_session(home) as con:
        return open_queue_rows(con, day, audit_share, skip, limit)


def value_now(human: dict[str, Any] | None, registry: Any, machine: Any) -> tuple[Any, str]:
    """A field's value now and where it comes from: the keeper's latest, else the registry's, else the machine's."""
    if human is not None:
        return human["human_value"], "human"
    if registry is not None:
        return registry, "registry"
    return machine, "machine"


def face_page(con: duckdb.DuckDBPyConnection, drop_id: str, face_id: str, kind: str) -> dict[str, Any]:
    """What the page shows of a face or identity item besides its queue row: the machine's calls on the face, its
    frame's path, hash and detector boxes (a face item's only when a detector found it), the registry's sex."""
    found = rows(con, FACE_MACHINE_SQL, {"drop_id": drop_id, "face_id": face_id})
    if not found:
        return {}
    machine = found[0]  # every column, so a catalog older than the page's fields fails below, on a missing table
    frame = rows(
        con, FACE_FRAME_SQL, {"drop_id": drop_id, "media_id": machine["media_id"], "animal_id": machine["animal_id"]}
    )[0]
    face = {field: machine.get(field) for field in FACE_PAGE_FIELDS}
    return {
        **face,
        "candidates": machine["candidates"] or [],
        "candidate_scores": machine["candidate_scores"] or [],
        "sex_known": frame["sex_known"],
        "frame_boxes": (frame["boxes"] or []) if kind == "identity" or face["source"] == "detector" else None,
    }


def item_shown(con: duckdb.DuckDBPyConnection, key: ItemKey) -> dict[str, Any]:
    """What the page shows for one item in a review session: the machine's call, its probability, model version and
    images (from review_items), and the value now with the keeper's live corrections applied."""
    found = rows(con, ITEM_SQL, [str(key)])
    if not found:
        raise LookupError(
            f"There is no {key.kind} {key.target_id}" + (f" in drop {key.drop_id}." if key.drop_id else ".")
        )
    human = {row["field"]: row for row in rows(con, LIVE_VALUES_SQL, [str(key)])}
    item = found[0]
    details = json.loads(item.pop("details") or "{}")
    if key.kind in ("face", "identity"):
        details = face_page(con, item["drop_id"], key.target_id, key.kind)
    shown = {
        **item,
        **details,
        "p_label": {"face": "P(male)", "animal": "P(male)", "encounter": "P(success)"}.get(key.kind),
    }
    if key.kind in ("face", "animal"):
        shown["sex"], shown["sex_source"] = value_now(human.get("sex"), details.get("sex_known"), item["call"])
    if key.kind == "encounter":
        shown["outcome_final"], shown["outcome_source"] = value_now(
            human.get("outcome"), details.get("outcome"), item["call"]
        )
    if key.kind == "face":
        shown["images"] = [path for path in (details.get("crop_path"), details.get("gradcam_path")) if path]
        shown["machine_box"] = box_text(box_of(item)) if box_of(item) else None
    if key.kind == "identity":
        shown["images"] = [details["crop_path"]] if details.get("crop_path") else []
        shown["individual"], shown["individual_source"] = value_now(human.get("identity"), None, item["call"])
    if key.kind == "animal":
        shown["images"] = details.get("crops") or []
    if key.kind == "frame":
        shown["media_id"], shown["machine_box"] = key.target_id, NO_FACE
    if details.get("frame_boxes") is not None:
        current = key.target_id if key.kind in ("face", "identity") else None
        shown["frame_boxes"] = [{**box, "current": box["face_id"] == current} for box in details["frame_boxes"]]
    return shown


def queue_row(con: duckdb.DuckDBPyConnection, key: ItemKey, day: str, audit_share: float) -> dict[str, Any]:
    """The queue's own row for one item in a review session (its reason, audit mark and whether it is decided)."""
    found = rows(con, ONE_ITEM_SQL, {**queue_params(day, audit_share), "key": str(key)})
    if not found:
        raise LookupError(f"The item {key} is not in the review queue.")
    return found[0]


def next_shown(
    home: HomeLayout, day: str, audit_share: float, skip: list[str]
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The best open item the page has not skipped, its queue row and what the page shows, read in one session."""
    with review_session(home) as con:
        entries = open_queue_rows(con, day, audit_share, skip, 1)
        return (entries[0], item_shown(con, parse_item_key(entries[0]["key"]))) if entries else None


def named_shown(home: HomeLayout, key: ItemKey, day: str, audit_share: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """One named item (decided or not), its queue row with the open count, and what the page shows, in one session."""
    with review_session(home) as con:
        entry = queue_row(con, key, day, audit_share)
        left = open_queue_rows(con, day, audit_share, [], 1)
        return {**entry, "remaining": left[0]["remaining"] if left else 0}, item_shown(con, key)


def correction_row(
    key: ItemKey, item: dict[str, Any], field: str, human_value: str, reviewer: str, entry: dict[str, Any]
) -> dict[str, Any]:
    """A corrections row for one decision: the target, the machine's value and model version beside the human's."""
    machine_value, model_version = {
        "sex": (item.get("sex_machine", item.get("sex_predicted")), item.get("model_version")),
        "is_face": ("true", item.get("detector")),
        "outcome": (item.get("predicted"), item.get("model_version")),
        "box": (item.get("machine_box"), item.get("detector")),
        "identity": (item.get("individual_machine"), item.get("model_version")),
    }[field]
    target_kind = correction_target(key.kind)
    on_face = target_kind == "face"
    return {
        "correction_id": uuid.uuid4().hex,
        "action": "set",
        "target_kind": target_kind,
        "target_id": key.target_id,
        "drop_id": key.drop_id or item.get("drop_id"),
        "media_id": item.get("media_id") if on_face or key.kind == "frame" else None,
        "media_sha256": item.get("media_sha256"),
        **{name: item.get(name) for name in ("bbox_x", "bbox_y", "bbox_w", "bbox_h") if on_face},
        "field": field,
        "machine_value": machine_value,
        "human_value": human_value,
        "model_version": model_version,
        "reviewer": reviewer,
        "created_at": datetime.now(UTC),
        "audit": bool(entry["audit"]),
        "queue_reason": entry["reason"],
    }


def save_correction(home: HomeLayout, row: dict[str, Any]) -> Path:
    """Write one correction as its own atomic part under lake/corrections/day=YYYY-MM-DD/ (never a drop's folder).

    A nightly run sweeps temp files of killed runs at its start; if it takes this part's temp file mid-write, the
    write is simply done again."""
    day = row["created_at"].strftime("%Y-%m-%d")
    for attempt in range(SAVE_ATTEMPTS):
        try:
            return write_rows(home, CORRECTIONS, day, row["correction_id"], [row])
        except FileNotFoundError:
            if attempt == SAVE_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def record_review(
    home: HomeLayout,
    key_text: str,
    action_key: str,
    reviewer: str,
    timing: dict[str, Any],
    day: str,
    audit_share: float,
    box: list[float] | None = None,
) -> dict[str, Any]:
    """Save the correction one key press makes on an item (confirm included; box: the drawn box, relative to the
    frame) and return its row."""
    key = parse_item_key(key_text)
    with review_session(home) as con:
        item, entry = item_shown(con, key), queue_row(con, key, day, audit_share)
    call = item.get("call") if action_key == "c" else None
    field, human_value = decide(key.kind, action_key, call, box, item.get("candidates") or [])
    if human_value == NEW_INDIVIDUAL:
        human_value = new_individual_id(key.target_id)
    row = correction_row(key, item, field, human_value, reviewer, entry)
    row.update(timing)
    save_correction(home, row)
    return row


def new_individual_id(face_id: str) -> str:
    """The provisional individual a face founds when a keeper says it is of no registered animal: the id clustering
    gives a cluster founded by that face, so the keeper's word and the machine's agree when both say new."""
    return provisional_id(face_id)


def undo_last(home: HomeLayout, reviewer: str) -> dict[str, Any]:
    """Cancel the reviewer's latest live correction with a new undo row; return that row."""
    with catalog_reader(home) as con:
        found = rows(con, LAST_LIVE_SQL, [reviewer])
    if not found:
        raise ReviewError("There is nothing of yours left to undo.")
    last = found[0]
    row = {
        **last,
        "correction_id": uuid.uuid4().hex,
        "action": "undo",
        "undoes": last["correction_id"],
        "human_value": None,
        "created_at": datetime.now(UTC),
        "seconds_spent": None,
        "keystrokes": None,
        "note": f"undoes {last['correction_id']}",
    }
    save_correction(home, row)
    return row


def home_file(home: HomeLayout, relative: str) -> Path:
    """A crop or Grad-CAM image inside the home, refusing anything that leaves it (.., absolute paths, links)."""
    parts = relative.split("/")
    if not relative or relative.startswith("/") or "\\" in relative or "\x00" in relative or "%" in relative:
        raise ReviewError("The file path must be a plain path relative to the home.")
    if any(part in ("", ".", "..") for part in parts):
        raise ReviewError("The file path must not contain empty, '.' or '..' parts.")
    if not any(relative.startswith(folder + "/") for folder in SERVED_FOLDERS):
        raise PermissionError("Only face crops and Grad-CAM images under the home's lake are served.")
    if not relative.lower().endswith(SERVED_SUFFIXES):
        raise PermissionError("Only JPEG and PNG images are served.")
    root = home.root.resolve()
    try:
        resolved = (root / relative).resolve(strict=True)
    except (FileNotFoundError, RuntimeError):
        raise LookupError("There is no such image in the home.") from None
    inside = any(resolved.is_relative_to(root / folder) for folder in SERVED_FOLDERS)
    if not inside or not resolved.is_file() or not resolved.name.lower().endswith(SERVED_SUFFIXES):
        raise PermissionError("The image leads out of the home's crops and is not served.")
    return resolved


def frame_file(home: HomeLayout, drop_id: str, media_id: str) -> Path:
    """The image file of one ingested frame, found through the catalog (the request names ids, never a path) and
    refused when it leads out of its drop's folder."""
    with catalog_reader(home) as con:
        found = rows(con, FRAME_FILE_SQL, [drop_id, media_id])
    if not found or not found[0]["drop_folder"]:
        raise LookupError(f"There is no image {media_id} in drop {drop_id}.")
    folder = Path(found[0]["drop_folder"]).resolve()
    if not folder.is_dir():
        raise LookupError(f"The drop folder {folder} is no longer on disk, so its frames cannot be shown.")
    try:
        resolved = (folder / found[0]["path"]).resolve(strict=True)
    except (FileNotFoundError, RuntimeError):
        raise LookupError(f"The frame {found[0]['path']} is no longer in the drop folder {folder}.") from None
    if not resolved.is_relative_to(folder) or not resolved.is_file():
        raise PermissionError("The frame leads out of its drop folder and is not served.")
    if not resolved.name.lower().endswith(SERVED_SUFFIXES):
        raise PermissionError("Only JPEG and PNG frames are served.")
    return resolved
