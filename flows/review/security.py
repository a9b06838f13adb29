"""Who may use the review app: login sessions held in memory, CSRF tokens, the loopback Host check."""

from __future__ import annotations

import hmac
import secrets
import threading
from dataclasses import dataclass, field

SESSION_COOKIE = "breedwatch_review"
CSRF_HEADER = "x-csrf-token"
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})


@dataclass
class Session:
    """One browser's session: its CSRF token, whether it has logged in, and who reviews."""

    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    authenticated: bool = False
    reviewer: str = ""


class SessionStore:
    """Sessions by cookie value, in this process's memory (a restart logs everyone out)."""

    def __init__(self) -> None:
        """An empty store."""
        self.sessions: dict[str, Session] = {}
        self.lock = threading.Lock()

    def get(self, token: str | None) -> Session | None:
        """The session a cookie names, or None."""
        with self.lock:
            return self.sessions.get(token) if token else None

    def create(self, session: Session) -> str:
        """Store a session under a new unguessable token and return the token."""
        token = secrets.token_urlsafe(32)
        with self.lock:
            self.sessions[token] = session
        return token

    def drop(self, token: str | None) -> None:
        """Forget a session (logout, or a login replacing it)."""
        with self.lock:
            self.sessions.pop(token or "", None)


def same_secret(given: str | None, expected: str) -> bool:
    """Compare a submitted secret in constant time."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def host_name(host_header: str) -> str:
    """The name part of a Host header (no port)."""
    if host_header.startswith("["):
        return host_header.split("]", 1)[0] + "]"
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def is_loopback_name(host_header: str) -> bool:
    """Whether a request's Host header names this machine's loopback (DNS rebinding sends another name)."""
    return host_name(host_header.lower()) in LOOPBACK_NAMES
