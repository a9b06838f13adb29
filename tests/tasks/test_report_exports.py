"""Every report table written as CSV beside the HTML, with the same values."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from reports.exports import table_csv
from tasks.report_exports import write_context_csvs, write_report_csvs


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV file as dicts of strings."""
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def test_every_table_of_a_report_context_becomes_a_csv(tmp_path: Path) -> None:
    report_dir = tmp_path / "reports" / "run-1"
    (report_dir).mkdir(parents=True)
    (report_dir / "report.html").write_text("<html></html>")
    context = {
        "run": {"run_id": "run-1", "status": "completed"},  # one record, not a table
        "title": "nightly",
        "gender_ratio": pa.table(
            {"level": ["overall"], "n": [5], "estimate": [0.4], "ci_low": [0.1176], "ci_high": [0.7693]}
        ),
        "mating_success": pa.table({"level": pa.array([], pa.string()), "n": pa.array([], pa.int64())}),
        "rejects": [{"drop_id": "d1", "path": "images/a, b.jpg", "reason": 'The file is "empty".'}],
        "animals": [
            {
                "animal_id": "A1",
                "thumbnail": "data:image/jpeg;base64,AAAA",
                "n_faces": 3,
                "seen": datetime(2026, 3, 4, 13, tzinfo=UTC),
            },
            {"animal_id": "A2", "thumbnail": None, "n_faces": None, "seen": None, "flags": ["disagree"]},
        ],
    }
    paths = write_context_csvs(report_dir, context)
    assert [p.name for p in paths] == ["animals.csv", "gender_ratio.csv", "mating_success.csv", "rejects.csv"]
    assert all(p.parent == report_dir for p in paths)
    assert read_csv(report_dir / "gender_ratio.csv") == [
        {"level": "overall", "n": "5", "estimate": "0.4", "ci_low": "0.1176", "ci_high": "0.7693"}
    ]
    assert (report_dir / "mating_success.csv").read_text() == "level,n\n"  # an empty Arrow table keeps its header
    assert read_csv(report_dir / "rejects.csv") == context["rejects"]  # commas and quotes survive
    animals = read_csv(report_dir / "animals.csv")
    assert list(animals[0]) == ["animal_id", "n_faces", "seen", "flags"]  # the embedded thumbnails are left out
    assert animals[0] == {"animal_id": "A1", "n_faces": "3", "seen": "2026-03-04T13:00:00+00:00", "flags": ""}
    assert animals[1] == {"animal_id": "A2", "n_faces": "", "seen": "", "flags": '["disagree"]'}


def test_rewriting_replaces_the_files(tmp_path: Path) -> None:
    write_report_csvs(tmp_path, {"counts": [{"kind": "image", "n": 3}]})
    write_report_csvs(tmp_path, {"counts": [{"kind": "image", "n": 4}]})
    assert read_csv(tmp_path / "counts.csv") == [{"kind": "image", "n": "4"}]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.parametrize("name", ["../evil", "Gender Ratio", "", "a/b"])
def test_table_names_that_are_not_file_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="becomes a file name"):
        write_report_csvs(tmp_path, {name: [{"a": 1}]})
    assert list(tmp_path.iterdir()) == []


def test_an_empty_list_of_rows_is_an_empty_file() -> None:
    assert table_csv([]) == ""
