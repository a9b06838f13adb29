"""Camtrap DP packages accepted as drops: read the package and list its media files (rows: models.camtrap_rows)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path, PurePosixPath

from models.camtrap_rows import is_remote, remote_reject
from schemas.camtrap import (
    DESCRIPTOR,
    CamtrapDeployment,
    CamtrapMedia,
    CamtrapObservation,
    CamtrapPackage,
    RowProblem,
    is_camtrap_descriptor,
    parse_descriptor,
    parse_rows,
    resource_paths,
)
from schemas.config import IngestConfig
from schemas.drop_listing import DropListing, FoundFile, FoundReject
from schemas.manifest import ManifestError
from tasks.discover import link_problem


def read_resource(drop_dir: Path, relative: str) -> str:
    """A resource CSV inside the package as UTF-8 text, naming the descriptor when it is missing or outside."""
    path = (drop_dir / relative).resolve()
    if not path.is_relative_to(drop_dir.resolve()):
        raise ManifestError(DESCRIPTOR, None, "resources", f"{relative} is outside the package")
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(DESCRIPTOR, None, "resources", f"names {relative}, which is not in the package") from None
    except UnicodeDecodeError as exc:
        raise ManifestError(relative, None, None, f"is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def read_package(drop_dir: Path) -> CamtrapPackage | None:
    """The drop's Camtrap DP package, or None when the drop has no Camtrap DP datapackage.json."""
    descriptor = drop_dir / DESCRIPTOR
    if not descriptor.is_file():
        return None
    try:
        data = parse_descriptor(descriptor.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ManifestError(DESCRIPTOR, None, None, f"is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not is_camtrap_descriptor(data):
        return None
    paths = resource_paths(data)
    tables = {}
    problems: list[RowProblem] = []
    for name, model, key in (
        ("deployments", CamtrapDeployment, "deploymentID"),
        ("media", CamtrapMedia, "mediaID"),
        ("observations", CamtrapObservation, "observationID"),
    ):
        rows, bad = parse_rows(read_resource(drop_dir, paths[name]), paths[name], model, key)
        tables[name] = rows
        problems += bad
    return CamtrapPackage(paths, tables["deployments"], tables["media"], tables["observations"], problems)


def media_file_problem(media: CamtrapMedia, drop_root: Path, config: IngestConfig, filename: str) -> str | None:
    """Why a local media row's file cannot be ingested, as one sentence naming file, line and field; None when it
    can."""
    where = f"{filename} line {media.csv_line}"
    rel = media.filePath.strip()
    parts = PurePosixPath(rel).parts
    if rel.startswith(("/", "~", "\\")) or ".." in parts or "\\" in rel:
        return f"{where} field 'filePath': {rel!r} must be a relative path inside the package."
    kind = media.fileMediatype.split("/")[0]
    allowed = config.image_extensions if kind == "image" else config.audio_extensions if kind == "audio" else []
    if kind == "video":
        return (
            f"{where} field 'fileMediatype': {media.fileMediatype} is a video; "
            "breedwatch processes images and audio only."
        )
    if PurePosixPath(rel).suffix.lower() not in allowed:
        return (
            f"{where} field 'filePath': the extension of {rel} is not one breedwatch processes as {kind} "
            f"({', '.join(allowed)})."
        )
    path = drop_root / rel
    if path.is_symlink():
        problem = link_problem(path, drop_root)
        return f"{where} field 'filePath': {problem}" if problem else None
    if not path.is_file():
        return f"{where} field 'filePath': {rel} is not in the package."
    return None


def package_listing(
    listing: DropListing, package: CamtrapPackage | None, drop_dir: Path, config: IngestConfig
) -> DropListing:
    """The drop listing plus the package's local media files, with one reject per unusable or bad row."""
    if package is None:
        return listing
    root = drop_dir.resolve()
    known = {found.rel for found in listing.files}
    files, rejects = list(listing.files), list(listing.rejects)
    rejects += [FoundReject(p.file_path or p.filename, p.sentence) for p in package.problems]
    rejects += remote_reject(package)
    for media in package.media:
        if is_remote(media):
            continue
        problem = media_file_problem(media, root, config, package.resources["media"])
        rel = media.filePath.strip()
        if problem:
            rejects.append(FoundReject(rel, problem))
        elif rel not in known:
            parts = rel.split("/")
            files.append(
                FoundFile(rel, media.fileMediatype.split("/")[0], parts[0], parts[1] if len(parts) > 2 else None)
            )
            known.add(rel)
    return replace(listing, files=sorted(files, key=lambda f: f.rel), rejects=rejects)
