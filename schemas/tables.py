"""Versioned pyarrow schemas of the lake's tables and the shared vocabularies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

MediaKind = Literal["image", "audio"]
MediaStatus = Literal["ok", "rejected"]
RunStatus = Literal["running", "completed", "failed"]
Stage = Literal["discover", "manifest", "ingest", "faces", "segments", "gender", "mating", "identify"]
FaceSource = Literal["detector", "keeper"]
TargetKind = Literal["face", "animal", "encounter", "media"]
IdentityKind = Literal["registered", "provisional"]
CorrectionAction = Literal["set", "undo"]
ValueSource = Literal["human", "registry", "machine"]

UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class Renamed:
    """A column renamed at a schema version: parts written before it carry the old name."""

    since: int
    old: str
    new: str


@dataclass(frozen=True)
class TableSpec:
    """A lake table: its name, schema version and columns, and the columns renamed since earlier versions.

    Evolving a table is declared here and nowhere else: bump version, add the column to the schema (older parts read
    it as null), or rename it in the schema and add Renamed(version, old, new) (older parts are read under the new
    name, by the catalog's views and by tasks.lake.conform)."""

    name: str
    version: int
    schema: pa.Schema
    partition: str = "drop"
    renamed: tuple[Renamed, ...] = ()
    compactable: bool = True  # whether `breedwatch compact` may merge its parts (see CORRECTIONS)
    key: tuple[str, ...] = ()  # the columns naming one row: no two rows share them (empty: the whole row)

    def old_names(self) -> dict[str, str]:
        """Each older name of a column mapped to its present name (chains of renames resolved)."""
        names: dict[str, str] = {}
        for rename in sorted(self.renamed, key=lambda r: r.since):
            names = {old: (rename.new if new == rename.old else new) for old, new in names.items()}
            names[rename.old] = rename.new
        return names

    def read_schema(self) -> pa.Schema:
        """The columns any part of any version may carry: the present ones, then the retired names."""
        extra = [pa.field(old, self.schema.field(new).type) for old, new in self.old_names().items()]
        return pa.schema([*self.schema, *extra])


MEDIA = TableSpec(
    "media",
    1,
    pa.schema(
        [
            ("media_id", pa.string()),
            ("drop_id", pa.string()),
            ("path", pa.string()),
            ("sha256", pa.string()),
            ("size_bytes", pa.int64()),
            ("kind", pa.string()),
            ("status", pa.string()),
            ("captured_at", UTC_TIMESTAMP),
            ("camera_make", pa.string()),
            ("camera_model", pa.string()),
            ("width", pa.int32()),
            ("height", pa.int32()),
            ("orientation", pa.int16()),
            ("image_mode", pa.string()),
            ("sample_rate", pa.int32()),
            ("channels", pa.int16()),
            ("frames", pa.int64()),
            ("duration_s", pa.float64()),
            ("sample_format", pa.string()),
            ("animal_id", pa.string()),
            ("site", pa.string()),
            ("deployment_id", pa.string()),
            ("flags", pa.list_(pa.string())),
            ("duplicate_paths", pa.list_(pa.string())),
        ]
    ),
    key=("drop_id", "media_id"),
)

REJECTS = TableSpec(
    "rejects",
    1,
    pa.schema(
        [
            ("drop_id", pa.string()),
            ("path", pa.string()),
            ("stage", pa.string()),
            ("reason", pa.string()),
            ("run_id", pa.string()),
            ("sha256", pa.string()),
        ]
    ),
)

ANIMALS_MANIFEST = TableSpec(
    "animal_manifest",
    1,
    pa.schema(
        [
            ("drop_id", pa.string()),
            ("animal_id", pa.string()),
            ("sex", pa.string()),
            ("birth_date", pa.date32()),
            ("name", pa.string()),
        ]
    ),
    key=("drop_id", "animal_id"),
)

ENCOUNTER_MANIFEST = TableSpec(
    "encounter_manifest",
    1,
    pa.schema(
        [
            ("drop_id", pa.string()),
            ("encounter_id", pa.string()),
            ("recording", pa.string()),
            ("media_id", pa.string()),
            ("male_id", pa.string()),
            ("female_id", pa.string()),
            ("started_at", UTC_TIMESTAMP),
            ("outcome", pa.string()),
        ]
    ),
    key=("drop_id", "encounter_id"),
)

FACES = TableSpec(
    "faces",
    1,
    pa.schema(
        [
            ("face_id", pa.string()),
            ("media_id", pa.string()),
            ("drop_id", pa.string()),
            ("animal_id", pa.string()),
            ("source", pa.string()),
            ("bbox_x", pa.float64()),
            ("bbox_y", pa.float64()),
            ("bbox_w", pa.float64()),
            ("bbox_h", pa.float64()),
            ("score", pa.float64()),
            ("landmarks", pa.list_(pa.float64())),
            ("quality", pa.struct([("size_px", pa.float64()), ("sharpness", pa.float64()), ("score", pa.float64())])),
            ("excluded", pa.bool_()),
            ("exclude_reason", pa.string()),
            ("crop_path", pa.string()),
            ("detector", pa.string()),
            ("run_id", pa.string()),
        ]
    ),
    key=("drop_id", "face_id"),
)

SEGMENTS = TableSpec(
    "segments",
    1,
    pa.schema(
        [
            ("segment_id", pa.string()),
            ("media_id", pa.string()),
            ("drop_id", pa.string()),
            ("encounter_id", pa.string()),
            ("start_s", pa.float64()),
            ("end_s", pa.float64()),
            ("call_start_s", pa.float64()),
            ("call_end_s", pa.float64()),
            ("padded", pa.bool_()),
            ("source", pa.string()),
            ("selection", pa.int64()),
            ("flags", pa.list_(pa.string())),
        ]
    ),
    key=("drop_id", "segment_id"),
)

SEGMENT_FEATURES = TableSpec(
    "segment_features",
    1,
    pa.schema(
        [
            ("segment_id", pa.string()),
            ("drop_id", pa.string()),
            ("feature_version", pa.string()),
            ("mfcc", pa.list_(pa.float32(), 2 * 86 * 40)),
        ]
    ),
    key=("drop_id", "segment_id", "feature_version"),
)

GENDER_PREDICTIONS = TableSpec(
    "gender_predictions",
    1,
    pa.schema(
        [
            ("face_id", pa.string()),
            ("media_id", pa.string()),
            ("drop_id", pa.string()),
            ("animal_id", pa.string()),
            ("p_male", pa.float64()),  # calibrated (the model card's temperature applied)
            ("label", pa.string()),  # female | male at 0.5; views and reports apply their own bands
            ("model_version", pa.string()),  # name@vN in the model store
            ("run_id", pa.string()),
            ("gradcam_path", pa.string()),  # Grad-CAM overlay (relative to the home) for the run's sample of faces
        ]
    ),
    key=("drop_id", "face_id"),
)

MATING_PREDICTIONS = TableSpec(
    "mating_predictions",
    1,
    pa.schema(
        [
            ("segment_id", pa.string()),
            ("media_id", pa.string()),
            ("drop_id", pa.string()),
            ("encounter_id", pa.string()),
            ("p_success", pa.float64()),
            ("frame_p_success", pa.list_(pa.float32())),  # per-frame P(success), 86 values (seed 002, eq. 4)
            ("attention", pa.list_(pa.float32())),  # per-frame attention weights (seed 002, figure 3)
            ("temperature", pa.float64()),  # the model card's calibration temperature; views apply it to roll-ups
            ("model_version", pa.string()),
            ("run_id", pa.string()),
        ]
    ),
    key=("drop_id", "segment_id"),
)

DROPS = TableSpec(
    "drops",
    1,
    pa.schema(
        [
            ("drop_id", pa.string()),
            ("source", pa.string()),
            ("site", pa.string()),
            ("deployment_id", pa.string()),
            ("timezone", pa.string()),
            ("species", pa.string()),
            ("notes", pa.string()),
            ("fingerprint", pa.string()),
            ("n_files", pa.int64()),
            ("run_id", pa.string()),
        ]
    ),
    key=("drop_id",),
)

RUNS = TableSpec(
    "runs",
    2,  # 2: execution, how each net ran on the machine
    pa.schema(
        [
            ("run_id", pa.string()),
            ("started_at", UTC_TIMESTAMP),
            ("finished_at", UTC_TIMESTAMP),
            ("status", pa.string()),
            ("code_version", pa.string()),
            ("config_hash", pa.string()),
            ("drops", pa.list_(pa.string())),
            ("counts", pa.map_(pa.string(), pa.int64())),
            ("error", pa.string()),
            ("execution", pa.map_(pa.string(), pa.string())),
        ]
    ),
    partition="run",
    key=("run_id",),
)

DEPLOYMENTS = TableSpec(
    "deployments",
    1,
    pa.schema(
        [
            ("drop_id", pa.string()),
            ("deployment_id", pa.string()),  # as media rows carry it (null when drop.toml gives none)
            ("location_id", pa.string()),
            ("location_name", pa.string()),
            ("latitude", pa.float64()),  # WGS84; null when not known (never guessed)
            ("longitude", pa.float64()),
            ("coordinate_uncertainty", pa.int64()),  # metres
            ("deployment_start", UTC_TIMESTAMP),
            ("deployment_end", UTC_TIMESTAMP),
            ("camera_id", pa.string()),
            ("camera_model", pa.string()),
            ("source", pa.string()),  # drop.toml | camtrap-dp
        ]
    ),
)

CAMTRAP_OBSERVATIONS = TableSpec(
    "camtrap_observations",
    1,
    pa.schema(
        [
            ("drop_id", pa.string()),
            ("observation_id", pa.string()),
            ("deployment_id", pa.string()),
            ("media_id", pa.string()),  # breedwatch media id; null when the package's media row was not ingested
            ("package_media_id", pa.string()),  # mediaID in the package
            ("event_id", pa.string()),
            ("event_start", UTC_TIMESTAMP),
            ("event_end", UTC_TIMESTAMP),
            ("observation_level", pa.string()),
            ("observation_type", pa.string()),
            ("scientific_name", pa.string()),
            ("count", pa.int64()),
            ("life_stage", pa.string()),
            ("sex", pa.string()),
            ("behavior", pa.string()),
            ("individual_id", pa.string()),
            ("bbox_x", pa.float64()),  # relative 0..1, top-left origin, as faces
            ("bbox_y", pa.float64()),
            ("bbox_w", pa.float64()),
            ("bbox_h", pa.float64()),
            ("classification_method", pa.string()),
            ("classified_by", pa.string()),
            ("classification_probability", pa.float64()),
            ("csv_line", pa.int64()),
        ]
    ),
    key=("drop_id", "observation_id"),
)

# A keeper's correction (or confirmation) of one machine value: append-only, never rewritten. Undo is a new row
# (action undo, undoes = the correction it cancels). Partitioned by UTC day, not by drop, so re-running or clearing a
# drop never touches a correction. A face is targeted by its frame's content (media_id, media_sha256) and its box, so
# the correction follows it to the boxes of a new detector version (matched at IoU > 0.5 in the face_calls view).
CORRECTIONS = TableSpec(
    "corrections",
    1,
    pa.schema(
        [
            ("correction_id", pa.string()),
            ("action", pa.string()),  # set | undo
            ("undoes", pa.string()),  # undo rows: the correction_id they cancel
            ("target_kind", pa.string()),  # face | animal | encounter | frame
            ("target_id", pa.string()),  # face_id (when made) | animal_id | encounter_id | media_id (frames)
            ("drop_id", pa.string()),  # the target's drop (encounters are keyed by drop and encounter id)
            ("media_id", pa.string()),  # faces and frames: the frame (holding the face)
            ("media_sha256", pa.string()),
            ("bbox_x", pa.float64()),  # faces: the box the reviewer saw (relative 0..1, as faces)
            ("bbox_y", pa.float64()),
            ("bbox_w", pa.float64()),
            ("bbox_h", pa.float64()),
            ("field", pa.string()),  # sex | is_face | outcome | box
            ("machine_value", pa.string()),  # what the model said, as text
            ("human_value", pa.string()),  # what the reviewer says (null on undo rows)
            ("model_version", pa.string()),  # the model that made the machine value (name@vN, or the detector)
            ("reviewer", pa.string()),
            ("created_at", UTC_TIMESTAMP),
            ("seconds_spent", pa.float64()),  # from the item appearing to the key press
            ("keystrokes", pa.int32()),  # keys pressed on the item, the deciding one included
            ("audit", pa.bool_()),  # the item came from the day's random audit slice (unbiased accuracy)
            ("queue_reason", pa.string()),  # why the queue showed it
            ("note", pa.string()),
        ]
    ),
    partition="day",
    # Never compacted: the review app appends corrections while a nightly run compacts, and a compacted day hides the
    # day's own parts, so a correction saved after the merge would vanish from the views.
    compactable=False,
    key=("correction_id",),
)

FACE_EMBEDDINGS = TableSpec(
    "face_embeddings",
    1,
    pa.schema(
        [
            ("face_id", pa.string()),
            ("media_id", pa.string()),
            ("drop_id", pa.string()),
            ("animal_id", pa.string()),  # the animal a keeper photo or images/<animal_id>/ names, else null
            ("source", pa.string()),  # keeper | detector, as faces
            ("embedding", pa.list_(pa.float32())),  # unit length, the identity net's embedding_dim values
            ("model_version", pa.string()),  # the identity net, name@vN
            ("run_id", pa.string()),
        ]
    ),
    key=("drop_id", "face_id"),
)

# Who each face is, decided over the whole home at once (matching to the gallery of registered animals, clustering
# the rest into provisional individuals across nights), so one part for the home, rewritten whole when its inputs
# change; never compacted (it has no drop partitions to merge).
IDENTITY_MATCHES = TableSpec(
    "identity_matches",
    1,
    pa.schema(
        [
            ("face_id", pa.string()),
            ("drop_id", pa.string()),
            ("media_id", pa.string()),
            ("individual_id", pa.string()),  # a registered animal_id, or a provisional P-... id
            ("kind", pa.string()),  # registered | provisional
            ("score", pa.float64()),  # cosine similarity to the individual (best gallery face, or cluster centroid)
            ("margin", pa.float64()),  # best registered score minus the runner-up's (null without a gallery)
            ("candidates", pa.list_(pa.string())),  # the top-5 registered animals, best first
            ("candidate_scores", pa.list_(pa.float64())),
            ("method", pa.string()),  # machine (this table); human identities are corrections, applied in views
            # gallery_match | cluster | merged_by_match | same_event_candidate | nearer_registered | awaiting_sighting
            # | sole_candidate (models/individuals.py)
            ("established", pa.string()),
            ("model_version", pa.string()),
            ("run_id", pa.string()),
        ]
    ),
    partition="scope",
    compactable=False,
    key=("drop_id", "face_id"),
)

LAKE_TABLES: tuple[TableSpec, ...] = (
    MEDIA,
    REJECTS,
    ANIMALS_MANIFEST,
    ENCOUNTER_MANIFEST,
    DROPS,
    FACES,
    SEGMENTS,
    SEGMENT_FEATURES,
    GENDER_PREDICTIONS,
    MATING_PREDICTIONS,
    RUNS,
    DEPLOYMENTS,
    CAMTRAP_OBSERVATIONS,
    CORRECTIONS,
    FACE_EMBEDDINGS,
    IDENTITY_MATCHES,
)


def table_spec(name: str) -> TableSpec:
    """Look up a lake table by name."""
    for spec in LAKE_TABLES:
        if spec.name == name:
            return spec
    raise KeyError(f"no lake table named {name!r}")
