"""Training, calibration and evaluation of the gender nets, per-animal sex decisions and the HOG + SVM baseline (pure).

Items are (PIL image, label, animal_id) with label 0 = female, 1 = male. Splits are always by animal (seed 000).

Per-animal decision. Every face i of an animal gives calibrated P(male) p_i; its evidence is the log likelihood
ratio e_i = logit(p_i) - logit(face_prior), where face_prior is the base rate the per-face probabilities were
calibrated at (0.5 for a balanced training set). Naive Bayes adds the e_i to the prior log-odds, which assumes the
faces are independent given the sex. They are not: all photos of one animal share its face, so a net that errs on
an animal errs on most of its photos, and the plain sum makes ten mediocre faces (p = 0.7 each) look like
certainty (posterior 0.9998). The default pooling "sqrt_n" divides the summed evidence by sqrt(n): one face counts
fully, n concordant faces count sqrt(n) times as much as one (plain sum: n times, "mean": once). Pooling never
changes which side of 0.5 the posterior falls on; it changes how many animals leave the abstain band.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from skimage.feature import hog
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from torch import Tensor, nn
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from models import training
from models.epochs import Validation, run_epochs, timed_epoch, training_pass
from models.gender import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Arch,
    GenderNet,
    MiniXception,
    build_gender_net,
    freeze_first_blocks,
    load_backbone_weights,
    normalise,
    predict_probs,
    preprocess,
    set_temperature,
)
from models.identity import init_gender_from_identity
from models.quantize import CHECK_ITEMS, spread
from models.statistics import wilson_interval
from models.training import EpochRecord, TrainingHistory, binary_metrics
from schemas.config import GenderConfig

Item = tuple[Image.Image, int, str]
Pooling = Literal["independent", "sqrt_n", "mean"]
Sex = Literal["male", "female", "unknown"]
SEED_SPLIT_PATTERN = ("train", "train", "test", "train", "train")  # seed 000, section 3.1
SEED_BASE_SIZE, SEED_CROP_SIZE = 512, 448  # seed 000: faces stored at 512, randomly resized and cropped to 448
EVAL_BATCH = 32


# ---------------------------------------------------------------- splits by animal


def identity_disjoint_split(animal_image_counts: Mapping[str, int]) -> tuple[list[str], list[str]]:
    """Seed 000's split: rank animals by image count (descending, ties by id), then train, train, test, train, train,
    repeated."""
    ranked = sorted(animal_image_counts, key=lambda a: (-animal_image_counts[a], a))
    train = [a for i, a in enumerate(ranked) if SEED_SPLIT_PATTERN[i % 5] == "train"]
    test = [a for i, a in enumerate(ranked) if SEED_SPLIT_PATTERN[i % 5] == "test"]
    return train, test


def identity_disjoint_split_by_sex(
    animal_image_counts: Mapping[str, int], sexes: Mapping[str, int]
) -> tuple[list[str], list[str]]:
    """The seed's rule applied within each sex, so both sexes reach the test set once a sex has three animals."""
    train, test = [], []
    for label in sorted(set(sexes[a] for a in animal_image_counts)):
        part_train, part_test = identity_disjoint_split(
            {a: n for a, n in animal_image_counts.items() if sexes[a] == label}
        )
        train += part_train
        test += part_test
    return train, test


def kfold_by_animal(
    ids: Sequence[str], k: int, seed: int, sexes: Mapping[str, int] | None = None
) -> list[tuple[list[str], list[str]]]:
    """k (train ids, test ids) folds over animals, shuffled with the seed; stratified by sex when sexes are given."""
    ordered = sorted(ids)
    if sexes is None:
        folds = KFold(k, shuffle=True, random_state=seed).split(ordered)
    else:
        folds = StratifiedKFold(k, shuffle=True, random_state=seed).split(ordered, [sexes[a] for a in ordered])
    return [([ordered[i] for i in tr], [ordered[i] for i in te]) for tr, te in folds]


def items_of(items: Sequence[Item], animal_ids: Sequence[str]) -> list[Item]:
    """The items whose animal is among animal_ids, in their original order."""
    chosen = set(animal_ids)
    return [item for item in items if item[2] in chosen]


def image_counts(items: Sequence[Item]) -> dict[str, int]:
    """Number of items per animal id."""
    counts: dict[str, int] = defaultdict(int)
    for _, _, animal_id in items:
        counts[animal_id] += 1
    return dict(counts)


def data_fingerprint(items: Sequence[Item]) -> str:
    """The toolkit's order-free fingerprint over every item's animal id, label, size and pixels."""
    return training.data_fingerprint(
        f"{animal_id}|{label}|{image.mode}|{image.size}|".encode() + image.tobytes()
        for image, label, animal_id in items
    )


# ---------------------------------------------------------------- settings and augmentation


@dataclass(frozen=True)
class GenderTrainSettings:
    """Training recipe; defaults are seed 000's (SGD momentum, lr 0.003 halved every 5 epochs, batch 8, 2 blocks frozen,
    448 px).

    The seed names cross entropy "with L2 regularization" without a value: weight_decay 5e-4 is the common ResNet
    choice. It names its augmentations (noise, rotation, crop, erasing, flips, translation, colour) without
    magnitudes or probabilities: the values below are moderate choices. It trains "fixed epochs" without a number.
    precise_bn (not in the seed) recomputes BatchNorm statistics on the un-augmented training faces after each epoch.
    """

    arch: Arch = "resnet18"
    input_size: int = SEED_CROP_SIZE
    epochs: int = 20
    batch_size: int = 8
    lr: float = 0.003
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_step_epochs: int = 5
    lr_gamma: float = 0.5
    freeze_blocks: int = 2
    precision: Literal["fp32", "bf16"] = "fp32"
    select_by: Literal["val_loss", "val_accuracy"] = "val_loss"
    precise_bn: bool = True
    crop_scale: tuple[float, float] = (0.6, 1.0)
    crop_ratio: tuple[float, float] = (0.9, 1.1)
    rotation_deg: float = 15.0
    translate: float = 0.1
    hflip_p: float = 0.5
    vflip_p: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.02
    noise_sigma: float = 0.03
    erase_p: float = 0.25

    def base_size(self) -> int:
        """Side the faces are resized to before the random crop (seed: 512 for a 448 crop)."""
        return round(self.input_size * SEED_BASE_SIZE / SEED_CROP_SIZE)


def train_transform(settings: GenderTrainSettings) -> v2.Compose:
    """Seed 000's augmentations on a uint8 3 x B x B tensor; returns a normalised float32 3 x S x S tensor."""
    return v2.Compose(
        [
            v2.RandomResizedCrop(
                settings.input_size, scale=settings.crop_scale, ratio=settings.crop_ratio, antialias=True
            ),
            v2.RandomHorizontalFlip(settings.hflip_p),
            v2.RandomVerticalFlip(settings.vflip_p),
            v2.RandomAffine(degrees=settings.rotation_deg, translate=(settings.translate, settings.translate)),
            v2.ColorJitter(settings.brightness, settings.contrast, settings.saturation, settings.hue),
            v2.ToDtype(torch.float32, scale=True),
            v2.GaussianNoise(sigma=settings.noise_sigma),
            v2.Normalize(list(IMAGENET_MEAN), list(IMAGENET_STD)),
            v2.RandomErasing(settings.erase_p),
        ]
    )


def base_tensor(image: Image.Image, size: int) -> Tensor:
    """A face as a uint8 3 x size x size tensor, the input of train_transform."""
    return TF.resize(TF.pil_to_tensor(image.convert("RGB")), [size, size], antialias=True)


def eval_batch(items: Sequence[Item], size: int) -> tuple[Tensor, Tensor]:
    """Preprocessed N x 3 x size x size images and their labels, for validation and testing."""
    if not items:
        return torch.zeros(0, 3, size, size), torch.zeros(0, dtype=torch.long)
    return torch.stack([preprocess(image, size) for image, _, _ in items]), torch.tensor([y for _, y, _ in items])


def plain_batch(items: Sequence[Item], size: int) -> tuple[Tensor, Tensor]:
    """Items resized as preprocess resizes them but kept uint8 (a quarter of the memory), and their labels."""
    if not items:
        return torch.zeros(0, 3, size, size, dtype=torch.uint8), torch.zeros(0, dtype=torch.long)
    return torch.stack([base_tensor(image, size) for image, _, _ in items]), torch.tensor([y for _, y, _ in items])


def held_out_crops(items: Sequence[Item], held_out: Sequence[str], size: int, n: int = CHECK_ITEMS) -> Tensor | None:
    """Up to n faces of the held-out animals, spread evenly over them in item order, as N x size x size x 3 uint8
    crops (the gender stage's input, which a version stores for its int8 agreement check); None when there is none."""
    animals = set(held_out)
    faces = [item for item in items if item[2] in animals]
    if not faces:
        return None
    return plain_batch([faces[i] for i in spread(len(faces), n)], size)[0].permute(0, 2, 3, 1).contiguous()


def as_input(images: Tensor) -> Tensor:
    """uint8 N x 3 x H x W images as the normalised float32 input preprocess gives."""
    return normalise(TF.to_dtype(images, torch.float32, scale=True))


# ---------------------------------------------------------------- training


def training_memory_format(model: nn.Module) -> torch.memory_format:
    """channels_last for ResNet18; contiguous for mini-Xception, whose 8-channel strided 1x1 conv corrupts the heap
    in its weight-gradient kernel under channels_last (torch 2.14 CPU); an identity net follows its trunk."""
    trunk = getattr(model, "trunk", model)
    return torch.contiguous_format if isinstance(trunk, MiniXception) else torch.channels_last


def eval_logits(model: nn.Module, images: Tensor, batch_size: int = EVAL_BATCH) -> Tensor:
    """fp32 eval-mode logits of float or uint8 images in chunks, leaving the model's memory format alone."""
    model.eval()
    fmt = training_memory_format(model)
    with torch.inference_mode():
        parts = [model(chunk_input(chunk).contiguous(memory_format=fmt)) for chunk in images.split(batch_size)]
    return torch.cat(parts).float() if parts else torch.zeros(0, 2)


def chunk_input(chunk: Tensor) -> Tensor:
    """Model input from a chunk that is either already normalised float or uint8."""
    return as_input(chunk) if chunk.dtype == torch.uint8 else chunk


def recompute_bn_statistics(model: nn.Module, images: Tensor, batch_size: int = EVAL_BATCH) -> None:
    """Precise BN: replace every BatchNorm's running mean and variance by their average over un-augmented images.

    With few batches per epoch the running averages lag far behind the weights, and an eval-mode net can then
    predict one class for every face although it fits its training batches.
    """
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # cumulative average over the chunks
    model.train()
    fmt = training_memory_format(model)
    with torch.no_grad():
        for chunk in images.split(batch_size):
            if len(chunk) > 1:
                model(chunk_input(chunk).contiguous(memory_format=fmt))
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum


def augmented_step(
    model: nn.Module, bases: list[Tensor], labels: Tensor, augment: v2.Compose
) -> Callable[[Tensor], tuple[Tensor, int]]:
    """A training batch step: fresh augmentations of the indexed faces, cross entropy and the number correct."""
    fmt = training_memory_format(model)

    def step(index: Tensor) -> tuple[Tensor, int]:
        """Loss and number correct of one augmented batch."""
        with torch.autocast("cpu", enabled=False):  # augmentations stay in fp32 whatever the training precision
            x = torch.stack([augment(bases[i]) for i in index.tolist()]).contiguous(memory_format=fmt)
        logits = model(x)
        y = labels[index]
        return F.cross_entropy(logits.float(), y), int((logits.detach().argmax(1) == y).sum())

    return step


def validation_scores(model: nn.Module, images: Tensor, labels: Tensor) -> Validation:
    """Validation cross entropy and accuracy (None without validation images)."""
    if len(labels) == 0:
        return Validation(None, None)
    logits = eval_logits(model, images)
    return Validation(float(F.cross_entropy(logits, labels)), float((logits.argmax(1) == labels).float().mean()))


def check_items(items: Sequence[Item], settings: GenderTrainSettings) -> None:
    """ValueError unless there are training items of both sexes labelled 0 or 1 and at least one epoch."""
    if settings.epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {settings.epochs}")
    labels = {label for _, label, _ in items}
    if not labels <= {0, 1}:
        raise ValueError(f"labels must be 0 (female) or 1 (male), got {sorted(labels)}")
    if labels != {0, 1}:
        raise ValueError("the training set needs faces of both sexes")


@dataclass(frozen=True)
class TrunkInit:
    """A stored identity net's state dict and arch, whose trunk initialises the gender net (seed 003's
    general-to-specific step)."""

    state: Mapping[str, Tensor]
    arch: str


def prepared_model(
    settings: GenderTrainSettings,
    backbone_weights: Mapping[str, Tensor] | None,
    trunk_init: TrunkInit | None = None,
) -> tuple[GenderNet, list[str]]:
    """A fresh net (seeded by the caller), local backbone weights or an identity net's trunk loaded if given, first
    blocks frozen."""
    model = build_gender_net(settings.arch, settings.input_size)
    if backbone_weights is not None:
        if settings.arch != "resnet18":
            raise ValueError("backbone weights are ResNet18 weights; they cannot initialise mini_xception")
        load_backbone_weights(model, backbone_weights)
    if trunk_init is not None:
        init_gender_from_identity(model, trunk_init.state, trunk_init.arch)
    frozen = freeze_first_blocks(model, settings.freeze_blocks)
    return model.to(memory_format=training_memory_format(model)), frozen


def train_gender_net(
    train_items: Sequence[Item],
    val_items: Sequence[Item],
    settings: GenderTrainSettings,
    seed: int,
    progress: Callable[[EpochRecord], None] | None = None,
    backbone_weights: Mapping[str, Tensor] | None = None,
    trunk_init: TrunkInit | None = None,
) -> tuple[GenderNet, TrainingHistory]:
    """Train with the seed's recipe, deterministically on CPU for a given seed; the weights of the best validation
    epoch."""
    check_items(train_items, settings)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model, frozen = prepared_model(settings, backbone_weights, trunk_init)
        bases = [base_tensor(image, settings.base_size()) for image, _, _ in train_items]
        plain, labels = plain_batch(train_items, settings.input_size)
        val_x, val_y = plain_batch(val_items, settings.input_size)
        optimiser = torch.optim.SGD(
            [p for p in model.parameters() if p.requires_grad],
            lr=settings.lr,
            momentum=settings.momentum,
            weight_decay=settings.weight_decay,
        )
        schedule = torch.optim.lr_scheduler.StepLR(optimiser, settings.lr_step_epochs, settings.lr_gamma)
        step = augmented_step(model, bases, labels, train_transform(settings))
        generator, history = torch.Generator().manual_seed(seed), TrainingHistory(frozen=frozen)

        def train() -> tuple[float, float]:
            """One augmented pass, the learning-rate step, then BatchNorm statistics on plain faces if asked."""
            result = training_pass(
                model, len(bases), settings.batch_size, step, optimiser, generator, settings.precision == "bf16"
            )
            schedule.step()
            if settings.precise_bn:
                recompute_bn_statistics(model, plain)
            return result

        def one_epoch(epoch: int) -> EpochRecord:
            """Train one epoch and score it on the validation faces."""
            return timed_epoch(epoch, optimiser, train, lambda: validation_scores(model, val_x, val_y))

        best_state = run_epochs(model, settings.epochs, one_epoch, settings.select_by, history, progress)
    model.load_state_dict(best_state)
    return model.eval(), history


# ---------------------------------------------------------------- calibration


def fit_temperature(logits: Tensor | np.ndarray, labels: Sequence[int] | np.ndarray) -> float:
    """The calibration temperature of a two-class net's (N, 2) logits: the toolkit's fit on their difference."""
    z = np.asarray(logits, np.float64).reshape(-1, 2)
    return training.fit_temperature(z[:, 1] - z[:, 0], labels)


def calibrate(model: GenderNet, val_items: Sequence[Item]) -> float:
    """Fit the temperature on the validation items, store it in the model and return it (1.0 without items)."""
    images, labels = eval_batch(val_items, model.input_size)
    temperature = fit_temperature(eval_logits(model, images), labels) if len(labels) else 1.0
    set_temperature(model, temperature)
    return temperature


# ---------------------------------------------------------------- per-animal decision


def logit(p: float | np.ndarray) -> float | np.ndarray:
    """log(p / (1 - p))."""
    return np.log(p) - np.log1p(-p)


def animal_posterior(
    p_male: Sequence[float],
    prior: float = 0.5,
    clip: float = 1e-4,
    pooling: Pooling = "sqrt_n",
    face_prior: float = 0.5,
) -> float:
    """P(male) of one animal from its faces' calibrated P(male): prior log-odds plus pooled face evidence (module
    doc)."""
    p = np.clip(np.asarray(p_male, np.float64), clip, 1 - clip)
    evidence = float(np.sum(logit(p) - logit(face_prior)))
    divisor = {"independent": 1.0, "sqrt_n": math.sqrt(len(p)), "mean": float(len(p))}[pooling] if len(p) else 1.0
    log_odds = float(logit(min(max(prior, clip), 1 - clip))) + evidence / divisor
    return float(1.0 / (1.0 + math.exp(-log_odds)))


def decide_sex(posterior: float, abstain_low: float = 0.2, abstain_high: float = 0.8) -> Sex:
    """male at or above abstain_high, female at or below abstain_low, unknown in between."""
    if posterior >= abstain_high:
        return "male"
    if posterior <= abstain_low:
        return "female"
    return "unknown"


def disagreement(p_male: Sequence[float], confident: float = 0.7) -> float:
    """Share of an animal's confident faces (P(male) >= confident or <= 1 - confident) on the minority side; 0..0.5."""
    p = np.asarray(p_male, np.float64)
    n_male, n_female = int((p >= confident).sum()), int((p <= 1 - confident).sum())
    total = n_male + n_female
    return min(n_male, n_female) / total if total else 0.0


def disagreement_flag(p_male: Sequence[float], share: float = 0.25, confident: float = 0.7) -> bool:
    """Flag an animal when at least `share` of its confident faces point the other way (wrong id, mixed photos)."""
    return disagreement(p_male, confident) >= share


# ---------------------------------------------------------------- evaluation


def group_by_animal(
    p_male: Sequence[float], labels: Sequence[int], animal_ids: Sequence[str]
) -> dict[str, tuple[list[float], int]]:
    """Each animal's face probabilities and its label; ValueError when one animal carries both labels."""
    groups: dict[str, tuple[list[float], set[int]]] = {}
    for p, y, a in zip(p_male, labels, animal_ids):
        probs, seen = groups.setdefault(a, ([], set()))
        probs.append(float(p))
        seen.add(int(y))
    mixed = sorted(a for a, (_, seen) in groups.items() if len(seen) > 1)
    if mixed:
        raise ValueError(f"animals with faces of both labels: {', '.join(mixed[:5])}")
    return {a: (probs, next(iter(seen))) for a, (probs, seen) in sorted(groups.items())}


def animal_rows(
    groups: Mapping[str, tuple[list[float], int]], pooling: Pooling, abstain: tuple[float, float], prior: float
) -> list[dict[str, Any]]:
    """Per animal: faces, mean face P(male), posterior, decision, true label, disagreement and flag."""
    rows = []
    for animal_id, (probs, label) in groups.items():
        posterior = animal_posterior(probs, prior=prior, pooling=pooling)
        rows.append(
            {
                "animal_id": animal_id,
                "n_faces": len(probs),
                "mean_p_male": float(np.mean(probs)),
                "posterior": posterior,
                "decision": decide_sex(posterior, *abstain),
                "label": label,
                "disagreement": disagreement(probs),
                "flagged": disagreement_flag(probs),
            }
        )
    return rows


def per_animal_metrics(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Metrics of the posteriors at 0.5 (every animal decided), plus accuracy and coverage outside the abstain band."""
    posteriors, labels = [r["posterior"] for r in rows], [r["label"] for r in rows]
    decided = [r for r in rows if r["decision"] != "unknown"]
    hits = sum((r["decision"] == "male") == (r["label"] == 1) for r in decided)
    return {
        **binary_metrics(posteriors, labels),
        "n_decided": len(decided),
        "n_unknown": len(rows) - len(decided),
        "coverage": len(decided) / len(rows) if rows else 0.0,
        "accuracy_decided": hits / len(decided) if decided else None,
        "unknown": [r["animal_id"] for r in rows if r["decision"] == "unknown"],
        "flagged": [r["animal_id"] for r in rows if r["flagged"]],
    }


def evaluate_predictions(
    p_male: Sequence[float],
    labels: Sequence[int],
    animal_ids: Sequence[str],
    pooling: Pooling = "sqrt_n",
    abstain: tuple[float, float] = (0.2, 0.8),
    prior: float = 0.5,
) -> dict[str, Any]:
    """Per-image metrics, per-animal metrics from pooled posteriors (abstentions apart) and the per-animal rows."""
    rows = animal_rows(group_by_animal(p_male, labels, animal_ids), pooling, abstain, prior)
    return {"per_image": binary_metrics(p_male, labels), "per_animal": per_animal_metrics(rows), "animals": rows}


# ---------------------------------------------------------------- HOG + linear SVM baseline (seed 000, table 2)


def hog_features(images: Sequence[Image.Image], size: int = 128) -> np.ndarray:
    """HOG (9 orientations, 16-px cells, 2x2 blocks, L2-Hys) of each image in grayscale resized to size x size."""
    rows = [
        hog(
            np.asarray(image.convert("L").resize((size, size), Image.BILINEAR), np.float32) / 255.0,
            orientations=9,
            pixels_per_cell=(16, 16),
            cells_per_block=(2, 2),
            block_norm="L2-Hys",
        )
        for image in images
    ]
    return np.stack(rows).astype(np.float32)


def linear_svm(train_x: np.ndarray, train_y: np.ndarray, seed: int, c: float) -> Any:
    """Standardised linear SVM, Platt-calibrated by internal cross-validation when each class has 2+ samples."""
    svm = make_pipeline(StandardScaler(), LinearSVC(C=c, max_iter=20000, random_state=seed))
    folds = min(3, int(np.bincount(train_y, minlength=2).min()))
    if folds < 2:
        return svm.fit(train_x, train_y)
    return CalibratedClassifierCV(svm, cv=folds, method="sigmoid").fit(train_x, train_y)


def hog_svm_baseline(
    train_images: Sequence[Image.Image],
    train_labels: Sequence[int],
    test_images: Sequence[Image.Image],
    test_labels: Sequence[int],
    size: int = 128,
    test_animal_ids: Sequence[str] | None = None,
    seed: int = 0,
    c: float = 1.0,
) -> dict[str, Any]:
    """Seed 000's HOG + linear SVM on the same split: the same metrics as evaluate_predictions (per image only without
    ids)."""
    train_y = np.asarray(train_labels, np.int64)
    model = linear_svm(hog_features(train_images, size), train_y, seed, c)
    test_x = hog_features(test_images, size)
    if hasattr(model, "predict_proba"):
        p_male = model.predict_proba(test_x)[:, 1]
    else:
        p_male = 1.0 / (1.0 + np.exp(-model.decision_function(test_x)))
    if test_animal_ids is None:
        return {"per_image": binary_metrics(p_male, test_labels)}
    return evaluate_predictions(p_male.tolist(), list(test_labels), list(test_animal_ids))


# ---------------------------------------------------------------- model card


def calibration_of(metrics: Mapping[str, Any], temperature: float) -> dict[str, Any]:
    """The card's calibration: the temperature, and on the test animals' faces ECE, reliability bins and, above the
    target, why, judged with one label draw per animal (just the temperature when no test predictions were kept)."""
    test = metrics.get("test_predictions")
    if not test or not test.get("p_male"):
        return {"method": "temperature", "temperature": temperature}
    return training.calibration_report(
        test["p_male"], test["label"], temperature, "faces", test.get("animal_id"), "animals"
    )


def gender_model_card(
    settings: GenderTrainSettings,
    seed: int,
    fingerprint: str,
    split: Mapping[str, Sequence[str]],
    history: TrainingHistory,
    temperature: float,
    metrics: Mapping[str, Any],
) -> dict[str, Any]:
    """The JSON model card stored next to the state dict: recipe, data fingerprint, split, epochs, metrics,
    calibration."""
    return {
        "task": "gender",
        "arch": settings.arch,
        "input_size": settings.input_size,
        "classes": ["female", "male"],
        "settings": asdict(settings),
        "seed": seed,
        "data_fingerprint": fingerprint,
        "split": {name: list(ids) for name, ids in split.items()},
        "training": history.as_dict(),
        "calibration": calibration_of(metrics, temperature),
        "metrics": dict(metrics),
    }


Progress = Callable[[EpochRecord], None]


class TrainingDataError(ValueError):
    """Labelled faces that cannot be used for training, with a sentence saying why."""


def recipe(config: GenderConfig) -> GenderTrainSettings:
    """The training recipe from the [gender.train] configuration (blocks are frozen only over pretrained weights)."""
    train = config.train
    return GenderTrainSettings(
        arch=train.arch,
        input_size=train.input_size,
        epochs=train.epochs,
        batch_size=train.batch_size,
        lr=train.lr,
        momentum=train.momentum,
        weight_decay=train.weight_decay,
        lr_step_epochs=train.lr_step_epochs,
        lr_gamma=train.lr_gamma,
        freeze_blocks=frozen_blocks(config),
    )


def frozen_blocks(config: GenderConfig) -> int:
    """Seed 000 freezes the first blocks of a pretrained backbone; randomly initialised blocks must learn, so none
    then."""
    train = config.train
    return train.freeze_blocks if train.arch == "resnet18" and train.backbone_weights is not None else 0


def seed_split(items: list[Item]) -> tuple[list[str], list[str]]:
    """Seed 000's identity-disjoint split within each sex; a sex too small for the rule (one or two animals) still
    gives its least-photographed animal to the test side when it has two, so both sexes are measured."""
    sexes, counts = {animal_id: label for _, label, animal_id in items}, image_counts(items)
    train, test = identity_disjoint_split_by_sex(counts, sexes)
    for label in (0, 1):
        candidates = [a for a in train if sexes[a] == label]
        if len(candidates) >= 2 and not any(sexes[a] == label for a in test):
            smallest = min(candidates, key=lambda a: (counts[a], a))
            train.remove(smallest)
            test.append(smallest)
    if not test:
        raise TrainingDataError(f"only {len(sexes)} labelled animals: a held-out test needs two animals of one sex")
    return train, test


MIN_ANIMALS_FOR_VALIDATION = 5  # per sex on the training side: the seed rule then holds out one and keeps four


@dataclass(frozen=True)
class FitSplit:
    """Animals the net learns from, and those that choose its epoch and temperature (validation, else the test)."""

    fit: list[str]
    select: list[str]
    selected_on: str


def fit_split(items: list[Item], train_ids: list[str], test_ids: list[str]) -> FitSplit:
    """Carve validation animals from the training animals by the seed rule within each sex, so the test animals the
    card's metrics (and the gender ratio's correction) come from never chose the epoch or the temperature; with fewer
    than MIN_ANIMALS_FOR_VALIDATION training animals of a sex, the test animals choose, and the card says so."""
    sexes = {animal_id: label for _, label, animal_id in items}
    if any(sum(sexes[a] == label for a in train_ids) < MIN_ANIMALS_FOR_VALIDATION for label in (0, 1)):
        return FitSplit(
            list(train_ids), list(test_ids), "test animals (too few training animals for a validation split)"
        )
    counts = image_counts(items_of(items, train_ids))
    fit_ids, validation_ids = identity_disjoint_split_by_sex(counts, {a: sexes[a] for a in counts})
    return FitSplit(fit_ids, validation_ids, "validation animals")


def fit(
    items: list[Item],
    train_ids: list[str],
    test_ids: list[str],
    settings: GenderTrainSettings,
    seed: int,
    backbone: dict[str, Any] | None,
    progress: Progress | None = None,
    trunk_init: TrunkInit | None = None,
) -> tuple[Any, Any, float, FitSplit]:
    """Train on the fit animals, select the epoch and fit the temperature on the validation animals (see fit_split)."""
    split = fit_split(items, train_ids, test_ids)
    model, history = train_gender_net(
        items_of(items, split.fit), items_of(items, split.select), settings, seed, progress, backbone, trunk_init
    )
    temperature = calibrate(model, items_of(items, split.select))
    return model, history, temperature, split


def sources_of(items: Sequence[Item], sources: Sequence[str], animal_ids: Sequence[str]) -> list[str]:
    """The face sources (keeper, detector) of items_of(items, animal_ids), in the same order."""
    chosen = set(animal_ids)
    return [source for item, source in zip(items, sources, strict=True) if item[2] in chosen]


def rates_by_source(
    p_male: Sequence[float], labels: Sequence[int], animal_ids: Sequence[str], sources: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Per-animal error rates measured on each face source alone (each test animal pooled over its faces of that
    source), when the test faces come from more than one source; empty otherwise."""
    if len(set(sources)) < 2:
        return {}
    found = {}
    for source in sorted(set(sources)):
        keep = [i for i, s in enumerate(sources) if s == source]
        net = evaluate_predictions([p_male[i] for i in keep], [labels[i] for i in keep], [animal_ids[i] for i in keep])
        found[source] = error_rates(net)
    return found


def split_metrics(
    model: Any,
    items: list[Item],
    train_ids: list[str],
    test_ids: list[str],
    seed: int,
    sources: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Net and HOG + linear SVM metrics on the test animals of one split, the net's rates per face source (sources
    aligned with items, when known) and its held-out predictions (for ROC plots)."""
    test = items_of(items, test_ids)
    images, labels = eval_batch(test, model.input_size)
    p_male = predict_probs(model, images, precision="fp32").tolist()
    animal_ids = [animal_id for _, _, animal_id in test]
    net = evaluate_predictions(p_male, labels.tolist(), animal_ids)
    test_sources = sources_of(items, sources, test_ids) if sources is not None else []
    train = items_of(items, train_ids)
    hog = hog_svm_baseline(
        [i for i, _, _ in train],
        [y for _, y, _ in train],
        [i for i, _, _ in test],
        labels.tolist(),
        test_animal_ids=animal_ids,
        seed=seed,
    )
    predictions = {"p_male": [round(p, 6) for p in p_male], "label": labels.tolist(), "animal_id": animal_ids}
    return {
        "net": net,
        "hog_svm": hog,
        "test_predictions": predictions,
        "face_sources": sorted(set(test_sources)),
        "rates_by_source": rates_by_source(p_male, labels.tolist(), animal_ids, test_sources),
    }


def error_rates(net_metrics: dict[str, Any]) -> dict[str, Any]:
    """Per-animal sensitivity (males called male) and specificity (females called female) among the held-out animals
    the abstain band decided, as the animals view counts them; None for a sex with no decided animal."""
    decided = [row for row in net_metrics["animals"] if row["decision"] != "unknown"]
    males = [row["decision"] == "male" for row in decided if row["label"] == 1]
    females = [row["decision"] == "female" for row in decided if row["label"] == 0]
    se, sp = wilson_interval(sum(males), len(males)), wilson_interval(sum(females), len(females))
    return {
        "sensitivity": se.estimate,
        "specificity": sp.estimate,
        "decided_males": len(males),
        "decided_females": len(females),
        "males_called_male": sum(males),
        "females_called_female": sum(females),
        "sensitivity_ci": [se.ci_low, se.ci_high] if se.n else None,
        "specificity_ci": [sp.ci_low, sp.ci_high] if sp.n else None,
        "level": "animal, decided by the abstain band",
        "interval": "Wilson 95%",
    }


def card_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """Card metrics: the net's per-image and per-animal figures on top (with the rates the gender ratio corrects
    for)."""
    net = metrics["net"]
    rates = {**error_rates(net), "face_sources": metrics.get("face_sources", [])}
    per_animal = {
        **net["per_animal"],
        **{k: v for k, v in rates.items() if k in ("sensitivity", "specificity") and v is not None},
    }
    return {"per_image": net["per_image"], "per_animal": per_animal, "rates": rates, **metrics}


def evaluation_splits(items: list[Item], config: GenderConfig, folds: int | None) -> list[tuple[list[str], list[str]]]:
    """The seed split, or k folds by animal stratified by sex."""
    if not folds:
        return [seed_split(items)]
    sexes = {animal_id: label for _, label, animal_id in items}
    if min(sum(v == s for v in sexes.values()) for s in (0, 1)) < folds:
        raise TrainingDataError(f"{folds}-fold evaluation needs at least {folds} labelled animals of each sex")
    return kfold_by_animal(sorted(sexes), folds, config.train.seed, sexes)


def summarise_splits(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Mean and standard deviation over splits of the headline metrics, for the net and the baseline."""
    keys = (
        ("per_image", "accuracy"),
        ("per_image", "roc_auc"),
        ("per_image", "f1"),
        ("per_image", "ece"),
        ("per_animal", "accuracy"),
        ("per_animal", "roc_auc"),
        ("per_animal", "coverage"),
        ("per_animal", "accuracy_decided"),
    )
    summary: dict[str, dict[str, Any]] = {}
    for model_key in ("net", "hog_svm"):
        for level, metric in keys:
            values = [r[model_key][level].get(metric) for r in results]
            values = [v for v in values if v is not None]
            summary.setdefault(model_key, {})[f"{level}.{metric}"] = (
                {"mean": float(np.mean(values)), "std": float(np.std(values)), "n": len(values)} if values else None
            )
    return summary
