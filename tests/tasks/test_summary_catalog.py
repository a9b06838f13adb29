"""The catalog writer fills gender_ratio from the lake through the animals view (integration)."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.home import HomeLayout
from tests.tasks.test_summary_tables import write_card

P_MALE = {"M1": 0.95, "M2": 0.9, "F1": 0.05, "F2": 0.1, "F3": 0.02, "U1": 0.5}
THRESHOLDS = {
    "gender.abstain_low": 0.2,
    "gender.abstain_high": 0.8,
    "gender.confident": 0.7,
    "gender.disagreement_share": 0.25,
    "gender.event_gap_s": 300.0,
}


def write_lake(home: HomeLayout, registry_sex: dict[str, str] | None = None) -> None:
    """Two gender calls for each animal of P_MALE (Se 0.9, Sp 0.8 card), their faces, the registry (with the given
    sexes) and the drop."""
    from schemas.tables import ANIMALS_MANIFEST, DROPS, FACES, GENDER_PREDICTIONS
    from tasks.lake import write_rows

    write_card(home, "panda-gender", 1, {"metrics": {"per_animal": {"confusion_matrix": [[8, 2], [1, 9]]}}})
    faces = [
        {
            "face_id": f"{a}-{i}",
            "media_id": f"m-{a}-{i}",
            "drop_id": "d1",
            "animal_id": a,
            "p_male": p,
            "label": "male" if p >= 0.5 else "female",
            "model_version": "panda-gender@v1",
            "run_id": "r1",
        }
        for a, p in P_MALE.items()
        for i in range(2)
    ]
    write_rows(home, GENDER_PREDICTIONS, "d1", "gender", faces)
    sources = {"M1-0": "keeper", "M1-1": "keeper", "F1-0": "detector", "F1-1": "detector", "M2-0": "keeper"}
    sources["M2-1"] = "detector"
    face_rows = [
        {"face_id": f, "media_id": f"m-{f}", "drop_id": "d1", "animal_id": f[:2], "source": s, "excluded": False}
        for f, s in sources.items()
    ]
    write_rows(home, FACES, "d1", "faces", face_rows)
    registry = [{"drop_id": "d1", "animal_id": a, "sex": (registry_sex or {}).get(a)} for a in P_MALE]
    write_rows(home, ANIMALS_MANIFEST, "d1", "ingest", registry)
    write_rows(
        home, DROPS, "d1", "ingest", [{"drop_id": "d1", "site": "North", "deployment_id": "dep-1", "timezone": "UTC"}]
    )


def test_refresh_views_writes_gender_ratio_from_the_lake(tmp_path: Path) -> None:
    """Integration: gender predictions in the lake -> animals view -> gender_ratio table, the band from the
    thresholds."""
    from tasks.catalog import query, refresh_views

    home = HomeLayout(tmp_path / "home")
    write_lake(home)
    names = refresh_views(home, THRESHOLDS)
    assert {"gender_ratio", "mating_success", "model_cards"} <= set(names)
    rows = query(
        home, "SELECT level, males, females, unknown, n, estimate, corrected, model_version FROM gender_ratio"
    ).to_pylist()
    assert [r["level"] for r in rows] == ["deployment", "overall"]
    overall = rows[-1]
    assert (overall["males"], overall["females"], overall["unknown"], overall["n"]) == (2, 3, 1, 5)
    assert overall["estimate"] == pytest.approx(0.4)
    assert overall["corrected"] == pytest.approx((0.4 - 0.2) / 0.7)
    assert overall["model_version"] == "panda-gender@v1"
    seen_on = {r["animal_id"]: r["face_source"] for r in query(home, "SELECT * FROM animals").to_pylist()}
    assert (seen_on["M1"], seen_on["F1"], seen_on["M2"], seen_on["F2"]) == ("keeper", "detector", "mixed", None)


def test_a_keepers_correction_and_the_registry_move_animals_from_corrected_to_known(tmp_path: Path) -> None:
    """Integration: the registry's sex of F3 and a keeper's sex for U1 (abstained) count as known; the other four
    animals' machine calls are corrected with the card's rates, and the share mixes both."""
    from datetime import UTC, datetime

    from models.statistics import corrected_share_interval
    from schemas.tables import CORRECTIONS
    from tasks.catalog import query, refresh_views
    from tasks.lake import write_rows

    home = HomeLayout(tmp_path / "home")
    write_lake(home, registry_sex={"F3": "female"})
    correction = {
        "correction_id": "c1",
        "action": "set",
        "target_kind": "animal",
        "target_id": "U1",
        "drop_id": "d1",
        "field": "sex",
        "human_value": "male",
        "reviewer": "kim",
        "created_at": datetime(2026, 12, 1, 10, tzinfo=UTC),
    }
    write_rows(home, CORRECTIONS, "2026-12-01", "c1", [correction])
    refresh_views(home, THRESHOLDS)
    overall = query(home, "SELECT * FROM gender_ratio WHERE level = 'overall'").to_pylist()[0]
    assert (overall["males"], overall["females"], overall["unknown"], overall["n"]) == (3, 3, 0, 6)
    assert (overall["known_males"], overall["known_females"]) == (1, 1)
    machine = corrected_share_interval(2, 4, 9, 10, 8, 10)
    assert overall["corrected"] == pytest.approx((1 + 4 * machine.estimate) / 6)
    assert overall["interval_method"] == "lang-reiczigel+known"
