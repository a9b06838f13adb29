"""The nightly flow: wiring only (discover, ingest, per-drop stages on the task runner, catalogue, report)."""

from __future__ import annotations

from typing import Any

from prefect import flow, unmapped
from prefect.futures import PrefectFuture, wait

from tasks.nightly import (
    assign_individuals,
    compact_lake,
    find_drops,
    find_faces,
    finish_run,
    home_writer,
    identify_faces,
    ingest_drop,
    predict_gender,
    predict_mating,
    refresh_catalog,
    release_drops,
    resolve_home,
    segment_audio,
    start_run,
    write_report,
)


def resolve(futures: list[PrefectFuture[Any]]) -> list[Any]:
    """Wait for every future, then return their results in order (the first failure raises)."""
    wait(futures)
    return [future.result() for future in futures]


def run_drop_stages(results: list[dict[str, Any]], home: str, run_id: str) -> tuple[list[dict[str, Any]], ...]:
    """Submit faces then gender and identify, and segments then mating, of every ingested drop to the task runner."""
    faces = find_faces.map(results, unmapped(home), unmapped(run_id))
    audio = segment_audio.map(results, unmapped(home), unmapped(run_id))
    gender = [predict_gender.submit(result, home, run_id, wait_for=[done]) for result, done in zip(results, faces)]
    identity = [identify_faces.submit(result, home, run_id, wait_for=[done]) for result, done in zip(results, faces)]
    mating = [predict_mating.submit(result, home, run_id, wait_for=[done]) for result, done in zip(results, audio)]
    wait([*faces, *audio, *gender, *identity, *mating])
    return resolve(faces), resolve(gender), resolve(identity), resolve(audio), resolve(mating)


@flow(name="nightly", log_prints=True, validate_parameters=True)
def nightly(drops: list[str] | None = None, home: str | None = None, config_file: str | None = None) -> dict[str, Any]:
    """Process the given drops, or every new drop in the inbox, into the lake, catalog and report."""
    home_dir = resolve_home(home, config_file)
    with home_writer(home_dir):
        run_id = start_run(home_dir, config_file)
        results: list[dict[str, Any]] = []
        faces: list[dict[str, Any]] = []
        gender: list[dict[str, Any]] = []
        identity: list[dict[str, Any]] = []
        audio: list[dict[str, Any]] = []
        mating: list[dict[str, Any]] = []
        try:
            drop_dirs = find_drops(home_dir, run_id, drops)
            release_drops(home_dir, run_id, drop_dirs)
            results = resolve(ingest_drop.map(drop_dirs, unmapped(home_dir), unmapped(run_id)))
            faces, gender, identity, audio, mating = run_drop_stages(results, home_dir, run_id)
            assign_individuals(home_dir, run_id)
            compact_lake(home_dir, run_id)
            refresh_catalog(home_dir, run_id)
            counts = finish_run(home_dir, run_id, results, faces + gender + identity + audio + mating)
            report = write_report(home_dir, run_id, results, counts)
        except Exception as error:
            stages = faces + gender + identity + audio + mating
            finish_run(home_dir, run_id, results, stages, error=f"{type(error).__name__}: {error}")
            raise
    return {
        "run_id": run_id,
        "home": home_dir,
        "report": report,
        "drops": results,
        "faces": faces,
        "gender": gender,
        "identity": identity,
        "audio": audio,
        "mating": mating,
        "counts": counts,
    }
