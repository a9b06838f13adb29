"""Who each face is, decided over the whole home after the night's stages: the identity_matches part, rewritten whole
when its answer changes (matching and clustering in models/individuals.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from models.identity_metrics import camera_events
from models.individuals import (
    AWAITING_SIGHTING,
    CLUSTER,
    SOLE_CANDIDATE,
    Gallery,
    Queries,
    Thresholds,
    decide_individuals,
)
from schemas.config import Settings
from schemas.home import HomeLayout
from schemas.tables import ANIMALS_MANIFEST, CORRECTIONS, FACE_EMBEDDINGS, FACES, IDENTITY_MATCHES, MEDIA
from tasks.catalog import REGISTERED_ANIMALS, face_follows, lake_connection, latest_per
from tasks.identity_training import KIND
from tasks.lake import read_part, rows_to_table, write_rows
from tasks.model_store import model_label, stored_card

SCOPE = "home"
PART = "individuals"

# Every embedded face of the identity model in use, in time order, with the identity a keeper gave it (the latest
# live face correction of field 'identity' that follows the face) or its registry animal, and whether that identity
# is a registered animal (then the face joins the gallery). Faces a keeper ruled "not a face" are left out.
EMBEDDED_FACES_SQL = f"""
WITH emb AS (
    SELECT e.face_id, e.drop_id, e.media_id, e.animal_id, e.embedding, m.captured_at, m.path,
           f.bbox_x, f.bbox_y, f.bbox_w, f.bbox_h
    FROM face_embeddings e
    LEFT JOIN media m ON m.media_id = e.media_id AND m.drop_id = e.drop_id
    LEFT JOIN faces f ON f.face_id = e.face_id AND f.drop_id = e.drop_id
    WHERE e.model_version = $model
), said AS (
    SELECT e.drop_id, e.face_id, c.field, c.human_value, c.created_at, c.correction_id
    FROM emb e JOIN live_corrections c
        ON c.target_kind = 'face' AND c.field IN ('identity', 'is_face') AND c.media_id = e.media_id
    WHERE {face_follows("c", "e", "face_id")}
    {latest_per("e.drop_id, e.face_id, c.field")}
), registered AS ({REGISTERED_ANIMALS})
SELECT e.face_id, e.drop_id, e.media_id, e.embedding,
       e.drop_id || '/' || split_part(e.path, '/', 2) AS camera, epoch(e.captured_at) AS captured_s,
       coalesce(i.human_value, e.animal_id) AS known_id,
       coalesce(coalesce(i.human_value, e.animal_id) IN (SELECT animal_id FROM registered), false) AS in_gallery
FROM emb e
LEFT JOIN said i ON i.drop_id = e.drop_id AND i.face_id = e.face_id AND i.field = 'identity'
LEFT JOIN said n ON n.drop_id = e.drop_id AND n.face_id = e.face_id AND n.field = 'is_face'
WHERE n.human_value IS DISTINCT FROM 'false'
ORDER BY e.captured_at NULLS LAST, e.drop_id, e.face_id
"""


@dataclass(frozen=True)
class IdentityInputs:
    """The faces to identify and the gallery, read from the lake for one identity model version."""

    queries: Queries
    gallery: Gallery


def embedding_matrix(column: pa.ChunkedArray) -> np.ndarray:
    """An N x D float32 matrix from a list<float> column of N equal-length embeddings."""
    if len(column) == 0:
        return np.zeros((0, 0), dtype=np.float32)
    values = np.asarray(column.combine_chunks().flatten(), dtype=np.float32)
    return values.reshape(len(column), -1)


def read_identity_inputs(home: HomeLayout, model_version: str, event_gap_s: float) -> IdentityInputs:
    """The gallery (faces of registered animals) and the faces to identify (every other embedded face, in time order,
    with its camera event: one camera, frames less than event_gap_s apart) of one identity model version, straight
    from the lake."""
    tables = (FACE_EMBEDDINGS, MEDIA, FACES, CORRECTIONS, ANIMALS_MANIFEST)
    with lake_connection(home, tables) as con:
        faces = con.sql(EMBEDDED_FACES_SQL, params={"model": model_version}).to_arrow_table()
    in_gallery = np.asarray(faces.column("in_gallery").to_pylist(), dtype=bool)
    embeddings = embedding_matrix(faces.column("embedding"))
    names = ("face_id", "drop_id", "media_id", "known_id", "camera", "captured_s")
    column = {name: faces.column(name).to_pylist() for name in names}
    asked, named = np.flatnonzero(~in_gallery), np.flatnonzero(in_gallery)
    queries = Queries(
        face_ids=[column["face_id"][i] for i in asked],
        drop_ids=[column["drop_id"][i] for i in asked],
        media_ids=[column["media_id"][i] for i in asked],
        order=np.arange(len(asked)),
        embeddings=embeddings[asked],
        events=camera_events(
            [column["camera"][i] or f"face:{column['face_id'][i]}" for i in asked],
            [column["captured_s"][i] for i in asked],
            event_gap_s,
        ),
    )
    gallery = Gallery(animal_ids=[column["known_id"][i] for i in named], embeddings=embeddings[named])
    return IdentityInputs(queries, gallery)


def unchanged(home: HomeLayout, rows: list[dict[str, Any]]) -> bool:
    """Whether the committed identity_matches part already holds these rows (run ids aside)."""
    path = home.part(IDENTITY_MATCHES.name, IDENTITY_MATCHES.partition, SCOPE, PART)
    if not path.exists():
        return False
    committed = read_part(path, IDENTITY_MATCHES).drop_columns(["run_id"])
    return committed.equals(rows_to_table(rows, IDENTITY_MATCHES).drop_columns(["run_id"]))


def assign_individuals(home: HomeLayout, settings: Settings, run_id: str) -> dict[str, Any]:
    """Match every embedded face of no known animal to the registered animals and cluster the rest into provisional
    individuals; the identity_matches part is rewritten only when its answer changed (a re-run adds nothing)."""
    card = stored_card(home, KIND, settings.identity.model)
    if card is None:
        return {"status": "no_model", "message": f"no identity model '{settings.identity.model}' is stored"}
    model = model_label(card)
    inputs = read_identity_inputs(home, model, settings.gender.event_gap_s)
    thresholds = Thresholds(
        float(card["match_threshold"]), float(card["cluster_threshold"]), settings.identity.review_margin
    )
    rows = [
        {**row, "model_version": model, "run_id": run_id}
        for row in decide_individuals(
            inputs.queries, inputs.gallery, thresholds, settings.identity.provisional_min_faces
        )
    ]
    changed = not unchanged(home, rows)
    if changed:
        write_rows(home, IDENTITY_MATCHES, SCOPE, PART, rows)
    kinds = [row["kind"] for row in rows]
    return {
        "status": "assigned" if changed else "unchanged",
        "model": model,
        "gallery_faces": len(inputs.gallery.animal_ids),
        "faces": len(rows),
        "registered": kinds.count("registered"),
        "provisional": kinds.count("provisional"),
        "provisional_individuals": len(
            {r["individual_id"] for r in rows if r["kind"] == "provisional" and r["established"] == CLUSTER}
        ),
        "awaiting_sighting": sum(r["established"] == AWAITING_SIGHTING for r in rows),
        "sole_candidates": sum(r["established"] == SOLE_CANDIDATE for r in rows),
    }
