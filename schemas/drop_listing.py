"""What walking a drop found: its media files and the files it refused."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FoundFile:
    """A media file inside a drop, before its bytes are read."""

    rel: str
    kind: str
    folder: str
    subfolder: str | None


@dataclass(frozen=True)
class FoundReject:
    """A file refused while walking the drop."""

    rel: str
    reason: str


@dataclass(frozen=True)
class DropListing:
    """Everything walking a drop found."""

    files: list[FoundFile]
    rejects: list[FoundReject]
    fingerprint: str
