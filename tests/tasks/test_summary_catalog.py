"""The catalog writer fills gender_ratio from the lake through the animals view (integration)."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.home import HomeLayout
from tests.tasks.test_summary_tables import write_card


def test_refresh_views_writes_gender_ratio_from_the_lake(tmp_path: Path) -> None:
    """Integration: gender predictions in the lake -> animals view -> gender_ratio table, the band from the
    thresholds."""
    from schemas.tables import ANIMALS_MANIFEST, DROPS, FACES, GENDER_PREDICTIONS
    from tasks.catalog import query, refresh_views
    from tasks.lake import write_rows

    home = HomeLayout(tmp_path / "home")
    write_card(home, "panda-gender", 1, {"metrics": {"per_animal": {"confusion_matrix": [[8, 2], [1, 9]]}}})
    p_male = {"M1": 0.95, "M2": 0.9, "F1": 0.05, "F2": 0.1, "F3": 0.02, "U1": 0.5}
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
        for a, p in p_male.items()
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
    write_rows(home, ANIMALS_MANIFEST, "d1", "ingest", [{"drop_id": "d1", "animal_id": a} for a in p_male])
    write_rows(
        home, DROPS, "d1", "ingest", [{"drop_id": "d1", "site": "North", "deployment_id": "dep-1", "timezone": "UTC"}]
    )
    names = refresh_views(
        home,
        {
            "gender.abstain_low": 0.2,
            "gender.abstain_high": 0.8,
            "gender.confident": 0.7,
            "gender.disagreement_share": 0.25,
            "gender.event_gap_s": 300.0,
        },
    )
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
