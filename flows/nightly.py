"""The nightly flow: wiring only (discover, ingest, catalogue, report)."""

from __future__ import annotations

from typing import Any

from prefect import flow

from tasks.nightly import (
    find_drops,
    find_faces,
    segment_audio,
    finish_run,
    home_writer,
    ingest_drop,
    refresh_catalog,
    resolve_home,
    start_run,
    write_report,
)


@flow(name="nightly", log_prints=True, validate_parameters=True)
def nightly(drops: list[str] | None = None, home: str | None = None, config_file: str | None = None) -> dict[str, Any]:
    """Process the given drops, or every new drop in the inbox, into the lake, catalog and report."""
    home_dir = resolve_home(home, config_file)
    with home_writer(home_dir):
        run_id = start_run(home_dir, config_file)
        results: list[dict[str, Any]] = []
        faces: list[dict[str, Any]] = []
        audio: list[dict[str, Any]] = []
        try:
            drop_dirs = find_drops(home_dir, run_id, drops)
            results = [ingest_drop(drop_dir, home_dir, run_id) for drop_dir in drop_dirs]
            faces = [find_faces(result, home_dir, run_id) for result in results]
            audio = [segment_audio(result, home_dir, run_id) for result in results]
            refresh_catalog(home_dir, run_id)
            counts = finish_run(home_dir, run_id, results, faces + audio)
            report = write_report(home_dir, run_id, results)
        except Exception as error:
            finish_run(home_dir, run_id, results, faces + audio, error=f"{type(error).__name__}: {error}")
            raise
    return {"run_id": run_id, "home": home_dir, "report": report, "drops": results, "faces": faces, "audio": audio, "counts": counts}
