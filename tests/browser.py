"""Look at a page as a person would: headless Chromium driven over the DevTools protocol (no extra packages)."""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
    "--window-size=1280,2000",
)
PAGE_CHECK = """JSON.stringify({
  tables: document.querySelectorAll('table').length,
  rows: document.querySelectorAll('tr').length,
  images: Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete, width: i.naturalWidth})),
  headings: Array.from(document.querySelectorAll('h2')).map(h => h.textContent.trim()),
})"""


def chromium_path() -> str | None:
    """The installed Chromium executable, if any."""
    return next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)


@dataclass
class PageVisit:
    """What the browser saw: failed requests, HTTP errors, the page's tables/images/headings and a screenshot."""

    failed: list[str] = field(default_factory=list)
    http_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    page: dict[str, Any] = field(default_factory=dict)
    screenshot: bytes = b""


class DevTools:
    """A minimal DevTools protocol session over one page target."""

    def __init__(self, url: str) -> None:
        """Connect to a page target's websocket."""
        self.socket, self.next_id, self.events = connect(url, max_size=None, open_timeout=20), 0, []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send a command and wait for its reply, keeping the events that arrive meanwhile."""
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=60))
            if message.get("id") == self.next_id:
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 30.0) -> None:
        """Read events until one with the given method arrives."""
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            self.events.append(json.loads(self.socket.recv(timeout=max(deadline - time.monotonic(), 0.1))))


def debugger_url(profile: Path, process: subprocess.Popen, timeout: float = 30.0) -> str:
    """The websocket of the browser's first page, from DevToolsActivePort and /json."""
    import urllib.request

    port_file, deadline = profile / "DevToolsActivePort", time.monotonic() + timeout
    while not port_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("Chromium did not start its DevTools endpoint")
        time.sleep(0.1)
    port = port_file.read_text().split()[0]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json") as response:  # noqa: S310 (loopback only)
        targets = json.loads(response.read())
    return next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")


def visit(page: Path) -> PageVisit:
    """Open a local HTML file in headless Chromium and record what loaded, what failed and how it looks."""
    with chromium_page() as tools:
        tools.call("Page.navigate", url=page.resolve().as_uri())
        tools.wait_for("Page.loadEventFired")
        result = tools.call("Runtime.evaluate", expression=PAGE_CHECK, returnByValue=True)
        shot = tools.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    return summarise(tools.events, json.loads(result["result"]["value"]), base64.b64decode(shot["data"]))


def summarise(events: list[dict[str, Any]], page: dict[str, Any], screenshot: bytes) -> PageVisit:
    """Failed requests, HTTP errors and every requested URL scheme from the recorded network events."""
    visit_ = PageVisit(page=page, screenshot=screenshot)
    for event in events:
        params = event.get("params", {})
        if event.get("method") == "Network.loadingFailed":
            visit_.failed.append(f"{params.get('errorText')} {params.get('requestId')}")
        elif event.get("method") == "Network.responseReceived" and params["response"].get("status", 200) >= 400:
            visit_.http_errors.append(params["response"]["url"])
        elif event.get("method") == "Network.requestWillBeSent":
            visit_.requests.append(params["request"]["url"].split(":", 1)[0])
    return visit_


@contextlib.contextmanager
def chromium_page() -> Iterator[DevTools]:
    """A headless Chromium with one page under DevTools control (network events recorded), closed afterwards."""
    browser = chromium_path()
    # Chromium's helper processes can still write to the profile as it is removed: a leftover is not a failure.
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        process = subprocess.Popen(
            [browser, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            tools = DevTools(debugger_url(Path(profile), process))
            tools.call("Network.enable")
            tools.call("Page.enable")
            yield tools
            tools.socket.close()
        finally:
            process.terminate()
            process.wait(timeout=20)


def evaluate(tools: DevTools, expression: str) -> Any:
    """The value of a JavaScript expression on the page (promises awaited)."""
    result = tools.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
    return result.get("result", {}).get("value")


def wait_until(tools: DevTools, expression: str, timeout: float = 20.0) -> Any:
    """Poll a JavaScript expression until it is truthy and return its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = evaluate(tools, expression)
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"the page never made {expression!r} true")


def press(tools: DevTools, key: str) -> None:
    """Type one character key as a person would (key down, then up)."""
    code = f"Key{key.upper()}" if key.isalpha() else ""
    tools.call("Input.dispatchKeyEvent", type="keyDown", key=key, text=key, code=code)
    tools.call("Input.dispatchKeyEvent", type="keyUp", key=key, code=code)


def drag(tools: DevTools, start: tuple[float, float], end: tuple[float, float], steps: int = 5) -> None:
    """Press the left mouse button at start, move to end in a few steps and release it (page coordinates)."""
    tools.call("Input.dispatchMouseEvent", type="mousePressed", x=start[0], y=start[1], button="left", clickCount=1)
    for step in range(1, steps + 1):
        x = start[0] + (end[0] - start[0]) * step / steps
        y = start[1] + (end[1] - start[1]) * step / steps
        tools.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y, button="left", buttons=1)
    tools.call("Input.dispatchMouseEvent", type="mouseReleased", x=end[0], y=end[1], button="left", clickCount=1)


def screenshot(tools: DevTools) -> bytes:
    """A PNG of the whole page as it is now."""
    return base64.b64decode(tools.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"])
