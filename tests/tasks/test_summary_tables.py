"""gender_ratio, mating_success and model_cards written into a DuckDB catalog from minimal animals/encounters inputs."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from models.statistics import corrected_share_interval
from schemas.home import HomeLayout
from tasks.summary_tables import write_summary_tables

Z = 1.959963984540054


def wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson's 95% interval written out by hand."""
    p = k / n
    centre, half = p + Z * Z / (2 * n), Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return (centre - half) / (1 + Z * Z / n), (centre + half) / (1 + Z * Z / n)


def write_card(home: HomeLayout, name: str, version: int, card: dict | str, kind: str = "gender") -> Path:
    """A model card at models/<kind>/<name>/v<N>/model_card.json."""
    path = home.model_dir(kind, name) / f"v{version}" / "model_card.json"
    path.parent.mkdir(parents=True)
    path.write_text(card if isinstance(card, str) else json.dumps(card))
    return path


ANIMAL_COLUMNS = "animal_id, drop_id, site, deployment_id, p_male, sex_predicted, model_version, face_source"


def animals(con: duckdb.DuckDBPyConnection, rows: list[tuple]) -> None:
    """The columns of the animals view that gender_ratio reads; sex and sex_source follow a known sex (a keeper's or
    the registry's, last in a row when given) over the machine's call, as the view's do."""
    con.execute(
        "CREATE TABLE animals (animal_id VARCHAR, drop_id VARCHAR, site VARCHAR, deployment_id VARCHAR, "
        "p_male DOUBLE, sex_predicted VARCHAR, model_version VARCHAR, face_source VARCHAR, sex_given VARCHAR, "
        "sex VARCHAR GENERATED ALWAYS AS (coalesce(sex_given, sex_predicted)), "
        "sex_source VARCHAR GENERATED ALWAYS AS (CASE WHEN sex_given IS NULL THEN 'machine' ELSE 'human' END))"
    )
    for row in rows:
        con.execute("INSERT INTO animals VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [*row, None][:9])


def encounters(con: duckdb.DuckDBPyConnection) -> None:
    """The columns of the encounters view that mating_success reads; outcome_final and outcome_source follow a known
    outcome (a keeper's or the record's) over the machine's call, as the view's do."""
    con.execute(
        "CREATE TABLE encounters (encounter_id VARCHAR, drop_id VARCHAR, started_at TIMESTAMPTZ, predicted VARCHAR, "
        "model_version VARCHAR, outcome VARCHAR DEFAULT NULL, "
        "outcome_final VARCHAR GENERATED ALWAYS AS (coalesce(outcome, predicted)), "
        "outcome_source VARCHAR GENERATED ALWAYS AS (CASE WHEN outcome IS NULL THEN 'machine' ELSE 'registry' END))"
    )


def herd(
    prefix: str,
    site: str,
    deployment: str,
    males: int,
    females: int,
    unknown: int,
    version: str = "panda-gender@v1",
    source: str | None = "keeper",
) -> list[tuple]:
    """Animal rows: the given numbers of males, females and undecided animals, all seen on one face source."""
    sexes = ["male"] * males + ["female"] * females + ["unknown"] * unknown
    return [(f"{prefix}{i}", "drop-1", site, deployment, 0.5, sex, version, source) for i, sex in enumerate(sexes)]


@pytest.fixture()
def catalog(tmp_path: Path) -> tuple[HomeLayout, duckdb.DuckDBPyConnection]:
    """An empty home and an in-memory catalog."""
    home = HomeLayout(tmp_path / "home")
    with duckdb.connect() as con:
        yield home, con


def test_gender_ratio_counts_wilson_and_rogan_gladen(catalog) -> None:
    home, con = catalog
    write_card(
        home, "panda-gender", 1, {"metrics": {"per_animal": {"confusion_matrix": [[8, 2], [1, 9]]}}}
    )  # Se 0.9, Sp 0.8
    animals(con, herd("a", "North", "dep-1", 7, 13, 2) + herd("b", "South", "dep-2", 3, 1, 0))
    write_summary_tables(con, home)
    rows = {
        row["deployment_id"] or "overall": row
        for row in con.sql("SELECT * FROM gender_ratio").to_arrow_table().to_pylist()
    }
    north = rows["dep-1"]
    assert (north["level"], north["site"], north["males"], north["females"], north["unknown"], north["n"]) == (
        "deployment",
        "North",
        7,
        13,
        2,
        20,
    )
    assert (north["ci_low"], north["ci_high"]) == (pytest.approx(0.18119, abs=5e-5), pytest.approx(0.56715, abs=5e-5))
    assert north["corrected"] == pytest.approx(0.15 / 0.7)
    # the interval carries the uncertainty of Se 9/10 and Sp 8/10: wider than the exact-rate (0.567149 - 0.2) / 0.7
    expected = corrected_share_interval(7, 20, 9, 10, 8, 10)
    assert (north["corrected_ci_low"], north["corrected_ci_high"]) == (expected.ci_low, expected.ci_high)
    assert north["corrected_ci_low"] == 0.0 and north["corrected_ci_high"] > (0.567149 - 0.2) / 0.7
    assert north["interval_method"] == "lang-reiczigel"
    assert (north["sensitivity"], north["specificity"], north["validation_males"], north["validation_females"]) == (
        0.9,
        0.8,
        10,
        10,
    )
    overall = rows["overall"]
    assert (overall["level"], overall["males"], overall["females"], overall["unknown"], overall["n"]) == (
        "overall",
        10,
        14,
        2,
        24,
    )
    low, high = wilson(10, 24)
    assert overall["estimate"] == pytest.approx(10 / 24)
    assert (overall["ci_low"], overall["ci_high"]) == (pytest.approx(low), pytest.approx(high))
    assert overall["corrected"] == pytest.approx((10 / 24 - 0.2) / 0.7)
    assert overall["corrected_ci_high"] == pytest.approx(corrected_share_interval(10, 24, 9, 10, 8, 10).ci_high)
    assert overall["model_version"] == "panda-gender@v1" and overall["note"] is None


def test_gender_ratio_without_card_or_with_mixed_versions_says_why(catalog) -> None:
    home, con = catalog
    animals(con, herd("a", "North", "dep-1", 2, 2, 0, "g@v1") + herd("b", "South", "dep-2", 1, 3, 0, "g@v2"))
    write_summary_tables(con, home)
    rows = {
        row["deployment_id"] or "overall": row
        for row in con.sql("SELECT * FROM gender_ratio").to_arrow_table().to_pylist()
    }
    assert rows["dep-1"]["corrected"] is None and "no model card" in rows["dep-1"]["note"]
    assert rows["overall"]["corrected"] is None and "2 model versions (g@v1, g@v2)" in rows["overall"]["note"]
    assert rows["overall"]["estimate"] == pytest.approx(3 / 8)


def test_model_cards_table_reads_every_version_and_names_a_broken_card(catalog) -> None:
    home, con = catalog
    write_card(home, "panda-gender", 1, {"metrics": {"per_animal": {"confusion_matrix": [[5, 0], [1, 4]]}}})
    write_card(home, "panda-gender", 2, "{not json")
    write_summary_tables(con, home)
    cards = con.sql(
        "SELECT model_version, sensitivity, specificity, problem FROM model_cards ORDER BY version"
    ).fetchall()
    assert cards[0] == ("panda-gender@v1", 0.8, 1.0, None)
    assert cards[1][0] == "panda-gender@v2" and cards[1][1] is None and "cannot be read" in cards[1][3]


def test_no_animals_view_gives_empty_tables_with_their_columns(catalog) -> None:
    home, con = catalog
    written = write_summary_tables(con, home)
    assert written[:4] == ["model_cards", "gender_ratio", "mating_success", "audit_accuracy"]
    assert con.sql("SELECT count(*) FROM gender_ratio").fetchall() == [(0,)]
    assert con.sql("SELECT count(*) FROM audit_accuracy").fetchall() == [(0,)]
    assert "corrected_ci_high" in con.sql("SELECT * FROM gender_ratio").columns
    assert "ci_high" in con.sql("SELECT * FROM mating_success").columns


def test_no_animals_at_all_gives_an_overall_row_without_estimate(catalog) -> None:
    home, con = catalog
    animals(con, [])
    write_summary_tables(con, home)
    assert con.sql("SELECT level, n, estimate, ci_low, note FROM gender_ratio").fetchall() == [
        ("overall", 0, None, None, "No correction: no individual was counted.")
    ]


def test_mating_success_per_season_in_the_drop_time_zone(catalog) -> None:
    home, con = catalog
    con.execute("CREATE TABLE drops (drop_id VARCHAR, timezone VARCHAR)")
    con.execute("INSERT INTO drops VALUES ('d1', 'Asia/Shanghai'), ('d2', 'UTC')")
    encounters(con)
    utc = UTC
    rows = [
        ("e1", "d1", datetime(2025, 12, 31, 20, 0, tzinfo=utc), "success"),  # 04:00 on 1 January 2026 in Shanghai
        ("e2", "d1", datetime(2026, 3, 1, 12, 0, tzinfo=utc), "failure"),
        ("e3", "d2", datetime(2025, 12, 31, 20, 0, tzinfo=utc), "success"),  # still 2025 in UTC
        ("e4", "d2", datetime(2025, 6, 1, tzinfo=utc), "unknown"),
        ("e5", "d2", None, "success"),
    ]
    con.executemany("INSERT INTO encounters VALUES (?, ?, ?, ?, NULL, NULL)", rows)
    write_summary_tables(con, home)
    table = con.sql(
        "SELECT level, season, successes, failures, unknown, n, estimate, ci_low, ci_high FROM mating_success"
    ).fetchall()
    assert [row[:6] for row in table] == [
        ("season", 2025, 1, 0, 1, 1),
        ("season", 2026, 1, 1, 0, 2),
        ("season", None, 1, 0, 0, 1),
        ("overall", None, 3, 1, 1, 4),
    ]
    low, high = wilson(3, 4)
    assert table[-1][6:] == (0.75, pytest.approx(low), pytest.approx(high))


def test_rewriting_replaces_the_tables_and_an_old_view_of_the_same_name(catalog) -> None:
    home, con = catalog
    con.execute("CREATE VIEW gender_ratio AS SELECT 1 AS stale")
    animals(con, herd("a", "North", "dep-1", 1, 1, 0))
    write_summary_tables(con, home)
    con.execute(
        f"INSERT INTO animals ({ANIMAL_COLUMNS}) "
        "VALUES ('z', 'drop-1', 'North', 'dep-1', 0.9, 'male', 'panda-gender@v1', 'keeper')"
    )
    write_summary_tables(con, home)
    assert con.sql("SELECT males, females FROM gender_ratio WHERE level = 'overall'").fetchall() == [(2, 1)]


def test_rates_come_from_the_cards_metrics_rates_and_a_missing_rate_is_named(catalog) -> None:
    home, con = catalog
    write_card(
        home,
        "panda-gender",
        1,
        {
            "metrics": {
                "rates": {
                    "level": "animal",
                    "sensitivity": 0.75,
                    "specificity": 0.9,
                    "decided_males": 4,
                    "decided_females": 10,
                }
            }
        },
    )
    write_card(
        home,
        "panda-gender",
        2,
        {
            "metrics": {
                "rates": {
                    "level": "animal",
                    "sensitivity": None,
                    "specificity": 1.0,
                    "decided_males": 0,
                    "decided_females": 1,
                }
            }
        },
    )
    animals(
        con,
        herd("a", "North", "dep-1", 3, 5, 1, "panda-gender@v1")
        + herd("b", "South", "dep-2", 2, 2, 0, "panda-gender@v2"),
    )
    write_summary_tables(con, home)
    rows = {
        row["deployment_id"] or "overall": row
        for row in con.sql("SELECT * FROM gender_ratio").to_arrow_table().to_pylist()
    }
    north = rows["dep-1"]
    assert (north["sensitivity"], north["specificity"], north["validation_males"], north["validation_females"]) == (
        0.75,
        0.9,
        4,
        10,
    )
    assert north["corrected"] == pytest.approx((3 / 8 + 0.9 - 1) / (0.75 + 0.9 - 1))
    south = rows["dep-2"]
    assert south["corrected"] is None and south["estimate"] == 0.5
    assert (
        south["note"]
        == "No correction: the model card's test animals are 0 male and 1 female, so its sensitivity is unknown."
    )


def test_gender_ratio_says_what_makes_the_corrected_interval_wide(catalog) -> None:
    home, con = catalog
    write_card(
        home,
        "panda-gender",
        1,
        {
            "metrics": {
                "rates": {
                    "level": "animal",
                    "sensitivity": 0.75,
                    "specificity": 1.0,
                    "decided_males": 4,
                    "decided_females": 4,
                }
            }
        },
    )
    animals(con, herd("a", "North", "dep-1", 30, 50, 0))
    write_summary_tables(con, home)
    row = con.sql("SELECT * FROM gender_ratio WHERE level = 'overall'").to_arrow_table().to_pylist()[0]
    assert row["validation_variance_share"] > 0.5 and "label more animals of known sex" in row["wide_because"]
    width = row["corrected_ci_high"] - row["corrected_ci_low"]
    assert row["width_4x_validation"] < width and row["width_4x_validation"] < row["width_4x_counted"]


def test_mating_success_is_corrected_with_the_cganet_cards_encounter_rates(catalog) -> None:
    home, con = catalog
    rates = {"sensitivity": 0.8, "specificity": 0.75, "decided_successes": 10, "decided_failures": 8}
    write_card(home, "cganet", 1, {"metrics": {"encounter": {"rates": rates}}}, kind="mating")
    write_card(home, "cganet", 2, {"metrics": {"note": "no validation split"}}, kind="mating")
    con.execute("CREATE TABLE drops (drop_id VARCHAR, timezone VARCHAR)")
    con.execute("INSERT INTO drops VALUES ('d1', 'UTC'), ('d2', 'UTC')")
    encounters(con)
    calls = ["success"] * 6 + ["failure"] * 3 + ["unknown"]
    con.executemany(
        "INSERT INTO encounters VALUES (?, 'd1', ?, ?, 'cganet@v1', NULL)",
        [(f"e{i}", datetime(2025, 5, 1, tzinfo=UTC), call) for i, call in enumerate(calls)],
    )
    con.execute(
        "INSERT INTO encounters VALUES ('f1', 'd2', ?, 'success', 'cganet@v2', NULL)",
        [datetime(2026, 5, 1, tzinfo=UTC)],
    )
    write_summary_tables(con, home)
    rows = {(r["level"], r["season"]): r for r in con.sql("SELECT * FROM mating_success").to_arrow_table().to_pylist()}
    season = rows[("season", 2025)]
    expected = corrected_share_interval(6, 9, 8, 10, 6, 8)
    assert (season["successes"], season["failures"], season["unknown"]) == (6, 3, 1)
    assert (season["corrected"], season["corrected_ci_low"], season["corrected_ci_high"]) == pytest.approx(
        (expected.estimate, expected.ci_low, expected.ci_high)
    )
    assert season["corrected_ci_high"] - season["corrected_ci_low"] > season["ci_high"] - season["ci_low"]
    assert (season["model_version"], season["validation_successes"], season["validation_failures"]) == (
        "cganet@v1",
        10,
        8,
    )
    assert season["interval_method"] == "lang-reiczigel" and "encounters" in season["wide_because"]
    later = rows[("season", 2026)]
    assert later["corrected"] is None and "no model card with measured sensitivity" in later["note"]
    overall = rows[("overall", None)]
    assert overall["corrected"] is None and "2 model versions (cganet@v1, cganet@v2)" in overall["note"]
    assert "encounters were classified" in overall["note"]
    cards = {r[0]: r[1:] for r in con.sql("SELECT model_version, sensitivity, n_positive FROM model_cards").fetchall()}
    assert cards["cganet@v1"] == (0.8, 10) and cards["cganet@v2"] == (None, None)


def source_card(measured_on: list[str], by_source: dict[str, tuple[float, float, int, int]]) -> dict:
    """A gender card whose overall rates (Se 0.9, Sp 0.8 on 10 + 10 animals) were measured on the given face sources,
    with rates measured on each source alone."""
    return {
        "metrics": {
            "rates": {
                "sensitivity": 0.9,
                "specificity": 0.8,
                "decided_males": 10,
                "decided_females": 10,
                "face_sources": measured_on,
            },
            "rates_by_source": {
                source: {"sensitivity": se, "specificity": sp, "decided_males": m, "decided_females": f}
                for source, (se, sp, m, f) in by_source.items()
            },
        }
    }


def test_animals_seen_on_one_face_source_are_corrected_with_that_sources_rates(catalog) -> None:
    home, con = catalog
    card = source_card(["detector", "keeper"], {"keeper": (1.0, 1.0, 5, 5), "detector": (0.6, 0.7, 10, 10)})
    write_card(home, "panda-gender", 1, card)
    animals(con, herd("a", "North", "dep-1", 8, 12, 0, source="detector") + herd("b", "South", "dep-2", 3, 3, 0))
    con.execute(
        f"INSERT INTO animals ({ANIMAL_COLUMNS}) "
        "VALUES ('c0', 'drop-1', 'East', 'dep-3', 0.9, 'male', 'panda-gender@v1', 'mixed')"
    )
    write_summary_tables(con, home)
    rows = {
        row["deployment_id"] or "overall": row
        for row in con.sql("SELECT * FROM gender_ratio").to_arrow_table().to_pylist()
    }
    north = rows["dep-1"]  # detector faces only: Se 0.6 on 10, Sp 0.7 on 10
    assert (north["rates_face_source"], north["sensitivity"], north["specificity"]) == ("detector", 0.6, 0.7)
    assert north["corrected"] == pytest.approx((8 / 20 - 0.3) / (0.6 + 0.7 - 1))
    expected = corrected_share_interval(8, 20, 6, 10, 7, 10)
    assert (north["corrected_ci_low"], north["corrected_ci_high"]) == (expected.ci_low, expected.ci_high)
    south = rows["dep-2"]  # keeper photos only
    assert (south["rates_face_source"], south["validation_males"], south["sensitivity"]) == ("keeper", 5, 1.0)
    east = rows["dep-3"]  # one animal seen on both kinds: the rates over all of each test animal's faces
    assert (east["rates_face_source"], east["sensitivity"], east["validation_males"]) == ("detector+keeper", 0.9, 10)
    overall = rows["overall"]  # a mix of sources: the overall rates
    assert (overall["rates_face_source"], overall["sensitivity"], overall["specificity"]) == (
        "detector+keeper",
        0.9,
        0.8,
    )
    assert all(row["note"] is None or "biased" not in row["note"] for row in rows.values())


def test_rates_measured_on_keeper_photos_only_warn_when_camera_trap_animals_are_counted(catalog) -> None:
    home, con = catalog
    write_card(home, "panda-gender", 1, source_card(["keeper"], {}))
    animals(con, herd("a", "North", "dep-1", 8, 12, 0, source="detector"))
    write_summary_tables(con, home)
    row = con.sql("SELECT * FROM gender_ratio WHERE level = 'overall'").to_arrow_table().to_pylist()[0]
    assert (row["rates_face_source"], row["sensitivity"]) == ("keeper", 0.9)
    assert row["corrected"] is not None
    assert "measured on keeper photos only" in row["note"] and "camera-trap (detector) faces" in row["note"]


def test_known_sexes_count_as_they_are_beside_the_corrected_machine_calls(catalog) -> None:
    home, con = catalog
    write_card(home, "panda-gender", 1, {"metrics": {"per_animal": {"confusion_matrix": [[8, 2], [1, 9]]}}})
    called = herd("a", "North", "dep-1", 7, 13, 2)  # Se 0.9, Sp 0.8
    known = [(*row[:7], "keeper", "male") for row in herd("k", "North", "dep-1", 0, 0, 3)]  # abstained, known male
    known += [(*row[:7], "keeper", "female") for row in herd("j", "North", "dep-1", 2, 0, 0)]  # called male, female
    animals(con, called + known)
    write_summary_tables(con, home)
    row = con.sql("SELECT * FROM gender_ratio WHERE level = 'overall'").to_arrow_table().to_pylist()[0]
    assert (row["males"], row["females"], row["known_males"], row["known_females"], row["unknown"], row["n"]) == (
        10,
        15,
        3,
        2,
        2,
        25,
    )
    assert row["estimate"] == pytest.approx(10 / 25)
    machine = corrected_share_interval(7, 20, 9, 10, 8, 10)
    assert row["corrected"] == pytest.approx((3 + 20 * machine.estimate) / 25)
    assert (row["corrected_ci_low"], row["corrected_ci_high"]) == (
        pytest.approx((3 + 20 * machine.ci_low) / 25),
        pytest.approx((3 + 20 * machine.ci_high) / 25),
    )
    assert row["interval_method"] == "lang-reiczigel+known" and row["model_version"] == "panda-gender@v1"
    width = row["corrected_ci_high"] - row["corrected_ci_low"]
    assert width < machine.ci_high - machine.ci_low and row["width_4x_counted"] < width


def test_a_herd_of_known_sexes_needs_no_correction(catalog) -> None:
    home, con = catalog
    animals(con, [(*row[:7], "keeper", row[5]) for row in herd("k", "North", "dep-1", 2, 3, 0)])
    write_summary_tables(con, home)
    row = con.sql("SELECT * FROM gender_ratio WHERE level = 'overall'").to_arrow_table().to_pylist()[0]
    assert (row["known_males"], row["known_females"], row["n"]) == (2, 3, 5)
    assert row["corrected"] == row["corrected_ci_low"] == row["corrected_ci_high"] == pytest.approx(0.4)
    assert row["interval_method"] == "known" and row["model_version"] is None and row["sensitivity"] is None
    assert "nothing is corrected" in row["note"] and row["wide_because"] is None


def test_known_outcomes_count_beside_the_corrected_calls_in_mating_success(catalog) -> None:
    home, con = catalog
    rates = {"sensitivity": 0.8, "specificity": 0.75, "decided_successes": 10, "decided_failures": 8}
    write_card(home, "cganet", 1, {"metrics": {"encounter": {"rates": rates}}}, kind="mating")
    con.execute("CREATE TABLE drops (drop_id VARCHAR, timezone VARCHAR)")
    con.execute("INSERT INTO drops VALUES ('d1', 'UTC')")
    encounters(con)
    when = datetime(2025, 5, 1, tzinfo=UTC)
    calls = [("success", None)] * 6 + [("failure", None)] * 3 + [("unknown", "success"), ("success", "failure")]
    con.executemany(
        "INSERT INTO encounters VALUES (?, 'd1', ?, ?, 'cganet@v1', ?)",
        [(f"e{i}", when, call, known) for i, (call, known) in enumerate(calls)],
    )
    write_summary_tables(con, home)
    row = con.sql("SELECT * FROM mating_success WHERE level = 'overall'").to_arrow_table().to_pylist()[0]
    assert (row["successes"], row["failures"], row["known_successes"], row["known_failures"], row["unknown"]) == (
        7,
        4,
        1,
        1,
        0,
    )
    machine = corrected_share_interval(6, 9, 8, 10, 6, 8)
    assert row["corrected"] == pytest.approx((1 + 9 * machine.estimate) / 11)
    assert row["interval_method"] == "lang-reiczigel+known"
