"""Synthetic sample drops: layout, determinism, whether sex and mating outcome are learnable but not trivial, and
nights of a population with never-registered animals."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from flows.cli import app
from models.synthetic.audio import SAMPLE_RATE, encounter_audio
from models.synthetic.drop_files import SampleDropSummary
from models.synthetic.keeper_photos import keeper_photo
from models.synthetic.plan import DropPlan, plan_drop
from tasks.sample_drop import read_truth_faces, read_truth_individuals, read_truth_sexes, write_sample_drop
from tests.drop_fingerprint import REFERENCE, drop_fingerprint, fingerprint_differences

RAVEN_HEADER = "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)"
BAND_EDGES_HZ = np.geomspace(80, 12000, 25)
# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def drops(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SampleDropSummary]:
    """Three small drops: seed 0 twice (once into an existing empty folder) and seed 2 once."""
    base = tmp_path_factory.mktemp("drops")
    (base / "again").mkdir()
    return {
        "first": write_sample_drop(base / "first", seed=0, n_animals=4),
        "again": write_sample_drop(base / "again", seed=0, n_animals=4),
        "other": write_sample_drop(base / "other", seed=2, n_animals=4),
    }


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SampleDropSummary]:
    """Nights of the seed-0 population of 4 registered and 3 wild animals: night 0, and nights 1 and 2 (traps only)."""
    base = tmp_path_factory.mktemp("nights")
    return {
        f"night{k}": write_sample_drop(base / f"night{k}", seed=0, n_animals=4, night=k, n_wild=3) for k in range(3)
    }


@pytest.fixture(scope="module")
def drop(drops: dict[str, SampleDropSummary]) -> Path:
    """Root of the seed-0 drop."""
    return drops["first"].root


@pytest.fixture(scope="module")
def face_population() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Face features of three keeper photos (96 px) of each animal of an 80-animal plan, with id and sex (1 = male).

    A 16-animal drop is too few for this check: with sex effects of about one SD per trait, even a classifier
    given the true traits scores anywhere from chance to perfect on 16 animals, depending on the draw.
    """
    plan = plan_drop(1, 80)
    sexes = {a.animal_id: int(a.sex == "male") for a in plan.animals}
    photos = [p for p in plan.keeper_photos if p.serial - first_serial(plan, p.animal_id) < 3]
    features = np.stack([face_features(keeper_photo(plan, p, size=96)) for p in photos])
    ids = np.array([p.animal_id for p in photos])
    return features, ids, np.array([sexes[i] for i in ids])


@pytest.fixture(scope="module")
def call_population() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Band-energy features of every placed call of a 30-animal plan, with encounter serial and true outcome."""
    plan = plan_drop(1, 30)
    features, groups, outcomes = [], [], []
    for encounter in plan.encounters:
        track = encounter_audio(plan, encounter).astype(np.float32) / 32768
        for call in encounter.segments:
            features.append(segment_features(track, call.start_s, call.end_s))
            groups.append(encounter.serial)
            outcomes.append(int(encounter.outcome == "success"))
    return np.array(features), np.array(groups), np.array(outcomes)


# ---------------------------------------------------------------- helpers


def read_csv(path: Path, delimiter: str = ",") -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a CSV file."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        return list(reader.fieldnames or []), list(reader)


def sha256_by_file(root: Path) -> dict[str, str]:
    """Content hash of every file under root, keyed by relative path."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def first_serial(plan: DropPlan, animal_id: str) -> int:
    """Serial of an animal's first keeper photo."""
    return min(p.serial for p in plan.keeper_photos if p.animal_id == animal_id)


def face_features(photo: Image.Image) -> np.ndarray:
    """Standardised 16x16 grayscale pixels of the central 80% of a face photo."""
    w, h = photo.size
    crop = photo.convert("L").crop((w // 10, h // 10, w - w // 10, h - h // 10))
    pixels = np.asarray(crop.resize((16, 16), Image.Resampling.BILINEAR), np.float64).ravel()
    return (pixels - pixels.mean()) / (pixels.std() + 1e-9)


def log_band_energies(x: np.ndarray) -> np.ndarray:
    """Mean log power in 24 log-spaced bands (80 Hz to 12 kHz), level removed."""
    n = 2048
    x = np.pad(x, (0, max(0, n - len(x))))
    frames = np.lib.stride_tricks.sliding_window_view(x, n)[::512] * np.hanning(n)
    power = (np.abs(np.fft.rfft(frames, axis=-1)) ** 2).mean(axis=0)
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    bands = np.array([power[(freqs >= lo) & (freqs < hi)].sum() for lo, hi in zip(BAND_EDGES_HZ, BAND_EDGES_HZ[1:])])
    energies = np.log10(bands + 1e-12)
    return energies - energies.mean()


def segment_features(track: np.ndarray, start_s: float, end_s: float) -> np.ndarray:
    """Band energies of both channels of one segment."""
    a, b = int(start_s * SAMPLE_RATE), int(end_s * SAMPLE_RATE)
    return np.concatenate([log_band_energies(track[a:b, 0]), log_band_energies(track[a:b, 1])])


def stratified_group_folds(groups: np.ndarray, labels: np.ndarray, n_folds: int) -> np.ndarray:
    """Fold of every sample such that whole groups stay together and each label's groups spread over folds."""
    fold_of: dict[object, int] = {}
    for label in (0, 1):
        for k, group in enumerate(sorted(set(groups[labels == label]))):
            fold_of[group] = k % n_folds
    return np.array([fold_of[g] for g in groups])


def group_disjoint_predictions(
    features: np.ndarray, labels: np.ndarray, groups: np.ndarray, n_folds: int = 5
) -> np.ndarray:
    """Out-of-fold predictions of a standardised, class-balanced logistic regression; folds never split a group."""
    folds = stratified_group_folds(groups, labels, n_folds)
    predictions = np.zeros_like(labels)
    for fold in range(n_folds):
        test = folds == fold
        mean, sd = features[~test].mean(axis=0), features[~test].std(axis=0) + 1e-9
        model = LogisticRegression(C=0.05, max_iter=5000, class_weight="balanced")
        model.fit((features[~test] - mean) / sd, labels[~test])
        predictions[test] = model.predict((features[test] - mean) / sd)
    return predictions


def balanced_accuracy(labels: np.ndarray, predictions: np.ndarray) -> float:
    """Mean of the per-class recalls (0.5 is chance whatever the class balance)."""
    return float(np.mean([np.mean(predictions[labels == c] == c) for c in (0, 1)]))


# ---------------------------------------------------------------- layout


def test_summary_lists_every_file_and_counts(drop: Path, drops: dict[str, SampleDropSummary]) -> None:
    summary = drops["first"]
    assert summary.files == tuple(sha256_by_file(drop))
    assert summary.n_face_photos == len(list((drop / "faces").glob("*/*.jpg")))
    assert summary.n_frames == len(list((drop / "images").glob("*/*.jpg")))
    assert summary.n_encounters == len(list((drop / "audio").glob("*.wav")))
    assert not list(drop.parent.glob(".*partial")), "staging folders must not be left behind"


def test_manifest_and_csv_headers(drop: Path) -> None:
    text = (drop / "drop.toml").read_text()
    for line in ('site = "Sample Station"', 'timezone = "Asia/Shanghai"', 'species = "Ailuropoda melanoleuca"'):
        assert line in text
    assert re.search(r'^deployment_id = ".+"$', text, re.M) and re.search(r'^notes = ".+"$', text, re.M)
    assert read_csv(drop / "animals.csv")[0] == ["animal_id", "sex", "birth_date", "name"]
    assert read_csv(drop / "encounters.csv")[0] == [
        "encounter_id",
        "recording",
        "male_id",
        "female_id",
        "started_at",
        "outcome",
    ]
    assert read_csv(drop / "truth" / "boxes.csv")[0] == ["path", "animal_id", "x", "y", "w", "h", "width", "height"]
    assert read_csv(drop / "truth" / "segments.csv")[0][:4] == ["encounter_id", "start_s", "end_s", "call_type"]
    assert {"animal_id", "sex"} <= set(read_csv(drop / "truth" / "animals.csv")[0])
    assert {"encounter_id", "outcome"} <= set(read_csv(drop / "truth" / "encounters.csv")[0])


def test_labelled_subset_has_both_sexes_and_leaves_some_unlabelled(drop: Path) -> None:
    _, animals = read_csv(drop / "animals.csv")
    _, truth = read_csv(drop / "truth" / "animals.csv")
    true_sex = {row["animal_id"]: row["sex"] for row in truth}
    labelled = [row for row in animals if row["sex"]]
    assert {row["sex"] for row in labelled} == {"female", "male"}
    assert 0 < len(labelled) < len(animals)
    assert all(true_sex[row["animal_id"]] == row["sex"] for row in labelled)
    assert set(true_sex.values()) == {"female", "male"}
    assert all(re.fullmatch(r"A\d{2,3}", row["animal_id"]) for row in animals)
    for row in animals:
        datetime.strptime(row["birth_date"], "%Y-%m-%d")
        assert (drop / "faces" / row["animal_id"]).is_dir()


def test_keeper_photos_are_square_rgb_faces_several_per_animal(drop: Path) -> None:
    for folder in sorted((drop / "faces").iterdir()):
        photos = sorted(folder.glob("*.jpg"))
        assert 4 <= len(photos) <= 12
        with Image.open(photos[0]) as image:
            assert (image.mode, image.size) == ("RGB", (320, 320))


def test_camera_frames_sizes_modes_and_exif(drop: Path) -> None:
    _, animals = read_csv(drop / "animals.csv")
    animal_ids = {row["animal_id"] for row in animals}
    cameras = sorted(p.name for p in (drop / "images").iterdir())
    assert len(cameras) >= 2 and not animal_ids & set(cameras)
    sizes, modes, models = set(), set(), {}
    for path in sorted((drop / "images").glob("*/*.jpg")):
        with Image.open(path) as image:
            sizes.add(image.size)
            modes.add(image.mode)
            exif = image.getexif()
            taken = exif.get_ifd(0x8769)[0x9003]
            assert re.fullmatch(r"\d{4}:\d{2}:\d{2} \d{2}:\d{2}:\d{2}", taken)
            models.setdefault(path.parent.name, set()).add((exif[0x010F], exif[0x0110]))
    assert {(1280, 720), (1920, 1080)} <= sizes and modes == {"RGB", "L"}
    assert all(len(pairs) == 1 for pairs in models.values())


def test_frames_fall_in_one_night(drop: Path) -> None:
    _, frames = read_csv(drop / "truth" / "frames.csv")
    times = sorted(datetime.fromisoformat(row["captured_at"]) for row in frames)
    dusk = times[0].replace(hour=17, minute=0, second=0)
    assert all(timedelta(0) <= t - dusk <= timedelta(hours=15) for t in times)
    assert all(t.utcoffset() == timedelta(hours=8) for t in times)


def test_face_boxes_lie_inside_their_images(drop: Path) -> None:
    _, boxes = read_csv(drop / "truth" / "boxes.csv")
    _, frames = read_csv(drop / "truth" / "frames.csv")
    assert boxes and any(row["n_faces"] == "0" for row in frames)
    for row in boxes:
        x, y, w, h, width, height = (int(row[k]) for k in ("x", "y", "w", "h", "width", "height"))
        with Image.open(drop / row["path"]) as image:
            assert image.size == (width, height)
        assert 0 <= x and 0 <= y and x + w <= width and y + h <= height
        assert 30 <= max(w, h) <= 420


def test_recordings_are_stereo_pcm16_and_match_their_durations(drop: Path) -> None:
    _, truth = read_csv(drop / "truth" / "encounters.csv")
    for row in truth:
        info = soundfile.info(str(drop / row["recording"]))
        assert (info.channels, info.samplerate, info.subtype, info.format) == (2, 44100, "PCM_16", "WAV")
        assert info.frames == int(row["frames"]) == round(float(row["duration_s"]) * 44100)
        assert 20 <= info.frames / 44100 <= 45
        samples, _ = soundfile.read(str(drop / row["recording"]), dtype="float32")
        assert 0.1 < np.abs(samples).max() < 0.9


def test_raven_tables_match_the_truth_segments(drop: Path) -> None:
    _, segments = read_csv(drop / "truth" / "segments.csv")
    durations = [float(row["end_s"]) - float(row["start_s"]) for row in segments]
    assert min(durations) < 2.0 < max(durations)
    for table in sorted((drop / "audio").glob("*.selections.txt")):
        assert table.read_text().splitlines()[0] == RAVEN_HEADER
        header, rows = read_csv(table, delimiter="\t")
        encounter_id = table.name.split(".")[0]
        expected = [row for row in segments if row["encounter_id"] == encounter_id]
        assert len(rows) == len(expected) > 0
        for row, truth in zip(rows, expected):
            assert (row["View"], row["Channel"]) == ("Spectrogram 1", "1")
            assert float(row["Begin Time (s)"]) == float(truth["start_s"]) < float(row["End Time (s)"])
            assert 0 < float(row["Low Freq (Hz)"]) < float(row["High Freq (Hz)"]) <= 22050


def test_encounters_pair_a_male_with_a_female_and_hide_some_outcomes(drop: Path) -> None:
    _, rows = read_csv(drop / "encounters.csv")
    _, animals = read_csv(drop / "truth" / "animals.csv")
    _, truth = read_csv(drop / "truth" / "encounters.csv")
    true_sex = {row["animal_id"]: row["sex"] for row in animals}
    assert len(rows) >= 4
    for row in rows:
        assert (true_sex[row["male_id"]], true_sex[row["female_id"]]) == ("male", "female")
        assert row["recording"] == f"audio/{row['encounter_id']}.wav" and (drop / row["recording"]).is_file()
        assert datetime.fromisoformat(row["started_at"]).utcoffset() is not None
    known = [row["outcome"] for row in rows if row["outcome"]]
    assert set(known) == {"success", "failure"} and len(known) < len(rows)
    assert {row["outcome"] for row in truth} == {"success", "failure"}


def test_files_and_truth_are_the_rendered_plan(drop: Path) -> None:
    plan = plan_drop(0, 4)
    _, animals = read_csv(drop / "truth" / "animals.csv")
    assert [(row["animal_id"], row["sex"]) for row in animals] == [(a.animal_id, a.sex) for a in plan.animals]
    _, encounters = read_csv(drop / "truth" / "encounters.csv")
    assert [row["outcome"] for row in encounters] == [e.outcome for e in plan.encounters]
    photo = plan.keeper_photos[0]
    with Image.open(drop / "faces" / photo.animal_id / photo.file_name) as written:
        on_disk = np.asarray(written, np.float32)
    assert np.abs(on_disk - np.asarray(keeper_photo(plan, photo), np.float32)).mean() < 3.0
    encounter = plan.encounters[0]
    samples, _ = soundfile.read(str(drop / "audio" / f"{encounter.encounter_id}.wav"), dtype="int16")
    assert np.array_equal(samples, encounter_audio(plan, encounter))


# ---------------------------------------------------------------- determinism and refusal


def test_same_seed_gives_identical_files(drops: dict[str, SampleDropSummary]) -> None:
    assert sha256_by_file(drops["first"].root) == sha256_by_file(drops["again"].root)


def test_other_seed_gives_a_different_drop(drops: dict[str, SampleDropSummary]) -> None:
    first, other = sha256_by_file(drops["first"].root), sha256_by_file(drops["other"].root)
    shared = set(first) & set(other)
    assert "drop.toml" in shared
    differing = [path for path in shared if first[path] != other[path]]
    assert len(differing) > 0.9 * len(shared)


def test_default_drop_is_the_one_recorded_before_population_nights(drops: dict[str, SampleDropSummary]) -> None:
    """Text files cell by cell and media decoded within tolerances (tests/drop_fingerprint.py): drawn media differ in
    their bytes by CPU kind (AMD EPYC Zen 5 and an Intel Xeon with AMX gave two byte digests)."""
    stored = json.loads(REFERENCE.read_text(encoding="utf-8"))
    assert len(stored) == len(drops["first"].files) == 65
    assert fingerprint_differences(drop_fingerprint(drops["first"].root), stored) == []
    assert "truth/individuals.csv" not in drops["first"].files


def test_the_fingerprint_tells_another_drop_apart(drops: dict[str, SampleDropSummary]) -> None:
    stored = json.loads(REFERENCE.read_text(encoding="utf-8"))
    other = fingerprint_differences(drop_fingerprint(drops["other"].root), stored)
    assert any("grey block mean" in line for line in other) and any("line" in line for line in other)


def test_refuses_a_non_empty_output_folder(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("not mine")
    with pytest.raises(ValueError, match="not empty"):
        write_sample_drop(tmp_path, seed=0, n_animals=4)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_refuses_too_few_animals(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="between"):
        write_sample_drop(tmp_path / "drop", seed=0, n_animals=3)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- learnability


def test_faces_carry_identity(face_population: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    features, ids, _ = face_population
    centred = features - features.mean(axis=0)
    unit = centred / np.linalg.norm(centred, axis=1, keepdims=True)
    similarity = unit @ unit.T
    same = ids[:, None] == ids[None, :]
    other = ~np.eye(len(ids), dtype=bool)
    assert similarity[same & other].mean() > similarity[~same].mean() + 0.15
    nearest = np.argmax(np.where(other, similarity, -np.inf), axis=1)
    assert np.mean(ids[nearest] == ids) > 10 / len(set(ids))


def test_sex_is_learnable_from_faces_but_not_trivially(
    face_population: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    features, ids, sexes = face_population
    predictions = group_disjoint_predictions(features, sexes, ids)
    assert 0.6 < balanced_accuracy(sexes, predictions) < 0.95
    assert 0.6 < np.mean(predictions == sexes) < 0.95


def test_outcome_is_learnable_from_calls_but_not_trivially(
    call_population: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    features, encounters, outcomes = call_population
    predictions = group_disjoint_predictions(features, outcomes, encounters)
    assert 0.65 < balanced_accuracy(outcomes, predictions) < 0.95
    assert 0.65 < np.mean(predictions == outcomes) < 0.95


# ---------------------------------------------------------------- nights of a population


def test_night_zero_registers_only_the_registered_animals(nights: dict[str, SampleDropSummary]) -> None:
    root = nights["night0"].root
    _, registry = read_csv(root / "animals.csv")
    _, truth = read_csv(root / "truth" / "animals.csv")
    assert [row["animal_id"] for row in registry] == ["A01", "A02", "A03", "A04"]
    assert sorted(p.name for p in (root / "faces").iterdir()) == ["A01", "A02", "A03", "A04"]
    assert [(row["animal_id"], row["registered"]) for row in truth] == [
        *((f"A0{k}", "true") for k in range(1, 5)),
        *((f"W0{k}", "false") for k in range(1, 4)),
    ]
    assert (root / "encounters.csv").is_file() and list((root / "audio").glob("*.wav"))


def test_later_nights_hold_camera_traps_only(nights: dict[str, SampleDropSummary]) -> None:
    for key in ("night1", "night2"):
        root = nights[key].root
        assert sorted(p.name for p in root.iterdir()) == ["drop.toml", "images", "truth"]
        assert sorted(p.name for p in (root / "truth").iterdir()) == [
            "animals.csv",
            "boxes.csv",
            "frames.csv",
            "individuals.csv",
        ]
        assert list((root / "images").glob("*/*.jpg")) and nights[key].traps_only


def test_traps_only_first_night_has_no_faces_audio_or_registry(tmp_path: Path) -> None:
    summary = write_sample_drop(tmp_path / "traps", seed=0, n_animals=4, traps_only=True)
    assert sorted(p.name for p in summary.root.iterdir()) == ["drop.toml", "images", "truth"]
    assert "camera traps only" in str(summary)
    _, truth = read_csv(summary.root / "truth" / "animals.csv")
    assert {row["registered"] for row in truth} == {"true"}


def test_an_animal_has_the_same_identity_on_every_night(drop: Path, nights: dict[str, SampleDropSummary]) -> None:
    _, plain = read_csv(drop / "truth" / "animals.csv")
    tables = [read_csv(nights[key].root / "truth" / "animals.csv")[1] for key in ("night0", "night1", "night2")]
    for table in tables:
        assert [{k: v for k, v in row.items() if k != "registered"} for row in table[:4]] == plain
        assert table == tables[0]


def test_individuals_agree_with_the_face_boxes(nights: dict[str, SampleDropSummary]) -> None:
    for summary in nights.values():
        truth = summary.root / "truth"
        _, boxes = read_csv(truth / "boxes.csv")
        _, individuals = read_csv(truth / "individuals.csv")
        registered = {row["animal_id"]: row["registered"] for row in read_csv(truth / "animals.csv")[1]}
        per_animal: dict[str, list[str]] = {}
        for box in boxes:
            per_animal.setdefault(box["animal_id"], []).append(box["path"].split("/")[1])
        assert [row["animal_id"] for row in individuals] == sorted(per_animal)
        for row in individuals:
            cameras = per_animal[row["animal_id"]]
            assert int(row["n_faces"]) == len(cameras) <= int(row["n_frames"])
            assert row["cameras"] == ";".join(sorted(set(cameras)))
            assert row["registered"] == registered[row["animal_id"]]
        assert summary.n_individuals == len(individuals) and summary.n_face_boxes == len(boxes)


def test_truth_faces_are_read_back_with_their_animals(nights: dict[str, SampleDropSummary]) -> None:
    root = nights["night1"].root
    faces = read_truth_faces(root)
    _, boxes = read_csv(root / "truth" / "boxes.csv")
    assert [(f.path, f.animal_id) for f in faces] == [(b["path"], b["animal_id"]) for b in boxes]
    assert all(f.registered == f.animal_id.startswith("A") for f in faces)
    assert all(f.path.split("/")[1] == f.camera_id for f in faces)
    taken = {row["path"]: row["captured_at"] for row in read_csv(root / "truth" / "frames.csv")[1]}
    assert all(f.captured_at.isoformat() == taken[f.path] for f in faces)


def test_truth_sexes_and_individuals_are_read_back(drop: Path, nights: dict[str, SampleDropSummary]) -> None:
    from tasks.demo import true_individuals, true_male_share

    night1 = nights["night1"].root
    sexes = read_truth_sexes(night1)
    assert sorted(sexes) == [*(f"A0{k}" for k in range(1, 5)), *(f"W0{k}" for k in range(1, 4))]
    assert set(sexes.values()) == {"male", "female"}
    shown = read_truth_individuals(night1)
    _, individuals = read_csv(night1 / "truth" / "individuals.csv")
    assert shown == {row["animal_id"]: row["registered"] == "true" for row in individuals} and shown
    assert read_truth_individuals(drop) is None, "a drop of registered animals only has no individuals.csv"
    assert true_individuals(night1) == (sum(shown.values()), len(shown) - sum(shown.values()))
    with pytest.raises(ValueError, match="not a camera-trap night"):
        true_individuals(drop)
    males, animals = true_male_share([drop, night1])  # every animal of the first, those the night's frames show
    expected = read_truth_sexes(drop) | {animal: sexes[animal] for animal in shown}
    assert len(expected) < len(read_truth_sexes(drop)) + len(shown), "the drops share animals, counted once"
    assert (males, animals) == (list(expected.values()).count("male"), len(expected))


def test_nights_are_distinct_drops_of_one_deployment(nights: dict[str, SampleDropSummary]) -> None:
    hashes = {key: sha256_by_file(summary.root) for key, summary in nights.items()}
    manifests = {key: (summary.root / "drop.toml").read_text() for key, summary in nights.items()}
    deployments = {re.search(r'^deployment_id = "(.+)"$', text, re.M).group(1) for text in manifests.values()}
    assert deployments == {"sample-s0-a4"} and len(set(manifests.values())) == 3
    frames = [{h for path, h in hashes[key].items() if path.startswith("images/")} for key in hashes]
    assert not frames[0] & frames[1] and not frames[1] & frames[2] and not frames[0] & frames[2]
    starts = [
        min(datetime.fromisoformat(r["captured_at"]) for r in read_csv(s.root / "truth" / "frames.csv")[1])
        for s in nights.values()
    ]
    assert starts[0].date() + timedelta(days=1) == starts[1].date() == starts[2].date() - timedelta(days=1)


def invoke_sample_drop(*options: str) -> tuple[int, str]:
    """Exit code and output of `breedwatch sample-drop` with these arguments."""
    result = CliRunner().invoke(app, ["sample-drop", *options])
    return result.exit_code, result.output


def test_cli_writes_a_traps_only_night(tmp_path: Path) -> None:
    code, output = invoke_sample_drop(str(tmp_path / "n3"), "--animals", "4", "--night", "3", "--wild", "2")
    assert code == 0, output
    assert "night 3 of 4 registered and 2 never-registered animals" in output
    assert (tmp_path / "n3" / "truth" / "individuals.csv").is_file() and not (tmp_path / "n3" / "faces").exists()


@pytest.mark.parametrize(
    ("options", "sentence"),
    [
        (("--night", "-2"), "error: The night must be between 0 (the population's first) and 3650, got -2."),
        (("--wild", "-1"), "error: The number of never-registered animals must be between 0 and 200, got -1."),
        (("--wild", "500"), "error: The number of never-registered animals must be between 0 and 200, got 500."),
    ],
)
def test_cli_refuses_bad_nights_and_wild_counts_in_one_sentence(
    tmp_path: Path, options: tuple[str, ...], sentence: str
) -> None:
    code, output = invoke_sample_drop(str(tmp_path / "drop"), *options)
    assert code == 2 and output.strip() == sentence
    assert not (tmp_path / "drop").exists()
