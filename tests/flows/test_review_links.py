"""The report links its review items to the app when `[review] base_url` is set, and the app opens a linked item
first."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from reports.html import template_environment
from schemas.config import ReviewConfig
from schemas.home import HomeLayout
from tasks.catalog import query
from tasks.report_sections import review_section
from tests.flows.test_review_app import client_for, opened
from tests.review_home import DROP, write_review_home

APP = "http://station.example:8765/"


@pytest.fixture(scope="module")
def review_home(tmp_path_factory: pytest.TempPathFactory) -> HomeLayout:
    return write_review_home(tmp_path_factory.mktemp("review-links") / "home")


def test_the_reports_review_items_link_to_the_app(review_home: HomeLayout) -> None:
    animals = query(review_home, "SELECT * FROM animals").to_pylist()
    encounters = query(review_home, "SELECT *, p_calibrated AS p_success FROM encounters").to_pylist()
    linked = review_section(review_home, [DROP], animals, encounters, APP)
    assert linked["faces"] and linked["encounters"] and linked["animals"]
    face = linked["faces"][0]
    assert face["review_url"] == f"http://station.example:8765/?item=face%3A{DROP}%3A{face['face_id']}"
    assert linked["encounters"][0]["review_url"].endswith(f"?item=encounter%3A{DROP}%3A{encounters[0]['encounter_id']}")
    assert all(a["review_url"].endswith(f"?item=animal%3A%3A{a['animal_id']}") for a in linked["animals"])
    html = template_environment().get_template("_review.html.j2").render(review={**linked, "audit": []})
    assert html.count('href="http://station.example:8765/?item=') == (
        len(linked["faces"]) + len(linked["encounters"]) + len(linked["animals"])
    )
    plain = review_section(review_home, [DROP], animals, encounters, None)
    assert all(f["review_url"] is None for f in plain["faces"])
    unlinked = template_environment().get_template("_review.html.j2").render(review={**plain, "audit": []})
    assert "?item=" not in unlinked and "[review] base_url" in unlinked


def test_a_linked_item_opens_first_in_the_app(review_home: HomeLayout) -> None:
    client = client_for(review_home, audit_share=0.0)
    key = f"encounter:{DROP}:E02"  # decided by the model, far down the queue
    page = client.get("/", params={"item": key})
    assert f'<meta name="first-item" content="{key}">' in page.text
    headers = {"X-CSRF-Token": opened(client)}
    shown = client.post("/api/next", json={"first": key}, headers=headers)
    assert shown.status_code == 200 and shown.json()["item"]["key"] == key
    assert shown.json()["item"]["remaining"] == 13
    missing = client.post("/api/next", json={"first": f"encounter:{DROP}:E99"}, headers=headers)
    assert missing.status_code == 404 and "not in the review queue" in missing.json()["error"]
    assert client.post("/api/next", json={"first": "nonsense"}, headers=headers).status_code == 400


@pytest.mark.parametrize("url", ["station:8765", "ftp://station", "http://station/ has spaces", "http://x/?a=1"])
def test_a_base_url_must_be_an_http_address(url: str) -> None:
    with pytest.raises(ValidationError):
        ReviewConfig(base_url=url)
    assert ReviewConfig(base_url="https://station.example/review").base_url == "https://station.example/review"
