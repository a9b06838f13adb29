"""The nightly report looked at as a person would: headless Chromium loads it with nothing failing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flows.nightly import nightly
from schemas.config import load_settings
from schemas.home import HomeLayout
from tasks.gender_training import train_gender
from tests.browser import chromium_path, visit
from tests.tasks.test_gender import TINY_RECIPE, write_face_drop

EXPECTED_SECTIONS = {"Drops", "Gender ratio", "Mating success", "Models used", "Review queue", "Rejected files and rows"}


@pytest.mark.skipif(chromium_path() is None, reason="no Chromium installed (apt-get install chromium; .ci/run installs it)")
def test_report_loads_in_headless_chromium(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(TINY_RECIPE)
    drop, home = write_face_drop(tmp_path / "inbox" / "faces-drop"), tmp_path / "home"
    nightly(drops=[str(drop)], home=str(home), config_file=str(config))
    train_gender(HomeLayout(home), load_settings(config, home=home).gender, "panda-gender")
    report = Path(nightly(drops=[str(drop)], home=str(home), config_file=str(config))["report"])
    seen = visit(report)
    (tmp_path / "report.png").write_bytes(seen.screenshot)
    if os.environ.get("BREEDWATCH_SCREENSHOT"):
        Path(os.environ["BREEDWATCH_SCREENSHOT"]).write_bytes(seen.screenshot)
    assert seen.failed == [] and seen.http_errors == []
    assert set(seen.requests) <= {"file", "data"}, "the report must not reach the network"
    assert EXPECTED_SECTIONS <= set(seen.page["headings"])
    assert seen.page["tables"] >= 6 and seen.page["rows"] > 20
    images = seen.page["images"]
    assert len(images) >= 10 and all(image["complete"] and image["width"] > 0 for image in images)
    assert seen.screenshot.startswith(b"\x89PNG")
