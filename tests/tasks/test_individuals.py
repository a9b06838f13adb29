"""Individuals over the whole home: camera-trap faces matched to registered animals, the rest grouped into provisional
individuals, counted once each by the animals view and gender_ratio, and corrected by keepers."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from schemas.config import GenderConfig, IdentityConfig, Settings
from schemas.home import HomeLayout
from schemas.tables import FACE_EMBEDDINGS, FACES, GENDER_PREDICTIONS, IDENTITY_MATCHES, MEDIA
from tasks.catalog import query, refresh_views
from tasks.individuals import SCOPE, assign_individuals
from tasks.lake import read_table, write_rows
from tasks.model_store import save_checkpoint
from tasks.review import record_review
from tests.review_home import DROP, media_id_of, write_review_home

DIM = 8
IDENTITY = "panda-identity"
TIMING = {"seconds_spent": 2.0, "keystrokes": 1}


def unit(*weights: float) -> list[float]:
    """A unit-length embedding from its first coordinates (the rest zero)."""
    vector = np.zeros(DIM, dtype=np.float32)
    vector[: len(weights)] = weights
    return (vector / np.linalg.norm(vector)).tolist()


# Which way each face of the review home points: A01 and A02 are registered (keeper-named faces); two camera-trap
# faces look like A01, two like nobody registered (one new animal), and one sits halfway between A01 and A02.
EMBEDDINGS = {
    "A01/p1.jpg": unit(1, 0.05),
    "A01/p2.jpg": unit(1, -0.05),
    "A02/p1.jpg": unit(0, 1, 0.05),
    "A02/p2.jpg": unit(0, 1, -0.05),
    "cam01/IMG_0001.JPG": unit(1, 0, 0.1),
    "cam01/IMG_0002.JPG": unit(1, 0.1, 0, 0.1),
    "cam01/IMG_0003.JPG": unit(0, 0, 1, 0.05),
    "cam01/IMG_0004.JPG": unit(0, 0, 1, -0.05),
    "cam01/IMG_0005.JPG": unit(1, 1, 0.2),
}


def path_of(row: dict) -> str:
    """A media row's path, to sort by."""
    return row["path"]


def face_id_of(frame: str) -> str:
    """The one face of a frame of the review home."""
    return f"{media_id_of(frame)}-f0"


@pytest.fixture()
def home(tmp_path: Path) -> HomeLayout:
    """The review home with every face embedded and a stored identity model card (no weights needed here)."""
    home = write_review_home(tmp_path / "home")
    media = read_table(home, MEDIA).to_pylist()  # captured a minute apart, in path order
    start = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)
    media = [{**m, "captured_at": start + timedelta(minutes=i)} for i, m in enumerate(sorted(media, key=path_of))]
    write_rows(home, MEDIA, DROP, "ingest", media)
    faces = {row["face_id"]: row for row in read_table(home, FACES).to_pylist()}
    rows = [
        {
            "face_id": face_id_of(frame),
            "media_id": media_id_of(frame),
            "drop_id": DROP,
            "animal_id": faces[face_id_of(frame)]["animal_id"],
            "source": "detector",
            "embedding": vector,
            "model_version": f"{IDENTITY}@v1",
            "run_id": "r1",
        }
        for frame, vector in EMBEDDINGS.items()
    ]
    write_rows(home, FACE_EMBEDDINGS, DROP, "identify", rows)
    card = {"name": IDENTITY, "kind": "identity", "match_threshold": 0.6, "cluster_threshold": 0.8}
    save_checkpoint(home.model_dir("identity", IDENTITY), {}, card)
    return home


def assign(home: HomeLayout, run_id: str = "r2", settings: Settings | None = None) -> dict:
    """Assign individuals and rebuild the catalog, as a nightly run does."""
    result = assign_individuals(home, settings or Settings(), run_id)
    refresh_views(home, Settings().view_thresholds())
    return result


def identity_of(home: HomeLayout, frame: str) -> dict:
    """The identity columns face_calls gives the face of a frame."""
    sql = "SELECT individual_id, identity_kind, identity_source, identity_margin FROM face_calls WHERE face_id = ?"
    return query(home, sql, [face_id_of(frame)]).to_pylist()[0]


def test_faces_are_matched_clustered_and_counted_once_per_individual(home: HomeLayout) -> None:
    result = assign(home)
    assert (result["gallery_faces"], result["faces"], result["provisional_individuals"]) == (4, 5, 1)
    assert identity_of(home, "cam01/IMG_0001.JPG")["individual_id"] == "A01"
    assert identity_of(home, "cam01/IMG_0002.JPG")["identity_source"] == "machine"
    new = {identity_of(home, f"cam01/IMG_000{i}.JPG")["individual_id"] for i in (3, 4)}
    assert len(new) == 1 and next(iter(new)).startswith("P-")
    unsure = identity_of(home, "cam01/IMG_0005.JPG")
    assert unsure["individual_id"] is None and unsure["identity_margin"] < 0.05, "a near tie is no confident identity"

    animals = query(home, "SELECT animal_id, identity_kind, n_faces FROM animals ORDER BY animal_id").to_pylist()
    assert [(a["animal_id"], a["identity_kind"], a["n_faces"]) for a in animals] == [
        ("A01", "registered", 4),
        ("A02", "registered", 2),
        (next(iter(new)), "provisional", 2),
    ]
    events = query(home, "SELECT n_faces FROM face_events").column("n_faces").to_pylist()
    assert events == [1], "only the unsure face stays in face_events"
    ratio = query(home, "SELECT males + females + unknown AS n FROM gender_ratio WHERE level = 'overall'")
    assert ratio.column("n").to_pylist() == [3]
    individual = query(home, "SELECT * FROM individuals WHERE kind = 'provisional'").to_pylist()[0]
    assert (individual["n_faces"], individual["n_frames"], individual["established_by"]) == (2, 2, "machine")
    assert (individual["n_sightings"], individual["n_nights"], individual["cameras"]) == (1, 1, ["cam01"])
    assert individual["best_face_id"] in {face_id_of("cam01/IMG_0003.JPG"), face_id_of("cam01/IMG_0004.JPG")}


def test_a_rerun_rewrites_nothing_and_provisional_ids_stay(home: HomeLayout) -> None:
    assign(home)
    part = home.part(IDENTITY_MATCHES.name, IDENTITY_MATCHES.partition, SCOPE, "individuals")
    before, written = read_table(home, IDENTITY_MATCHES).to_pylist(), part.stat().st_mtime_ns
    again = assign(home, run_id="r3")
    assert again["status"] == "unchanged" and part.stat().st_mtime_ns == written
    assert read_table(home, IDENTITY_MATCHES).to_pylist() == before


def test_keepers_name_faces_and_individuals_and_the_machine_learns_from_it(home: HomeLayout) -> None:
    assign(home)
    key = f"identity:{DROP}:{face_id_of('cam01/IMG_0005.JPG')}"
    items = query(home, "SELECT key, value FROM review_items WHERE kind = 'identity' ORDER BY value DESC")
    assert items.column("key").to_pylist()[0] == key, "the near tie is the most valuable identity item"
    row = record_review(home, key, "2", "kim", TIMING, "2026-12-02", 0.05)
    assert (row["target_kind"], row["field"], row["human_value"]) == ("face", "identity", "A02")
    named = identity_of(home, "cam01/IMG_0005.JPG")
    assert (named["individual_id"], named["identity_source"]) == ("A02", "human")

    provisional = identity_of(home, "cam01/IMG_0003.JPG")["individual_id"]
    new_key = f"identity:{DROP}:{face_id_of('cam01/IMG_0003.JPG')}"
    candidates = query(home, "SELECT identity_candidates FROM face_calls WHERE face_id = ?", [new_key.split(":")[2]])
    second = candidates.column(0).to_pylist()[0][1]
    record_review(home, new_key, "2", "kim", TIMING, "2026-12-02", 0.05)
    assert identity_of(home, "cam01/IMG_0003.JPG")["individual_id"] == second
    assert identity_of(home, "cam01/IMG_0004.JPG")["individual_id"] == provisional, "its cluster-mate waits a night"

    after = assign(home)
    assert after["gallery_faces"] == 6, "keeper-named faces join the gallery of their animal"


def exported_observations(home: HomeLayout, package: Path) -> dict[str, dict[str, str]]:
    """The home's Camtrap DP observations (exported into package), by face id."""
    from schemas.camtrap import ExportSettings
    from tasks.camtrap_export import export_camtrap_dp

    export_camtrap_dp(home, package, ExportSettings(), mode="reference")
    with (package / "observations.csv").open(newline="", encoding="utf-8") as handle:
        return {row["observationID"].removeprefix(f"{DROP}-"): row for row in csv.DictReader(handle)}


def test_the_camtrap_export_names_each_face_s_individual_and_who_named_it(home: HomeLayout, tmp_path: Path) -> None:
    assign(home)
    new_face = face_id_of("cam01/IMG_0003.JPG")
    record_review(home, f"identity:{DROP}:{face_id_of('cam01/IMG_0005.JPG')}", "1", "kim", TIMING, "2026-12-02", 0.05)
    rows = exported_observations(home, tmp_path / "package")
    matched = rows[face_id_of("cam01/IMG_0001.JPG")]
    assert (matched["individualID"], matched["classificationMethod"]) == ("A01", "machine")
    assert "registered animal A01 by breedwatch identity model panda-identity@v1" in matched["observationComments"]
    provisional = rows[new_face]
    assert provisional["individualID"].startswith("P-")
    assert "provisional individual" in provisional["observationComments"]
    named = rows[face_id_of("cam01/IMG_0005.JPG")]
    assert (named["classificationMethod"], named["classifiedBy"]) == ("human", "kim")
    assert named["individualID"] in {"A01", "A02"} and "named by reviewer kim" in named["observationComments"]


def test_the_queue_asks_once_about_a_new_individual_and_shows_the_frame_of_its_face(home: HomeLayout) -> None:
    from schemas.review import parse_item_key
    from tasks.review import named_shown

    copy = "d2"  # the same files dropped again: the same media and face ids under a second drop
    for spec in (MEDIA, FACES, GENDER_PREDICTIONS, FACE_EMBEDDINGS):
        write_rows(home, spec, copy, "copy", [{**row, "drop_id": copy} for row in read_table(home, spec).to_pylist()])
    assign(home)
    asked = query(home, "SELECT key FROM review_items WHERE kind = 'identity' AND call LIKE 'P-%'")
    assert asked.num_rows == 1, "one item per provisional individual, on its best face, not one per drop holding it"

    _, shown = named_shown(home, parse_item_key(asked.column("key")[0].as_py()), "2026-12-02", 0.05)
    media = {row["media_id"]: row for row in read_table(home, MEDIA).to_pylist() if row["drop_id"] == shown["drop_id"]}
    assert (shown["media_path"], shown["media_sha256"]) == (
        media[shown["media_id"]]["path"],
        media[shown["media_id"]]["sha256"],
    )
    assert [box["face_id"] for box in shown["frame_boxes"] if box["current"]] == [shown["target_id"]]
    assert shown["machine_kind"] == "provisional" and shown["candidates"], "the page lists the nearest animals"


def test_a_poor_face_of_an_animal_matched_in_the_same_event_is_held_out_of_the_counts(home: HomeLayout) -> None:
    card_path = next(home.model_dir("identity", IDENTITY).glob("v*/model_card.json"))
    card_path.write_text(json.dumps({**json.loads(card_path.read_text()), "cluster_threshold": 0.3}))
    rows = read_table(home, FACE_EMBEDDINGS).to_pylist()
    poor = face_id_of("cam01/IMG_0002.JPG")  # a minute after IMG_0001, which matches A01: one camera event
    rows = [{**r, "embedding": unit(1, 0, 1.5)} if r["face_id"] == poor else r for r in rows]  # 0.55 to A01
    write_rows(home, FACE_EMBEDDINGS, DROP, "identify", rows)
    result = assign(home)
    assert (result["registered"], result["provisional_individuals"]) == (3, 1), "no provisional individual for it"
    held = query(home, "SELECT * FROM face_calls WHERE face_id = ?", [poor]).to_pylist()[0]
    assert (held["individual_id"], held["individual_machine"], held["identity_established"]) == (
        None,
        "A01",
        "same_event_candidate",
    )
    animals = query(home, "SELECT animal_id, n_faces FROM animals WHERE animal_id = 'A01'").to_pylist()
    assert animals == [{"animal_id": "A01", "n_faces": 3}], "two keeper photos and the clear face; the held one waits"
    items = query(home, "SELECT key, reason FROM review_items WHERE kind = 'identity' ORDER BY value DESC, key")
    assert items.column("key").to_pylist()[0] == f"identity:{DROP}:{poor}"
    assert "same camera event" in items.column("reason").to_pylist()[0]


def test_a_face_no_nearer_its_new_individual_than_a_registered_animal_is_held_out_of_the_counts(
    home: HomeLayout,
) -> None:
    card_path = next(home.model_dir("identity", IDENTITY).glob("v*/model_card.json"))
    card_path.write_text(json.dumps({**json.loads(card_path.read_text()), "cluster_threshold": 0.3}))
    between = face_id_of("cam01/IMG_0004.JPG")
    rows = read_table(home, FACE_EMBEDDINGS).to_pylist()
    rows = [{**r, "embedding": unit(1, 0, 0.95, 0, 1)} if r["face_id"] == between else r for r in rows]
    write_rows(home, FACE_EMBEDDINGS, DROP, "identify", rows)  # 0.587 to A01, 0.557 to IMG_0003's individual
    # IMG_0003 is left alone; a second-long event gap puts no other frame in its event, so only this rule holds it
    lone_faces_in_lone_events = Settings(
        identity=IdentityConfig(provisional_min_faces=1), gender=GenderConfig(event_gap_s=1.0)
    )
    result = assign(home, settings=lone_faces_in_lone_events)
    assert result["provisional_individuals"] == 1
    held = query(home, "SELECT * FROM face_calls WHERE face_id = ?", [between]).to_pylist()[0]
    assert (held["individual_id"], held["individual_machine"], held["identity_established"]) == (
        None,
        "A01",
        "nearer_registered",
    )
    new = identity_of(home, "cam01/IMG_0003.JPG")["individual_id"]
    animals = query(home, "SELECT n_faces FROM animals WHERE animal_id = ?", [new]).column("n_faces").to_pylist()
    assert animals == [1], "the held face did not join the new individual"
    reasons = query(home, "SELECT reason FROM review_items WHERE key = ?", [f"identity:{DROP}:{between}"])
    assert "no nearer the new individual" in reasons.column("reason")[0].as_py()


def test_a_new_individual_seen_once_is_asked_about_and_counted_once_a_keeper_confirms_it(home: HomeLayout) -> None:
    from tasks.report_sections import individuals_section

    rows = read_table(home, FACE_EMBEDDINGS).to_pylist()
    lone, moved = face_id_of("cam01/IMG_0003.JPG"), face_id_of("cam01/IMG_0004.JPG")
    rows = [{**r, "embedding": unit(1, 0, 0.1, 0.1)} if r["face_id"] == moved else r for r in rows]  # now clearly A01
    write_rows(home, FACE_EMBEDDINGS, DROP, "identify", rows)
    result = assign(home)
    assert (result["provisional_individuals"], result["awaiting_sighting"]) == (0, 1)
    waiting = query(home, "SELECT * FROM face_calls WHERE face_id = ?", [lone]).to_pylist()[0]
    assert waiting["individual_id"] is None and waiting["individual_machine"].startswith("P-")
    assert waiting["identity_established"] == "awaiting_sighting"
    counted = query(home, "SELECT animal_id FROM animals ORDER BY animal_id").column("animal_id").to_pylist()
    assert counted == ["A01", "A02"], "a face seen once founds no counted individual"
    events = query(home, "SELECT n_faces FROM face_events").column("n_faces").to_pylist()
    assert sum(events) == 2, "the lone face and the near tie wait in face_events"
    reason = query(home, "SELECT reason FROM review_items WHERE key = ?", [f"identity:{DROP}:{lone}"])
    assert "seen once" in reason.column("reason")[0].as_py()
    listed = {row["face_id"]: row for row in individuals_section(home, [DROP], None)["who_is_this"]}
    assert listed[lone]["seen_once"] and not listed[face_id_of("cam01/IMG_0005.JPG")]["seen_once"]

    record_review(home, f"identity:{DROP}:{lone}", "w", "kim", TIMING, "2026-12-02", 0.05)
    confirmed = identity_of(home, "cam01/IMG_0003.JPG")
    assert (confirmed["individual_id"], confirmed["identity_kind"], confirmed["identity_source"]) == (
        waiting["individual_machine"],
        "provisional",
        "human",
    ), "the keeper's new individual is the id the machine gave it"
    counted = query(home, "SELECT animal_id FROM animals ORDER BY animal_id").column("animal_id").to_pylist()
    assert counted == ["A01", "A02", waiting["individual_machine"]]


def test_a_face_seen_once_like_a_registered_animal_no_other_face_shows_counts_as_it_until_a_keeper_says_no(
    home: HomeLayout, tmp_path: Path
) -> None:
    from tasks.report_sections import individuals_section

    card_path = next(home.model_dir("identity", IDENTITY).glob("v*/model_card.json"))
    card_path.write_text(json.dumps({**json.loads(card_path.read_text()), "cluster_threshold": 0.3}))
    lone = face_id_of("cam01/IMG_0003.JPG")
    moved = {
        lone: unit(0, 1, 1.7),  # about 0.51 to A02: below the match threshold (0.6), above the floor (0.45)
        face_id_of("cam01/IMG_0004.JPG"): unit(1, 0, 0.1, 0.1),  # clearly A01
        face_id_of("cam01/IMG_0005.JPG"): unit(1, 0, 0.1, -0.1),  # clearly A01: no face of the drop names A02
    }
    rows = [
        {**r, "embedding": moved.get(r["face_id"], r["embedding"])}
        for r in read_table(home, FACE_EMBEDDINGS).to_pylist()
    ]
    write_rows(home, FACE_EMBEDDINGS, DROP, "identify", rows)
    result = assign(home)
    assert (result["awaiting_sighting"], result["sole_candidates"]) == (0, 1)
    call = query(home, "SELECT * FROM face_calls WHERE face_id = ?", [lone]).to_pylist()[0]
    assert (call["individual_id"], call["identity_kind"], call["identity_established"]) == (
        "A02",
        "registered",
        "sole_candidate",
    )
    animals = query(home, "SELECT animal_id, n_faces FROM animals ORDER BY animal_id").to_pylist()
    assert animals == [{"animal_id": "A01", "n_faces": 6}, {"animal_id": "A02", "n_faces": 3}], "counted as A02"
    items = query(home, "SELECT key, reason FROM review_items WHERE kind = 'identity' ORDER BY value DESC, key")
    assert items.column("key").to_pylist()[0] == f"identity:{DROP}:{lone}", "asked about first"
    assert "counted as A02" in items.column("reason").to_pylist()[0]
    listed = {row["face_id"]: row for row in individuals_section(home, [DROP], None)["who_is_this"]}
    assert (listed[lone]["counted_as"], listed[lone]["seen_once"]) == ("A02", True)
    observation = exported_observations(home, tmp_path / "package")[lone]
    assert observation["individualID"] == "A02"
    assert "sole candidate (not confirmed)" in observation["observationComments"]

    record_review(home, f"identity:{DROP}:{lone}", "w", "kim", TIMING, "2026-12-02", 0.05)
    animals = query(home, "SELECT animal_id, n_faces FROM animals ORDER BY animal_id").to_pylist()
    assert [a["n_faces"] for a in animals if a["animal_id"] == "A02"] == [2], "the keeper's no takes it off A02"
    assert len(animals) == 3, "and counts it as a new individual"
    listed = {row["face_id"] for row in individuals_section(home, [DROP], None)["who_is_this"]}
    assert lone not in listed, "answered: no longer asked who it is"
