"""`breedwatch simulate coverage`: a tiny grid end to end through the command line, its printout and its JSON."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()


def test_simulate_coverage_prints_the_figures_and_writes_json_of_every_cell(tmp_path: Path) -> None:
    target = tmp_path / "coverage.json"
    result = runner.invoke(
        app, ["simulate", "coverage", "--grid", "small", "--populations", "300", "--json", str(target)]
    )
    assert result.exit_code == 0, result.output
    assert "lang-reiczigel: coverage min" in result.output and "old interval" in result.output
    document = json.loads(target.read_text(encoding="utf-8"))
    assert (document["method"], document["populations"], document["seed"]) == ("lang-reiczigel", 300, 21)
    assert document["grid"]["validation"] == [5, 30] and len(document["cells"]) == 16
    cell = document["cells"][0]
    assert set(cell) >= {
        "share",
        "animals",
        "validation",
        "sensitivity",
        "specificity",
        "coverage",
        "mean_width",
        "no_interval",
        "baseline_coverage",
        "baseline_mean_width",
    }
    assert all(0 <= c["coverage"] <= 1 and 0 < c["mean_width"] <= 1 for c in document["cells"])
    summary = document["summary"]
    assert summary["judged_cells"] == 16
    assert summary["coverage_min"] == min(c["coverage"] for c in document["cells"])
    assert summary["baseline_coverage_mean"] < summary["coverage_mean"]


def test_simulate_coverage_refuses_an_unknown_grid_or_method() -> None:
    for args in (["--grid", "huge"], ["--method", "wald"]):
        result = runner.invoke(app, ["simulate", "coverage", *args])
        assert result.exit_code == 2 and "--grid must be" in result.output


def test_the_bayes_method_runs_without_the_baseline(tmp_path: Path) -> None:
    target = tmp_path / "bayes.json"
    result = runner.invoke(
        app,
        [
            "simulate",
            "coverage",
            "--grid",
            "small",
            "--populations",
            "50",
            "--method",
            "bayes",
            "--draws",
            "400",
            "--no-baseline",
            "--json",
            str(target),
        ],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(target.read_text(encoding="utf-8"))
    assert document["method"] == "bayes" and document["cells"][0]["baseline_coverage"] is None
    assert "old interval" not in result.output


def test_end_to_end_runs_a_generated_drop_through_the_pipeline_and_judges_the_reports_interval(
    demo_run, tmp_path: Path
) -> None:
    """One generated drop in a home of its own: the JSON's truth is the truth file's sexes of the animals the report
    counted, and the interval is the catalog's overall gender_ratio row."""
    import csv

    from flows.cli.common import out
    from flows.cli.simulate import run_end_to_end
    from schemas.home import HomeLayout
    from tasks.catalog import query

    home, _ = demo_run
    with out.capture() as captured:
        run_end_to_end(home, None, drops=1, animals=8, seed=0, json_out=tmp_path / "e2e.json")
    document = json.loads((tmp_path / "e2e.json").read_text())
    [found] = document["drops"]
    drop_home = HomeLayout(home / "coverage" / "home-000")
    drop_dir = home / "coverage" / "drops" / found["drop"]
    with (drop_dir / "truth" / "animals.csv").open(newline="") as handle:
        truth = {row["animal_id"]: row["sex"] for row in csv.DictReader(handle)}
    counted = query(drop_home, "SELECT animal_id FROM animals WHERE sex IN ('male', 'female')").to_pylist()
    assert found["counted"] == len(counted) > 0
    assert found["counted_true_males"] == sum(truth[row["animal_id"]] == "male" for row in counted)
    ratio = query(drop_home, "SELECT corrected_ci_low, corrected_ci_high FROM gender_ratio WHERE level = 'overall'")
    assert (found["ci_low"], found["ci_high"]) == tuple(ratio.to_pylist()[0].values())
    if found["ci_low"] is not None:
        assert found["covered"] == (found["ci_low"] <= found["true_share"] <= found["ci_high"])
    assert document["summary"]["drops"] == 1 and "end to end:" in captured.get()
    assert (drop_home.models / "gender").is_dir() and (home / "hardware" / "execution.json").is_file()
