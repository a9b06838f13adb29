"""Fine-tuning facenet-pytorch's MTCNN (P-, R- and O-Net) on annotated face boxes, and detection metrics (pure, no
disk).

Training samples follow MTCNN's own recipe: square crops labelled by IoU with the true boxes (positive >= 0.65,
part 0.4-0.65, negative < 0.3), bounding-box regression targets as offsets relative to the crop side, and hard
negatives for the later stages from the proposals of the already fine-tuned earlier stages. Crops are prepared
exactly as `facenet_pytorch.models.utils.detect_face.detect_face` prepares them at inference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from facenet_pytorch import MTCNN
from facenet_pytorch.models.utils.detect_face import bbreg, generateBoundingBox, imresample, pad, rerec
from torch import nn
from torchvision.ops import nms

from models.faces import HUMAN_FACTOR, STAGES, DetectorSettings

STAGE_SIZES = {"pnet": 12, "rnet": 24, "onet": 48}
POSITIVE_IOU, PART_IOU, NEGATIVE_IOU = 0.65, 0.4, 0.3
NEGATIVE, POSITIVE, PART, IGNORED = 0, 1, -1, -2
PNET_CELL = 12  # P-Net's window in pixels of the scaled image (generateBoundingBox's cellsize)
EPS = 1e-7

Array = np.ndarray
StateDict = dict[str, torch.Tensor]


# ---------------------------------------------------------------- boxes and metrics


def box_iou(a: Array, b: Array) -> Array:
    """IoU of every box in a (N, 4) with every box in b (M, 4); boxes are (x1, y1, x2, y2), areas without +1."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    left = np.maximum(a[:, None, 0], b[None, :, 0])
    top = np.maximum(a[:, None, 1], b[None, :, 1])
    right = np.minimum(a[:, None, 2], b[None, :, 2])
    bottom = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def xywh_to_xyxy(boxes: Array) -> Array:
    """(x, y, w, h) boxes as (x1, y1, x2, y2)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)


@dataclass(frozen=True)
class MatchResult:
    """Detections of one image matched to its true boxes: counts and the IoU of every match."""

    tp: int
    fp: int
    fn: int
    ious: tuple[float, ...]


@dataclass(frozen=True)
class DetectionMetrics:
    """Recall, precision and mean IoU of matches over a labelled set (1.0 for an empty denominator)."""

    recall: float
    precision: float
    mean_iou: float
    iou_threshold: float
    tp: int
    fp: int
    fn: int
    n_images: int
    n_faces: int


def match_detections(
    pred_boxes: Array, true_boxes: Array, iou: float = 0.5, scores: Array | None = None
) -> MatchResult:
    """Greedy matching, best score first: each detection takes the free true box it overlaps most, if IoU >= iou."""
    preds = np.asarray(pred_boxes, np.float64).reshape(-1, 4)
    truths = np.asarray(true_boxes, np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores), kind="stable") if scores is not None else np.arange(len(preds))
    overlaps = box_iou(preds, truths)
    free = np.ones(len(truths), bool)
    ious: list[float] = []
    for i in order:
        candidates = np.where(free, overlaps[i], -1.0)
        if len(truths) and candidates.max() >= iou:
            best = int(candidates.argmax())
            free[best] = False
            ious.append(float(overlaps[i, best]))
    return MatchResult(tp=len(ious), fp=len(preds) - len(ious), fn=len(truths) - len(ious), ious=tuple(ious))


def detection_metrics(matches: Sequence[MatchResult], iou: float = 0.5) -> DetectionMetrics:
    """Pool per-image matches into recall, precision and the mean IoU of the matched detections."""
    tp, fp, fn = (sum(getattr(m, k) for m in matches) for k in ("tp", "fp", "fn"))
    ious = [v for m in matches for v in m.ious]
    return DetectionMetrics(
        recall=tp / (tp + fn) if tp + fn else 1.0,
        precision=tp / (tp + fp) if tp + fp else 1.0,
        mean_iou=float(np.mean(ious)) if ious else 0.0,
        iou_threshold=iou,
        tp=tp,
        fp=fp,
        fn=fn,
        n_images=len(matches),
        n_faces=tp + fn,
    )


def metrics_dict(metrics: DetectionMetrics) -> dict[str, Any]:
    """Metrics as JSON-ready values, ratios rounded to 4 places."""
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in vars(metrics).items()}


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class TrainingSettings:
    """How the three stages are fine-tuned, and the detector settings stored in the model card."""

    epochs: tuple[int, int, int] = (6, 6, 10)  # per stage: P-, R-, O-Net
    lr: float = 1e-3  # Adam
    batch_size: int = 128
    crops_per_face: int = 36  # jittered windows around each true box (positives and parts)
    near_negatives_per_face: int = 6  # windows next to each face, kept when IoU < 0.3
    negatives_per_image: int = 48  # random windows, kept when IoU < 0.3
    hard_negatives_per_image: int = 48  # best-scoring false proposals of the earlier stages (R- and O-Net)
    ratio: tuple[int, int, int] = (3, 1, 1)  # negatives : positives : parts per epoch
    box_weight: tuple[float, float, float] = (0.5, 0.5, 2.0)  # box MSE weight beside the face NLL, per stage
    hard_fraction: float = 0.7  # share of hardest classification losses kept per batch (MTCNN's OHEM)
    flip: bool = True  # mirror half of the generated windows
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.8)  # stored in the card, also used for mining
    min_face_size: int = 40  # sample-drop faces are >= 43 px; also the smallest training window
    factor: float = HUMAN_FACTOR

    def detector(self) -> DetectorSettings:
        """The inference settings the fine-tuned detector runs with."""
        return DetectorSettings(self.thresholds, self.min_face_size, self.factor)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values for the model card."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingSettings:
        """The settings a model card stored with as_dict (lists back to tuples)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


# ---------------------------------------------------------------- geometry of crops and regression targets


def reference_boxes(windows: Array, stage: str) -> Array:
    """The box numbers the detector attaches to a crop window [x0, x1) x [y0, y1) of a stage.

    P-Net (generateBoundingBox): the cell of scale s over window side S = 12 / s gets ((2b + 1) / s, (2b + 12) / s),
    i.e. (x0 + S / 12, x1). R- and O-Net (pad): a box (b1, b2, b3, b4) is cropped as pixels [b1 - 1, b3), so a
    window [x0, x1) is the box (x0 + 1, x1).
    """
    w = np.asarray(windows, np.float64).reshape(-1, 4)
    if stage == "pnet":
        side = w[:, 2:] - w[:, :2]
        return np.concatenate([w[:, :2] + side / PNET_CELL, w[:, 2:]], axis=1)
    return np.concatenate([w[:, :2] + 1.0, w[:, 2:]], axis=1)


def regression_scale(refs: Array, stage: str) -> Array:
    """The width and height offsets are multiplied by: x2 - x1 in generateBoundingBox's path, x2 - x1 + 1 in bbreg."""
    refs = np.asarray(refs, np.float64).reshape(-1, 4)
    plus = 0.0 if stage == "pnet" else 1.0
    return np.stack([refs[:, 2] - refs[:, 0] + plus, refs[:, 3] - refs[:, 1] + plus], axis=1)


def regression_targets(refs: Array, truths: Array, stage: str) -> Array:
    """Offsets (dx1, dy1, dx2, dy2) that move reference boxes onto true (x1, y1, x2, y2) boxes, per unit of side."""
    refs = np.asarray(refs, np.float64).reshape(-1, 4)
    wh = regression_scale(refs, stage)
    return (np.asarray(truths, np.float64).reshape(-1, 4) - refs) / np.concatenate([wh, wh], axis=1)


def apply_regression(refs: Array, offsets: Array, stage: str) -> Array:
    """Boxes that the detector's regression step makes from reference boxes and predicted offsets."""
    refs = np.asarray(refs, np.float64).reshape(-1, 4)
    wh = regression_scale(refs, stage)
    return refs + np.asarray(offsets, np.float64).reshape(-1, 4) * np.concatenate([wh, wh], axis=1)


def mirror_boxes(boxes: Array, width: int) -> Array:
    """(x1, y1, x2, y2) boxes or [x0, x1) windows reflected left-right in an image `width` pixels wide."""
    b = np.asarray(boxes).reshape(-1, 4).copy()
    b[:, [0, 2]] = width - b[:, [2, 0]]
    return b


def label_for_iou(best_iou: Array) -> Array:
    """MTCNN's classes: positive (>= 0.65), part (0.4 to 0.65), negative (< 0.3), ignored in between."""
    best_iou = np.asarray(best_iou, np.float64)
    labels = np.full(best_iou.shape, IGNORED, np.int64)
    labels[best_iou < NEGATIVE_IOU] = NEGATIVE
    labels[(best_iou >= PART_IOU) & (best_iou < POSITIVE_IOU)] = PART
    labels[best_iou >= POSITIVE_IOU] = POSITIVE
    return labels


# ---------------------------------------------------------------- crops as detect_face prepares them


def image_tensor(rgb: Array) -> torch.Tensor:
    """An HxWx3 uint8 RGB array as the (1, 3, H, W) tensor detect_face builds (kept uint8 until cropped)."""
    return torch.from_numpy(np.array(rgb, dtype=np.uint8)).unsqueeze(0).permute(0, 3, 1, 2)


def normalise(data: torch.Tensor) -> torch.Tensor:
    """detect_face's input scaling."""
    return (data - 127.5) * 0.0078125


def crop_windows(image: torch.Tensor, windows: Array, size: int, flips: Array | None = None) -> torch.Tensor:
    """Crops of pixel windows [x0, x1) x [y0, y1), area-resampled to size x size and scaled as detect_face does."""
    crops = []
    for k, (x0, y0, x1, y1) in enumerate(np.asarray(windows, np.int64).reshape(-1, 4)):
        crop = imresample(image[:, :, y0:y1, x0:x1].float(), (size, size))
        crops.append(crop.flip(3) if flips is not None and flips[k] else crop)
    if not crops:
        return torch.zeros(0, 3, size, size)
    return normalise(torch.cat(crops, dim=0))


def proposal_windows(boxes: torch.Tensor, width: int, height: int) -> tuple[Array, Array]:
    """Pixel windows that detect_face crops for proposal boxes (via pad), and which of them are non-empty."""
    if len(boxes) == 0:
        return np.zeros((0, 4), np.int64), np.zeros(0, bool)
    y, ey, x, ex = pad(boxes.clone(), width, height)
    windows = np.stack([x - 1, y - 1, ex, ey], axis=1).astype(np.int64)
    return windows, (ey > y - 1) & (ex > x - 1)


# ---------------------------------------------------------------- the cascade's first stages, as detect_face runs them


def pyramid_scales(height: int, width: int, min_face_size: int, factor: float) -> list[float]:
    """detect_face's image pyramid."""
    scale, smallest, scales = 12.0 / min_face_size, min(height, width) * 12.0 / min_face_size, []
    while smallest >= 12:
        scales.append(scale)
        scale, smallest = scale * factor, smallest * factor
    return scales


@torch.no_grad()
def pnet_proposals(pnet: nn.Module, image: torch.Tensor, settings: DetectorSettings) -> torch.Tensor:
    """detect_face's first stage on one image: (K, 5) boxes (x1, y1, x2, y2, score) after NMS, regression, squaring."""
    height, width = image.shape[2:4]
    found = []
    for scale in pyramid_scales(height, width, settings.min_face_size, settings.factor):
        data = normalise(imresample(image.float(), (int(height * scale + 1), int(width * scale + 1))))
        reg, probs = pnet(data)
        boxes, _ = generateBoundingBox(reg, probs[:, 1], scale, settings.thresholds[0])
        found.append(boxes[nms(boxes[:, :4], boxes[:, 4], 0.5)])
    boxes = torch.cat(found, dim=0) if found else torch.zeros(0, 9)
    boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7)]
    regw, regh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    scale = torch.stack([regw, regh, regw, regh], dim=1)
    return rerec(torch.cat([boxes[:, :4] + boxes[:, 5:9] * scale, boxes[:, 4:5]], dim=1))


def stage_outputs(net: nn.Module, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Box offsets (N, 4) and face probabilities (N, 2) of any stage (O-Net's landmarks are dropped)."""
    out = net(crops)
    reg, probs = out[0], out[-1]
    return reg.reshape(len(crops), 4), probs.reshape(len(crops), 2)


@torch.no_grad()
def rnet_proposals(rnet: nn.Module, image: torch.Tensor, boxes: torch.Tensor, threshold: float) -> torch.Tensor:
    """detect_face's second stage on one image's first-stage boxes: (K, 5) boxes after NMS, regression, squaring."""
    windows, valid = proposal_windows(boxes, image.shape[3], image.shape[2])
    boxes = boxes[torch.as_tensor(valid)]
    if len(boxes) == 0:
        return torch.zeros(0, 5)
    reg, probs = stage_outputs(rnet, crop_windows(image, windows[valid], STAGE_SIZES["rnet"]))
    keep = probs[:, 1] > threshold
    boxes = torch.cat([boxes[keep, :4], probs[keep, 1:2]], dim=1)
    reg = reg[keep]
    pick = nms(boxes[:, :4], boxes[:, 4], 0.7)
    return rerec(bbreg(boxes[pick], reg[pick]))


# ---------------------------------------------------------------- training samples (MTCNN's recipe)


@dataclass(frozen=True)
class StageSamples:
    """Prepared crops of one stage with their classes (1, 0, -1 for part) and regression targets."""

    crops: torch.Tensor
    labels: torch.Tensor
    targets: torch.Tensor

    def counts(self) -> dict[str, int]:
        """How many positives, parts and negatives the samples hold."""
        return {
            name: int((self.labels == value).sum())
            for name, value in (("positives", POSITIVE), ("parts", PART), ("negatives", NEGATIVE))
        }


def concat_samples(parts: Sequence[StageSamples], size: int) -> StageSamples:
    """One sample set from many (an empty set when there are none)."""
    if not parts:
        return StageSamples(torch.zeros(0, 3, size, size), torch.zeros(0, dtype=torch.long), torch.zeros(0, 4))
    return StageSamples(*(torch.cat([getattr(p, k) for p in parts]) for k in ("crops", "labels", "targets")))


def random_windows(rng: np.random.Generator, width: int, height: int, n: int, min_side: int) -> Array:
    """n square windows inside the image, sides log-uniform from min_side to half the shorter image side."""
    top = max(min(width, height) // 2, min_side + 1)
    sides = np.exp(rng.uniform(math.log(min_side), math.log(top), n)).astype(np.int64)
    x0 = (rng.uniform(0, 1, n) * (width - sides + 1)).astype(np.int64)
    y0 = (rng.uniform(0, 1, n) * (height - sides + 1)).astype(np.int64)
    return np.stack([x0, y0, x0 + sides, y0 + sides], axis=1)


def jittered_windows(rng: np.random.Generator, truths: Array, n_per_face: int) -> Array:
    """Square windows around each true box: side 0.8 min to 1.25 max of its sides, centre moved up to 0.2 of them."""
    found = []
    for x1, y1, x2, y2 in np.asarray(truths, np.float64).reshape(-1, 4):
        w, h = x2 - x1, y2 - y1
        sides = rng.uniform(0.8 * min(w, h), 1.25 * max(w, h), n_per_face)
        cx = (x1 + x2) / 2 + rng.uniform(-0.2, 0.2, n_per_face) * w
        cy = (y1 + y2) / 2 + rng.uniform(-0.2, 0.2, n_per_face) * h
        found.append(np.stack([cx - sides / 2, cy - sides / 2, cx + sides / 2, cy + sides / 2], axis=1))
    return np.round(np.concatenate(found)).astype(np.int64) if found else np.zeros((0, 4), np.int64)


def near_windows(rng: np.random.Generator, truths: Array, n_per_face: int, min_side: int) -> Array:
    """Windows overlapping each face's neighbourhood (MTCNN's negatives next to faces)."""
    found = []
    for x1, y1, x2, y2 in np.asarray(truths, np.float64).reshape(-1, 4):
        w, h = x2 - x1, y2 - y1
        sides = rng.uniform(min_side, max(min_side + 1, 1.5 * max(w, h)), n_per_face)
        left = x1 + rng.uniform(-1, 1, n_per_face) * sides
        top = y1 + rng.uniform(-1, 1, n_per_face) * sides
        found.append(np.stack([left, top, left + sides, top + sides], axis=1))
    return np.round(np.concatenate(found)).astype(np.int64) if found else np.zeros((0, 4), np.int64)


def inside(windows: Array, width: int, height: int) -> Array:
    """Which windows lie wholly inside the image and are at least 2 pixels wide."""
    w = np.asarray(windows).reshape(-1, 4)
    return (w[:, 0] >= 0) & (w[:, 1] >= 0) & (w[:, 2] <= width) & (w[:, 3] <= height) & (w[:, 2] - w[:, 0] >= 2)


def best_truths(windows: Array, truths: Array) -> tuple[Array, Array]:
    """For each window: the largest IoU with any true box, and that box (zeros when the image has none)."""
    truths = np.asarray(truths, np.float64).reshape(-1, 4)
    if len(truths) == 0:
        return np.zeros(len(windows)), np.zeros((len(windows), 4))
    overlaps = box_iou(windows, truths)
    best = overlaps.argmax(axis=1)
    return overlaps[np.arange(len(windows)), best], truths[best]


def labelled_samples(
    image: torch.Tensor, windows: Array, refs: Array, truths: Array, stage: str, flips: Array
) -> StageSamples:
    """Crop, label by IoU and attach regression targets; flipped windows are mirrored with their boxes."""
    width = image.shape[3]
    best_iou, matched = best_truths(windows, truths)
    labels = label_for_iou(best_iou)
    keep = labels != IGNORED
    matched = np.where(flips[:, None], mirror_boxes(matched, width), matched)
    targets = np.where((labels != NEGATIVE)[:, None], regression_targets(refs, matched, stage), 0.0)
    crops = crop_windows(image, windows[keep], STAGE_SIZES[stage], flips[keep])
    return StageSamples(crops, torch.as_tensor(labels[keep]), torch.as_tensor(targets[keep], dtype=torch.float32))


def generated_samples(
    rng: np.random.Generator, image: torch.Tensor, truths: Array, stage: str, settings: TrainingSettings
) -> StageSamples:
    """Random, near-face and jittered-face windows of one image, half of them mirrored when flipping is on."""
    height, width = image.shape[2:4]
    windows = np.concatenate(
        [
            random_windows(rng, width, height, settings.negatives_per_image, settings.min_face_size),
            near_windows(rng, truths, settings.near_negatives_per_face, settings.min_face_size),
            jittered_windows(rng, truths, settings.crops_per_face),
        ]
    )
    windows = windows[inside(windows, width, height)]
    flips = rng.random(len(windows)) < 0.5 if settings.flip else np.zeros(len(windows), bool)
    frame = np.where(flips[:, None], mirror_boxes(windows, width), windows)
    return labelled_samples(image, windows, reference_boxes(frame, stage), truths, stage, flips)


def mined_samples(
    image: torch.Tensor, truths: Array, proposals: torch.Tensor, stage: str, settings: TrainingSettings
) -> StageSamples:
    """The earlier stages' proposals on one image, labelled by IoU; the best-scoring false ones kept as negatives."""
    windows, valid = proposal_windows(proposals, image.shape[3], image.shape[2])
    refs, scores = proposals[:, :4].numpy()[valid], proposals[:, 4].numpy()[valid]
    windows = windows[valid]
    best_iou, _ = best_truths(windows, truths)
    negatives = np.flatnonzero(best_iou < NEGATIVE_IOU)
    hardest = negatives[np.argsort(-scores[negatives], kind="stable")[: settings.hard_negatives_per_image]]
    keep = np.sort(np.concatenate([np.flatnonzero(best_iou >= NEGATIVE_IOU), hardest]))
    return labelled_samples(image, windows[keep], refs[keep], truths, stage, np.zeros(len(keep), bool))


def cascade_proposals(
    nets: dict[str, nn.Module], image: torch.Tensor, stage: str, detector: DetectorSettings
) -> torch.Tensor:
    """What the stages before `stage` pass on for one image at inference (none before P-Net)."""
    if stage == "pnet":
        return torch.zeros(0, 5)
    boxes = pnet_proposals(nets["pnet"], image, detector)
    if stage == "onet" and len(boxes):
        boxes = rnet_proposals(nets["rnet"], image, boxes, detector.thresholds[1])
    return boxes


def stage_samples(
    rng: np.random.Generator,
    nets: dict[str, nn.Module],
    images: Sequence[torch.Tensor],
    truths: Sequence[Array],
    stage: str,
    settings: TrainingSettings,
) -> tuple[StageSamples, int]:
    """All training samples of one stage, and how many of them are hard negatives from the earlier stages."""
    parts, hard = [], 0
    for image, boxes in zip(images, truths):
        parts.append(generated_samples(rng, image, boxes, stage, settings))
        proposals = cascade_proposals(nets, image, stage, settings.detector())
        if len(proposals):
            mined = mined_samples(image, boxes, proposals, stage, settings)
            hard += int((mined.labels == NEGATIVE).sum())
            parts.append(mined)
    return concat_samples(parts, STAGE_SIZES[stage]), hard


# ---------------------------------------------------------------- training


def trainable_parameters(net: nn.Module, stage: str) -> list[nn.Parameter]:
    """Every parameter except O-Net's landmark head, which stays frozen (there are no landmark labels)."""
    if stage == "onet":
        for parameter in net.dense6_3.parameters():
            parameter.requires_grad_(False)
    return [p for p in net.parameters() if p.requires_grad]


def epoch_indices(labels: torch.Tensor, ratio: tuple[int, int, int], generator: torch.Generator) -> torch.Tensor:
    """Shuffled sample indices of one epoch: all positives, parts and negatives subsampled to neg:pos:part."""
    chosen = []
    n_pos = int((labels == POSITIVE).sum())
    for value, share in ((NEGATIVE, ratio[0]), (POSITIVE, ratio[1]), (PART, ratio[2])):
        pool = torch.nonzero(labels == value).flatten()
        limit = len(pool) if value == POSITIVE else min(len(pool), max(n_pos, 1) * share // max(ratio[1], 1))
        chosen.append(pool[torch.randperm(len(pool), generator=generator)[:limit]])
    order = torch.cat(chosen)
    return order[torch.randperm(len(order), generator=generator)]


def stage_loss(net: nn.Module, batch: StageSamples, box_weight: float, hard_fraction: float) -> torch.Tensor:
    """Face/non-face NLL on positives and negatives (hardest share kept) plus weighted box MSE on positives and
    parts."""
    reg, probs = stage_outputs(net, batch.crops)
    scored = batch.labels >= 0
    loss = reg.sum() * 0.0
    if scored.any():
        nll = -torch.log(probs[scored].clamp(EPS, 1.0)).gather(1, batch.labels[scored].unsqueeze(1)).squeeze(1)
        loss = loss + torch.topk(nll, max(1, math.ceil(hard_fraction * len(nll)))).values.mean()
    boxed = batch.labels != NEGATIVE
    if boxed.any():
        loss = loss + box_weight * nn.functional.mse_loss(reg[boxed], batch.targets[boxed])
    return loss


def train_stage(
    net: nn.Module, samples: StageSamples, stage: str, settings: TrainingSettings, generator: torch.Generator
) -> list[float]:
    """Fine-tune one stage in place with Adam; the mean loss of every epoch."""
    index = STAGES.index(stage)
    optimiser = torch.optim.Adam(trainable_parameters(net, stage), lr=settings.lr)
    losses = []
    for _ in range(settings.epochs[index]):
        total, count = 0.0, 0
        for batch in epoch_indices(samples.labels, settings.ratio, generator).split(settings.batch_size):
            loss = stage_loss(
                net,
                StageSamples(samples.crops[batch], samples.labels[batch], samples.targets[batch]),
                settings.box_weight[index],
                settings.hard_fraction,
            )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total, count = total + float(loss.detach()) * len(batch), count + len(batch)
        losses.append(total / max(count, 1))
    return losses


@dataclass(frozen=True)
class FineTuneResult:
    """Fine-tuned state dicts of the three stages and, per stage, sample counts and epoch losses."""

    states: dict[str, StateDict]
    report: dict[str, dict[str, Any]]


def human_nets() -> dict[str, nn.Module]:
    """Fresh P-, R- and O-Net with facenet-pytorch's packaged human weights, on the CPU."""
    mtcnn = MTCNN(device=torch.device("cpu"))
    return {stage: getattr(mtcnn, stage) for stage in STAGES}


def fine_tune_mtcnn(
    images: Sequence[Array], truths: Sequence[Array], settings: TrainingSettings, seed: int
) -> FineTuneResult:
    """Fine-tune P-, then R-, then O-Net from the human weights on HxWx3 uint8 images and their (x1, y1, x2, y2)
    faces."""
    if not any(len(np.asarray(t).reshape(-1, 4)) for t in truths):
        raise ValueError("no annotated face in the training images: a detector cannot be trained without faces")
    tensors = [image_tensor(image) for image in images]
    rng, generator = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    nets, report = human_nets(), {}
    for stage in STAGES:
        samples, hard = stage_samples(rng, nets, tensors, truths, stage, settings)
        losses = train_stage(nets[stage], samples, stage, settings, generator)
        report[stage] = {**samples.counts(), "hard_negatives": hard, "losses": [round(v, 5) for v in losses]}
    states = {stage: {k: v.detach().clone() for k, v in net.state_dict().items()} for stage, net in nets.items()}
    return FineTuneResult(states, report)
