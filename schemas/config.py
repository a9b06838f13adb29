"""The one validated configuration object: TOML file, BREEDWATCH_* environment variables, defaults."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class ConfigError(ValueError):
    """A configuration that cannot be used, with a message naming the offending setting."""


class IngestConfig(BaseModel):
    """How files in a drop are found and validated."""

    model_config = ConfigDict(extra="forbid")

    image_extensions: list[str] = Field(default=[".jpg", ".jpeg", ".png"])
    audio_extensions: list[str] = Field(default=[".wav", ".flac"])
    max_image_pixels: int = Field(default=89_478_485, gt=0, description="Pillow's default limit.")
    short_audio_s: float = Field(default=2.0, ge=0, description="Clips shorter than this are flagged 'short'.")
    silence_peak: float = Field(default=1e-4, ge=0, description="Clips whose peak is below this are flagged 'silent'.")
    hash_chunk_bytes: int = Field(default=1 << 20, gt=0)
    settle_s: float = Field(
        default=120.0,
        ge=0,
        description=(
            "A drop is ingested only when no file or folder in it has changed (modified, or created by a copy that "
            "kept the source's times) for this long, unless it carries the ready marker; 0: at once."
        ),
    )
    ready_marker: str = Field(
        default="READY",
        description=(
            "A file of this name at the top of a drop says its copy has finished: the drop is ingested without "
            "waiting to settle (write it last); empty: no marker."
        ),
    )

    @field_validator("ready_marker")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        """The marker is a file name at the top of the drop, not a path."""
        if "/" in value or "\\" in value or value in (".", ".."):
            raise ValueError(f"ready_marker {value!r} must be a plain file name such as 'READY'")
        return value

    @field_validator("image_extensions", "audio_extensions")
    @classmethod
    def _lower_dotted(cls, value: list[str]) -> list[str]:
        """Normalise extensions to lower case with a leading dot."""
        return [ext.lower() if ext.startswith(".") else f".{ext.lower()}" for ext in value]


class FacesConfig(BaseModel):
    """Face detection, cropping and the quality gate."""

    model_config = ConfigDict(extra="forbid")

    detector: str = Field(default="mtcnn-human", description="'mtcnn-human' or a trained detector in the model store.")
    batch_size: int = Field(default=8, ge=1, le=256, description="Same-size images per MTCNN call on CUDA.")
    cpu_batch_size: int = Field(
        default=1,
        ge=1,
        le=256,
        description=(
            "Same-size images per MTCNN call on the CPU, where batches are no clear gain and hold more memory (42 "
            "frames, 2 cores: 1.84-1.93 s one per call, 1.72-2.33 s in batches of 2-8)."
        ),
    )
    margin: float = Field(default=0.2, ge=0, le=2, description="Crop margin as a fraction of the face box side.")
    crop_size: int = Field(default=448, ge=32, le=2048, description="Side of the square crop given to the classifier.")
    align: bool = Field(default=False, description="Rotate crops so the eye landmarks are level.")
    min_face_px: float = Field(
        default=32, ge=0, description="Faces smaller than this are excluded from classification."
    )
    min_sharpness: float = Field(
        default=20.0, ge=0, description="Minimum variance of the Laplacian of a crop seen at sharpness_px."
    )
    sharpness_px: int = Field(
        default=64,
        ge=8,
        le=1024,
        description=(
            "Side the crop is resized to before its sharpness is measured (the nets' input side), so the measure "
            "says how much detail a net sees, not how many pixels the face has."
        ),
    )
    min_score: float = Field(default=0.9, ge=0, le=1, description="Minimum detector score for classification.")
    crop_jpeg_quality: int = Field(default=90, ge=50, le=100)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    decode: Literal["auto", "pillow", "torchvision"] = Field(
        default="auto",
        description=(
            "JPEG decoding of camera-trap frames: auto is torchvision's batched nvjpeg on CUDA, Pillow on the CPU."
        ),
    )
    cpu_threads: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description=(
            "Intra-op threads of MTCNN on the CPU; unset: torch's default (every core), 1.7x faster than one on an "
            "idle 2-core server; 1 on a busy shared one, where its thousands of tiny per-box ops ran 3-6x faster on "
            "one thread than on two."
        ),
    )


class AudioConfig(BaseModel):
    """Reading recordings, finding vocal segments and computing MFCC features."""

    model_config = ConfigDict(extra="forbid")

    channel_pair: tuple[int, int] = Field(default=(0, 1), description="Channels used when a file has more than two.")
    raven_suffix: str = Field(
        default=".selections.txt",
        description="Raven table next to a recording: <stem><suffix> or <stem>.<anything><suffix>.",
    )
    vad_frame_s: float = Field(default=0.02, gt=0, le=0.5)
    vad_threshold_db: float = Field(
        default=12.0, gt=0, description="Energy above the noise floor that counts as a call."
    )
    vad_noise_percentile: float = Field(default=20.0, gt=0, lt=100)
    vad_min_duration_s: float = Field(default=0.15, ge=0)
    vad_merge_gap_s: float = Field(default=0.3, ge=0)
    vad_max_segment_s: float = Field(default=10.0, gt=0)
    min_last_window_fraction: float = Field(
        default=0.5, gt=0, le=1, description="A shorter tail of a long call is dropped."
    )
    feature_batch: int = Field(default=64, ge=1, le=4096, description="Segments per MFCC batch.")
    device: Literal["auto", "cpu", "cuda"] = "auto"


class GenderTrainConfig(BaseModel):
    """How `breedwatch train gender` trains; defaults are seed 000's recipe (see models/gender_training.py)."""

    model_config = ConfigDict(extra="forbid")

    arch: Literal["resnet18", "mini_xception"] = Field(
        default="resnet18", description="mini_xception is the light CPU variant (seed 001)."
    )
    input_size: int = Field(default=448, ge=32, le=1024)
    epochs: int = Field(default=20, ge=1, le=1000)
    batch_size: int = Field(default=8, ge=1, le=512)
    lr: float = Field(default=0.003, gt=0)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    weight_decay: float = Field(default=5e-4, ge=0)
    lr_step_epochs: int = Field(default=5, ge=1)
    lr_gamma: float = Field(default=0.5, gt=0, le=1)
    freeze_blocks: int = Field(
        default=2, ge=0, le=4, description="Frozen first ResNet blocks, only over pretrained backbone_weights."
    )
    split: Literal["seed", "kfold"] = Field(
        default="seed", description="seed: seed 000's identity-disjoint rule; kfold: k folds by animal."
    )
    folds: int = Field(default=5, ge=2, le=20)
    backbone_weights: Path | None = Field(
        default=None, description="Local torchvision resnet18 state dict (nothing is downloaded)."
    )
    init: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*@v[0-9]+$",
        description=(
            "Initialise the trunk from a stored identity net of the same arch (seed 003's general-to-specific step): "
            "'identity@vN' (the configured identity model's name) or 'identity-model-name@vN'."
        ),
    )
    seed: int = 0


AUTO_PRECISION = (
    "auto: chosen for this machine at a run's start: fp32 on a CPU without native bf16 (AVX512_BF16 or AMX), "
    "where bf16 is emulated and about 5x slower; the faster of fp32 and bf16 (measured) where it is native; "
    "on CUDA the fastest of fp32, fp16 AMP and (from compute capability 8.0) bf16. On a CPU the gender net and "
    "CGANet may also run int8 (static post-training quantization, oneDNN), chosen only when faster and when its "
    "probabilities agree with fp32's within 0.02 on the model's check set; 'int8' forces it (CPU only)."
)
AUTO_LAYOUT = "auto: the faster of channels_last and contiguous memory on this machine, measured on first use."
AUTO_THREADS = (
    "CPU intra-op threads; unset: every usable core (shared among the local Dask cluster's worker processes)."
)


class GenderConfig(BaseModel):
    """The gender classifier at night, and how animals are decided from their faces."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(default="panda-gender", description="Gender model in the store: 'name' (newest) or 'name@vN'.")
    batch_size: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="Face crops per forward pass on CUDA; unset: measured on first use (16, 32 or 64).",
    )
    cpu_batch_size: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="Face crops per forward pass on the CPU; unset: measured on first use (4, 8 or 16).",
    )
    loader_workers: int = Field(default=2, ge=0, le=32, description="DataLoader processes decoding crops.")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16", "amp", "int8"] = Field(default="auto", description=AUTO_PRECISION)
    layout: Literal["auto", "channels_last", "contiguous"] = Field(default="auto", description=AUTO_LAYOUT)
    threads: int | None = Field(default=None, ge=1, le=256, description=AUTO_THREADS)
    abstain_low: float = Field(default=0.2, ge=0, le=0.5, description="Animals at or below this P(male) are female.")
    abstain_high: float = Field(
        default=0.8, ge=0.5, le=1, description="Animals at or above this P(male) are male; between: unknown."
    )
    disagreement_share: float = Field(
        default=0.25, gt=0, le=0.5, description="Flag an animal when this share of its confident faces disagree."
    )
    confident: float = Field(default=0.7, gt=0.5, lt=1, description="A face counts as confident at this P or 1 - P.")
    event_gap_s: float = Field(
        default=300.0,
        gt=0,
        description="Camera-trap faces of unknown animals: one event per camera until a gap this long.",
    )
    gradcam_faces: int = Field(default=6, ge=0, le=100, description="Grad-CAM heatmaps stored per drop for the report.")
    train: GenderTrainConfig = Field(default_factory=GenderTrainConfig)


class MatingTrainConfig(BaseModel):
    """How `breedwatch train|evaluate mating` train CGANet; defaults are seed 002's (see models/mating_training.py)."""

    model_config = ConfigDict(extra="forbid")

    lr: float = Field(default=0.01, gt=0)
    lr_factor: float = Field(default=0.1, gt=0, le=1, description="Learning rate times this after a plateau.")
    plateau_patience: int = Field(
        default=125, ge=1, description="Epochs without a better validation accuracy before lr drops."
    )
    epochs: int = Field(default=500, ge=1, le=10_000)
    batch_size: int = Field(default=32, ge=2, le=4096)
    dropout: float = Field(default=0.3, ge=0, lt=1)
    optimiser: Literal["adam", "sgd"] = Field(default="adam", description="The seed names none; sgd uses momentum.")
    momentum: float = Field(default=0.9, ge=0, lt=1)
    weight_decay: float = Field(default=0.0, ge=0)
    folds: int = Field(default=5, ge=2, le=20, description="Cross-validation folds of `evaluate mating`.")
    group_by: Literal["pair", "encounter", "none"] = Field(
        default="pair", description="What folds and the validation split never share."
    )
    validation_fraction: float = Field(
        default=0.2, ge=0, lt=1, description="Grouped share of the training data used to pick the best epoch."
    )
    max_epochs_without_improvement: int | None = Field(
        default=None, ge=1, description="Early stop; none runs every epoch (seed)."
    )
    standardise: bool = Field(default=True, description="Per-coefficient input scaling from the training data.")
    filters: int = Field(default=128, ge=1, le=512, description="Conv filters (seed 128).")
    hidden: int = Field(default=32, ge=1, le=512, description="GRU units (seed 32).")
    precision: Literal["fp32", "bf16"] = "fp32"
    class_weight: Literal["none", "balanced"] = "balanced"
    threads: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="CPU threads while training; none: torch's default. 1 is fastest for small nets on a busy machine.",
    )
    seed: int = 0


class MatingConfig(BaseModel):
    """The mating-success classifier at night, and how encounters are called."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(default="cganet", description="Mating model in the store: 'name' (newest) or 'name@vN'.")
    batch_size: int | None = Field(
        default=None,
        ge=1,
        le=4096,
        description=(
            "Segments per forward pass; unset: measured on first use (32, 64 or 128 on the CPU, 128, 256 or 512 on "
            "CUDA)."
        ),
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16", "amp", "int8"] = Field(default="auto", description=AUTO_PRECISION)
    layout: Literal["auto", "channels_last", "contiguous"] = Field(default="auto", description=AUTO_LAYOUT)
    threads: int | None = Field(default=None, ge=1, le=256, description=AUTO_THREADS)
    abstain_low: float = Field(
        default=0.4, ge=0, le=0.5, description="Encounters at or below this P(success) are failures."
    )
    abstain_high: float = Field(
        default=0.6, ge=0.5, le=1, description="Encounters above this P(success) are successes; between: unknown."
    )
    train: MatingTrainConfig = Field(default_factory=MatingTrainConfig)


class IdentityTrainConfig(BaseModel):
    """How `breedwatch train|evaluate identity` train the identity net (see models/identity_training.py)."""

    model_config = ConfigDict(extra="forbid")

    arch: Literal["resnet18", "mini_xception"] = Field(
        default="mini_xception", description="Trunk architecture (the gender nets'); mini_xception trains on a CPU."
    )
    input_size: int = Field(default=64, ge=32, le=1024)
    embedding_dim: int = Field(default=128, ge=2, le=2048)
    epochs: int = Field(default=45, ge=1, le=1000, description="The cosine schedule reaches zero at the last epoch.")
    batch_size: int = Field(default=64, ge=4, le=1024)
    lr: float = Field(default=0.005, gt=0)
    loss_lr: float = Field(default=0.01, gt=0, description="Learning rate of the margin loss's class centres.")
    weight_decay: float = Field(default=1e-4, ge=0)
    loss: Literal["arcface", "subcenter_arcface", "triplet"] = Field(
        default="arcface", description="pytorch-metric-learning loss (triplet mines hard pairs in each batch)."
    )
    margin_deg: float = Field(
        default=11.5,
        gt=0,
        lt=90,
        description="ArcFace angular margin in degrees (the library's 28.6 did not learn from scratch here).",
    )
    scale: float = Field(default=16.0, gt=0, description="ArcFace logit scale.")
    patience: int | None = Field(
        default=None, ge=1, description="Stop after this many epochs without a better one; none: every epoch runs."
    )
    validation_share: float = Field(
        default=0.25, gt=0, lt=1, description="Share of the animals held out to pick the epoch and the thresholds."
    )
    test_share: float = Field(
        default=0.25, ge=0, lt=1, description="Share of the animals held out entirely for the card's metrics."
    )
    threads: int | None = Field(default=None, ge=1, le=256, description="CPU threads while training.")
    seed: int = 0


class IdentityConfig(BaseModel):
    """The identity net at night: which stored model, how it runs, and when a match goes to review."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        default="panda-identity", description="Identity model in the store: 'name' (newest) or 'name@vN'."
    )
    review_margin: float = Field(
        default=0.05,
        ge=0,
        le=2,
        description="A match whose similarity exceeds the runner-up animal's by less than this goes to review.",
    )
    provisional_min_faces: int = Field(
        default=2,
        ge=1,
        le=100,
        description=(
            "A provisional individual is counted once the identity net has grouped this many faces into it (or a "
            "keeper confirms it); until then its faces await a sighting in the review queue. 1 counts every one."
        ),
    )
    batch_size: int | None = Field(
        default=None, ge=1, le=1024, description="Face crops per forward pass on CUDA; unset: measured on first use."
    )
    cpu_batch_size: int | None = Field(
        default=None, ge=1, le=1024, description="Face crops per forward pass on the CPU; unset: measured on first use."
    )
    loader_workers: int = Field(default=2, ge=0, le=32, description="DataLoader processes decoding crops.")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16", "amp"] = Field(default="auto", description=AUTO_PRECISION)
    layout: Literal["auto", "channels_last", "contiguous"] = Field(default="auto", description=AUTO_LAYOUT)
    threads: int | None = Field(default=None, ge=1, le=256, description=AUTO_THREADS)
    train: IdentityTrainConfig = Field(default_factory=IdentityTrainConfig)


class ScheduleConfig(BaseModel):
    """When the nightly flow runs."""

    model_config = ConfigDict(extra="forbid")

    cron: str = "0 2 * * *"
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        """Reject time zones the IANA database does not know."""
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as 'Asia/Shanghai')") from exc
        return value

    @field_validator("cron")
    @classmethod
    def _five_fields(cls, value: str) -> str:
        """Require a five-field cron expression."""
        if len(value.split()) != 5:
            raise ValueError(f"cron {value!r} must have five fields (minute hour day month weekday)")
        return value


class RuntimeConfig(BaseModel):
    """How much work runs at once."""

    model_config = ConfigDict(extra="forbid")

    io_threads: int = Field(default=4, ge=1, le=64, description="Threads hashing and decoding files within a drop.")
    progress: bool | None = Field(default=None, description="Progress bars; None means only on a terminal.")
    retain_freed_mb: int = Field(
        default=512,
        ge=0,
        le=65536,
        description=(
            "Freed memory glibc's malloc keeps for reuse while stages run, every allocation served from its heap (on 2 "
            "cores: gender net 49 -> 58 faces/s; a CGANet batch of 64, whose activations pass 128 MB, 0.26-0.31 -> "
            "0.19-0.22 s; a 5,000-image run's peak RSS unchanged); 0 leaves glibc's defaults (large tensors mapped and "
            "faulted in afresh on every batch)."
        ),
    )


class RunnerConfig(BaseModel):
    """Where the per-drop stage tasks run, and the GPU's concurrency limit (neither changes results)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["default", "dask"] = Field(
        default="default",
        description="default: Prefect's thread pool in the flow's process; dask: prefect-dask's DaskTaskRunner.",
    )
    address: str = Field(
        default="", description="Scheduler of an existing Dask cluster (tcp://host:8786); empty starts a local cluster."
    )
    n_workers: int = Field(
        default=2,
        ge=1,
        le=1024,
        description="default: stage tasks running at once; dask: worker processes of the local cluster.",
    )
    threads_per_worker: int = Field(
        default=1, ge=1, le=64, description="Threads per worker process of the local Dask cluster."
    )
    gpu_limit: str = Field(
        default="breedwatch-gpu",
        description=(
            "Prefect global concurrency limit a stage holds while it uses CUDA (create it with 'prefect gcl create "
            "breedwatch-gpu --limit 1'); empty: none."
        ),
    )


class ReviewConfig(BaseModel):
    """The review web app (`breedwatch review`): where it listens and how its queue is drawn."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(default="127.0.0.1", description="Address to listen on; a non-loopback one needs a password.")
    port: int = Field(default=8765, ge=1, le=65535, description="TCP port to listen on.")
    audit_share: float = Field(
        default=0.05, ge=0, le=0.5, description="Share of items drawn at random each day (unbiased review accuracy)."
    )
    base_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s?#]+$",
        description="Where keepers open the review app (e.g. http://station:8765); the report links its items there.",
    )


# Settings that never change a result: left out of fingerprints, so changing them re-runs nothing.
RESULT_NEUTRAL: dict[str, Any] = {
    "home": True,
    "inbox": True,
    "runtime": True,
    "runner": True,
    "schedule": True,
    "lake": True,
    "review": True,
    "ingest": {"settle_s": True, "ready_marker": True},
}


class LakeConfig(BaseModel):
    """Keeping the Parquet lake fast as drops accumulate."""

    model_config = ConfigDict(extra="forbid")

    compact_after_parts: int = Field(
        default=50,
        ge=0,
        description=(
            "The nightly run compacts a table (one file per month instead of one part per drop and stage) before its "
            "catalog refresh once it has this many uncompacted parts; 0: only 'breedwatch compact' does."
        ),
    )


class Settings(BaseSettings):
    """breedwatch configuration (TOML via --config, then BREEDWATCH_* variables override)."""

    model_config = SettingsConfigDict(
        env_prefix="BREEDWATCH_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    home: Path = Field(default=Path("data"), description="Lake, catalog, models, reports and runs live here.")
    inbox: Path | None = Field(default=None, description="Folder of drops; defaults to <home>/inbox.")
    default_timezone: str = Field(default="UTC", description="Time zone of EXIF times when a drop does not say.")
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    faces: FacesConfig = Field(default_factory=FacesConfig)
    audio: AudioConfig = Field(default_factory=AudioConfig)
    gender: GenderConfig = Field(default_factory=GenderConfig)
    mating: MatingConfig = Field(default_factory=MatingConfig)
    identity: IdentityConfig = Field(default_factory=IdentityConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    runner: RunnerConfig = Field(default_factory=RunnerConfig)
    review: ReviewConfig = Field(default_factory=ReviewConfig)
    lake: LakeConfig = Field(default_factory=LakeConfig)

    @field_validator("default_timezone")
    @classmethod
    def _known_default_timezone(cls, value: str) -> str:
        """Reject time zones the IANA database does not know."""
        return ScheduleConfig._known_timezone(value)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Explicit arguments win, then environment variables, then the TOML file."""
        toml_file = init_settings.init_kwargs.pop("_toml_file", None)  # type: ignore[attr-defined]
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    @property
    def inbox_dir(self) -> Path:
        """The folder scanned for new drops."""
        return self.inbox if self.inbox is not None else self.home / "inbox"

    def public_dict(self) -> dict[str, Any]:
        """The resolved configuration as plain TOML-able data."""
        return self.model_dump(mode="json", exclude_none=True)

    def view_thresholds(self) -> dict[str, float]:
        """Decision bands the catalog's views apply to stored probabilities (changeable without re-running models)."""
        gender = self.gender
        return {
            "gender.abstain_low": gender.abstain_low,
            "gender.abstain_high": gender.abstain_high,
            "gender.disagreement_share": gender.disagreement_share,
            "gender.confident": gender.confident,
            "gender.event_gap_s": gender.event_gap_s,
            "mating.abstain_low": self.mating.abstain_low,
            "mating.abstain_high": self.mating.abstain_high,
            "identity.review_margin": self.identity.review_margin,
        }

    def fingerprint(self, sections: tuple[str, ...] | None = None) -> str:
        """A hash of the settings that change results (all such sections, or only the given ones)."""
        data = self.model_dump(mode="json", exclude=RESULT_NEUTRAL)
        if sections is not None:
            data = {key: value for key, value in data.items() if key in sections}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings, raising ConfigError with one readable line per problem."""
    if config_file is not None and not config_file.is_file():
        raise ConfigError(f"config file {config_file} does not exist")
    kwargs = {key: value for key, value in overrides.items() if value is not None}
    if config_file is not None:
        kwargs["_toml_file"] = config_file
    try:
        return Settings(**kwargs)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, config_file)) from None
    except ValueError as exc:  # malformed TOML
        raise ConfigError(f"config file {config_file} is not valid TOML: {exc}") from None


def describe_validation_error(exc: ValidationError, config_file: Path | None) -> str:
    """Turn a pydantic error into lines naming each setting and what is wrong with it."""
    where = f" in {config_file}" if config_file else ""
    lines = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "(root)"
        lines.append(f"setting {field}{where}: {error['msg']}")
    return "invalid configuration: " + "; ".join(lines)
