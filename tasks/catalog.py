"""The DuckDB catalog: one writer refreshes views over the lake; readers query read-only."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import duckdb
import pyarrow as pa

from models.individuals import AWAITING_SIGHTING, NEARER_REGISTERED, SAME_EVENT
from schemas.config import IdentityConfig
from schemas.home import HomeLayout
from schemas.review import NO_FACE
from schemas.tables import LAKE_TABLES, TableSpec
from tasks.compaction import COMPACTED, KEYS_METADATA, PART_COLUMN
from tasks.home_version import check_home_version
from tasks.lake import TEMP_PREFIX, ensure_schema_parts, publish_file
from tasks.part_check import damaged_notes, unreadable_part_error

FILE_COLUMN = "_file"  # the part a row was read from, while a view decides whether a compacted file holds its key
WAL_SUFFIX = ".wal"
LOCK_RETRIES = 20
Opened = TypeVar("Opened")
LOCK_WAIT_S = 0.25


class CatalogMissingError(RuntimeError):
    """The home has no catalog yet."""


def quoted(name: str) -> str:
    """A column name as a SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def view_columns(spec: TableSpec) -> str:
    """The view's SELECT list: the present columns in schema order, a renamed one taken from its older name in parts
    written before the rename (union_by_name gives every part every name; the schema part guarantees they exist)."""
    older: dict[str, list[str]] = {}
    for old, new in spec.old_names().items():
        older.setdefault(new, []).append(old)
    return ", ".join(
        f"coalesce({', '.join(quoted(n) for n in [name, *older[name]])}) AS {quoted(name)}"
        if name in older
        else quoted(name)
        for name in spec.schema.names
    )


def view_sql(spec: TableSpec, lake: Path) -> str:
    """CREATE VIEW over every part of a table, whatever version wrote it: compacted rows, and the own parts of keys no
    compacted file holds (tasks/compaction.py), the keys read from the compacted files' footers rather than from
    their rows (a 10,000-drop lake's `media` scans in 40 ms instead of 95); the lake path is an identifier we
    control, not user input."""
    table = (lake / spec.name).as_posix().replace("'", "''")
    return (
        f"CREATE OR REPLACE VIEW {spec.name} AS SELECT {view_columns(spec)} "
        f"FROM read_parquet('{table}/*/part-*.parquet', union_by_name = true, hive_partitioning = false, "
        f"filename = '{FILE_COLUMN}') "
        f"WHERE {PART_COLUMN} IS NOT NULL OR regexp_extract({FILE_COLUMN}, '([^/]+)/part-[^/]*$', 1) NOT IN ("
        f"SELECT unnest(json_keys(decode(value))) FROM parquet_kv_metadata('{table}/{COMPACTED}=*/part-*.parquet') "
        f"WHERE decode(key) = '{KEYS_METADATA.decode()}')"
    )


# Per-face evidence for the animal posterior: log-odds of the clipped calibrated P(male) (clip 1e-4, as in
# models/gender_training.animal_posterior). An animal's posterior is the sum of its faces' log-odds divided by
# sqrt(n) ("sqrt_n" pooling: its photos share one face, so they are not independent evidence), prior 0.5.
FACE_EVIDENCE = "ln(greatest(least(p_male, 1 - 1e-4), 1e-4)) - ln(1 - greatest(least(p_male, 1 - 1e-4), 1e-4))"
THRESHOLD = "(SELECT value FROM thresholds WHERE name = '{name}')"


def gender_band(p: str) -> str:
    """SQL deciding male / female / unknown from a P(male) expression with the thresholds table's band."""
    low, high = THRESHOLD.format(name="gender.abstain_low"), THRESHOLD.format(name="gender.abstain_high")
    return (
        f"CASE WHEN {p} IS NULL THEN 'unknown' WHEN {p} >= {high} THEN 'male' "
        f"WHEN {p} <= {low} THEN 'female' ELSE 'unknown' END"
    )


def pooled_gender(group: str) -> str:
    """SELECT list pooling gender_predictions rows per group: n_faces, posterior, disagreement, model versions."""
    confident = THRESHOLD.format(name="gender.confident")
    return f"""{group}, count(*) AS n_faces,
               1 / (1 + exp(-sum({FACE_EVIDENCE}) / sqrt(count(*)))) AS p_male,
               avg(p_male) AS mean_face_p_male,
               count(*) FILTER (WHERE p_male >= {confident}) AS confident_male,
               count(*) FILTER (WHERE p_male <= 1 - {confident}) AS confident_female,
               string_agg(DISTINCT model_version, ', ' ORDER BY model_version) AS model_version"""


def disagreement_columns() -> str:
    """Share of confident faces on the minority side, and the flag when it reaches the configured share."""
    share = "least(confident_male, confident_female) / nullif(confident_male + confident_female, 0)"
    return (
        f"coalesce({share}, 0) AS disagreement, "
        f"coalesce({share}, 0) >= {THRESHOLD.format(name='gender.disagreement_share')} AS flagged"
    )


# Live corrections: keepers' rows that set a value and have not been undone (undo is a row of its own), each once
# (a merge of a past day's parts killed before it removed them leaves its rows twice until the next merge).
LIVE_CORRECTIONS_VIEW = """
    CREATE OR REPLACE VIEW live_corrections AS
    SELECT * FROM corrections
    WHERE action = 'set' AND correction_id NOT IN (
        SELECT undoes FROM corrections WHERE action = 'undo' AND undoes IS NOT NULL)
    QUALIFY row_number() OVER (PARTITION BY correction_id) = 1
"""


def latest_per(key: str) -> str:
    """QUALIFY clause keeping the latest live correction per key (created_at, then id, breaks ties)."""
    return f"QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY created_at DESC, correction_id DESC) = 1"


def box_iou(a: str, b: str) -> str:
    """SQL intersection over union of two relative boxes given by their table aliases (bbox_x, _y, _w, _h)."""
    inter_w = f"greatest(0, least({a}.bbox_x + {a}.bbox_w, {b}.bbox_x + {b}.bbox_w) - greatest({a}.bbox_x, {b}.bbox_x))"
    inter_h = f"greatest(0, least({a}.bbox_y + {a}.bbox_h, {b}.bbox_y + {b}.bbox_h) - greatest({a}.bbox_y, {b}.bbox_y))"
    union = f"{a}.bbox_w * {a}.bbox_h + {b}.bbox_w * {b}.bbox_h - {inter_w} * {inter_h}"
    return f"({inter_w} * {inter_h} / nullif({union}, 0))"


# Face corrections follow the face, not its id: a correction names the frame (media_id, from the content hash) and
# the box the reviewer saw, and applies to whichever face of that frame now overlaps it at IoU > 0.5, so a new
# detector version (new boxes, maybe new face ids) keeps it. Without a box on either side the face id decides.
FACE_MATCH_IOU = 0.5


def face_follows(c: str, f: str, face_id: str) -> str:
    """SQL: the face correction c (same frame) applies to the face f, whose id is the column face_id: its box overlaps
    the box the reviewer saw at IoU > FACE_MATCH_IOU, or without a box on either side the ids are equal."""
    return (
        f"CASE WHEN {c}.bbox_w IS NOT NULL AND {f}.bbox_w IS NOT NULL THEN {box_iou(c, f)} > {FACE_MATCH_IOU} "
        f"ELSE {c}.target_id = {f}.{face_id} END"
    )


# A registered match whose margin to the runner-up is below the review margin is no confident identity, nor is a face
# below the match threshold held because its candidate is matched in the same camera event or resembles it no less
# than its provisional individual, nor the face of a provisional individual that awaits a second sighting
# (models/individuals.py): the face stays out of the counts (in face_events) and goes to the review queue's "who is
# this?" items.
REVIEW_MARGIN = (
    "coalesce((SELECT value FROM thresholds WHERE name = 'identity.review_margin'), "
    f"{IdentityConfig.model_fields['review_margin'].default})"
)
# The identity_matches.established values of a face held for review (named as its registered candidate or as the
# provisional individual it alone founds, never confident).
HELD_ESTABLISHED = f"('{SAME_EVENT}', '{NEARER_REGISTERED}', '{AWAITING_SIGHTING}')"
# The registered animals: named by a drop's animals.csv or by a face (keeper photos, images/<animal_id>/).
REGISTERED_ANIMALS = """
    SELECT animal_id FROM animal_manifest WHERE animal_id IS NOT NULL
    UNION SELECT animal_id FROM faces WHERE animal_id IS NOT NULL
"""

# The registry's sex of each animal that animals.csv gives one (none where two drops disagree).
REGISTRY_SEX = """
    SELECT animal_id, CASE WHEN count(DISTINCT sex) = 1 THEN any_value(sex) END AS sex_known
    FROM animal_manifest WHERE sex IS NOT NULL GROUP BY animal_id
"""
# What the machine said about each predicted face (its box and its machine identity), without any keeper's
# correction: a table the refresh writes, so face_calls and every view on it read one table instead of joining three
# lake tables each time (a 10,000-drop lake holds 1.5 million faces). Its inputs change only in a run, which
# refreshes the catalog; corrections, which the review app appends between runs, stay live in face_calls.
FACE_MACHINE_TABLE = f"""
    CREATE OR REPLACE TABLE face_machine AS
    SELECT g.face_id, g.media_id, g.drop_id, g.animal_id, g.p_male, g.label, g.model_version, g.gradcam_path,
           f.source, f.bbox_x, f.bbox_y, f.bbox_w, f.bbox_h, f.crop_path, f.detector,
           m.kind, m.score, m.margin, m.candidates, m.candidate_scores, m.established,
           m.model_version AS identity_model_version, m.individual_id AS individual_machine,
           (m.kind = 'provisional' OR m.margin >= {REVIEW_MARGIN})
               AND coalesce(m.established NOT IN {HELD_ESTABLISHED}, true) AS confident,
           md.path AS media_path, md.sha256 AS media_sha256
    FROM gender_predictions g
    LEFT JOIN faces f ON f.face_id = g.face_id AND f.drop_id = g.drop_id
    LEFT JOIN identity_matches m ON m.drop_id = g.drop_id AND m.face_id = g.face_id
    LEFT JOIN media md ON md.media_id = g.media_id AND md.drop_id = g.drop_id
"""
# The registered animals with the latest drop naming each and the registry's sex (REGISTERED_ANIMALS, as a table the
# refresh writes: the views and the review page read it instead of scanning every drop's faces at each query). Gender
# predictions carry their face's animal_id, so they name no other animal or drop.
REGISTERED_TABLE = f"""
    CREATE OR REPLACE TABLE registered_animals AS
    SELECT r.animal_id, r.drop_id, k.sex_known FROM (
        SELECT animal_id, max(drop_id) AS drop_id FROM (
            SELECT animal_id, drop_id FROM animal_manifest WHERE animal_id IS NOT NULL
            UNION ALL SELECT animal_id, drop_id FROM faces WHERE animal_id IS NOT NULL
        ) GROUP BY animal_id
    ) r LEFT JOIN ({REGISTRY_SEX}) k USING (animal_id)
"""
# Every box a detector found, by frame (the review page draws a frame's boxes from it; a lake view read per item would
# cost the next item tens of milliseconds).
DETECTOR_BOXES_TABLE = """
    CREATE OR REPLACE TABLE detector_boxes AS
    SELECT drop_id, media_id, face_id, bbox_x, bbox_y, bbox_w, bbox_h FROM faces
    WHERE source = 'detector' AND bbox_w IS NOT NULL ORDER BY drop_id, media_id
"""
# Tables the refresh computes from the lake before the derived views (which read them).
MACHINE_TABLES = {
    "face_machine": FACE_MACHINE_TABLE,
    "registered_animals": REGISTERED_TABLE,
    "detector_boxes": DETECTOR_BOXES_TABLE,
}

FACE_CALLS_VIEW = f"""
    CREATE OR REPLACE VIEW face_calls AS
    WITH predicted AS (SELECT * FROM face_machine),
    matched AS (
        SELECT p.drop_id, p.face_id, c.field, c.human_value, c.reviewer, c.created_at, c.correction_id
        FROM predicted p JOIN live_corrections c ON c.target_kind = 'face' AND c.media_id = p.media_id
        WHERE {face_follows("c", "p", "face_id")}
        {latest_per("p.drop_id, p.face_id, c.field")}
    ),
    identified AS (
        SELECT p.drop_id, p.face_id, p.kind, p.score, p.margin, p.candidates, p.candidate_scores, p.established,
               p.identity_model_version, p.individual_machine,
               i.reviewer AS identity_reviewer, i.created_at AS identity_reviewed_at,
               coalesce(i.human_value, p.animal_id, CASE WHEN p.confident THEN p.individual_machine END)
                   AS individual_id,
               CASE WHEN i.human_value IS NOT NULL THEN 'human' WHEN p.animal_id IS NOT NULL THEN 'registry'
                    WHEN p.confident THEN 'machine' END AS identity_source
        FROM predicted p
        LEFT JOIN matched i ON i.drop_id = p.drop_id AND i.face_id = p.face_id AND i.field = 'identity'
    )
    SELECT p.face_id, p.media_id, p.drop_id, p.animal_id, p.source, p.bbox_x, p.bbox_y, p.bbox_w, p.bbox_h,
           p.crop_path, p.gradcam_path, p.detector, p.p_male, p.label AS sex_machine, p.model_version,
           n.human_value IS DISTINCT FROM 'false' AS is_face,
           CASE WHEN n.human_value IS NOT NULL THEN 'human' ELSE 'machine' END AS is_face_source,
           coalesce(s.human_value, k.sex_known, p.label) AS sex,
           CASE WHEN s.human_value IS NOT NULL THEN 'human' WHEN k.sex_known IS NOT NULL THEN 'registry'
                ELSE 'machine' END AS sex_source,
           n.human_value IS NOT NULL OR s.human_value IS NOT NULL AS reviewed,
           coalesce(s.reviewer, n.reviewer) AS reviewer, coalesce(s.created_at, n.created_at) AS reviewed_at,
           d.individual_id,
           CASE WHEN d.individual_id IS NULL THEN NULL WHEN k.animal_id IS NOT NULL THEN 'registered'
                ELSE 'provisional' END AS identity_kind,
           d.identity_source, d.established AS identity_established, d.individual_machine,
           d.kind AS identity_machine_kind, d.score AS identity_score, d.margin AS identity_margin,
           d.candidates AS identity_candidates, d.candidate_scores AS identity_candidate_scores,
           d.identity_model_version, d.identity_reviewer, d.identity_reviewed_at
    FROM predicted p
    LEFT JOIN matched s ON s.drop_id = p.drop_id AND s.face_id = p.face_id AND s.field = 'sex'
    LEFT JOIN matched n ON n.drop_id = p.drop_id AND n.face_id = p.face_id AND n.field = 'is_face'
    LEFT JOIN identified d ON d.drop_id = p.drop_id AND d.face_id = p.face_id
    LEFT JOIN registered_animals k ON k.animal_id = coalesce(d.individual_id, p.animal_id)  -- sex and identity kind
"""

ANIMALS_VIEW = f"""
    CREATE OR REPLACE VIEW animals AS
    WITH calls AS MATERIALIZED (
        SELECT individual_id AS animal_id, drop_id, p_male, model_version, source, identity_source
        FROM face_calls WHERE individual_id IS NOT NULL AND is_face
    ),
    pooled AS (
        SELECT {pooled_gender("animal_id")},
               CASE count(DISTINCT source) WHEN 0 THEN NULL WHEN 1 THEN any_value(source) ELSE 'mixed' END
                   AS face_source,
               string_agg(DISTINCT identity_source, ', ' ORDER BY identity_source) AS identity_sources,
               count(*) FILTER (WHERE source = 'detector') AS camera_trap_faces
        FROM calls GROUP BY animal_id
    ),
    registry AS (
        SELECT animal_id, max(drop_id) AS drop_id, bool_or(registered) AS registered FROM (
            SELECT animal_id, drop_id, true AS registered FROM registered_animals
            UNION ALL SELECT animal_id, drop_id, false FROM calls)
        GROUP BY animal_id
    ),
    known AS (
        SELECT animal_id, CASE WHEN count(DISTINCT sex) = 1 THEN any_value(sex) END AS sex_known,
               count(DISTINCT sex) > 1 AS sex_conflict,
               arg_max(name, drop_id) FILTER (WHERE name IS NOT NULL) AS name
        FROM animal_manifest WHERE sex IS NOT NULL OR name IS NOT NULL GROUP BY animal_id
    ),
    human AS (
        SELECT target_id AS animal_id, human_value, reviewer, created_at FROM live_corrections
        WHERE target_kind = 'animal' AND field = 'sex' {latest_per("target_id")}
    )
    SELECT r.animal_id, k.name, r.drop_id, d.site, d.deployment_id, coalesce(p.n_faces, 0) AS n_faces,
           p.face_source, p.p_male, {gender_band("p.p_male")} AS sex_predicted, k.sex_known,
           coalesce(k.sex_conflict, false) AS sex_conflict, p.mean_face_p_male, {disagreement_columns()},
           p.model_version, coalesce(h.human_value, k.sex_known, {gender_band("p.p_male")}) AS sex,
           CASE WHEN h.human_value IS NOT NULL THEN 'human' WHEN k.sex_known IS NOT NULL THEN 'registry'
                ELSE 'machine' END AS sex_source,
           h.reviewer AS sex_reviewer, h.created_at AS sex_reviewed_at,
           CASE WHEN r.registered THEN 'registered' ELSE 'provisional' END AS identity_kind,
           coalesce(p.identity_sources, 'registry') AS identity_sources, coalesce(p.camera_trap_faces, 0)
               AS camera_trap_faces
    FROM registry r LEFT JOIN pooled p USING (animal_id) LEFT JOIN known k USING (animal_id)
    LEFT JOIN human h USING (animal_id)
    LEFT JOIN drops d ON d.drop_id = r.drop_id
    ORDER BY r.animal_id
"""

# Camera-trap faces of no confident identity (no identity model, or a registered match within the review margin of
# its runner-up), grouped per camera into events (a new event after a configured gap); they stay out of the counts.
# Several animals in one event are pooled as one: the view says so by n_frames.
FACE_EVENTS_VIEW = f"""
    CREATE OR REPLACE VIEW face_events AS
    WITH unknown_faces AS (
        SELECT g.face_id, g.p_male, g.model_version, g.drop_id, m.media_id, split_part(m.path, '/', 2) AS camera,
               m.captured_at
        FROM face_calls g JOIN media m ON m.media_id = g.media_id AND m.drop_id = g.drop_id
        WHERE g.individual_id IS NULL AND g.is_face
    ),
    marked AS (
        SELECT *, CASE WHEN lag(captured_at) OVER w IS NULL OR captured_at IS NULL
                         OR epoch(captured_at) - epoch(lag(captured_at) OVER w)
                            > {THRESHOLD.format(name="gender.event_gap_s")}
                       THEN 1 ELSE 0 END AS starts_event
        FROM unknown_faces WINDOW w AS (PARTITION BY drop_id, camera ORDER BY captured_at, face_id)
    ),
    numbered AS (
        SELECT *, sum(starts_event) OVER (
                      PARTITION BY drop_id, camera ORDER BY captured_at, face_id ROWS UNBOUNDED PRECEDING
                  ) AS event_no
        FROM marked
    ),
    pooled AS (
        SELECT {pooled_gender("drop_id, camera, event_no")},
               min(captured_at) AS started_at, max(captured_at) AS ended_at, count(DISTINCT media_id) AS n_frames
        FROM numbered GROUP BY drop_id, camera, event_no
    )
    SELECT drop_id || '/' || camera || '/e' || event_no AS event_id, drop_id, camera, started_at, ended_at, n_frames,
           n_faces, p_male, {gender_band("p_male")} AS sex_predicted, {disagreement_columns()}, model_version
    FROM pooled ORDER BY drop_id, camera, started_at
"""

# Individuals: every registered animal or provisional individual a face was confidently given, with how its
# identity was established, its sightings (camera events: faces on one camera without a gap over the configured
# event gap), nights, cameras and its best face (the camera-trap face closest to its identity, else any face).
# An individual's best face: a camera-trap face before a keeper photo, then the closest to its identity; ties (the
# same face copied into many drops) go to the latest drop and face id, so the choice never depends on scan order.
BEST_FACE = "(s.source = 'detector', coalesce(s.identity_score, 0), s.drop_id, s.face_id)"
INDIVIDUALS_VIEW = f"""
    CREATE OR REPLACE VIEW individuals AS
    WITH seen AS (
        SELECT c.individual_id, c.identity_kind, c.identity_source, c.identity_established, c.face_id, c.drop_id,
               c.media_id, c.source, c.crop_path, c.identity_score, c.p_male, m.captured_at,
               CASE WHEN c.source = 'detector' THEN split_part(m.path, '/', 2) END AS camera,
               CAST((m.captured_at AT TIME ZONE coalesce(d.timezone, 'UTC')) - INTERVAL 12 HOUR AS DATE) AS night
        FROM face_calls c
        JOIN media m ON m.media_id = c.media_id AND m.drop_id = c.drop_id
        LEFT JOIN drops d ON d.drop_id = c.drop_id
        WHERE c.individual_id IS NOT NULL AND c.is_face
    ),
    marked AS (
        SELECT *, CASE WHEN camera IS NULL THEN 0
                       WHEN lag(captured_at) OVER w IS NULL OR captured_at IS NULL
                         OR epoch(captured_at) - epoch(lag(captured_at) OVER w)
                            > {THRESHOLD.format(name="gender.event_gap_s")}
                       THEN 1 ELSE 0 END AS starts_sighting
        FROM seen WINDOW w AS (PARTITION BY individual_id, camera ORDER BY captured_at, face_id)
    )
    SELECT s.individual_id, any_value(s.identity_kind) AS kind, a.name,
           string_agg(DISTINCT identity_source, ', ' ORDER BY identity_source) AS established_by,
           string_agg(DISTINCT identity_established, ', ' ORDER BY identity_established)
               FILTER (WHERE identity_established IS NOT NULL) AS machine_method,
           count(*) AS n_faces, count(*) FILTER (WHERE source = 'detector') AS camera_trap_faces,
           count(DISTINCT media_id) AS n_frames, sum(starts_sighting) AS n_sightings,
           count(DISTINCT night) FILTER (WHERE camera IS NOT NULL) AS n_nights,
           list_sort(list_distinct(list(camera) FILTER (WHERE camera IS NOT NULL))) AS cameras,
           min(captured_at) FILTER (WHERE camera IS NOT NULL) AS first_seen,
           max(captured_at) FILTER (WHERE camera IS NOT NULL) AS last_seen,
           arg_max(s.face_id, {BEST_FACE}) AS best_face_id, arg_max(s.crop_path, {BEST_FACE}) AS best_crop_path,
           any_value(a.sex) AS sex, any_value(a.sex_source) AS sex_source, any_value(a.p_male) AS p_male
    FROM marked s LEFT JOIN animals a ON a.animal_id = s.individual_id
    GROUP BY s.individual_id, a.name
    ORDER BY kind, s.individual_id
"""

# Keepers' boxes as detector annotations: a box drawn on a frame where the detector found nothing (every live one
# counts), a face's box fixed (the latest per face), a frame confirmed to hold no missed face, and a detection ruled
# "not a face" (its machine box, a hard negative). Boxes are relative to the frame, as in faces.
BOX_ANNOTATIONS_VIEW = f"""
    CREATE OR REPLACE VIEW box_annotations AS
    WITH boxes AS (
        SELECT * FROM live_corrections WHERE field = 'box' AND target_kind = 'frame'
        UNION ALL BY NAME
        (SELECT * FROM live_corrections WHERE field = 'box' AND target_kind = 'face' {latest_per("drop_id, target_id")})
    ), marked AS (
        SELECT drop_id, media_id, target_kind, target_id, reviewer, created_at, correction_id,
               CASE WHEN human_value = '{NO_FACE}' THEN 'no_face' WHEN target_kind = 'face' THEN 'fixed'
                    ELSE 'drawn' END AS annotation,
               CASE WHEN human_value = '{NO_FACE}' THEN NULL ELSE CAST(human_value AS DOUBLE[]) END AS box
        FROM boxes
        UNION ALL
        SELECT drop_id, media_id, target_kind, target_id, reviewer, created_at, correction_id, 'not_a_face',
               [bbox_x, bbox_y, bbox_w, bbox_h]
        FROM live_corrections WHERE field = 'is_face' AND human_value = 'false' AND bbox_w IS NOT NULL
    )
    SELECT k.drop_id, k.media_id, m.path AS media_path, m.width, m.height, k.annotation,
           k.box[1] AS bbox_x, k.box[2] AS bbox_y, k.box[3] AS bbox_w, k.box[4] AS bbox_h,
           CASE WHEN k.target_kind = 'face' THEN k.target_id END AS face_id, k.reviewer, k.created_at, k.correction_id
    FROM marked k LEFT JOIN media m ON m.media_id = k.media_id AND m.drop_id = k.drop_id
    ORDER BY k.drop_id, k.media_id, k.created_at
"""

DERIVED_VIEWS = {
    "live_corrections": LIVE_CORRECTIONS_VIEW,
    "face_calls": FACE_CALLS_VIEW,
    "animals": ANIMALS_VIEW,
    "face_events": FACE_EVENTS_VIEW,
    "individuals": INDIVIDUALS_VIEW,
    # Detector yield: faces per image per camera (first folder under images/) per local night.
    "detector_yield": """
        CREATE OR REPLACE VIEW detector_yield AS
        WITH frames AS (
            SELECT m.drop_id, m.media_id, split_part(m.path, '/', 2) AS camera,
                   CAST((m.captured_at AT TIME ZONE coalesce(d.timezone, 'UTC')) - INTERVAL 12 HOUR AS DATE) AS night
            FROM media m LEFT JOIN drops d USING (drop_id)
            WHERE m.kind = 'image' AND m.status = 'ok' AND m.path LIKE 'images/%'
        )
        SELECT fr.drop_id, fr.camera, fr.night,
               count(DISTINCT fr.media_id) AS images,
               count(f.face_id) AS faces,
               count(f.face_id) FILTER (WHERE NOT f.excluded) AS usable_faces,
               round(count(f.face_id) / count(DISTINCT fr.media_id), 3) AS faces_per_image,
               any_value(f.detector) AS detector
        FROM frames fr LEFT JOIN faces f ON f.media_id = fr.media_id AND f.drop_id = fr.drop_id
        GROUP BY ALL ORDER BY fr.drop_id, fr.camera, fr.night
    """,
    "box_annotations": BOX_ANNOTATIONS_VIEW,
    # Encounters (seed 002 Eq. 4 over all segments): p_success = P_s / (P_s + P_f), the success and failure
    # probabilities summed over every frame of every predicted 2 s window; the call applies the thresholds
    # table's mating band (defaults 0.4 / 0.6) to p_calibrated, p_success at the model card's temperature.
    "encounters": f"""
        CREATE OR REPLACE VIEW encounters AS
        WITH band AS (
            SELECT coalesce(max(value) FILTER (WHERE name = 'mating.abstain_low'), 0.4) AS low,
                   coalesce(max(value) FILTER (WHERE name = 'mating.abstain_high'), 0.6) AS high
            FROM thresholds
        ), windows AS (
            SELECT drop_id, encounter_id, count(*) AS n_segments
            FROM segments WHERE encounter_id IS NOT NULL GROUP BY ALL
        ), frames AS (
            SELECT drop_id, encounter_id, count(*) AS n_predicted,
                   sum(list_sum(frame_p_success)) AS p_s,  -- summed in double precision
                   sum(len(frame_p_success)) - sum(list_sum(frame_p_success)) AS p_f,  -- the sum of 1 - p
                   max(temperature) AS temperature,
                   string_agg(DISTINCT model_version, ', ' ORDER BY model_version) AS model_version
            FROM mating_predictions WHERE encounter_id IS NOT NULL GROUP BY ALL
        ), rolled AS (
            SELECT e.encounter_id, e.drop_id, e.male_id, e.female_id, e.started_at, e.recording,
                   coalesce(w.n_segments, 0) AS n_segments, coalesce(f.n_predicted, 0) AS n_predicted,
                   f.p_s / (f.p_s + f.p_f) AS p_success, coalesce(f.temperature, 1.0) AS temperature,
                   e.outcome, e.outcome IS NOT NULL AS outcome_known, f.model_version
            FROM encounter_manifest e
            LEFT JOIN windows w ON w.drop_id = e.drop_id AND w.encounter_id = e.encounter_id
            LEFT JOIN frames f ON f.drop_id = e.drop_id AND f.encounter_id = e.encounter_id
        ), calibrated AS (
            SELECT *, 1.0 / (1.0 + exp(-ln(greatest(least(p_success, 1 - 1e-12), 1e-12)
                                          / (1 - greatest(least(p_success, 1 - 1e-12), 1e-12))) / temperature))
                      AS p_calibrated
            FROM rolled
        ), human AS (
            SELECT drop_id, target_id AS encounter_id, human_value, reviewer FROM live_corrections
            WHERE target_kind = 'encounter' AND field = 'outcome' {latest_per("drop_id, target_id")}
        ), called AS (
            SELECT c.*, CASE WHEN c.p_calibrated IS NULL THEN 'unknown'
                             WHEN c.p_calibrated > b.high THEN 'success'
                             WHEN c.p_calibrated <= b.low THEN 'failure'
                             ELSE 'unknown' END AS predicted
            FROM calibrated c CROSS JOIN band b
        )
        SELECT c.encounter_id, c.drop_id, c.male_id, c.female_id, c.started_at, c.recording, c.n_segments,
               c.n_predicted, c.p_success, c.p_calibrated, c.predicted,
               c.outcome, c.outcome_known, c.model_version, c.temperature,
               coalesce(h.human_value, c.outcome, c.predicted) AS outcome_final,
               CASE WHEN h.human_value IS NOT NULL THEN 'human' WHEN c.outcome IS NOT NULL THEN 'registry'
                    ELSE 'machine' END AS outcome_source,
               h.reviewer AS outcome_reviewer
        FROM called c LEFT JOIN human h ON h.drop_id = c.drop_id AND h.encounter_id = c.encounter_id
        ORDER BY c.drop_id, c.started_at, c.encounter_id
    """,
}


def write_thresholds(con: duckdb.DuckDBPyConnection, thresholds: Mapping[str, float]) -> None:
    """The `thresholds` table (name, value): decision bands the views read, so a band changes without re-running
    models."""
    con.execute("CREATE OR REPLACE TABLE thresholds (name VARCHAR PRIMARY KEY, value DOUBLE NOT NULL)")
    if thresholds:
        con.executemany(
            "INSERT INTO thresholds VALUES (?, ?)", [[name, float(value)] for name, value in sorted(thresholds.items())]
        )


DAMAGED_PARTS_TABLE = """
    CREATE OR REPLACE TABLE damaged_parts (path VARCHAR, table_name VARCHAR, reason VARCHAR, found_at VARCHAR,
                                           set_aside_as VARCHAR, rebuild VARCHAR, rebuilt BOOLEAN)
"""


def write_damaged_parts(con: duckdb.DuckDBPyConnection, home: HomeLayout) -> None:
    """The `damaged_parts` table: every part set aside as damaged, how to rebuild it and whether it has been."""
    con.execute(DAMAGED_PARTS_TABLE)
    rows = damaged_notes(home)
    if rows:
        con.executemany(
            "INSERT INTO damaged_parts VALUES ($path, $table_name, $reason, $found_at, $set_aside_as, $rebuild, "
            "$rebuilt)",
            rows,
        )


def refresh_views(home: HomeLayout, thresholds: Mapping[str, float] | None = None) -> list[str]:
    """(Re)create every lake view and derived view; the only code that writes the catalog. The catalog holds nothing
    but what is built from the lake, the model store and the thresholds, so it is built whole into a temp file and
    renamed over the old one: a refresh killed at any point leaves the old catalog (or none) and readers never see a
    half-built one. A part that cannot be read stops it with a DamagedPartError naming the file and what to do."""
    from tasks.summary_tables import write_summary_tables  # scipy's statistics: not for the catalog's readers

    ensure_schema_parts(home)
    building = home.root / f"{TEMP_PREFIX}{home.catalog.name}.partial"
    remove_database(building)  # left by a killed refresh (one writer per home: it is not another one's)
    with duckdb.connect(str(building)) as con:
        write_thresholds(con, thresholds or {})
        write_damaged_parts(con, home)
        for spec in LAKE_TABLES:
            con.execute(view_sql(spec, home.lake.resolve()))
        try:
            for sql in MACHINE_TABLES.values():
                con.execute(sql)
        except duckdb.Error as error:
            raise unreadable_part_error(home, str(error)) or error from None
        for sql in DERIVED_VIEWS.values():
            con.execute(sql)
        try:
            summaries = write_summary_tables(con, home)
        except duckdb.Error as error:
            raise unreadable_part_error(home, str(error)) or error from None
        con.execute("CHECKPOINT")  # everything in the file itself, no write-ahead log beside it
    publish_database(building, home.catalog)
    names = [spec.name for spec in LAKE_TABLES] + list(MACHINE_TABLES) + list(DERIVED_VIEWS)
    return names + ["damaged_parts"] + summaries


def lake_connection(home: HomeLayout, specs: Sequence[TableSpec]) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with views over the given lake tables (and live_corrections when corrections is one of
    them), read from the lake itself: for a writer that must see tonight's parts before the catalog is rebuilt."""
    ensure_schema_parts(home)
    con = duckdb.connect()
    for spec in specs:
        con.execute(view_sql(spec, home.lake.resolve()))
    if any(spec.name == "corrections" for spec in specs):
        con.execute(LIVE_CORRECTIONS_VIEW)
    return con


def wal_path(database: Path) -> Path:
    """DuckDB's write-ahead log of a database file."""
    return database.with_name(database.name + WAL_SUFFIX)


def remove_database(database: Path) -> None:
    """Delete a DuckDB file and its write-ahead log when present."""
    database.unlink(missing_ok=True)
    wal_path(database).unlink(missing_ok=True)


def publish_database(building: Path, catalog: Path) -> None:
    """Rename a finished, checkpointed DuckDB file over the catalog, dropping the old catalog's write-ahead log first
    (left by a writer killed before this code; DuckDB would replay it into the new file)."""
    wal_path(building).unlink(missing_ok=True)
    wal_path(catalog).unlink(missing_ok=True)
    publish_file(building, catalog)


def retry_while_locked(open_catalog: Callable[[], Opened]) -> Opened:
    """Open (or attach) the catalog, waiting briefly while another process holds its lock."""
    for attempt in range(LOCK_RETRIES):
        try:
            return open_catalog()
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or attempt == LOCK_RETRIES - 1:
                raise
            time.sleep(LOCK_WAIT_S)
    raise AssertionError("unreachable")


def connect_with_retry(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    """Open the catalog, waiting briefly while another process holds its lock."""
    return retry_while_locked(lambda: duckdb.connect(str(path), read_only=read_only))


def query(home: HomeLayout, sql: str, parameters: list[object] | dict[str, object] | None = None) -> pa.Table:
    """Run SQL against the catalog read-only (positional or $named parameters) and return the result as Arrow."""
    check_home_version(home)
    if not home.catalog.exists():
        raise CatalogMissingError(f"no catalog at {home.catalog}: run 'breedwatch run' (or 'make demo') first")
    with connect_with_retry(home.catalog, read_only=True) as con:
        try:
            relation = con.sql(sql, params=parameters or None)
            return relation.to_arrow_table() if relation is not None else pa.table({})
        except duckdb.Error as error:
            raise unreadable_part_error(home, str(error)) or error from None
