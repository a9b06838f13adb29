"""The manifest of a breedwatch backup archive: what it holds, each file's SHA-256, and the versions that wrote it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

BACKUP_FORMAT = 1
MANIFEST_NAME = "breedwatch-backup.json"


class BackedUpFile(BaseModel):
    """One file of the archive: its size and SHA-256."""

    size: int
    sha256: str


class TakenGroup(BaseModel):
    """How many files and bytes of one kind (lake, corrections, crops, models, ...) the archive took."""

    files: int = 0
    bytes: int = 0


class BackupManifest(BaseModel):
    """The archive's last member: format, versions, time, what was taken and left out, and every file's hash."""

    format: int = BACKUP_FORMAT
    created_at: str
    breedwatch_version: str
    home_version: dict[str, Any] = Field(description="home.json of the home backed up (layout and table versions).")
    source_home: str
    with_drops: bool
    snapshot_attempts: int
    took: dict[str, TakenGroup]
    left_out: list[str]
    files: dict[str, BackedUpFile]
