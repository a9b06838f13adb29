"""The demo's nightly report looked at as a person would: headless Chromium loads it with nothing failing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.browser import chromium_path, visit
from tests.test_demo import report_of

EXPECTED_SECTIONS = {
    "Drops",
    "Gender ratio",
    "Mating success",
    "Models used",
    "Review queue",
    "Rejected files and rows",
}


@pytest.mark.skipif(
    chromium_path() is None, reason="no Chromium installed (apt-get install chromium; .ci/run installs it)"
)
def test_demo_report_loads_in_headless_chromium(demo_run, tmp_path: Path) -> None:
    _, output = demo_run
    seen = visit(report_of(output))
    (tmp_path / "report.png").write_bytes(seen.screenshot)
    if os.environ.get("BREEDWATCH_SCREENSHOT"):
        Path(os.environ["BREEDWATCH_SCREENSHOT"]).write_bytes(seen.screenshot)
    assert seen.failed == [] and seen.http_errors == []
    assert set(seen.requests) <= {"file", "data"}, "the report must not reach the network"
    assert EXPECTED_SECTIONS <= set(seen.page["headings"])
    assert seen.page["tables"] >= 10 and seen.page["rows"] > 50
    images = seen.page["images"]
    assert len(images) >= 40 and all(image["complete"] and image["width"] > 0 for image in images)
    assert seen.screenshot.startswith(b"\x89PNG")
