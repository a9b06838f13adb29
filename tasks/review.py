"""The review queue read from the catalog (read-only), corrections saved as new lake parts, images served from the
home."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from schemas.home import HomeLayout
from schemas.review import FRAME_MIN_YIELD, NO_FACE, ItemKey, ReviewError, box_text, decide, parse_item_key
from schemas.tables import CORRECTIONS
from tasks.catalog import CatalogMissingError, connect_with_retry
from tasks.lake import write_rows

SAVE_ATTEMPTS = 3
SERVED_FOLDERS = ("lake/crops", "lake/gradcam")
SERVED_SUFFIXES = (".jpg", ".jpeg", ".png")
AUDIT_BUCKETS = 10_000
AUDIT_EVERY = 20  # one audit item per twenty shown, about the 5% audit slice

# Every reviewable item with the value of a human look (1 = a coin toss for the model), why, and whether a keeper
# has already decided it. Faces: nearness of P(male) to 0.5. Animals: a registry contradiction or conflict counts
# fully, else the share of confident faces on the minority side (at most 0.5, doubled). Encounters: nearness of the
# calibrated P(success) to 0.5 (the abstain band is its middle).
ITEMS_SQL = """
    WITH camera_yield AS (
        SELECT camera, sum(faces) / sum(images) AS per_frame FROM detector_yield GROUP BY camera
    ), faceless AS (
        SELECT m.drop_id, m.media_id, y.camera, y.per_frame
        FROM media m JOIN camera_yield y ON y.camera = split_part(m.path, '/', 2)
        ANTI JOIN faces f ON f.media_id = m.media_id AND f.drop_id = m.drop_id
        WHERE m.kind = 'image' AND m.status = 'ok' AND m.path LIKE 'images/%' AND y.per_frame >= $frame_min_yield
    ), frames_reviewed AS (
        SELECT DISTINCT drop_id, target_id AS media_id FROM live_corrections WHERE target_kind = 'frame'
    ), items AS (
        SELECT 'face' AS kind, drop_id, face_id AS target_id, 1 - 2 * abs(p_male - 0.5) AS value,
               'face P(male) ' || printf('%.2f', p_male) AS reason, reviewed
        FROM face_calls WHERE p_male IS NOT NULL
        UNION ALL
        SELECT 'animal', '', animal_id,
               CASE WHEN sex_conflict OR (sex_known IS NOT NULL AND sex_predicted NOT IN ('unknown', sex_known))
                    THEN 1.0 ELSE least(1.0, 2 * disagreement) END,
               CASE WHEN sex_conflict THEN 'the registry gives two sexes'
                    WHEN sex_known IS NOT NULL AND sex_predicted NOT IN ('unknown', sex_known)
                    THEN 'the model contradicts the registry (' || sex_known || ')'
                    ELSE 'its faces disagree (' || printf('%.0f', 100 * disagreement) || '% on the minority side)'
               END,
               sex_source = 'human'
        FROM animals WHERE n_faces > 0
        UNION ALL
        SELECT 'encounter', drop_id, encounter_id, 1 - 2 * abs(p_calibrated - 0.5),
               CASE WHEN predicted = 'unknown' THEN 'in the abstain band' ELSE 'decided by the model' END
               || ' (P(success) ' || printf('%.2f', p_calibrated) || ')',
               outcome_source = 'human'
        FROM encounters WHERE p_calibrated IS NOT NULL
        UNION ALL
        SELECT 'frame', g.drop_id, g.media_id, 0.5 * least(1.0, g.per_frame),
               'no face found, on camera ' || g.camera || ' that yields ' || printf('%.2f', g.per_frame)
               || ' faces per frame',
               r.media_id IS NOT NULL
        FROM faceless g LEFT JOIN frames_reviewed r ON r.drop_id = g.drop_id AND r.media_id = g.media_id
    ), keyed AS (
        SELECT *, kind || ':' || drop_id || ':' || target_id AS key FROM items
    ), marked AS (
        SELECT *, md5_number($day || ':' || key) % $buckets < $audit_buckets AS audit FROM keyed
    )
"""

QUEUE_SQL = (
    ITEMS_SQL
    + """
    , open_items AS (
        SELECT * FROM marked WHERE NOT reviewed AND NOT list_contains($skip, key)
    ), placed AS (
        SELECT *, row_number() OVER (PARTITION BY audit ORDER BY
                      CASE WHEN audit THEN md5_number($day || key) END, value DESC, key) AS rank_in_part
        FROM open_items
    )
    SELECT key, kind, drop_id, target_id, value, reason, audit, count(*) OVER () AS remaining
    FROM placed
    ORDER BY CASE WHEN audit THEN $every * rank_in_part
                  ELSE rank_in_part + (rank_in_part - 1) // ($every - 1) END, audit, key
    LIMIT $limit
"""
)

ONE_ITEM_SQL = ITEMS_SQL + " SELECT key, kind, value, reason, audit, reviewed FROM marked WHERE key = $key"

FACE_SQL = """
    SELECT c.*, m.sha256 AS media_sha256, m.path AS media_path
    FROM face_calls c LEFT JOIN media m ON m.media_id = c.media_id AND m.drop_id = c.drop_id
    WHERE c.drop_id = ? AND c.face_id = ? LIMIT 1
"""
ANIMAL_SQL = "SELECT * FROM animals WHERE animal_id = ?"
ANIMAL_FACES_SQL = """
    SELECT face_id, crop_path, p_male FROM face_calls
    WHERE animal_id = ? AND is_face AND crop_path IS NOT NULL ORDER BY abs(p_male - 0.5) DESC, face_id LIMIT 4
"""
ENCOUNTER_SQL = "SELECT * FROM encounters WHERE drop_id = ? AND encounter_id = ?"
FRAME_SQL = """
    SELECT m.media_id, m.drop_id, m.path AS media_path, m.sha256 AS media_sha256, m.width, m.height, m.captured_at,
           split_part(m.path, '/', 2) AS camera,
           (SELECT any_value(detector) FROM faces f WHERE f.drop_id = m.drop_id AND f.source = 'detector') AS detector
    FROM media m WHERE m.drop_id = ? AND m.media_id = ? AND m.kind = 'image' LIMIT 1
"""
FRAME_BOXES_SQL = """
    SELECT face_id, bbox_x, bbox_y, bbox_w, bbox_h FROM faces
    WHERE drop_id = ? AND media_id = ? AND source = 'detector' ORDER BY face_id
"""
FRAME_FILE_SQL = """
    SELECT m.path, (SELECT any_value(source) FROM drops d WHERE d.drop_id = m.drop_id) AS drop_folder
    FROM media m WHERE m.drop_id = ? AND m.media_id = ? AND m.kind = 'image' LIMIT 1
"""
LAST_LIVE_SQL = """
    SELECT * FROM live_corrections WHERE reviewer = ? ORDER BY created_at DESC, correction_id DESC LIMIT 1
"""


@contextlib.contextmanager
def catalog_reader(home: HomeLayout) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short read-only connection to the catalog (never for writing, so a nightly refresh is never blocked)."""
    if not home.catalog.exists():
        raise CatalogMissingError(f"no catalog at {home.catalog}: run 'breedwatch run' (or 'make demo') first")
    with connect_with_retry(home.catalog, read_only=True) as con:
        yield con


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | dict[str, Any]) -> list[dict[str, Any]]:
    """Run parameterised SQL and return row dicts."""
    return con.sql(sql, params=params).to_arrow_table().to_pylist()


def queue_params(day: str, audit_share: float) -> dict[str, Any]:
    """The queue's parameters: the day seeds the audit draw, the share sets its size."""
    return {
        "day": day,
        "buckets": AUDIT_BUCKETS,
        "audit_buckets": round(audit_share * AUDIT_BUCKETS),
        "frame_min_yield": FRAME_MIN_YIELD,
    }


def box_of(row: dict[str, Any]) -> list[float] | None:
    """A row's relative face box (bbox_x, bbox_y, bbox_w, bbox_h), if it has one."""
    box = [row.get(name) for name in ("bbox_x", "bbox_y", "bbox_w", "bbox_h")]
    return None if any(v is None for v in box) else [float(v) for v in box]


def next_items(home: HomeLayout, day: str, audit_share: float, skip: list[str], limit: int = 1) -> list[dict[str, Any]]:
    """The next open items of the queue, best first, audit items interleaved one in twenty."""
    params = {**queue_params(day, audit_share), "skip": skip, "every": AUDIT_EVERY, "limit": limit}
    with catalog_reader(home) as con:
        return rows(con, QUEUE_SQL, params)


def item_details(home: HomeLayout, key: ItemKey) -> dict[str, Any]:
    """What the page shows for one item: the machine's call, its probability, model version and images."""
    with catalog_reader(home) as con:
        if key.kind == "face":
            found = rows(con, FACE_SQL, [key.drop_id, key.target_id])
            if not found:
                raise LookupError(f"There is no face {key.target_id} in drop {key.drop_id}.")
            face = found[0]
            scene = face["source"] == "detector"
            return {
                **face,
                "call": face["sex_machine"],
                "p": face["p_male"],
                "p_label": "P(male)",
                "images": [path for path in (face["crop_path"], face["gradcam_path"]) if path],
                "machine_box": box_text(box_of(face)) if box_of(face) else None,
                "frame_boxes": frame_boxes(con, key.drop_id, face["media_id"], key.target_id) if scene else None,
            }
        if key.kind == "frame":
            found = rows(con, FRAME_SQL, [key.drop_id, key.target_id])
            if not found:
                raise LookupError(f"There is no image {key.target_id} in drop {key.drop_id}.")
            frame = found[0]
            return {
                **frame,
                "call": "no face found",
                "p": None,
                "p_label": None,
                "model_version": frame["detector"],
                "machine_box": NO_FACE,
                "frame_boxes": frame_boxes(con, key.drop_id, key.target_id, None),
            }
        if key.kind == "animal":
            found = rows(con, ANIMAL_SQL, [key.target_id])
            if not found:
                raise LookupError(f"There is no animal {key.target_id}.")
            crops = rows(con, ANIMAL_FACES_SQL, [key.target_id])
            animal = found[0]
            return {
                **animal,
                "call": animal["sex_predicted"],
                "p": animal["p_male"],
                "p_label": "P(male)",
                "images": [c["crop_path"] for c in crops],
            }
        found = rows(con, ENCOUNTER_SQL, [key.drop_id, key.target_id])
        if not found:
            raise LookupError(f"There is no encounter {key.target_id} in drop {key.drop_id}.")
        encounter = found[0]
        return {**encounter, "call": encounter["predicted"], "p": encounter["p_calibrated"], "p_label": "P(success)"}


def frame_boxes(
    con: duckdb.DuckDBPyConnection, drop_id: str, media_id: str, current: str | None
) -> list[dict[str, Any]]:
    """The detector's boxes on one frame, the one under review (current face id) marked."""
    return [
        {"face_id": row["face_id"], "box": box_of(row), "current": row["face_id"] == current}
        for row in rows(con, FRAME_BOXES_SQL, [drop_id, media_id])
        if box_of(row)
    ]


def queue_entry(home: HomeLayout, key: ItemKey, day: str, audit_share: float) -> dict[str, Any]:
    """The queue's own row for one item (its reason, audit mark and whether it is decided)."""
    with catalog_reader(home) as con:
        found = rows(con, ONE_ITEM_SQL, {**queue_params(day, audit_share), "key": str(key)})
    if not found:
        raise LookupError(f"The item {key} is not in the review queue.")
    return found[0]


def correction_row(
    key: ItemKey, item: dict[str, Any], field: str, human_value: str, reviewer: str, entry: dict[str, Any]
) -> dict[str, Any]:
    """A corrections row for one decision: the target, the machine's value and model version beside the human's."""
    machine_value, model_version = {
        "sex": (item.get("sex_machine", item.get("sex_predicted")), item.get("model_version")),
        "is_face": ("true", item.get("detector")),
        "outcome": (item.get("predicted"), item.get("model_version")),
        "box": (item.get("machine_box"), item.get("detector")),
    }[field]
    return {
        "correction_id": uuid.uuid4().hex,
        "action": "set",
        "target_kind": key.kind,
        "target_id": key.target_id,
        "drop_id": key.drop_id or item.get("drop_id"),
        "media_id": item.get("media_id") if key.kind in ("face", "frame") else None,
        "media_sha256": item.get("media_sha256"),
        **{name: item.get(name) for name in ("bbox_x", "bbox_y", "bbox_w", "bbox_h") if key.kind == "face"},
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
    item = item_details(home, key)
    field, human_value = decide(key.kind, action_key, item.get("call") if action_key == "c" else None, box)
    entry = queue_entry(home, key, day, audit_share)
    row = correction_row(key, item, field, human_value, reviewer, entry)
    row.update(timing)
    save_correction(home, row)
    return row


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
