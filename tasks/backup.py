"""`breedwatch backup` and `breedwatch restore`: one tar archive of what a station cannot regenerate (the lake with its
corrections, crops and commit markers, the model store, home.json, the configuration), each file's SHA-256 in a
manifest; restore verifies every hash before it writes anything and rebuilds the DuckDB catalog.

A backup may run while a nightly run writes: lake files are never changed in place (a part appears or is replaced by
a rename), so the files are first hard-linked into a snapshot folder inside the home (each link holds the file as it
was, in milliseconds per thousand files), commit markers first and compacted files last, and the snapshot is kept
only if nothing under the lake, the models and home.json changed while it was taken (else it is taken again); the
archive is then written from the snapshot at leisure, to a temp name renamed at the end."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from pydantic import ValidationError

from schemas.backup import BACKUP_FORMAT, MANIFEST_NAME, BackedUpFile, BackupManifest, TakenGroup
from schemas.config import Settings
from schemas.home import CATALOG_FILE, VERSION_FILE, HomeLayout
from schemas.tables import LAKE_TABLES
from tasks.catalog import refresh_views
from tasks.compaction import COMPACTED
from tasks.home_version import HomeVersionError, code_versions, newer_parts, read_home_version
from tasks.lake import published, writer_lock
from tasks.runs import CONFIG_FILE, code_version, load_run_settings

SNAPSHOT_ATTEMPTS = 5
SNAPSHOT_PAUSE_S = 1.0
CHUNK_BYTES = 1 << 20
# Archive name prefix -> the kind of data the manifest counts it as (first match wins).
KINDS = (
    ("lake/corrections/day=", "corrections"),
    ("lake/crops/", "crops"),
    ("lake/gradcam/", "gradcam"),
    ("lake/_state/", "commit markers"),
    ("lake/", "lake parts"),
    ("models/", "models"),
    ("inbox/", "drops"),
    ("", "configuration"),
)
LEFT_OUT = (
    f"{CATALOG_FILE}: the DuckDB catalog, rebuilt from the lake by restore",
    "hardware/: how the nets run on each machine, measured again on the first run",
    "reports/: the runs' HTML reports, rebuilt from the catalog with 'breedwatch report'",
    "temp files (.tmp-*.partial) and lock files: unpublished or in-flight writes",
    "lake/_damaged/: files breedwatch check set aside as damaged",
)


class BackupError(RuntimeError):
    """A backup that cannot be written or restored, with a one-sentence reason."""


@dataclass(frozen=True)
class Restored:
    """What a restore wrote: the manifest it followed and the catalog's views."""

    manifest: BackupManifest
    views: list[str]


def is_carried(path: Path) -> bool:
    """Whether a file of the home belongs in a backup: a regular file that is no temp or lock file."""
    return path.is_file() and not path.is_symlink() and not path.name.startswith(".")


def tree_files(folder: Path, prefix: str) -> list[tuple[str, Path]]:
    """Every carried file under a folder, as (archive name under prefix, path), sorted."""
    found = sorted(p for p in folder.rglob("*") if is_carried(p)) if folder.is_dir() else []
    return [(f"{prefix}/{p.relative_to(folder).as_posix()}", p) for p in found]


def backup_sources(
    home: HomeLayout, settings: Settings, config: Path | None, with_drops: bool
) -> list[tuple[str, Path]]:
    """Every file a backup takes, as (archive name, path): home.json, commit markers first, the lake's parts, crops
    and corrections, compacted files last (a drop moved into one is then found either way), the model store, the runs'
    resolved configurations, the home's own *.toml, the --config file and, when asked, the inbox's drops."""
    lake = [(name, path) for name, path in tree_files(home.lake, "lake") if not name.startswith("lake/_damaged/")]
    markers = [item for item in lake if item[0].startswith("lake/_state/")]
    compacted = [item for item in lake if f"/{COMPACTED}=" in item[0]]
    parts = [item for item in lake if item not in markers and item not in compacted]
    configs = [(f"runs/{p.parent.name}/{CONFIG_FILE}", p) for p in sorted(home.runs.glob(f"*/{CONFIG_FILE}"))]
    configs += [(p.name, p) for p in sorted(home.root.glob("*.toml")) if is_carried(p)]
    if config is not None and config.resolve().parent != home.root.resolve():
        configs.append((f"config/{config.name}", config))
    drops = tree_files(settings.inbox_dir, "inbox") if with_drops else []
    version = [(VERSION_FILE, home.version_file)] if home.version_file.exists() else []
    return version + markers + parts + compacted + tree_files(home.models, "models") + configs + drops


def identity(path: Path) -> tuple[int, int, int] | None:
    """What tells one version of a file from another here (inode, size, modification time), or None when gone."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def link_into(source: Path, target: Path) -> tuple[int, int, int] | None:
    """Hard-link a file into the snapshot (copy it when it lives on another filesystem); the identity of what was
    taken, or None when the file vanished first."""
    target.parent.mkdir(parents=True, exist_ok=True)
    before = identity(source)
    try:
        os.link(source, target)
        return identity(target)
    except FileNotFoundError:
        return None
    except OSError:  # another filesystem (the inbox, a --config file elsewhere) or no hard links here
        try:
            shutil.copy2(source, target)
        except FileNotFoundError:
            return None
        return before


def take_snapshot(
    home: HomeLayout, settings: Settings, config: Path | None, with_drops: bool, folder: Path
) -> tuple[list[str], int]:
    """Link every file to back up into folder until one pass sees no lake, model or home.json file change while it
    runs; the archive names taken and the number of passes."""
    watched = ("lake/", "models/", VERSION_FILE)
    for attempt in range(1, SNAPSHOT_ATTEMPTS + 1):
        shutil.rmtree(folder, ignore_errors=True)
        sources = backup_sources(home, settings, config, with_drops)
        taken = {name: link_into(path, folder / name) for name, path in sources}
        after = {name: identity(path) for name, path in backup_sources(home, settings, config, with_drops)}
        moved = {name for name in taken.keys() | after.keys() if taken.get(name) != after.get(name)}
        if not any(name.startswith(watched) for name in moved):
            return [name for name in taken if taken[name] is not None], attempt
        time.sleep(SNAPSHOT_PAUSE_S)
    raise BackupError(
        f"The lake of {home.root} kept changing during {SNAPSHOT_ATTEMPTS} attempts to back it up; run the backup "
        "again when the nightly run has finished."
    )


class HashingReader:
    """A file read once for the archive, hashing what passes through."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        """Read and hash the next bytes."""
        data = self.handle.read(size)
        self.digest.update(data)
        return data


def kind_of(name: str) -> str:
    """The kind of data an archive name holds, for the manifest's counts."""
    return next(kind for prefix, kind in KINDS if name.startswith(prefix))


def add_files(tar: tarfile.TarFile, folder: Path, names: list[str]) -> dict[str, BackedUpFile]:
    """Add the snapshot's files to the archive, hashing each as it is read."""
    files = {}
    for name in names:
        info = tar.gettarinfo(folder / name, arcname=name)
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        with open(folder / name, "rb") as handle:
            reader = HashingReader(handle)
            tar.addfile(info, reader)
        files[name] = BackedUpFile(size=info.size, sha256=reader.digest.hexdigest())
    return files


def add_manifest(tar: tarfile.TarFile, manifest: BackupManifest) -> None:
    """Add the manifest as the archive's last member."""
    data = manifest.model_dump_json(indent=2).encode()
    info = tarfile.TarInfo(MANIFEST_NAME)
    info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
    tar.addfile(info, io.BytesIO(data))


def taken_groups(files: dict[str, BackedUpFile]) -> dict[str, TakenGroup]:
    """Files and bytes per kind of data."""
    groups: dict[str, TakenGroup] = {}
    for name, file in files.items():
        group = groups.setdefault(kind_of(name), TakenGroup())
        group.files, group.bytes = group.files + 1, group.bytes + file.size
    return groups


def backup_home(settings: Settings, out: Path, config: Path | None = None, with_drops: bool = False) -> BackupManifest:
    """Write the home's backup archive to out (a new .tar file) and return its manifest."""
    home = HomeLayout(settings.home)
    if out.suffix != ".tar":
        raise BackupError(f"The backup {out} must be a .tar file (one archive, written whole or not at all).")
    if out.exists():
        raise BackupError(f"The backup {out} already exists; give a new file name.")
    if not home.lake.is_dir():
        raise BackupError(f"{home.root} holds no lake to back up; is --home right?")
    record = read_home_version(home)
    if record and newer_parts(record, LAKE_TABLES):
        raise BackupError(f"{home.root} was written by a newer breedwatch; back it up with that version.")
    folder = home.root / f".backup-{uuid.uuid4().hex}"
    try:
        names, attempts = take_snapshot(home, settings, config, with_drops, folder)
        with published(out) as sink, tarfile.open(fileobj=sink, mode="w", format=tarfile.PAX_FORMAT) as tar:
            files = add_files(tar, folder, names)
            manifest = BackupManifest(
                format=BACKUP_FORMAT,
                created_at=datetime.now(UTC).isoformat(),
                breedwatch_version=code_version(),
                home_version=record or code_versions(LAKE_TABLES),
                source_home=str(home.root.resolve()),
                with_drops=with_drops,
                snapshot_attempts=attempts,
                took=taken_groups(files),
                left_out=[*LEFT_OUT, *([] if with_drops else ["inbox/: the raw drops (add them with --with-drops)"])],
                files=files,
            )
            add_manifest(tar, manifest)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return manifest


def read_manifest(tar: tarfile.TarFile, archive: Path) -> BackupManifest:
    """The archive's manifest, or a BackupError saying the file is no breedwatch backup."""
    try:
        member = tar.getmember(MANIFEST_NAME)
        handle = tar.extractfile(member)
        manifest = BackupManifest.model_validate_json(handle.read() if handle else b"")
    except (KeyError, ValidationError, tarfile.TarError) as error:
        raise BackupError(
            f"{archive} is not a readable breedwatch backup ({MANIFEST_NAME} is missing or damaged: "
            f"{str(error).splitlines()[0]}); nothing was restored."
        ) from None
    if manifest.format > BACKUP_FORMAT:
        raise BackupError(
            f"{archive} is a backup format {manifest.format} from a newer breedwatch; upgrade to restore."
        )
    return manifest


def check_backup_version(manifest: BackupManifest, archive: Path) -> None:
    """Refuse, in one sentence, a backup of a home written by a newer breedwatch (the rule of tasks.home_version)."""
    newer = newer_parts(manifest.home_version, LAKE_TABLES)
    if newer:
        raise HomeVersionError(
            f"The backup {archive} was made by breedwatch {manifest.breedwatch_version} of a home with "
            f"{', '.join(newer)}, newer than this breedwatch {code_version()} understands: upgrade breedwatch to "
            f"{manifest.home_version.get('written_by', manifest.breedwatch_version)} or later to restore it."
        )


def member_sha256(tar: tarfile.TarFile, member: tarfile.TarInfo) -> str:
    """The SHA-256 of one member's bytes."""
    digest = hashlib.sha256()
    handle = tar.extractfile(member)
    for chunk in iter(lambda: handle.read(CHUNK_BYTES), b"") if handle else ():
        digest.update(chunk)
    return digest.hexdigest()


def safe_name(name: str) -> bool:
    """Whether an archive name stays inside the home it is restored into."""
    path = PurePosixPath(name)
    return bool(name) and not path.is_absolute() and ".." not in path.parts


def verify_archive(tar: tarfile.TarFile, manifest: BackupManifest, archive: Path) -> None:
    """Check every member against the manifest (listed, a plain file, size and SHA-256) and that none is missing."""
    seen = set()
    for member in tar:
        if member.name == MANIFEST_NAME:
            continue
        expected = manifest.files.get(member.name)
        if expected is None or not member.isfile() or not safe_name(member.name):
            raise BackupError(f"The backup {archive} holds {member.name}, which its manifest does not list as a file.")
        if member.size != expected.size or member_sha256(tar, member) != expected.sha256:
            raise BackupError(
                f"The backup {archive} is damaged: {member.name} does not match the SHA-256 its manifest recorded; "
                "nothing was restored (use another backup)."
            )
        seen.add(member.name)
    missing = sorted(set(manifest.files) - seen)
    if missing:
        raise BackupError(f"The backup {archive} lacks {missing[0]}, which its manifest lists; nothing was restored.")


def clear_target(home: HomeLayout, entries: set[str], force: bool) -> None:
    """Make sure the home is empty, or with force remove what the backup replaces (and the catalog)."""
    present = sorted(p.name for p in home.root.iterdir() if p.name != home.lock.name) if home.root.exists() else []
    if present and not force:
        raise BackupError(
            f"{home.root} is not empty (it holds {', '.join(present[:3])}); restore into a new or empty folder, or "
            "pass --force to replace its lake, models and configuration."
        )
    for name in sorted(entries | {CATALOG_FILE, f"{CATALOG_FILE}.wal", home.hardware.name}):
        path = home.root / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def extract(tar: tarfile.TarFile, home: HomeLayout, entries: set[str]) -> None:
    """Write the archive's files into a folder inside the home, then move each top-level entry into place."""
    folder = home.root / f".restore-{uuid.uuid4().hex}"
    try:
        members = [member for member in tar.getmembers() if member.name != MANIFEST_NAME]
        tar.extractall(folder, members=members, filter="data")
        for name in sorted(entries):
            os.replace(folder / name, home.root / name)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def latest_thresholds(home: HomeLayout, fallback: Settings) -> dict[str, float]:
    """The decision bands of the restored home's latest run (what its catalog last applied), else the fallback's."""
    runs = sorted(p.parent.name for p in home.runs.glob(f"*/{CONFIG_FILE}"))
    return (load_run_settings(home, runs[-1]) if runs else fallback).view_thresholds()


def restore_home(archive: Path, settings: Settings, force: bool = False) -> Restored:
    """Verify a backup archive whole, write it into the home (empty, or replaced with force) and rebuild the catalog."""
    home = HomeLayout(settings.home)
    if not archive.is_file():
        raise BackupError(f"There is no backup archive at {archive}.")
    try:
        with tarfile.open(archive, "r:") as tar:
            manifest = read_manifest(tar, archive)
            check_backup_version(manifest, archive)
            verify_archive(tar, manifest, archive)
            entries = {PurePosixPath(name).parts[0] for name in manifest.files}
            with writer_lock(home):
                clear_target(home, entries, force)
                extract(tar, home, entries)
                views = refresh_views(home, latest_thresholds(home, settings))
    except tarfile.TarError as error:
        raise BackupError(f"The backup {archive} is damaged ({error}); nothing was restored.") from None
    return Restored(manifest, views)
