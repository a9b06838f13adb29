"""The review app looked at and used as a keeper would: headless Chromium reviews items by keyboard, skips one,
undoes one, and the corrections table and the views show it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.review.app import ReviewServer, create_app
from schemas.config import load_settings
from schemas.home import HomeLayout
from tasks.catalog import query, refresh_views
from tests.browser import chromium_page, chromium_path, drag, evaluate, press, screenshot, wait_until
from tests.review_home import DROP, write_review_home

DECISIONS = 20  # the twenty items by keyboard, on a home of 27 (a second camera's 12 faces added)
CAM02_FACES = tuple((f"cam02/IMG_{i:04d}.JPG", None, round(0.05 + 0.075 * i, 3)) for i in range(12))
SHOWN_KEY = "document.getElementById('item').dataset.key"
KEY_FOR = {"face": ("f", "m", "n"), "animal": ("m",), "encounter": ("y", "x"), "identity": ("1", "w")}
FRAME_RECT = "(r => [r.left, r.top, r.width, r.height])(document.querySelector('#frame img').getBoundingClientRect())"


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serving(home: HomeLayout) -> Iterator[str]:
    """The review app on a home, served by uvicorn on a thread: its base URL."""
    import uvicorn

    port = free_port()
    app = create_app(ReviewServer(home, None, "kim", 0.05, loopback_only=True))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[HomeLayout, str]]:
    """The review app on a small home with predictions (two cameras, two empty frames): the home and the base URL."""
    home = write_review_home(tmp_path / "home", drop_folder=tmp_path / "inbox" / DROP, extra_faces=CAM02_FACES)
    with serving(home) as base:
        yield home, base


def shown_item(tools) -> dict:
    """The item the page shows (key, kind and the keys it offers)."""
    return evaluate(tools, "({key: state.item && state.item.key, kind: state.item && state.item.kind})")


NO_CHROMIUM = "no Chromium installed (apt-get install chromium; .ci/run installs it)"


@pytest.mark.skipif(chromium_path() is None, reason=NO_CHROMIUM)
def test_a_keeper_reviews_by_keyboard_skips_and_undoes_in_chromium(served, tmp_path: Path) -> None:
    review_in_chromium(*served, tmp_path)


@pytest.mark.skipif(chromium_path() is None, reason=NO_CHROMIUM)
def test_a_keeper_reviews_the_demos_home_in_chromium(demo_run, tmp_path: Path) -> None:
    """The same session on a copy of the demo's home (catalog rebuilt for the copy's lake; frames from its inbox)."""
    demo_home, _ = demo_run
    home = HomeLayout(tmp_path / "demo-home")
    shutil.copytree(
        demo_home, home.root, ignore=lambda folder, names: ["inbox", "training"] if Path(folder) == demo_home else []
    )
    refresh_views(home, load_settings(home.root / "demo.toml", home=home.root).view_thresholds())
    with serving(home) as base:
        review_in_chromium(home, base, tmp_path)


def review_in_chromium(home: HomeLayout, base: str, tmp_path: Path) -> None:
    """A keeper's session in headless Chromium: twenty items by keyboard (one skipped), a face box drawn on the next
    item with a frame, that box undone; then the page's counts, its requests and the catalog are checked."""
    with chromium_page() as tools:
        tools.call("Page.navigate", url=base + "/")
        wait_until(tools, SHOWN_KEY)
        wait_until(tools, "Array.from(document.images).every(i => i.complete)")
        first_shot = screenshot(tools)
        decided: list[str] = []
        uses: dict[str, int] = {}
        while len(decided) < DECISIONS:
            item = shown_item(tools)
            if (len(decided) == 3 and not uses.get("skip")) or item["kind"] == "frame":  # frames: a box below
                press(tools, "s")
                uses["skip"] = uses.get("skip", 0) + 1
            else:
                choices = KEY_FOR[item["kind"]]
                key = choices[uses.get(item["kind"], 0) % len(choices)]
                uses[item["kind"]] = uses.get(item["kind"], 0) + 1
                press(tools, key)
                decided.append(item["key"])
            wait_until(tools, f"{SHOWN_KEY} !== {item['key']!r}")
        # draw a face's box on the next item with a frame (an empty frame, or a camera-trap face): b, then a drag
        tools.call("Runtime.evaluate", expression="state.skipped = []")
        drawable = "!!(state.item && state.item.frame && state.item.actions.some(a => a.key === 'b'))"
        while not evaluate(tools, drawable):  # identity items show the frame too, but draw no box
            item = shown_item(tools)
            press(tools, "s")
            wait_until(tools, f"{SHOWN_KEY} !== {item['key']!r}")
        wait_until(tools, "document.querySelector('#frame img').complete")
        framed = shown_item(tools)
        press(tools, "b")
        left, top, width, height = evaluate(tools, FRAME_RECT)
        drag(tools, (left + 0.25 * width, top + 0.25 * height), (left + 0.75 * width, top + 0.75 * height))
        wait_until(tools, f"{SHOWN_KEY} !== {framed['key']!r}")
        drawn_status = evaluate(tools, "document.getElementById('status').textContent")
        press(tools, "u")
        wait_until(tools, f"{SHOWN_KEY} === {framed['key']!r}")
        wait_until(tools, "Array.from(document.images).every(i => i.complete)")  # its frame loads again (or fails)
        stats = evaluate(tools, "window.reviewStats")
        page_rate = evaluate(tools, "document.getElementById('keys-per-item').textContent")
        status = evaluate(tools, "document.getElementById('status').textContent")
        images = evaluate(tools, "Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
        shot = screenshot(tools)
        events = list(tools.events)
    (tmp_path / "review.png").write_bytes(shot)
    if os.environ.get("BREEDWATCH_REVIEW_SCREENSHOT"):  # the page after the undo, and its first item beside it
        wanted = Path(os.environ["BREEDWATCH_REVIEW_SCREENSHOT"])
        wanted.write_bytes(shot)
        wanted.with_name(f"{wanted.stem}-first{wanted.suffix}").write_bytes(first_shot)

    assert stats["decisions"] == DECISIONS + 1 and stats["undos"] == 1 and stats["skips"] >= 1 and not stats["errors"]
    drawn_box = json.loads(drawn_status.removeprefix("Saved: box ").split("]")[0] + "]")
    assert drawn_box == pytest.approx([0.25, 0.25, 0.5, 0.5], abs=0.01), drawn_status  # mouse events land on pixels
    assert float(page_rate) == stats["keys"] / stats["decisions"] and stats["keys"] >= stats["decisions"]
    assert status.startswith("Undone") and all(images)
    requests = [e["params"]["request"]["url"] for e in events if e.get("method") == "Network.requestWillBeSent"]
    assert requests and all(url.startswith(base) for url in requests), "nothing but the app itself is fetched"
    failed = [e for e in events if e.get("method") == "Network.loadingFailed"]
    assert failed == []

    rows = query(home, "SELECT action, field, keystrokes, seconds_spent FROM corrections").to_pylist()
    assert sorted(r["action"] for r in rows) == ["set"] * (DECISIONS + 1) + ["undo"]
    assert all(r["seconds_spent"] >= 0 for r in rows if r["action"] == "set")
    keyed = [r for r in rows if r["action"] == "set" and r["field"] != "box"]
    assert len(keyed) == DECISIONS and all(r["keystrokes"] == 1 for r in keyed), "one keystroke per keyboard item"
    drawn = "SELECT count(*) AS n FROM box_annotations WHERE annotation IN ('drawn', 'fixed')"
    assert query(home, drawn).to_pylist() == [{"n": 0}], "the drawn box was undone"
    human = {
        "face": "SELECT count(*) AS n FROM face_calls WHERE reviewed",
        "animal": "SELECT count(*) AS n FROM animals WHERE sex_source = 'human'",
        "encounter": "SELECT count(*) AS n FROM encounters WHERE outcome_source = 'human'",
        "identity": "SELECT count(*) AS n FROM face_calls WHERE identity_source = 'human'",
    }
    kept = decided  # the box drawn after them was the one undone
    for kind, sql in human.items():
        expected = sum(1 for key in kept if key.startswith(kind + ":"))
        assert query(home, sql).to_pylist() == [{"n": expected}], kind
