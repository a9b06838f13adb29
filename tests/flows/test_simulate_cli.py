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
