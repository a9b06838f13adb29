"""Training and evaluation of the identity net (pure): event-respecting animal splits, a pytorch-metric-learning margin
loss run through the shared epoch loop, and the card's open-set and closed-set metrics and thresholds.

Faces come from keeper photos (a gallery in real use) and camera-trap crops (the queries in real use). Splits are by
animal; a camera event (one camera, frames under 300 s apart) holding faces of animals on different sides goes whole
to the side that is evaluated (test before validation before training), and that event's faces of other animals are
left out, so no frame is on both sides.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn
from torchvision.transforms import v2

from models import training
from models.epochs import Validation, run_epochs, timed_epoch, training_pass
from models.gender import IMAGENET_MEAN, IMAGENET_STD, Arch
from models.gender_training import base_tensor, eval_logits, recompute_bn_statistics, training_memory_format
from models.identity import DEFAULT_EMBEDDING_DIM, IdentityNet, build_identity_net
from models.identity_metrics import (
    NEW,
    THRESHOLD_GRID,
    AnimalScores,
    animal_scores,
    balanced_accuracies,
    calls_at,
    camera_events,
    choose_cluster_threshold,
    later_events,
    open_set_report,
)
from models.training import EpochRecord, TrainingHistory

Source = Literal["keeper", "camera"]
Side = Literal["train", "validation", "test"]
SIDE_PRIORITY: tuple[Side, ...] = ("test", "validation", "train")
LATER_SHARE = 0.3  # closed set: the latest events holding this share of the faces are the queries
BASE_OVER_INPUT = 512 / 448  # faces kept at this multiple of the input size before the random crop (gender's rule)
EMBED_BATCH = 64


@dataclass(frozen=True)
class IdentityFace:
    """One labelled face: its pixels, animal, source (keeper photo or camera-trap crop), camera and time (epoch s)."""

    image: Image.Image
    animal_id: str
    source: Source
    camera: str
    time: float | None


@dataclass(frozen=True)
class IdentityTrainSettings:
    """The identity net's recipe: trunk, embedding size, optimiser, margin loss and augmentations."""

    arch: Arch = "mini_xception"
    input_size: int = 64
    embedding_dim: int = DEFAULT_EMBEDDING_DIM
    epochs: int = 45
    batch_size: int = 64
    lr: float = 0.005
    loss_lr: float = 0.01
    weight_decay: float = 1e-4
    loss: Literal["arcface", "subcenter_arcface", "triplet"] = "arcface"
    margin_deg: float = 11.5  # ArcFace's usual 28.6 degrees at scale 30-64 stayed at chance for 10 epochs from scratch
    scale: float = 16.0
    patience: int | None = None
    crop_scale: tuple[float, float] = (0.85, 1.0)  # square crops only: a head's aspect is one of its marks
    rotation_deg: float = 10.0
    translate: float = 0.05
    brightness: float = 0.35
    contrast: float = 0.35
    saturation: float = 0.3
    grayscale_p: float = 0.3  # camera traps shoot infrared (grey) at night; keeper photos are in colour
    blur_p: float = 0.3  # camera-trap faces are small and soft
    noise_sigma: float = 0.04
    erase_p: float = 0.2

    def base_size(self) -> int:
        """Side the faces are kept at before the random crop."""
        return round(self.input_size * BASE_OVER_INPUT)


def identity_transform(settings: IdentityTrainSettings) -> v2.Compose:
    """Augmentations of a uint8 3 x B x B face (no flips: a panda's left and right eye patches differ); returns the
    normalised float32 3 x S x S input."""
    return v2.Compose(
        [
            v2.RandomResizedCrop(settings.input_size, scale=settings.crop_scale, ratio=(1.0, 1.0), antialias=True),
            v2.RandomAffine(degrees=settings.rotation_deg, translate=(settings.translate, settings.translate)),
            v2.ColorJitter(settings.brightness, settings.contrast, settings.saturation, 0.02),
            v2.RandomGrayscale(settings.grayscale_p),
            v2.RandomApply([v2.GaussianBlur(5, sigma=(0.3, 1.5))], p=settings.blur_p),
            v2.ToDtype(torch.float32, scale=True),
            v2.GaussianNoise(sigma=settings.noise_sigma),
            v2.Normalize(list(IMAGENET_MEAN), list(IMAGENET_STD)),
            v2.RandomErasing(settings.erase_p),
        ]
    )


# ---------------------------------------------------------------- splits


def face_events(faces: Sequence[IdentityFace]) -> list[str]:
    """Each face's camera event (same camera, under 300 s apart)."""
    return camera_events([f.camera for f in faces], [f.time for f in faces])


def animal_sides(animal_ids: Sequence[str], validation_share: float, test_share: float, seed: int) -> dict[str, Side]:
    """Animals shuffled with the seed and dealt to test, validation and training by share (at least two animals on each
    evaluated side with a positive share, when there are enough)."""
    animals = sorted(set(animal_ids))
    order = [animals[i] for i in np.random.default_rng(seed).permutation(len(animals))]
    n_test = max(2, round(test_share * len(animals))) if test_share > 0 else 0
    n_val = max(2, round(validation_share * len(animals))) if validation_share > 0 else 0
    if n_test + n_val > len(animals) - 2:
        raise ValueError(f"{len(animals)} animals are too few to hold out {n_test} test and {n_val} validation animals")
    return {
        animal: "test" if i < n_test else "validation" if i < n_test + n_val else "train"
        for i, animal in enumerate(order)
    }


def event_respecting_sides(
    animal_ids: Sequence[str], events: Sequence[str], sides: Mapping[str, Side]
) -> list[Side | None]:
    """Each face's side: its animal's, unless its event holds a face of an animal on a side evaluated before (test,
    then validation, then training): then None (left out), so every event lies on one side only."""
    event_side: dict[str, Side] = {}
    for animal, event in zip(animal_ids, events):
        side = sides[animal]
        if event not in event_side or SIDE_PRIORITY.index(side) < SIDE_PRIORITY.index(event_side[event]):
            event_side[event] = side
    return [sides[a] if event_side[e] == sides[a] else None for a, e in zip(animal_ids, events)]


def query_roles(faces: Sequence[IdentityFace], events: Sequence[str]) -> list[bool]:
    """Which faces are queries (True) and which the gallery: camera-trap crops against keeper photos when both occur,
    else the latest events (about LATER_SHARE of the faces) against the earlier ones."""
    sources = {f.source for f in faces}
    if sources == {"keeper", "camera"}:
        return [f.source == "camera" for f in faces]
    return later_events(events, [f.time for f in faces], LATER_SHARE)


# ---------------------------------------------------------------- training


def margin_loss(settings: IdentityTrainSettings, n_classes: int) -> nn.Module:
    """The pytorch-metric-learning loss the recipe names (ArcFace and its sub-centre variant carry class centres)."""
    from pytorch_metric_learning import losses

    if settings.loss == "arcface":
        return losses.ArcFaceLoss(n_classes, settings.embedding_dim, margin=settings.margin_deg, scale=settings.scale)
    if settings.loss == "subcenter_arcface":
        return losses.SubCenterArcFaceLoss(
            n_classes, settings.embedding_dim, margin=settings.margin_deg, scale=settings.scale
        )
    return losses.TripletMarginLoss(margin=0.2)


def margin_step(
    model: IdentityNet, loss: nn.Module, bases: list[Tensor], labels: Tensor, augment: v2.Compose
) -> Callable[[Tensor], tuple[Tensor, int]]:
    """A training batch step: fresh augmentations, the margin loss (triplets mined in the batch for the triplet loss)
    and the number of faces whose nearest class centre is their own (0 without centres)."""
    from pytorch_metric_learning import miners

    fmt = training_memory_format(model)
    miner = miners.TripletMarginMiner(margin=0.2, type_of_triplets="semihard") if not hasattr(loss, "W") else None

    def step(index: Tensor) -> tuple[Tensor, int]:
        """Loss and number correct of one augmented batch."""
        with torch.autocast("cpu", enabled=False):
            x = torch.stack([augment(bases[i]) for i in index.tolist()]).contiguous(memory_format=fmt)
        embeddings, y = model(x).float(), labels[index]
        if miner is not None:
            return loss(embeddings, y, miner(embeddings, y)), 0
        correct = int((loss.get_logits(embeddings.detach()).argmax(1) == y).sum())
        return loss(embeddings, y), correct

    return step


def embed_faces(model: nn.Module, faces: Sequence[IdentityFace], size: int) -> np.ndarray:
    """Eval-mode unit-length embeddings of faces resized as the nightly stage resizes crops (float32 N x D)."""
    if not faces:
        return np.zeros((0, getattr(model, "embedding_dim", 0)), np.float32)
    images = torch.stack([base_tensor(face.image, size) for face in faces])
    return eval_logits(model, images, EMBED_BATCH).numpy().astype(np.float32)


def retrieval_validation(model: nn.Module, faces: Sequence[IdentityFace], size: int) -> Validation:
    """Validation of one epoch on held-out animals: loss 1 - mAP and accuracy top-1 of their queries against their
    gallery (None without both)."""
    if not faces:
        return Validation(None, None)
    embeddings = embed_faces(model, faces, size)
    queries = np.asarray(query_roles(faces, face_events(faces)))
    ids = np.asarray([f.animal_id for f in faces])
    if queries.all() or not queries.any():
        return Validation(None, None)
    report = open_set_report(embeddings[queries] @ embeddings[~queries].T, ids[queries], ids[~queries], 1.0)
    if report["top1"] is None or report["map"] is None:
        return Validation(None, None)
    return Validation(1.0 - report["map"], report["top1"])


def train_identity_net(
    train_faces: Sequence[IdentityFace],
    val_faces: Sequence[IdentityFace],
    settings: IdentityTrainSettings,
    seed: int,
    progress: Callable[[EpochRecord], None] | None = None,
) -> tuple[IdentityNet, TrainingHistory]:
    """Train with the margin loss on the training animals, deterministically on CPU for a given seed; the weights of
    the epoch with the best validation top-1 (then mAP)."""
    animals = sorted({f.animal_id for f in train_faces})
    if len(animals) < 2:
        raise ValueError("identity training needs faces of at least two animals")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_identity_net(settings.arch, settings.input_size, settings.embedding_dim)
        model = model.to(memory_format=training_memory_format(model))
        loss = margin_loss(settings, len(animals))
        bases = [base_tensor(f.image, settings.base_size()) for f in train_faces]
        plain = torch.stack([base_tensor(f.image, settings.input_size) for f in train_faces])
        labels = torch.tensor([animals.index(f.animal_id) for f in train_faces])
        groups = [{"params": model.parameters(), "lr": settings.lr}]
        if any(True for _ in loss.parameters()):
            groups.append({"params": loss.parameters(), "lr": settings.loss_lr})
        optimiser = torch.optim.AdamW(groups, weight_decay=settings.weight_decay)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, settings.epochs)
        step = margin_step(model, loss, bases, labels, identity_transform(settings))
        generator, history = torch.Generator().manual_seed(seed), TrainingHistory()

        def one_epoch(epoch: int) -> EpochRecord:
            """Train one pass, recompute BatchNorm statistics on the plain faces, validate on held-out animals."""

            def train() -> tuple[float, float]:
                result = training_pass(model, len(train_faces), settings.batch_size, step, optimiser, generator)
                recompute_bn_statistics(model, plain)
                schedule.step()
                return result

            return timed_epoch(
                epoch, optimiser, train, lambda: retrieval_validation(model, val_faces, settings.input_size)
            )

        best = run_epochs(model, settings.epochs, one_epoch, "val_accuracy", history, progress, settings.patience)
        model.load_state_dict(best)
    return model.eval(), history


# ---------------------------------------------------------------- thresholds and metrics


def halves(animal_ids: Sequence[str]) -> tuple[list[str], list[str]]:
    """The animals sorted and dealt alternately into two halves (known, new)."""
    animals = sorted(set(animal_ids))
    return animals[0::2], animals[1::2]


@dataclass(frozen=True)
class OpenSetCase:
    """Queries against a gallery from which some animals are held out: their scores, true animals and which are
    known."""

    scores: AnimalScores
    truth: list[str]
    known: list[bool]
    similarity: np.ndarray
    gallery_ids: list[str]


def open_set_cases(embeddings: np.ndarray, faces: Sequence[IdentityFace]) -> list[OpenSetCase]:
    """The two open-set cases of a set of faces: each half of the animals in turn is known (its gallery faces kept)
    and the other new (its gallery faces dropped); queries are every query-role face."""
    events = face_events(faces)
    queries = np.asarray(query_roles(faces, events))
    ids = np.asarray([f.animal_id for f in faces])
    cases = []
    for known_half, _ in (halves(ids), halves(ids)[::-1]):
        gallery = ~queries & np.isin(ids, known_half)
        if not gallery.any() or not queries.any():
            continue
        similarity = embeddings[queries] @ embeddings[gallery].T
        cases.append(
            OpenSetCase(
                animal_scores(similarity, ids[gallery]),
                ids[queries].tolist(),
                np.isin(ids[queries], known_half).tolist(),
                similarity,
                ids[gallery].tolist(),
            )
        )
    return cases


def choose_threshold(cases: Sequence[OpenSetCase]) -> float:
    """The match threshold maximising the mean over cases of the geometric mean of BAKS and BAUS."""

    def mean_gm(threshold: float) -> float:
        """Mean geometric mean of BAKS and BAUS at a threshold."""
        values = [
            balanced_accuracies(
                calls_at(case.scores, threshold),
                [t if k else NEW for t, k in zip(case.truth, case.known)],
                case.known,
            )["geometric_mean"]
            or 0.0
            for case in cases
        ]
        return float(np.mean(values)) if values else 0.0

    scores = [mean_gm(t) for t in THRESHOLD_GRID]
    return float(THRESHOLD_GRID[int(np.argmax(scores))])


def thresholds(embeddings: np.ndarray, faces: Sequence[IdentityFace]) -> dict[str, float | None]:
    """match_threshold (open-set geometric mean of BAKS and BAUS, both halves of the animals in turn new) and
    cluster_threshold (balanced accuracy of same-animal calls on pairs of faces of different events)."""
    cases = open_set_cases(embeddings, faces)
    return {
        "match_threshold": choose_threshold(cases) if cases else None,
        "cluster_threshold": choose_cluster_threshold(embeddings, [f.animal_id for f in faces], face_events(faces)),
    }


def mean_reports(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Numeric fields averaged over reports (None where no report has the field)."""
    keys = reports[0].keys() if reports else []
    merged: dict[str, Any] = {}
    for key in keys:
        values = [r[key] for r in reports if r[key] is not None]
        merged[key] = float(np.mean(values)) if values else None
    return merged


def closed_set(embeddings: np.ndarray, faces: Sequence[IdentityFace], threshold: float) -> dict[str, Any]:
    """Closed set: the latest events are queries against a gallery of the earlier ones (every animal known), in all
    and split by the query's source (camera-trap crops, keeper photos)."""
    events = face_events(faces)
    later = np.asarray(later_events(events, [f.time for f in faces], LATER_SHARE))
    ids = np.asarray([f.animal_id for f in faces])
    sources = np.asarray([f.source for f in faces])
    queries = later & np.isin(ids, ids[~later])
    if not queries.any():
        return {}
    result = {"all": open_set_report(embeddings[queries] @ embeddings[~later].T, ids[queries], ids[~later], threshold)}
    for source in ("camera", "keeper"):
        chosen = queries & (sources == source)
        if chosen.any():
            similarity = embeddings[chosen] @ embeddings[~later].T
            result[f"{source}_queries"] = open_set_report(similarity, ids[chosen], ids[~later], threshold)
    return result


def camera_against_keepers(embeddings: np.ndarray, faces: Sequence[IdentityFace], threshold: float) -> dict[str, Any]:
    """The real use: every camera-trap face of an animal with keeper photos, against a gallery of all keeper photos."""
    ids = np.asarray([f.animal_id for f in faces])
    sources = np.asarray([f.source for f in faces])
    gallery = sources == "keeper"
    queries = (sources == "camera") & np.isin(ids, ids[gallery])
    if not queries.any():
        return {}
    return open_set_report(embeddings[queries] @ embeddings[gallery].T, ids[queries], ids[gallery], threshold)


def identity_metrics(embeddings: np.ndarray, faces: Sequence[IdentityFace], threshold: float) -> dict[str, Any]:
    """Open set (each half of the animals in turn held out of the gallery: mean of the two), closed set (later events
    against earlier ones) and camera-trap faces against keeper photos, at the given match threshold."""
    cases = open_set_cases(embeddings, faces)
    open_reports = [open_set_report(c.similarity, c.truth, c.gallery_ids, threshold) for c in cases]
    return {
        "n_faces": len(faces),
        "n_animals": len({f.animal_id for f in faces}),
        "n_camera_faces": sum(f.source == "camera" for f in faces),
        "n_events": len(set(face_events(faces))),
        "open_set": mean_reports(open_reports) if open_reports else {},
        "closed_set": closed_set(embeddings, faces, threshold),
        "camera_vs_keeper": camera_against_keepers(embeddings, faces, threshold),
    }


def identity_model_card(
    settings: IdentityTrainSettings,
    seed: int,
    fingerprint: str,
    split: Mapping[str, Sequence[str]],
    history: TrainingHistory,
    chosen: Mapping[str, float | None],
    metrics: Mapping[str, Any],
) -> dict[str, Any]:
    """The JSON model card stored next to the state dict: recipe, data fingerprint, split, epochs, thresholds and
    metrics."""
    return {
        "task": "identity",
        "arch": settings.arch,
        "input_size": settings.input_size,
        "embedding_dim": settings.embedding_dim,
        "loss": settings.loss,
        "settings": asdict(settings),
        "seed": seed,
        "data_fingerprint": fingerprint,
        "split": {name: list(ids) for name, ids in split.items()},
        "training": history.as_dict(),
        "match_threshold": chosen["match_threshold"],
        "cluster_threshold": chosen["cluster_threshold"],
        "thresholds_chosen_on": "validation animals",
        "metrics": dict(metrics),
    }


def data_fingerprint(faces: Sequence[IdentityFace]) -> str:
    """The toolkit's order-free fingerprint over every face's animal, source, camera, time and pixels."""
    return training.data_fingerprint(
        f"{f.animal_id}|{f.source}|{f.camera}|{f.time}|{f.image.size}|".encode() + f.image.tobytes() for f in faces
    )
