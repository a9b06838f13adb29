"""The review app through FastAPI's TestClient: keyboard API, CSRF, login, loopback Host, files only from the home."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from flows.review.app import ReviewServer, create_app
from schemas.home import HomeLayout
from schemas.review import is_loopback_host
from tasks.catalog import query
from tests.review_home import write_review_home

BASE = "http://127.0.0.1:8765"


@pytest.fixture(scope="module")
def review_home(tmp_path_factory: pytest.TempPathFactory) -> HomeLayout:
    return write_review_home(tmp_path_factory.mktemp("review-app") / "home")


def client_for(
    home: HomeLayout, password: str | None = None, loopback_only: bool = True, audit_share: float = 0.05
) -> TestClient:
    """A test client of an app on the home (no login unless a password is given)."""
    server = ReviewServer(home, password, "kim", audit_share, loopback_only)
    return TestClient(create_app(server), base_url=BASE)


def csrf_of(page: str) -> str:
    """The CSRF token a page carries (meta tag or hidden field)."""
    found = re.search(r'(?:content|value)="([A-Za-z0-9_-]{30,})"', page)
    assert found, "the page carries no CSRF token"
    return found.group(1)


def opened(client: TestClient) -> str:
    """Open the review page (which starts the session) and return its CSRF token."""
    page = client.get("/")
    assert page.status_code == 200 and "breedwatch review" in page.text
    return csrf_of(page.text)


def test_loopback_addresses() -> None:
    assert all(is_loopback_host(h) for h in ("127.0.0.1", "127.8.0.1", "::1", "[::1]", "localhost"))
    assert not any(is_loopback_host(h) for h in ("0.0.0.0", "192.168.1.4", "::", "example.org"))


def test_review_by_keys_undo_and_the_queue_moves_on(tmp_path: Path) -> None:
    home = write_review_home(tmp_path / "home")
    client = client_for(home, audit_share=0.0)  # no audit draw: the order is the ranking alone, whatever the day
    headers = {"X-CSRF-Token": opened(client)}
    first = client.post("/api/next", json={}, headers=headers).json()["item"]
    assert first["key"] == "animal::A01" and first["call"] == "male" and first["model_version"] == "panda-gender@v1"
    assert first["reason"] == "the model contradicts the registry (female)" and first["remaining"] == 13
    assert [a["key"] for a in first["actions"]] == ["c", "m", "f"]
    answer = client.post("/api/review", json={"key": first["key"], "action": "f", "keystrokes": 1}, headers=headers)
    assert answer.status_code == 200, answer.text
    saved, second = answer.json()["saved"], answer.json()["item"]
    assert (saved["machine_value"], saved["human_value"], saved["audit"]) == ("male", "female", False)
    assert second["key"] == "animal::A02" and second["call"] == "unknown" and second["remaining"] == 12
    assert [a["key"] for a in second["actions"]] == ["m", "f"], "nothing to confirm when the model abstains"
    third = client.post("/api/next", json={"skip": [second["key"]]}, headers=headers).json()["item"]
    assert third["key"] == "encounter:d1:E01" and [a["key"] for a in third["actions"]] == ["y", "x"]
    face = client.post("/api/next", json={"skip": [second["key"], third["key"]]}, headers=headers).json()["item"]
    assert face["kind"] == "face" and face["p"] == 0.52 and face["call"] == "male"  # P(success) 0.52 ranks first
    assert [a["key"] for a in face["actions"]] == ["c", "m", "f", "n", "b"]
    assert len(face["images"]) == 1 and client.get(face["images"][0]).headers["content-type"] == "image/jpeg"
    undone = client.post("/api/undo", headers=headers).json()
    assert undone["item"]["key"] == first["key"] and undone["item"]["remaining"] == 13
    rows = query(home, "SELECT action, reviewer, keystrokes FROM corrections ORDER BY created_at").to_pylist()
    assert rows == [
        {"action": "set", "reviewer": "kim", "keystrokes": 1},
        {"action": "undo", "reviewer": "kim", "keystrokes": None},
    ]
    bad_key = client.post("/api/review", json={"key": first["key"], "action": "q"}, headers=headers)
    assert bad_key.status_code == 400 and bad_key.json()["error"].endswith(")."), bad_key.text


def test_every_post_needs_the_sessions_csrf_token(review_home: HomeLayout) -> None:
    client = client_for(review_home)
    token = opened(client)
    for headers in ({}, {"X-CSRF-Token": "forged" + token[6:]}, {"X-CSRF-Token": ""}):
        for path in ("/api/next", "/api/review", "/api/undo", "/logout"):
            for body in ({"json": {"key": "animal::A02", "action": "m"}}, {"content": b"not json"}, {}):
                answer = client.post(path, headers=headers, **body)
                assert answer.status_code == 403, (path, headers, answer.text)
                assert "CSRF" in answer.json()["error"] and answer.json()["error"].count(".") == 1
    stranger = client_for(review_home)  # no session cookie at all
    assert stranger.post("/api/next", json={}, headers={"X-CSRF-Token": token}).status_code == 403
    assert query(review_home, "SELECT count(*) AS n FROM corrections").to_pylist() == [{"n": 0}]


def test_bad_requests_get_a_4xx_with_one_sentence(review_home: HomeLayout) -> None:
    client = client_for(review_home)
    headers = {"X-CSRF-Token": opened(client)}
    cases = [
        client.post("/api/review", json={"key": "bogus", "action": "m"}, headers=headers),
        client.post("/api/review", json={"key": "animal::nobody", "action": "m"}, headers=headers),
        client.post("/api/review", json={"action": "m"}, headers=headers),
        client.post("/api/review", content=b"{not json", headers={**headers, "Content-Type": "application/json"}),
        client.post("/api/review", json={"key": "animal::A02", "action": "mm"}, headers=headers),
        client.get("/no/such/page"),
        client.put("/api/review", json={}),
        client.get("/", headers={"Host": "evil.example:8765"}),
    ]
    for answer in cases:
        assert 400 <= answer.status_code < 500, answer.text
        sentence = answer.json()["error"]
        assert sentence[0].isupper() and sentence.endswith(".") and "\n" not in sentence, sentence


def test_images_are_served_only_from_inside_the_home(review_home: HomeLayout, tmp_path: Path) -> None:
    client = client_for(review_home)
    opened(client)
    crop = query(review_home, "SELECT crop_path FROM face_calls LIMIT 1").to_pylist()[0]["crop_path"]
    assert client.get(f"/files/{crop}").status_code == 200
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"\xff\xd8 outside the home")
    link = review_home.lake / "crops" / "drop=d1" / "link.jpg"
    link.symlink_to(secret)
    inner_link = review_home.lake / "crops" / "drop=d1" / "catalog.jpg"
    inner_link.symlink_to(review_home.catalog)  # inside the home, but not an image the app serves
    attempts = [
        "/files/../../etc/passwd",
        "/files/lake/crops/../../breedwatch.duckdb",
        "/files/lake/crops/%2e%2e/%2e%2e/breedwatch.duckdb",
        "/files/lake%2Fcrops%2F..%2F..%2Fbreedwatch.duckdb",
        "/files/%2Fetc%2Fpasswd",
        f"/files/{secret}",
        f"/files//{secret}",
        "/files/lake/crops/drop=d1/link.jpg",
        "/files/lake/crops/drop=d1/catalog.jpg",
        "/files/lake/crops/drop%3Dd1%2Flink.jpg",
        "/files/lake/crops/%252e%252e/x.jpg",
        "/files/breedwatch.duckdb",
        "/files/lake/crops/drop=d1/missing.jpg",
        "/files/lake\\crops\\x.jpg",
    ]
    for path in attempts:
        answer = client.get(path)
        assert 400 <= answer.status_code < 500 and b"outside the home" not in answer.content, (path, answer.text)
        assert answer.json()["error"].endswith("."), path


def test_a_password_means_a_login_and_a_new_session(review_home: HomeLayout) -> None:
    client = client_for(review_home, password="correct horse", loopback_only=False)
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"
    assert client.post("/api/next", json={}).status_code == 403
    form = client.get("/login")
    token = csrf_of(form.text)
    assert (
        client.post("/login", data={"csrf_token": "x", "reviewer": "lee", "password": "correct horse"}).status_code
        == 403
    )
    wrong = client.post("/login", data={"csrf_token": token, "reviewer": "lee", "password": "wrong"})
    assert wrong.status_code == 401 and client.get("/api/next").status_code in (401, 405)
    before = client.cookies.get("breedwatch_review")
    done = client.post(
        "/login", data={"csrf_token": token, "reviewer": "lee", "password": "correct horse"}, follow_redirects=False
    )
    assert done.status_code == 303 and client.cookies.get("breedwatch_review") != before
    page = client.get("/")
    assert page.status_code == 200 and "lee" in page.text
    item = client.post("/api/next", json={}, headers={"X-CSRF-Token": csrf_of(page.text)})
    assert item.status_code == 200 and item.json()["reviewer"] == "lee"
    assert client.post("/api/next", json={}, headers={"X-CSRF-Token": token}).status_code == 403  # the old token


def test_the_command_refuses_a_network_address_without_a_password(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    result = CliRunner().invoke(app, ["review", "--host", "0.0.0.0", "--home", str(tmp_path)])
    assert result.exit_code == 2 and "refusing to listen on 0.0.0.0 without --password" in " ".join(
        result.output.split()
    )
    short = tmp_path / "pw"
    short.write_text("short\n")
    result = CliRunner().invoke(app, ["review", "--host", "0.0.0.0", "--password-file", str(short)])
    assert result.exit_code == 2 and "at least 8 characters" in " ".join(result.output.split())


def test_the_app_imports_no_torch() -> None:
    probe = (
        "import sys, flows.review.app, flows.cli.review; "
        "print([m for m in ('torch', 'prefect.flows') if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=os.environ)
    assert done.stdout.strip() == "[]"


def test_the_retrain_button_starts_a_detached_process_once_and_refuses_a_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tasks.retrain_launch as launch

    started: list[tuple[list[str], Path]] = []

    def fake_spawn(command: list[str], log: Path) -> int:  # no training here: the test's own process stands in
        started.append((command, log))
        return os.getpid()

    monkeypatch.setattr(launch, "spawn", fake_spawn)
    home = write_review_home(tmp_path / "home")
    client = client_for(home)
    headers = {"X-CSRF-Token": opened(client)}
    assert client.post("/api/retrain", json={"kind": "gender"}).status_code == 403, "CSRF like every POST"
    assert started == []
    answer = client.post("/api/retrain", json={"kind": "gender"}, headers=headers)
    assert answer.status_code == 202, answer.text
    [(command, log)] = started
    assert command[-4:] == ["retrain", "gender", "--home", str(home.root)] and log.parent == home.root / "runs"
    assert answer.json()["started"]["log"] in answer.json()["watch"]
    again = client.post("/api/retrain", json={"kind": "mating"}, headers=headers)
    assert again.status_code == 409 and "gender retrain started at" in again.json()["error"]
    assert len(started) == 1
    unknown = client.post("/api/retrain", json={"kind": "weights"}, headers=headers)
    assert unknown.status_code == 400 and unknown.json()["error"].startswith("Retraining 'weights' is not offered")


def test_a_finished_retrain_no_longer_blocks_the_next(tmp_path: Path) -> None:
    from tasks.retrain_launch import running_retrain, spawn, start_retrain

    home = write_review_home(tmp_path / "home")
    quick = spawn([sys.executable, "-c", "pass"], home.root / "runs" / "quick.log")
    os.waitpid(quick, 0)
    (home.root / "runs" / "retrain.json").write_text(
        f'{{"kind": "gender", "pid": {quick}, "log": "runs/quick.log", "started_at": "then"}}'
    )
    assert running_retrain(home) is None
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (home.root / "runs" / "retrain.json").write_text(
            f'{{"kind": "mating", "pid": {sleeper.pid}, "log": "runs/x.log", "started_at": "now"}}'
        )
        assert running_retrain(home)["kind"] == "mating"
        with pytest.raises(RuntimeError, match="A mating retrain started at now is still running"):
            start_retrain(home, "gender", None)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert running_retrain(home) is None
