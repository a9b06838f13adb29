"""What a synthetic drop's files hold: their paths, table headers and rows, EXIF stamps, and the summary of a
written drop."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from PIL import Image

from models.synthetic.animals import TRAITS, AnimalIdentity
from models.synthetic.calls import CallSegment
from models.synthetic.plan import DropPlan, EncounterPlan, FramePlan, population

ANIMALS_HEADER = ("animal_id", "sex", "birth_date", "name")
ENCOUNTERS_HEADER = ("encounter_id", "recording", "male_id", "female_id", "started_at", "outcome")
RAVEN_HEADER = ("Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)", "High Freq (Hz)")
TRUTH_BOXES_HEADER = ("path", "animal_id", "x", "y", "w", "h", "width", "height")
TRUTH_FRAMES_HEADER = ("path", "camera_id", "captured_at", "infrared", "n_faces")
TRUTH_ENCOUNTERS_HEADER = (*ENCOUNTERS_HEADER, "outcome_known", "duration_s", "frames", "snr_db", "n_segments")
TRUTH_SEGMENTS_HEADER = (
    "encounter_id",
    "start_s",
    "end_s",
    "call_type",
    "caller",
    "f0_hz",
    "harshness",
    "low_hz",
    "high_hz",
)
TRAIT_NAMES = tuple(t.name for t in TRAITS)
TRUTH_ANIMALS_HEADER = (
    "animal_id",
    "sex",
    "sex_labelled",
    "name",
    "birth_date",
    *TRAIT_NAMES,
    "fur_r",
    "fur_g",
    "fur_b",
    "marking_seed",
)
TRUTH_POPULATION_HEADER = (*TRUTH_ANIMALS_HEADER, "registered")
TRUTH_INDIVIDUALS_HEADER = ("animal_id", "registered", "n_frames", "n_faces", "cameras")


@dataclass(frozen=True)
class SampleDropSummary:
    """What write_sample_drop wrote: counts, and every file as a path relative to `root`."""

    root: Path
    seed: int
    n_animals: int
    n_sex_labelled: int
    n_face_photos: int
    n_frames: int
    n_infrared_frames: int
    n_face_boxes: int
    n_encounters: int
    n_outcomes_known: int
    n_segments: int
    cameras: tuple[str, ...]
    files: tuple[str, ...]
    night: int = 0
    n_wild: int = 0
    traps_only: bool = False
    n_individuals: int = 0

    def __str__(self) -> str:
        """One line for people: what the drop holds."""
        if self.night or self.n_wild or self.traps_only:
            return self.night_line()
        return (
            f"{self.n_animals} animals ({self.n_sex_labelled} with a registered sex), "
            f"{self.n_face_photos} keeper face photos, {self.n_frames} camera-trap frames "
            f"({self.n_infrared_frames} infrared, {self.n_face_boxes} faces) from {len(self.cameras)} cameras, "
            f"{self.n_encounters} encounter recordings ({self.n_outcomes_known} with a known outcome, "
            f"{self.n_segments} calls); {len(self.files)} files, ground truth under truth/"
        )

    def night_line(self) -> str:
        """One line for people about a night of a population: who could be seen, and what the traps saw."""
        registry = "" if self.traps_only else f"{self.n_face_photos} keeper face photos, "
        audio = "" if self.traps_only else f", {self.n_encounters} encounter recordings"
        return (
            f"night {self.night} of {self.n_animals} registered and {self.n_wild} never-registered animals: {registry}"
            f"{self.n_frames} camera-trap frames ({self.n_infrared_frames} infrared, {self.n_face_boxes} faces of "
            f"{self.n_individuals} individuals) from {len(self.cameras)} cameras{audio}"
            f"{'; camera traps only' if self.traps_only else ''}; {len(self.files)} files, ground truth under truth/"
        )


def summarise(
    root: Path, plan: DropPlan, n_boxes: int, files: tuple[str, ...], n_individuals: int = 0
) -> SampleDropSummary:
    """Counts of what the plan put in the drop."""
    return SampleDropSummary(
        root=root,
        seed=plan.seed,
        n_animals=plan.n_animals,
        n_sex_labelled=sum(a.sex_labelled for a in plan.animals),
        n_face_photos=len(plan.keeper_photos),
        n_frames=len(plan.frames),
        n_infrared_frames=sum(f.infrared for f in plan.frames),
        n_face_boxes=n_boxes,
        n_encounters=len(plan.encounters),
        n_outcomes_known=sum(e.outcome_known for e in plan.encounters),
        n_segments=sum(len(e.segments) for e in plan.encounters),
        cameras=tuple(c.camera_id for c in plan.cameras),
        files=files,
        night=plan.night,
        n_wild=len(plan.wild),
        traps_only=plan.traps_only,
        n_individuals=n_individuals,
    )


def exif_stamp(make: str, model: str, taken: datetime) -> Image.Exif:
    """EXIF with Make, Model, DateTime, DateTimeOriginal and OffsetTimeOriginal."""
    exif = Image.Exif()
    stamp = taken.strftime("%Y:%m:%d %H:%M:%S")
    exif[0x010F] = make
    exif[0x0110] = model
    exif[0x0132] = stamp
    offset = taken.strftime("%z")
    sub_ifd = exif.get_ifd(0x8769)
    sub_ifd[0x9003] = stamp
    sub_ifd[0x9011] = f"{offset[:3]}:{offset[3:]}"
    return exif


def frame_path(frame: FramePlan) -> str:
    """Path of a camera-trap frame relative to the drop root."""
    return f"images/{frame.camera_id}/{frame.file_name}"


def raven_rows(segments: Sequence[CallSegment]) -> list[tuple[object, ...]]:
    """Raven Pro selection-table rows, one per placed call."""
    return [
        (i, "Spectrogram 1", 1, f"{s.start_s:.3f}", f"{s.end_s:.3f}", f"{s.low_hz:.1f}", f"{s.high_hz:.1f}")
        for i, s in enumerate(segments, start=1)
    ]


def recording_path(encounter: EncounterPlan) -> str:
    """Path of an encounter's recording relative to the drop root."""
    return f"audio/{encounter.encounter_id}.wav"


def truth_animal_row(animal: AnimalIdentity) -> tuple[object, ...]:
    """One truth/animals.csv row: true sex and every identity parameter drawn."""
    traits = tuple(f"{getattr(animal, name):.4f}" for name in TRAIT_NAMES)
    return (
        animal.animal_id,
        animal.sex,
        str(animal.sex_labelled).lower(),
        animal.name,
        animal.birth_date.isoformat(),
        *traits,
        *animal.fur_tint,
        animal.marking_seed,
    )


def truth_population_rows(plan: DropPlan) -> list[tuple[object, ...]]:
    """truth/animals.csv rows of a population night: every animal the frames can show, and whether registered."""
    registered = {a.animal_id for a in plan.animals}
    return [(*truth_animal_row(a), str(a.animal_id in registered).lower()) for a in population(plan)]


def individual_rows(plan: DropPlan, boxes: Sequence[Sequence[object]]) -> list[tuple[object, ...]]:
    """truth/individuals.csv rows: each animal with a face box in the drop, its frames (planned), faces (boxed) and
    the cameras that boxed it; `boxes` are truth/boxes.csv rows (path and animal_id first)."""
    camera_of = {frame_path(f): f.camera_id for f in plan.frames}
    registered = {a.animal_id for a in plan.animals}
    rows = []
    for animal in population(plan):
        faces = [str(box[0]) for box in boxes if box[1] == animal.animal_id]
        if faces:
            n_frames = sum(animal.animal_id in f.animal_ids for f in plan.frames)
            cameras = ";".join(sorted({camera_of[path] for path in faces}))
            rows.append((animal.animal_id, str(animal.animal_id in registered).lower(), n_frames, len(faces), cameras))
    return rows
