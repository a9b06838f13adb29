"""Find drops and the files inside a drop, refusing links that leave it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from schemas.config import IngestConfig
from schemas.drop_listing import DropListing, FoundFile, FoundReject
from schemas.manifest import SAFE_ID

MEDIA_FOLDERS = ("faces", "images", "audio")
ANNOTATION_SUFFIXES = (".txt", ".csv")
JUNK_NAMES = {"thumbs.db", "desktop.ini"}
MANIFEST_NAMES = ("drop.toml", "animals.csv", "encounters.csv")


def list_inbox_drops(inbox: Path) -> list[Path]:
    """Every non-hidden folder directly under the inbox, in name order."""
    if not inbox.is_dir():
        return []
    return sorted(p for p in inbox.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def drop_id_of(drop_dir: Path) -> str:
    """The drop id is the folder name; it must be usable as a partition key."""
    name = drop_dir.name
    if not SAFE_ID.match(name):
        raise ValueError(
            f"drop folder name {name!r} must be 1-64 letters, digits, '_', '-' or '.' (it becomes the drop id)"
        )
    return name


def classify(rel: str, config: IngestConfig) -> tuple[str | None, str | None]:
    """Return (kind, None) for media, (None, reason) for a refused file, (None, None) to ignore it."""
    parts = rel.split("/")
    name = parts[-1].lower()
    if name.startswith(".") or name in JUNK_NAMES or parts[0] not in MEDIA_FOLDERS:
        return None, None
    suffix = Path(name).suffix
    if parts[0] in ("faces", "images") and suffix in config.image_extensions:
        return "image", None
    if parts[0] == "audio" and suffix in config.audio_extensions:
        return "audio", None
    if parts[0] == "audio" and suffix in ANNOTATION_SUFFIXES:
        return None, None
    allowed = config.image_extensions if parts[0] != "audio" else config.audio_extensions
    return (
        None,
        f"The extension {suffix or '(none)'!r} is not one breedwatch processes in {parts[0]}/ ({', '.join(allowed)}).",
    )


def link_problem(path: Path, drop_root: Path) -> str | None:
    """Why a symbolic link is refused, or None when it points at a file inside the drop."""
    target = Path(os.path.realpath(path))
    if not target.exists():
        return "The file is a broken symbolic link."
    if not target.is_relative_to(drop_root):
        return "The file is a symbolic link to a place outside the drop, which is refused."
    return None


def walk_drop(drop_dir: Path, config: IngestConfig) -> DropListing:
    """List a drop's media files and refused entries, with a fingerprint of names, sizes and times."""
    root = Path(os.path.realpath(drop_dir))
    files: list[FoundFile] = []
    rejects: list[FoundReject] = []
    digest = hashlib.sha256()
    for path in sorted(walk_paths(root)):
        rel = path.relative_to(root).as_posix()
        if rel == config.ready_marker:
            continue  # writing the marker after the copy must not make the drop look changed
        kind, reason = classify(rel, config)
        if path.is_symlink() and path.is_dir():
            kind, reason = None, link_problem(path, root) if rel.split("/")[0] in MEDIA_FOLDERS else None
        elif path.is_symlink() and (kind or reason):
            reason = link_problem(path, root) or reason
        if reason:
            rejects.append(FoundReject(rel, reason))
        elif kind:
            parts = rel.split("/")
            files.append(FoundFile(rel, kind, parts[0], parts[1] if len(parts) > 2 else None))
        digest.update(stat_signature(path, rel).encode())
    return DropListing(files, rejects, digest.hexdigest())


def walk_paths(root: Path) -> list[Path]:
    """Every file or link under a folder, without following linked folders."""
    found: list[Path] = []
    for folder, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(folder)
        found.extend(base / name for name in filenames)
        found.extend(base / name for name in dirnames if (base / name).is_symlink())
    return found


def stat_signature(path: Path, rel: str) -> str:
    """A line that changes when a file is added, removed, resized or rewritten."""
    try:
        stat = path.stat()
    except OSError:
        return f"{rel}\tunreadable\n"
    return f"{rel}\t{stat.st_size}\t{stat.st_mtime_ns}\n"


def latest_change(drop_dir: Path, now: float) -> float:
    """The latest time (epoch seconds) any file, link or folder in a drop was written: its ctime, which every write and
    copy sets (cp -p and rsync -a give a fresh copy its source's old mtime), or its mtime where later but not in the
    future (a camera's wrong clock)."""
    latest = 0.0
    for folder, dirnames, filenames in os.walk(Path(os.path.realpath(drop_dir)), followlinks=False):
        for name in (".", *dirnames, *filenames):
            try:
                stat = os.lstat(Path(folder) / name)
            except OSError:  # removed while we looked: a change happening now
                return float("inf")
            latest = max(latest, stat.st_ctime, stat.st_mtime if stat.st_mtime <= now else 0.0)
    return latest


def settle_remaining(drop_dir: Path, config: IngestConfig, now: float) -> float:
    """Seconds until a drop has settled: 0 when it carries the ready marker or nothing in it changed for settle_s."""
    if config.ready_marker and (drop_dir / config.ready_marker).is_file():
        return 0.0
    if config.settle_s <= 0:
        return 0.0
    return max(0.0, min(config.settle_s, latest_change(drop_dir, now) + config.settle_s - now))
