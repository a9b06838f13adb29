"""Write a deterministic synthetic sample drop, with its ground truth under truth/, to a new folder."""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import soundfile
import tomli_w
from PIL import Image

from models.synthetic.audio import SAMPLE_RATE, encounter_audio
from models.synthetic.drop_files import (
    ANIMALS_HEADER,
    ENCOUNTERS_HEADER,
    RAVEN_HEADER,
    TRUTH_ANIMALS_HEADER,
    TRUTH_BOXES_HEADER,
    TRUTH_ENCOUNTERS_HEADER,
    TRUTH_FRAMES_HEADER,
    TRUTH_INDIVIDUALS_HEADER,
    TRUTH_POPULATION_HEADER,
    TRUTH_SEGMENTS_HEADER,
    SampleDropSummary,
    exif_stamp,
    frame_path,
    individual_rows,
    raven_rows,
    recording_path,
    summarise,
    truth_animal_row,
    truth_population_rows,
)
from models.synthetic.keeper_photos import keeper_photo
from models.synthetic.plan import KEEPER_CAMERA, DropPlan, is_plain_drop, plan_drop, studbook_plan
from models.synthetic.population import plan_night
from models.synthetic.scenes import scene_frame
from models.synthetic.truth import TruthFace, truth_faces

JPEG_QUALITY = 90


def write_sample_drop(
    out: Path, seed: int = 0, n_animals: int = 12, night: int = 0, n_wild: int = 0, traps_only: bool = False
) -> SampleDropSummary:
    """Write the synthetic drop of night `night` of the (seed, n_animals, n_wild) population into `out`, which must
    be new or empty; later nights and `traps_only` write camera-trap frames only."""
    out = Path(out)
    refuse_non_empty(out)
    plan = plan_night(seed, n_animals, night, n_wild, traps_only)
    staging = staging_folder(out)
    try:
        write_manifest(staging, plan)
        if not plan.traps_only:
            write_animals(staging, plan)
            write_keeper_photos(staging, plan)
        boxes = write_frames(staging, plan)
        if not plan.traps_only:
            write_encounters(staging, plan)
        write_truth(staging, plan, boxes)
        files = relative_files(staging)
        publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return summarise(out, plan, len(boxes), files, len({box[1] for box in boxes}))


def write_keeper_archive(out: Path, seed: int, n_animals: int) -> SampleDropSummary:
    """Write a studbook archive into `out`: keeper face photos of (seed, n_animals) with every animal's sex registered.

    It is what a station trains its gender net on: labelled photos of its own (or a partner zoo's) animals, not the
    night's drop. truth/animals.csv holds the drawn identities, as in a sample drop."""
    out = Path(out)
    refuse_non_empty(out)
    plan = studbook_plan(plan_drop(seed, n_animals))
    staging = staging_folder(out)
    try:
        write_animals(staging, plan)
        write_keeper_photos(staging, plan)
        write_csv(staging / "truth" / "animals.csv", TRUTH_ANIMALS_HEADER, [truth_animal_row(a) for a in plan.animals])
        files = relative_files(staging)
        publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return summarise(out, plan, 0, files)


def refuse_non_empty(out: Path) -> None:
    """Raise ValueError when `out` is a file or a non-empty folder."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"Output folder {out} already exists and is not empty; give a new or empty folder.")


def staging_folder(out: Path) -> Path:
    """A fresh hidden folder beside `out` (same file system) to build the drop in."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    staging.chmod(0o755)
    return staging


def publish(staging: Path, out: Path) -> None:
    """Move the finished drop into place in one rename (an empty `out` is replaced)."""
    if out.is_dir():
        out.rmdir()
    os.replace(staging, out)


def relative_files(root: Path) -> tuple[str, ...]:
    """Every file under root as a sorted POSIX path relative to it."""
    return tuple(sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()))


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]], delimiter: str = ",") -> None:
    """Write a header and rows with Unix line ends, creating the parent folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def write_jpeg(path: Path, image: Image.Image, exif: Image.Exif) -> None:
    """Save a JPEG at the fixed quality with the given EXIF."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, "JPEG", quality=JPEG_QUALITY, exif=exif)


def manifest_note(plan: DropPlan) -> str:
    """drop.toml's note: what drew the drop; a population night also names its night and wild animals."""
    drawn = f"seed {plan.seed}, {plan.n_animals} animals"
    if not is_plain_drop(plan):
        drawn += f", {len(plan.wild)} never-registered, night {plan.night}"
        drawn += ", camera traps only" if plan.traps_only else ""
    return (
        f"Synthetic sample drop ({drawn}) written by "
        "breedwatch sample-drop; truth/ holds the ground truth and is not part of the drop format."
    )


def write_manifest(root: Path, plan: DropPlan) -> None:
    """drop.toml: site, deployment (one per seed and registry, whatever the night), time zone, species and a note."""
    manifest = {
        "site": "Sample Station",
        "deployment_id": f"sample-s{plan.seed}-a{plan.n_animals}",
        "timezone": "Asia/Shanghai",
        "species": "Ailuropoda melanoleuca",
        "notes": manifest_note(plan),
    }
    (root / "drop.toml").write_text(tomli_w.dumps(manifest), encoding="utf-8")


def write_animals(root: Path, plan: DropPlan) -> None:
    """animals.csv: the registry, with sex only for the labelled subset."""
    rows = [(a.animal_id, a.sex if a.sex_labelled else "", a.birth_date.isoformat(), a.name) for a in plan.animals]
    write_csv(root / "animals.csv", ANIMALS_HEADER, rows)


def write_keeper_photos(root: Path, plan: DropPlan) -> None:
    """faces/<animal_id>/*.jpg: keeper photos cropped to the face."""
    make, model = KEEPER_CAMERA
    for photo in plan.keeper_photos:
        path = root / "faces" / photo.animal_id / photo.file_name
        write_jpeg(path, keeper_photo(plan, photo), exif_stamp(make, model, photo.captured_at))


def write_frames(root: Path, plan: DropPlan) -> list[tuple[object, ...]]:
    """images/<camera_id>/*.jpg: camera-trap frames; returns the truth/boxes.csv rows."""
    cameras = {c.camera_id: c for c in plan.cameras}
    boxes: list[tuple[object, ...]] = []
    for frame in plan.frames:
        camera = cameras[frame.camera_id]
        relative = frame_path(frame)
        image, faces = scene_frame(plan, frame)
        write_jpeg(root / relative, image, exif_stamp(camera.make, camera.model, frame.captured_at))
        boxes.extend((relative, b.animal_id, b.x, b.y, b.w, b.h, image.width, image.height) for b in faces)
    return boxes


def write_encounters(root: Path, plan: DropPlan) -> None:
    """audio/<id>.wav, audio/<id>.selections.txt and encounters.csv (outcome only where known)."""
    (root / "audio").mkdir(parents=True, exist_ok=True)
    for encounter in plan.encounters:
        pcm = encounter_audio(plan, encounter)
        soundfile.write(root / recording_path(encounter), pcm, SAMPLE_RATE, subtype="PCM_16", format="WAV")
        write_csv(
            root / "audio" / f"{encounter.encounter_id}.selections.txt",
            RAVEN_HEADER,
            raven_rows(encounter.segments),
            delimiter="\t",
        )
    rows = [
        (
            e.encounter_id,
            recording_path(e),
            e.male_id,
            e.female_id,
            e.started_at.isoformat(),
            e.outcome if e.outcome_known else "",
        )
        for e in plan.encounters
    ]
    write_csv(root / "encounters.csv", ENCOUNTERS_HEADER, rows)


def write_truth(root: Path, plan: DropPlan, boxes: list[tuple[object, ...]]) -> None:
    """truth/: animals, frames, face boxes, encounters and call segments as drawn; a population night lists wild
    animals too (column `registered`) and the individuals its frames show (individuals.csv)."""
    truth = root / "truth"
    if is_plain_drop(plan):
        write_csv(truth / "animals.csv", TRUTH_ANIMALS_HEADER, [truth_animal_row(a) for a in plan.animals])
    else:
        write_csv(truth / "animals.csv", TRUTH_POPULATION_HEADER, truth_population_rows(plan))
        write_csv(truth / "individuals.csv", TRUTH_INDIVIDUALS_HEADER, individual_rows(plan, boxes))
    faces_per_frame = Counter(str(box[0]) for box in boxes)
    write_csv(
        truth / "frames.csv",
        TRUTH_FRAMES_HEADER,
        [
            (
                frame_path(f),
                f.camera_id,
                f.captured_at.isoformat(),
                str(f.infrared).lower(),
                faces_per_frame[frame_path(f)],
            )
            for f in plan.frames
        ],
    )
    write_csv(truth / "boxes.csv", TRUTH_BOXES_HEADER, boxes)
    if not plan.traps_only:
        write_encounter_truth(truth, plan)


def write_encounter_truth(truth: Path, plan: DropPlan) -> None:
    """truth/encounters.csv and truth/segments.csv: every encounter's outcome and its placed calls."""
    write_csv(
        truth / "encounters.csv",
        TRUTH_ENCOUNTERS_HEADER,
        [
            (
                e.encounter_id,
                recording_path(e),
                e.male_id,
                e.female_id,
                e.started_at.isoformat(),
                e.outcome,
                str(e.outcome_known).lower(),
                f"{e.duration_s:.2f}",
                round(e.duration_s * SAMPLE_RATE),
                f"{e.snr_db:.1f}",
                len(e.segments),
            )
            for e in plan.encounters
        ],
    )
    write_csv(
        truth / "segments.csv",
        TRUTH_SEGMENTS_HEADER,
        [
            (
                e.encounter_id,
                f"{s.start_s:.3f}",
                f"{s.end_s:.3f}",
                s.call_type,
                s.caller,
                f"{s.f0_hz:.1f}",
                f"{s.harshness:.3f}",
                f"{s.low_hz:.1f}",
                f"{s.high_hz:.1f}",
            )
            for e in plan.encounters
            for s in e.segments
        ],
    )


def read_truth_csv(drop: Path, name: str) -> list[dict[str, str]]:
    """The rows of one CSV file of a sample drop's truth/ folder."""
    with (Path(drop) / "truth" / name).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def read_truth_sexes(drop: Path) -> dict[str, str]:
    """Each animal's true sex (truth/animals.csv)."""
    return {row["animal_id"]: row["sex"] for row in read_truth_csv(drop, "animals.csv")}


def read_truth_individuals(drop: Path) -> dict[str, bool] | None:
    """The animals a camera-trap night's frames show, each with whether it is registered (truth/individuals.csv);
    None for a drop without that file (a drop of the registered animals only)."""
    if not (Path(drop) / "truth" / "individuals.csv").exists():
        return None
    return {row["animal_id"]: row["registered"] == "true" for row in read_truth_csv(drop, "individuals.csv")}


def read_truth_faces(drop: Path) -> tuple[TruthFace, ...]:
    """A sample drop's annotated camera-trap faces with their animal ids, from its truth/ folder."""
    truth = Path(drop) / "truth"
    texts = [(truth / name).read_text(encoding="utf-8") for name in ("boxes.csv", "frames.csv", "animals.csv")]
    return truth_faces(*texts)
