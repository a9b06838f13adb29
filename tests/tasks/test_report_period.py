"""`breedwatch report --since --until`: the period's gender ratio counts only the animals of the period's drops."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from flows.cli import app
from flows.nightly import nightly
from schemas.config import load_settings
from schemas.home import HomeLayout
from tasks.catalog import query
from tasks.gender_training import train_gender
from tests.drops import DROP_TOML
from tests.tasks.test_gender import TINY_RECIPE, face_photo

MARCH = {"A01": "female", "A02": "female", "A03": "male", "A04": "male"}
MAY = {"B01": "female", "B02": "male", "B03": "male"}


def dated_face_drop(root: Path, animals: dict[str, str], taken: datetime) -> Path:
    """Keeper faces (bright male, dark female) of the given animals, every photo stamped with the same EXIF date."""
    root.mkdir(parents=True)
    (root / "drop.toml").write_text(DROP_TOML)
    (root / "animals.csv").write_text(
        "animal_id,sex,birth_date,name\n" + "".join(f"{a},{s},,\n" for a, s in animals.items())
    )
    for number, (animal_id, sex) in enumerate(animals.items()):
        for index in range(3):
            face_photo(
                root / "faces" / animal_id / f"{animal_id}_{index}.jpg", sex == "male", number * 10 + index, taken
            )
    return root


def overall(rows: list[dict[str, str]]) -> dict[str, str]:
    """The overall row of a gender_ratio table."""
    return next(row for row in rows if row["level"] == "overall")


def test_period_report_counts_only_the_period_drops(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(TINY_RECIPE)
    home = tmp_path / "home"
    march = dated_face_drop(tmp_path / "inbox" / "march", MARCH, datetime(2026, 3, 2, 10, tzinfo=UTC))
    may = dated_face_drop(tmp_path / "inbox" / "may", MAY, datetime(2026, 5, 5, 10, tzinfo=UTC))
    nightly(drops=[str(march)], home=str(home), config_file=str(config))
    train_gender(HomeLayout(home), load_settings(config, home=home).gender, "panda-gender")
    nightly(drops=[str(march), str(may)], home=str(home), config_file=str(config))
    catalog = query(
        HomeLayout(home), "SELECT males + females + unknown AS animals FROM gender_ratio WHERE level = 'overall'"
    ).to_pylist()
    assert catalog == [{"animals": 7}]
    result = CliRunner().invoke(app, ["report", "--home", str(home), "--since", "2026-05-01", "--until", "2026-05-31"])
    assert result.exit_code == 0, result.output
    folder = home / "reports" / "period-2026-05-01_2026-05-31"
    with (folder / "gender_ratio.csv").open() as handle:
        row = overall(list(csv.DictReader(handle)))
    assert int(row["males"]) + int(row["females"]) + int(row["unknown"]) == len(MAY)
    with (folder / "animals.csv").open() as handle:
        assert {r["animal_id"] for r in csv.DictReader(handle)} == set(MAY)
    html = (folder / "report.html").read_text()
    assert "the period&#39;s 1 drop;" in html or "the period's 1 drop;" in html
    whole = CliRunner().invoke(app, ["report", "--home", str(home)])
    with (home / "reports" / "period-start_now" / "gender_ratio.csv").open() as handle:
        row = overall(list(csv.DictReader(handle)))
    assert (
        int(row["males"]) + int(row["females"]) + int(row["unknown"]) == len(MARCH) + len(MAY) and whole.exit_code == 0
    )
