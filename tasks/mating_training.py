"""Train and evaluate the mating-success CGANet on labelled windows from the catalog or from a folder laid out like a
drop.

Labelled windows are the MFCC features (`segment_features`) of segments whose encounter has a known outcome:
segments -> the encounters view on drop_id + encounter_id, outcome success or failure from a keeper's correction or,
without one, from encounters.csv. A window's pair is
"male_id|female_id" and its encounter "drop_id/encounter_id". A folder of recordings with Raven tables and
encounters.csv is ingested like a drop into a scratch home under <home>/training/, with the same ingest and
segment code as the nightly run, and read back through that home's catalog.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.audio_features import FEATURE_VERSION
from models.mating_training import (
    EpochRecord,
    GroupBy,
    MatingData,
    binary_metrics,
    check_labelled,
    check_windows,
    checked_name,
    data_fingerprint,
    encounter_metrics,
    evaluate_mating,
    fold_groups,
    mating_model_card,
    mating_model_from_state,
    metrics_table,
    predict_frame_probs,
    reject_sentence,
    table_to_data,
    train_cganet,
    train_settings,
    validation_metrics,
    validation_split,
)
from models.promotion import promotion_decision
from schemas.config import Settings
from schemas.home import HomeLayout
from tasks.catalog import CatalogMissingError, query, refresh_views
from tasks.devices import cpu_threads
from tasks.discover import drop_id_of
from tasks.ingest import ingest_drop_dir
from tasks.model_store import load_model, model_label, store_version, stored_card
from tasks.runs import code_version, new_run_id
from tasks.segments import SEGMENTS_STAGE
from tasks.stages import run_on_drop

KIND = "mating"
SCRATCH_FOLDER = "training"
# An encounter's label is the encounters view's outcome_final when a keeper or encounters.csv gave it (a keeper's
# latest live correction wins over the file; the machine's own call is never a label).
LABELLED_SQL = """
    SELECT s.drop_id, s.segment_id, s.encounter_id, e.male_id, e.female_id, e.outcome_final AS outcome,
           e.outcome_source, e.outcome AS registry_outcome, f.mfcc
    FROM segment_features f
    JOIN segments s ON s.segment_id = f.segment_id AND s.drop_id = f.drop_id
    JOIN encounters e ON e.drop_id = s.drop_id AND e.encounter_id = s.encounter_id
    WHERE e.outcome_source IN ('human', 'registry') AND e.outcome_final IN ('success', 'failure')
      AND f.feature_version = ?
    ORDER BY s.drop_id, s.segment_id
"""
REJECTS_SQL = "SELECT path, reason FROM rejects WHERE drop_id = ? ORDER BY path, reason"


def catalog_data(home: HomeLayout, source: str | None = None, drop_id: str | None = None) -> MatingData:
    """Labelled windows of every drop in a home's catalog; ValueError when there is no catalog."""
    try:
        table = query(home, LABELLED_SQL, [FEATURE_VERSION])
        rejects = (
            [] if drop_id is None else [reject_sentence(r) for r in query(home, REJECTS_SQL, [drop_id]).to_pylist()]
        )
    except CatalogMissingError as error:
        raise ValueError(str(error)) from None
    return table_to_data(table, source or f"the catalog of {home.root}", rejects)


def scratch_home(home: HomeLayout, folder: Path) -> HomeLayout:
    """The scratch home a training folder is ingested into (one per folder, reused while its files are unchanged)."""
    digest = hashlib.sha256(os.path.realpath(folder).encode()).hexdigest()[:12]
    return HomeLayout(home.root / SCRATCH_FOLDER / f"mating-{digest}")


def folder_data(home: HomeLayout, folder: Path, settings: Settings) -> MatingData:
    """Labelled windows of a folder laid out like a drop (audio/**, Raven tables, encounters.csv): ingested and
    segmented into a scratch home by the nightly run's own code; its rejects come back as sentences."""
    if not folder.is_dir():
        raise ValueError(f"training folder {folder} does not exist")
    drop_id, scratch = drop_id_of(folder), scratch_home(home, folder)
    run_id = new_run_id(datetime.now(UTC))
    ingested = ingest_drop_dir(folder, scratch, run_id, settings, lambda: None)
    if ingested.status == "failed":
        raise ValueError(f"training folder {folder} cannot be used: {ingested.message}")
    run_on_drop(SEGMENTS_STAGE, scratch, folder, drop_id, run_id, settings)
    refresh_views(scratch, settings.view_thresholds())
    return catalog_data(scratch, str(folder), drop_id)


def load_data(home: HomeLayout, settings: Settings, folder: Path | None) -> MatingData:
    """Labelled windows from the folder when given, else from the home's catalog; ValueError unless both outcomes
    occur."""
    data = folder_data(home, folder, settings) if folder is not None else catalog_data(home)
    check_labelled(data)
    return data


def fit_mating(
    settings: Settings,
    name: str,
    data: MatingData,
    groups: list[str],
    fit: np.ndarray,
    val: np.ndarray,
    epochs: int | None,
    seed: int,
    progress: Callable[[EpochRecord], None] | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train CGANet on the fit windows, pick the epoch and temperature on the validation windows and measure there;
    the state dict and its card (not stored)."""
    recipe = train_settings(settings.mating.train, epochs=epochs)
    started = time.perf_counter()
    with cpu_threads(torch.device("cpu"), settings.mating.train.threads):  # CGANet trains on the CPU
        state, history = train_cganet(data.x[fit], data.y[fit], data.x[val], data.y[val], recipe, seed, progress)
    seconds = time.perf_counter() - started
    metrics = validation_metrics(mating_model_from_state(state), data, val, history.temperature)
    split = {"train": sorted({groups[i] for i in fit}), "validation": sorted({groups[i] for i in val})}
    band = (settings.mating.abstain_low, settings.mating.abstain_high)
    card = mating_model_card(
        recipe, seed, data_fingerprint(data.x, data.y, data.encounters), split, history, metrics, band
    )
    card.update(
        name=name,
        temperature=history.temperature,
        train_seconds=round(seconds, 2),
        split_by=recipe.group_by,
        feature_version=FEATURE_VERSION,
        data=data.describe(),
        rejects=data.rejects,
        corrections_used=data.corrections,
        code_version=code_version(),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    return state, card


def store_mating(
    home: HomeLayout, state: dict[str, Any], card: dict[str, Any], data: MatingData, fit: np.ndarray, val: np.ndarray
) -> dict[str, Any]:
    """Store a trained CGANet as the next version of its name, with some of its validation windows (its training
    windows when it had none: int8's check set); its card with version, path and label."""
    return store_version(home, KIND, state, card, check_windows(data.x, val, fit))


def train_mating(
    home: HomeLayout,
    settings: Settings,
    name: str,
    folder: Path | None = None,
    seed: int | None = None,
    epochs: int | None = None,
    progress: Callable[[EpochRecord], None] | None = None,
) -> dict[str, Any]:
    """Train CGANet on every labelled window (a grouped validation part picks the best epoch and the temperature)
    and store it as the next version of models/mating/<name>; returns the model card with version and path."""
    checked_name(name)
    data = load_data(home, settings, folder)
    recipe = train_settings(settings.mating.train, epochs=epochs)
    seed = settings.mating.train.seed if seed is None else seed
    groups = fold_groups(recipe.group_by, data.pairs, data.encounters)
    fit, val = validation_split(groups, data.y.tolist(), recipe.validation_fraction, seed)
    state, card = fit_mating(settings, name, data, groups, fit, val, epochs, seed, progress)
    return store_mating(home, state, card, data, fit, val)


def retrain_mating(
    home: HomeLayout,
    settings: Settings,
    epochs: int | None = None,
    progress: Callable[[EpochRecord], None] | None = None,
) -> dict[str, Any]:
    """Train a new version of the configured model on the catalog's labels (keepers' outcome corrections included),
    measure it and the version in use on the latter's validation groups, and store it promoted only when it is not
    worse there."""
    name = settings.mating.model.partition("@")[0]
    current = stored_card(home, KIND, name)
    if current is None:
        raise ValueError(
            f"there is no mating model {name!r} in the store to compare with; train one with 'breedwatch train mating'"
        )
    data = load_data(home, settings, None)
    held = set(current.get("split", {}).get("validation", []))
    groups = fold_groups(current.get("split_by", "pair"), data.pairs, data.encounters)
    val = np.array([i for i, group in enumerate(groups) if group in held], np.int64)
    fit = np.array([i for i, group in enumerate(groups) if group not in held], np.int64)
    if len(val) == 0 or len(fit) == 0:
        raise ValueError(
            f"{model_label(current)} has no validation groups with labelled windows now (or nothing else to train "
            "on), so the two versions cannot be compared"
        )
    state, card = fit_mating(settings, name, data, groups, fit, val, epochs, settings.mating.train.seed, progress)
    card["split_by"] = current.get("split_by", "pair")  # the groups were the current version's
    in_use_state, _ = load_model(home, KIND, model_label(current))
    before = validation_metrics(
        mating_model_from_state(in_use_state), data, val, float(current.get("temperature", 1.0))
    )
    before = {key: value for key, value in before.items() if key in ("segment", "encounter")}
    card["promotion"] = promotion_decision(KIND, model_label(current), before, card["metrics"], sorted(held))
    return store_mating(home, state, card, data, fit, val)


def stored_model_scores(home: HomeLayout, ref: str, data: MatingData) -> dict[str, Any]:
    """Pooled metrics of a stored model on the data, and how many windows come from pairs it was trained on."""
    state, card = load_model(home, KIND, ref)
    probs = predict_frame_probs(mating_model_from_state(state), data.x)
    temperature = float(card.get("temperature", 1.0))
    seen = set(card.get("split", {}).get("train", [])) | set(card.get("split", {}).get("validation", []))
    groups = fold_groups(card.get("split_by", "pair"), data.pairs, data.encounters)
    return {
        "model": model_label(card),
        "temperature": temperature,
        "n_windows_of_training_groups": sum(g in seen for g in groups),
        "segment": binary_metrics(probs.mean(axis=1)[:, 0], data.y),
        "encounter": encounter_metrics(data.encounters, probs, data.y, temperature),
    }


def evaluate_mating_data(
    home: HomeLayout,
    settings: Settings,
    folder: Path | None = None,
    group_by: GroupBy | None = None,
    folds: int | None = None,
    epochs: int | None = None,
    seed: int | None = None,
    model: str | None = None,
    progress: Callable[[int, EpochRecord], None] | None = None,
) -> dict[str, Any]:
    """CGANet, SVM and FLDA cross-validated on the same grouped folds (segment and encounter level), plus the
    stored model `model` scored on the same windows when given."""
    if model is not None:
        load_model(home, KIND, model)  # an unknown name fails before minutes of cross-validation
    data = load_data(home, settings, folder)
    recipe = train_settings(settings.mating.train, group_by=group_by, folds=folds, epochs=epochs)
    seed = settings.mating.train.seed if seed is None else seed
    groups = fold_groups(recipe.group_by, data.pairs, data.encounters)
    started = time.perf_counter()
    with cpu_threads(torch.device("cpu"), settings.mating.train.threads):  # CGANet trains on the CPU
        results = evaluate_mating(data.x, data.y, groups, recipe, seed, data.encounters, progress=progress)
    results.update(
        data=data.describe(),
        rejects=data.rejects,
        group_by=recipe.group_by,
        seed=seed,
        settings=asdict(recipe),
        seconds=round(time.perf_counter() - started, 1),
        tables={level: metrics_table(results, level) for level in ("segment", "encounter")},
    )
    if model is not None:
        results["stored"] = stored_model_scores(home, model, data)
    return results


def ensure_demo_mating_model(home: HomeLayout, drop: Path, settings: Settings) -> str | None:
    """Train the configured mating model on a sample drop's labelled encounters unless one is stored; a note for
    people."""
    from tasks.mating import resolve_model

    if resolve_model(home, settings.mating.model)[0] is not None:
        return None
    name = settings.mating.model.partition("@")[0]
    card = train_mating(home, settings, name, folder=drop)
    data, recipe = card["data"], card["settings"]
    return (
        f"trained {name}@v{card['version']} on {data['n_windows']} windows "
        f"of {data['n_encounters']} labelled encounters "
        f"in {card['train_seconds']:.0f} s ({recipe['epochs']} epochs, {recipe['filters']} filters, "
        f"{recipe['hidden']} GRU units)"
    )
