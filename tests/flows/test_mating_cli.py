"""`breedwatch train mating`, `evaluate mating` and `export raven` on small folders: tables, JSON, one-sentence
errors."""

from __future__ import annotations

import json

import pytest
from prefect.logging.configuration import setup_logging
from typer.testing import CliRunner

from flows.cli import app
from tests.mating_drops import TINY_CONFIG, six_pairs, write_encounter_drop

runner = CliRunner()


@pytest.fixture(scope="module")
def station(tmp_path_factory):
    """A home, the tiny training config and a labelled folder of six pairs; Prefect's console log handler bound to
    the test's stderr (set up inside an earlier CliRunner call, it would write to that call's closed stream)."""
    setup_logging(incremental=False)
    root = tmp_path_factory.mktemp("mating-cli")
    config = root / "c.toml"
    config.write_text(TINY_CONFIG)
    return root / "home", config, write_encounter_drop(root / "labelled", six_pairs())


def invoke(*args: str):
    """Run the CLI and return the result."""
    return runner.invoke(app, list(args))


def one_error(result, fragment: str) -> None:
    """Exit 1 with one 'error:' sentence containing the fragment and no traceback."""
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and fragment in result.output and "Traceback" not in result.output


def test_evaluate_mating_prints_both_tables_and_writes_json(station, tmp_path):
    home, config, folder = station
    out = tmp_path / "cv.json"
    result = invoke(
        "evaluate",
        "mating",
        "--from-folder",
        str(folder),
        "--json",
        str(out),
        "--home",
        str(home),
        "--config",
        str(config),
    )
    assert result.exit_code == 0, result.output
    assert "5-fold StratifiedGroupKFold grouped by pair (6 groups)" in result.output
    for level in ("segment level", "encounter level"):
        assert level in result.output
    rows = [
        line.split()[0] for line in result.output.splitlines() if line.split()[:1] in (["cganet"], ["svm"], ["flda"])
    ]
    assert rows == ["cganet", "svm", "flda"] * 2 and "±" in result.output
    saved = json.loads(out.read_text())
    assert saved["group_by"] == "pair" and saved["data"]["n_windows"] == 18 and saved["data"]["n_pairs"] == 6
    for model in ("cganet", "svm", "flda"):
        assert set(saved[model]["segment"]["mean"]) == {"accuracy", "f1", "recall", "precision", "roc_auc"}
        assert saved[model]["encounter"]["pooled"]["n"] == 6
    by_encounter = invoke(
        "evaluate",
        "mating",
        "--from-folder",
        str(folder),
        "--group-by",
        "none",
        "--folds",
        "3",
        "--home",
        str(home),
        "--config",
        str(config),
    )
    assert (
        by_encounter.exit_code == 0 and "3-fold StratifiedGroupKFold grouped by none (18 groups)" in by_encounter.output
    )


def test_train_mating_stores_a_version_and_names_rejected_rows(station):
    home, config, folder = station
    (folder / "audio" / "E02.selections.txt").write_text(
        (folder / "audio" / "E02.selections.txt").read_text() + "9\tSpectrogram 1\t1\tnope\t2\t100\t4000\n"
    )
    result = invoke("train", "mating", "--from-folder", str(folder), "--home", str(home), "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "rejected: audio/E02.selections.txt line 5" in result.output
    assert "trained on 18 windows (9 success) of 6 encounters (3 success) from 6 pairs" in result.output
    assert (
        "stored cganet@v1" in result.output and (home / "models" / "mating" / "cganet" / "v1" / "weights.pt").is_file()
    )
    scored = invoke(
        "evaluate",
        "mating",
        "--from-folder",
        str(folder),
        "--model",
        "cganet@v1",
        "--folds",
        "2",
        "--home",
        str(home),
        "--config",
        str(config),
    )
    assert (
        scored.exit_code == 0 and "stored cganet@v1 on all windows (18 from groups it was trained on)" in scored.output
    )


@pytest.mark.parametrize(
    "outcomes, fragment",
    [
        (("", "", "", ""), "no segments of encounters with a known outcome"),
        (("success", "success", "", "success"), "labelled encounters in"),
    ],
)
def test_unusable_labels_give_one_sentence(station, tmp_path, outcomes, fragment):
    home, config, _ = station
    rows = [(f"E{i}", f"M{i}", f"F{i}", outcome) for i, outcome in enumerate(outcomes, start=1)]
    folder = write_encounter_drop(tmp_path / "few", rows)
    for command in ("train", "evaluate"):
        one_error(
            invoke(command, "mating", "--from-folder", str(folder), "--home", str(home), "--config", str(config)),
            fragment,
        )


def test_unknown_model_bad_name_and_nothing_to_export_give_one_sentence(station, tmp_path):
    home, config, folder = station
    one_error(
        invoke(
            "evaluate",
            "mating",
            "--from-folder",
            str(folder),
            "--model",
            "nope",
            "--home",
            str(home),
            "--config",
            str(config),
        ),
        "no trained model",
    )
    one_error(
        invoke(
            "train",
            "mating",
            "--from-folder",
            str(folder),
            "--name",
            "../x",
            "--home",
            str(home),
            "--config",
            str(config),
        ),
        "model name '../x'",
    )
    one_error(invoke("export", "raven", str(tmp_path / "out"), "--home", str(tmp_path / "empty")), "no catalog")
