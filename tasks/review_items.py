"""The review queue's items, written into the catalog at each refresh (review_items), so the app ranks and shows an
item without computing the views over the whole lake on every key press; whether an item is decided is read live from
the corrections at request time (tasks/review.py)."""

from __future__ import annotations

import duckdb

from models.individuals import AWAITING_SIGHTING, SAME_EVENT, SOLE_CANDIDATE
from schemas.review import AUDIT_BUCKETS
from tasks.catalog import HELD_ESTABLISHED, REVIEW_MARGIN

# Every reviewable item with the value of a human look (1 = a coin toss for the model), why, what identifies its
# target for the live corrections (media and box for faces), the machine's call, the rest of what the page shows as
# JSON (details; none for face and identity items, whose page the app reads from the catalog's face_machine,
# detector_boxes and registered_animals when it is shown: 1.5 million faces' JSON made half of a 10,000-drop
# refresh), and its fixed audit draw (audit_u, uniform in 0..AUDIT_BUCKETS-1). Faces: nearness of P(male) to 0.5.
# Animals: a registry contradiction or conflict counts fully, else the share of confident faces on the minority side
# (at most 0.5, doubled). Encounters: nearness of the calibrated P(success) to 0.5 (the abstain band is its middle).
# Frames: images where the detector found nothing on a camera that usually yields faces, at half the camera's faces
# per frame (capped at 0.5). Identity: a registered match by how close its runner-up is (margin 0 counts fully, twice
# the review margin or more not at all), a held face (models/individuals.py) fully; a provisional individual once, on
# its best face (by drop and face id), at 0.5 (a person confirms every new individual), fully while it awaits a second
# sighting (it is left out of the counts until then); a seen-once face counted as its sole registered candidate fully.
REVIEW_ITEMS_SQL = """
    CREATE OR REPLACE TABLE review_items AS
    WITH camera_yield AS (
        SELECT camera, sum(faces) / sum(images) AS per_frame FROM detector_yield GROUP BY camera
    ), faceless AS (
        SELECT m.drop_id, m.media_id, m.path, m.sha256, m.width, m.height, m.captured_at, y.camera, y.per_frame
        FROM media m JOIN camera_yield y ON y.camera = split_part(m.path, '/', 2)
        ANTI JOIN faces f ON f.media_id = m.media_id AND f.drop_id = m.drop_id
        WHERE m.kind = 'image' AND m.status = 'ok' AND m.path LIKE 'images/%' AND y.per_frame >= $frame_min_yield
    ), drop_detector AS (
        SELECT drop_id, any_value(detector) AS detector FROM faces WHERE source = 'detector' GROUP BY drop_id
    ), animal_crops AS (
        SELECT animal_id, min_by(crop_path, (-abs(p_male - 0.5), face_id), 4) AS crops
        FROM face_calls WHERE animal_id IS NOT NULL AND is_face AND crop_path IS NOT NULL GROUP BY animal_id
    ), identity_faces AS (
        SELECT * FROM face_calls WHERE is_face AND identity_machine_kind IN ('registered', 'provisional')
        QUALIFY identity_machine_kind = 'registered'
             OR row_number() OVER (PARTITION BY individual_machine
                                   ORDER BY identity_score DESC, drop_id DESC, face_id DESC) = 1
    ), items AS (
        SELECT 'face' AS kind, c.drop_id, c.face_id AS target_id, 1 - 2 * abs(c.p_male - 0.5) AS value,
               'face P(male) ' || printf('%.2f', c.p_male) AS reason, c.media_id, c.bbox_x, c.bbox_y, c.bbox_w,
               c.bbox_h, c.sex_machine AS call, c.p_male AS p, c.model_version, NULL AS details
        FROM face_calls c WHERE c.p_male IS NOT NULL
        UNION ALL
        SELECT 'animal', '', a.animal_id,
               CASE WHEN a.sex_conflict OR (a.sex_known IS NOT NULL AND a.sex_predicted NOT IN ('unknown', a.sex_known))
                    THEN 1.0 ELSE least(1.0, 2 * a.disagreement) END,
               CASE WHEN a.sex_conflict THEN 'the registry gives two sexes'
                    WHEN a.sex_known IS NOT NULL AND a.sex_predicted NOT IN ('unknown', a.sex_known)
                    THEN 'the model contradicts the registry (' || a.sex_known || ')'
                    ELSE 'its faces disagree (' || printf('%.0f', 100 * a.disagreement) || '% on the minority side)'
               END,
               NULL, NULL, NULL, NULL, NULL, a.sex_predicted, a.p_male, a.model_version,
               to_json({'drop_id': a.drop_id, 'name': a.name, 'n_faces': a.n_faces, 'sex_known': a.sex_known,
                        'sex_predicted': a.sex_predicted, 'disagreement': a.disagreement,
                        'crops': coalesce(r.crops, [])})
        FROM animals a LEFT JOIN animal_crops r USING (animal_id) WHERE a.n_faces > 0
        UNION ALL
        SELECT 'encounter', e.drop_id, e.encounter_id, 1 - 2 * abs(e.p_calibrated - 0.5),
               CASE WHEN e.predicted = 'unknown' THEN 'in the abstain band' ELSE 'decided by the model' END
               || ' (P(success) ' || printf('%.2f', e.p_calibrated) || ')',
               NULL, NULL, NULL, NULL, NULL, e.predicted, e.p_calibrated, e.model_version,
               to_json({'predicted': e.predicted, 'male_id': e.male_id, 'female_id': e.female_id,
                        'started_at': e.started_at, 'n_segments': e.n_segments,
                        'outcome': CASE WHEN e.outcome_known THEN e.outcome END})
        FROM encounters e WHERE e.p_calibrated IS NOT NULL
        UNION ALL
        SELECT 'frame', g.drop_id, g.media_id, 0.5 * least(1.0, g.per_frame),
               'no face found, on camera ' || g.camera || ' that yields ' || printf('%.2f', g.per_frame)
               || ' faces per frame',
               g.media_id, NULL, NULL, NULL, NULL, 'no face found', NULL, d.detector,
               to_json({'media_path': g.path, 'media_sha256': g.sha256, 'width': g.width, 'height': g.height,
                        'captured_at': g.captured_at, 'camera': g.camera, 'detector': d.detector,
                        'frame_boxes': []})
        FROM faceless g LEFT JOIN drop_detector d USING (drop_id)
        UNION ALL
        SELECT 'identity', c.drop_id, c.face_id,
               CASE WHEN c.identity_established IN $held OR c.identity_established = '$sole' THEN 1.0
                    WHEN c.identity_machine_kind = 'registered'
                    THEN 1 - least(1.0, coalesce(c.identity_margin, 0) / (2 * $review_margin)) ELSE 0.5 END,
               CASE WHEN c.identity_established = '$awaiting'
                    THEN 'seen once and like no registered animal: a new individual (' || c.individual_machine
                         || '), counted once it is seen again or you confirm it?'
                    WHEN c.identity_established = '$sole' AND c.identity_source = 'machine'
                    THEN 'seen once, below the match threshold (' || printf('%.3f', c.identity_score)
                         || ') but most like ' || c.individual_machine
                         || ', which no other face of the night shows: counted as ' || c.individual_machine
                         || '; is it ' || c.individual_machine || '?'
                    WHEN c.identity_established IN $held
                    THEN 'below the match threshold (' || printf('%.3f', c.identity_score) || '), but '
                         || CASE c.identity_established WHEN '$same_event'
                                 THEN c.individual_machine || ' is matched in the same camera event'
                                 ELSE 'no nearer the new individual it would join than ' || c.individual_machine END
                         || ': is it ' || c.individual_machine || '?'
                    WHEN c.identity_machine_kind = 'provisional'
                    THEN 'matches no registered animal: is it a new individual (' || c.individual_machine || ')?'
                    WHEN c.identity_margin < $review_margin
                    THEN 'two registered animals match almost equally (margin ' || printf('%.3f', c.identity_margin)
                         || ')'
                    ELSE 'matched to ' || c.individual_machine || ' (margin ' || printf('%.3f', c.identity_margin)
                         || ')' END,
               c.media_id, c.bbox_x, c.bbox_y, c.bbox_w, c.bbox_h, c.individual_machine, c.identity_score,
               c.identity_model_version, NULL
        FROM identity_faces c
    )
    SELECT key, md5_number(key) % $buckets AS audit_u, * FROM (
        SELECT kind || ':' || drop_id || ':' || target_id AS key, * FROM items
    ) ORDER BY key
"""


def write_review_items(con: duckdb.DuckDBPyConnection, frame_min_yield: float) -> str:
    """(Re)write the review_items table from the refreshed views; its name."""
    sql = REVIEW_ITEMS_SQL.replace("$review_margin", REVIEW_MARGIN)  # the thresholds table's value, in SQL
    sql = sql.replace("$held", HELD_ESTABLISHED).replace("$same_event", SAME_EVENT)
    sql = sql.replace("$awaiting", AWAITING_SIGHTING).replace("$sole", SOLE_CANDIDATE)
    con.execute(sql, {"frame_min_yield": frame_min_yield, "buckets": AUDIT_BUCKETS})
    return "review_items"
