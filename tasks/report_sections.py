"""The report's gender, mating, model and review sections, read from the catalog (its views and summary tables)."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any
from urllib.parse import quote

from models.individuals import AWAITING_SIGHTING, SOLE_CANDIDATE
from models.statistics import wilson_interval
from reports.model_cards import card_plots, error_rate_rows, scalar_metrics
from reports.plots import attention_plot, data_uri, mean_attention, proportion_series_plot, thumbnail_uri
from schemas.home import HomeLayout
from tasks.catalog import query

REVIEW_ROWS = 10
THUMBNAILS_PER_ANIMAL = 3
RELATIONS_SQL = "SELECT table_name FROM information_schema.tables WHERE list_contains(?, table_name)"
RUN_ANIMALS = """(SELECT animal_id FROM faces WHERE list_contains($drops, drop_id) AND animal_id IS NOT NULL
                  UNION SELECT animal_id FROM animal_manifest WHERE list_contains($drops, drop_id)
                  UNION SELECT individual_id FROM face_calls
                        WHERE list_contains($drops, drop_id) AND individual_id IS NOT NULL)"""
ANIMALS_SQL = f"SELECT * FROM animals WHERE animal_id IN {RUN_ANIMALS} ORDER BY animal_id"
THUMBNAILS_SQL = f"""
SELECT animal_id, crop_path FROM faces
WHERE NOT excluded AND crop_path IS NOT NULL AND animal_id IN {RUN_ANIMALS}
QUALIFY row_number() OVER (PARTITION BY animal_id ORDER BY quality.sharpness DESC NULLS LAST, face_id) <= $n
"""
# Individuals seen on the run's camera-trap frames, and faces the identity net named but not confidently enough to
# count ("who is this?": a registered match too close to its runner-up or held for review, or a provisional individual
# seen once), lowest margin first.
SIGHTED_SQL = """
SELECT * FROM individuals WHERE individual_id IN (
    SELECT individual_id FROM face_calls WHERE list_contains(?, drop_id) AND source = 'detector' AND is_face)
ORDER BY kind DESC, n_sightings DESC, individual_id
"""
WHO_IS_THIS_SQL = """
SELECT face_id, drop_id, crop_path, identity_candidates, identity_candidate_scores, identity_margin,
       individual_id, individual_machine, identity_established, identity_source
FROM face_calls
WHERE list_contains(?, drop_id) AND is_face AND identity_machine_kind IS NOT NULL
  AND (individual_id IS NULL OR (identity_established = ? AND identity_source = 'machine'))
ORDER BY identity_margin NULLS FIRST, face_id LIMIT ?
"""
EVENTS_SQL = "SELECT * FROM face_events WHERE list_contains(?, drop_id) ORDER BY drop_id, camera, started_at"
SERIES_SQL = """
WITH seen AS (
    SELECT DISTINCT g.drop_id, g.animal_id FROM gender_predictions g WHERE g.animal_id IS NOT NULL
),
dated AS (SELECT drop_id, min(captured_at) AS first_capture FROM media WHERE status = 'ok' GROUP BY drop_id)
SELECT s.drop_id, dt.first_capture AS "when",
       count(*) FILTER (WHERE a.sex = 'male') AS males,
       count(*) FILTER (WHERE a.sex = 'female') AS females
FROM seen s JOIN animals a ON a.animal_id = s.animal_id LEFT JOIN dated dt ON dt.drop_id = s.drop_id
GROUP BY s.drop_id, dt.first_capture ORDER BY dt.first_capture NULLS LAST, s.drop_id
"""
DOUBTFUL_FACES_SQL = """
SELECT g.face_id, g.drop_id, g.animal_id, g.p_male, f.crop_path
FROM gender_predictions g JOIN faces f USING (face_id, drop_id)
WHERE list_contains(?, g.drop_id) ORDER BY abs(g.p_male - 0.5), g.face_id LIMIT ?
"""
GRADCAM_SQL = """
SELECT face_id, animal_id, p_male, label, gradcam_path FROM gender_predictions
WHERE gradcam_path IS NOT NULL AND list_contains(?, drop_id) ORDER BY p_male, face_id
"""
MODELS_USED_SQL = """
SELECT DISTINCT model_version FROM gender_predictions WHERE list_contains(?, drop_id)
UNION SELECT DISTINCT model_version FROM mating_predictions WHERE list_contains(?, drop_id)
"""
AUDIT_SQL = "SELECT * FROM audit_accuracy ORDER BY month, model"
ENCOUNTERS_SQL = "SELECT * FROM encounters WHERE list_contains(?, drop_id) ORDER BY started_at NULLS LAST, encounter_id"
ATTENTION_SQL = (
    "SELECT encounter_id, attention FROM mating_predictions "
    "WHERE list_contains(?, drop_id) AND encounter_id IS NOT NULL"
)


def relations(home: HomeLayout, names: list[str]) -> set[str]:
    """Which of the named views and tables the catalog has."""
    return {row["table_name"] for row in query(home, RELATIONS_SQL, [names]).to_pylist()}


def rows_if(home: HomeLayout, present: set[str], relation: str, sql: str, params: list[object]) -> list[dict[str, Any]]:
    """Rows of a query over a relation, or none when the catalog does not have that relation."""
    return query(home, sql, params).to_pylist() if relation in present else []


def animal_rows(home: HomeLayout, drop_ids: list[str]) -> list[dict[str, Any]]:
    """The run's animals with up to three thumbnails of their sharpest usable faces."""
    animals = query(home, ANIMALS_SQL, {"drops": drop_ids}).to_pylist()
    thumbs: dict[str, list[str]] = defaultdict(list)
    for row in query(home, THUMBNAILS_SQL, {"drops": drop_ids, "n": THUMBNAILS_PER_ANIMAL}).to_pylist():
        uri = thumbnail_uri(home.root / row["crop_path"])
        if uri:
            thumbs[row["animal_id"]].append(uri)
    return [{**animal, "thumbnails": thumbs.get(animal["animal_id"], [])} for animal in animals]


def ratio_series(home: HomeLayout) -> str | None:
    """The male share (Wilson 95%) among the decided animals seen in each drop, over time, as an embedded plot."""
    points = []
    for row in query(home, SERIES_SQL).to_pylist():
        n = row["males"] + row["females"]
        interval = wilson_interval(row["males"], n) if n else None
        points.append(
            {
                "when": row["when"] or row["drop_id"],
                "estimate": interval.estimate if interval else None,
                "ci_low": interval.ci_low if interval else None,
                "ci_high": interval.ci_high if interval else None,
            }
        )
    png = proportion_series_plot(points, "male share") if len({type(p["when"]) for p in points}) == 1 else None
    return data_uri(png) if png else None


def individuals_section(home: HomeLayout, drop_ids: list[str], review_url: str | None) -> dict[str, Any]:
    """Individuals seen on the run's camera traps with their best face, and the "who is this?" list of faces named
    without confidence (and seen-once faces counted as their sole registered candidate), each linked to the review app
    when configured."""
    sighted = query(home, SIGHTED_SQL, [drop_ids]).to_pylist()
    for row in sighted:
        row["thumbnail"] = thumbnail_uri(home.root / row["best_crop_path"]) if row["best_crop_path"] else None
    unsure = query(home, WHO_IS_THIS_SQL, [drop_ids, SOLE_CANDIDATE, REVIEW_ROWS]).to_pylist()
    for row in unsure:
        row["thumbnail"] = thumbnail_uri(home.root / row["crop_path"]) if row["crop_path"] else None
        row["candidates"] = list(zip(row["identity_candidates"] or [], row["identity_candidate_scores"] or []))
        row["seen_once"] = row["identity_established"] in (AWAITING_SIGHTING, SOLE_CANDIDATE)
        counted = row["identity_established"] == SOLE_CANDIDATE and row["identity_source"] == "machine"
        row["counted_as"] = row["individual_id"] if counted else None  # not once a keeper has answered
        row["review_url"] = review_link(review_url, "identity", row["drop_id"], row["face_id"])
    return {"individuals": sighted, "who_is_this": unsure}


def gender_section(home: HomeLayout, drop_ids: list[str], present: set[str]) -> dict[str, Any]:
    """Gender ratio, its series, the per-animal table, camera-trap events and Grad-CAM panels."""
    gradcams = query(home, GRADCAM_SQL, [drop_ids]).to_pylist()
    for row in gradcams:
        row["image"] = thumbnail_uri(home.root / row["gradcam_path"], 160)
    return {
        "gender_ratio": rows_if(home, present, "gender_ratio", "SELECT * FROM gender_ratio", []),
        "ratio_series": ratio_series(home),
        "animals": animal_rows(home, drop_ids),
        "face_events": query(home, EVENTS_SQL, [drop_ids]).to_pylist(),
        "gradcams": gradcams,
    }


def mating_section(home: HomeLayout, drop_ids: list[str], present: set[str]) -> dict[str, Any]:
    """Encounters of the run, success per season and the attention plot of the evening's encounters."""
    attention = mean_attention(query(home, ATTENTION_SQL, [drop_ids]).to_pylist())
    png = attention_plot(attention)
    return {
        "encounters": rows_if(home, present, "encounters", ENCOUNTERS_SQL, [drop_ids]),
        "mating_success": rows_if(home, present, "mating_success", "SELECT * FROM mating_success", []),
        "attention_plot": data_uri(png) if png else None,
    }


def models_section(home: HomeLayout, drop_ids: list[str], present: set[str]) -> list[dict[str, Any]]:
    """Model cards of the models whose predictions this run's drops carry."""
    used = [
        row["model_version"]
        for row in query(home, MODELS_USED_SQL, [drop_ids, drop_ids]).to_pylist()
        if row["model_version"]
    ]
    rows = rows_if(
        home,
        present,
        "model_cards",
        "SELECT * FROM model_cards WHERE list_contains(?, model_version) ORDER BY kind, name",
        [used],
    )
    cards = []
    for row in rows:
        card = json.loads(row["card"]) if row["card"] else {}
        cards.append(
            {
                "kind": row["kind"],
                "model_version": row["model_version"],
                "problem": row["problem"],
                "trained_on": card.get("source") or card.get("data_source"),
                "fingerprint": card.get("data_fingerprint"),
                "split": card.get("split", {}),
                "metrics": scalar_metrics(card),
                "error_rates": error_rate_rows(card),
                "plots": card_plots(card),
                "calibration_note": (card.get("calibration") or card.get("metrics", {}).get("calibration") or {}).get(
                    "note"
                ),
            }
        )
    return cards


def review_link(review_url: str | None, kind: str, drop_id: str, target_id: str) -> str | None:
    """The review app's address of one item (its queue key kind:drop:id), when the app's address is configured."""
    if not review_url:
        return None
    return f"{review_url.rstrip('/')}/?item={quote(f'{kind}:{drop_id}:{target_id}', safe='')}"


def review_section(
    home: HomeLayout,
    drop_ids: list[str],
    animals: list[dict[str, Any]],
    encounters: list[dict[str, Any]],
    review_url: str | None = None,
) -> dict[str, Any]:
    """What needs a human look: faces and encounters nearest the decision boundary, animals whose faces disagree, each
    linked to the review app when its address is configured."""
    faces = query(home, DOUBTFUL_FACES_SQL, [drop_ids, REVIEW_ROWS]).to_pylist()
    for face in faces:
        face["thumbnail"] = thumbnail_uri(home.root / face["crop_path"])
        face["review_url"] = review_link(review_url, "face", face["drop_id"], face["face_id"])
    doubtful = sorted(
        (e for e in encounters if e.get("p_success") is not None), key=lambda e: abs(e["p_success"] - 0.5)
    )[:REVIEW_ROWS]
    flagged = [a for a in animals if a.get("flagged") or a.get("sex_conflict")]
    return {
        "faces": faces,
        "encounters": [
            {**e, "review_url": review_link(review_url, "encounter", e["drop_id"], e["encounter_id"])} for e in doubtful
        ],
        "animals": [{**a, "review_url": review_link(review_url, "animal", "", a["animal_id"])} for a in flagged],
        "app": review_url,
    }


def prediction_sections(home: HomeLayout, drop_ids: list[str], review_url: str | None = None) -> dict[str, Any]:
    """Every prediction section of the run report."""
    present = relations(home, ["gender_ratio", "mating_success", "model_cards", "encounters", "audit_accuracy"])
    gender = {**gender_section(home, drop_ids, present), **individuals_section(home, drop_ids, review_url)}
    mating = mating_section(home, drop_ids, present)
    review = {
        **review_section(home, drop_ids, gender["animals"], mating["encounters"], review_url),
        "audit": rows_if(home, present, "audit_accuracy", AUDIT_SQL, []),
    }
    return {**gender, **mating, "model_cards": models_section(home, drop_ids, present), "review": review}
