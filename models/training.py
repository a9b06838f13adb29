"""The training toolkit every net shares (gender nets, CGANet, and the identity net next): the one decision rule,
binary metrics (scikit-learn), expected calibration error, temperature scaling, the best-epoch rule, the training
history and an order-free data fingerprint."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import expit
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

POSITIVE_AT = 0.5  # the one decision rule: positive (male, success) when P >= 0.5
ECE_BINS = 10
TEMPERATURE_BOUNDS = (0.01, 100.0)
SelectBy = Literal["val_loss", "val_accuracy"]


@dataclass(frozen=True)
class EpochRecord:
    """One epoch: learning rate used, mean training loss and accuracy, validation loss and accuracy, seconds."""

    epoch: int
    lr: float
    train_loss: float
    train_accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    seconds: float


def positive(p: Sequence[float] | np.ndarray) -> np.ndarray:
    """The calls of probabilities under the one decision rule (1 positive, 0 negative)."""
    return (np.asarray(p, np.float64) >= POSITIVE_AT).astype(np.int64)


def expected_calibration_error(
    p: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray, n_bins: int = ECE_BINS
) -> float:
    """Top-label ECE: |accuracy - confidence| of each reliability bin weighted by its share of the items (0 without
    items)."""
    bins = reliability_bins(p, labels, n_bins)
    total = sum(b["n"] for b in bins)
    return float(sum(b["n"] / total * abs(b["accuracy"] - b["confidence"]) for b in bins)) if total else 0.0


def binary_metrics(
    p: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    predicted: Sequence[int] | np.ndarray | None = None,
) -> dict[str, Any]:
    """n, n_positive, accuracy, precision, recall, F1 (label 1 positive), confusion [[TN, FP], [FN, TP]], ROC AUC, ECE
    and Brier score (AUC and Brier None with one class); calls default to the one decision rule."""
    probabilities, truth = np.asarray(p, np.float64), np.asarray(labels, np.int64)
    if len(truth) == 0:
        return {
            "n": 0,
            "n_positive": 0,
            "accuracy": None,
            "precision": None,
            "recall": None,
            "f1": None,
            "confusion_matrix": None,
            "roc_auc": None,
            "ece": None,
            "brier": None,
        }
    calls = positive(probabilities) if predicted is None else np.asarray(predicted, np.int64)
    both = len(set(truth.tolist())) == 2
    return {
        "n": int(len(truth)),
        "n_positive": int(truth.sum()),
        "accuracy": float(accuracy_score(truth, calls)),
        "precision": float(precision_score(truth, calls, zero_division=0)),
        "recall": float(recall_score(truth, calls, zero_division=0)),
        "f1": float(f1_score(truth, calls, zero_division=0)),
        "confusion_matrix": confusion_matrix(truth, calls, labels=[0, 1]).tolist(),
        "roc_auc": float(roc_auc_score(truth, probabilities)) if both else None,
        "ece": expected_calibration_error(probabilities, truth),
        "brier": float(brier_score_loss(truth, probabilities, pos_label=1)) if both else None,
    }


def fit_temperature(margins: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray) -> float:
    """The temperature T in TEMPERATURE_BOUNDS minimising the NLL of sigmoid(margin / T), where a margin is a binary
    logit (a two-class net's logit difference, or logit(p)); 1.0 unless both labels occur (with one label the optimum
    only pushes every probability towards it, which is not calibration)."""
    z, y = np.asarray(margins, np.float64), np.asarray(labels, np.float64)
    if len(set(y.tolist())) < 2:
        return 1.0

    def nll(log_t: float) -> float:
        """Mean binary cross-entropy at temperature exp(log_t)."""
        q = np.clip(expit(z / math.exp(log_t)), 1e-12, 1 - 1e-12)
        return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))

    low, high = TEMPERATURE_BOUNDS
    result = minimize_scalar(nll, bounds=(math.log(low), math.log(high)), method="bounded")
    return float(math.exp(result.x))


def is_better(record: EpochRecord, best: EpochRecord | None, select_by: SelectBy) -> bool:
    """Whether an epoch's weights beat the best so far: lower validation loss, or (select_by val_accuracy) higher
    validation accuracy and then lower loss; without validation every epoch is better than the last."""
    if best is None or record.val_loss is None or best.val_loss is None:
        return True
    if select_by == "val_accuracy" and record.val_accuracy != best.val_accuracy:
        return record.val_accuracy > best.val_accuracy
    return record.val_loss < best.val_loss


@dataclass
class TrainingHistory:
    """Every epoch's record, the epoch whose weights were kept, whether training stopped early, the calibration
    temperature fitted with the kept weights (1.0 without validation) and the parameters left frozen."""

    epochs: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    temperature: float = 1.0
    frozen: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for the model card."""
        return {
            "epochs": [asdict(e) for e in self.epochs],
            "best_epoch": self.best_epoch,
            "stopped_early": self.stopped_early,
            "temperature": self.temperature,
            "n_frozen": len(self.frozen),
        }

    def seconds_per_epoch(self) -> float:
        """Mean wall time of an epoch (training pass plus validation)."""
        return float(np.mean([e.seconds for e in self.epochs])) if self.epochs else 0.0


def data_fingerprint(items: Iterable[bytes]) -> str:
    """SHA-256 over every training item's bytes (its label and group id included by the caller), independent of the
    items' order."""
    digests = sorted(hashlib.sha256(item).hexdigest() for item in items)
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()


ECE_TARGET = 0.05  # what a card's calibration aims for on held-out items
NOISE_DRAWS = 400  # simulated label sets when judging an ECE against sampling noise


def reliability_bins(
    p: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray, n_bins: int = ECE_BINS
) -> list[dict[str, float]]:
    """The reliability diagram of top-label confidence: per non-empty bin its range, count, mean confidence and
    accuracy (the points ECE weighs)."""
    probabilities, truth = np.asarray(p, np.float64), np.asarray(labels, np.int64)
    confidence = np.maximum(probabilities, 1 - probabilities)
    correct = (positive(probabilities) == truth).astype(np.float64)
    bins = np.minimum(((confidence - 0.5) * 2 * n_bins).astype(np.int64), n_bins - 1)
    return [
        {
            "low": 0.5 + b / (2 * n_bins),
            "high": 0.5 + (b + 1) / (2 * n_bins),
            "n": int((bins == b).sum()),
            "confidence": float(confidence[bins == b].mean()),
            "accuracy": float(correct[bins == b].mean()),
        }
        for b in np.unique(bins)
    ]


def calibrated_noise_ece(p: Sequence[float] | np.ndarray, groups: Sequence[str] | None = None, seed: int = 0) -> float:
    """The 95th percentile of the ECE a perfectly calibrated model shows on these probabilities (labels drawn from
    them, with one draw per group when items come in groups, such as the faces of one animal, which share its sex):
    what sampling alone produces on this many items."""
    probabilities = np.asarray(p, np.float64)
    if len(probabilities) == 0:
        return 0.0
    keys = list(groups) if groups is not None else list(range(len(probabilities)))
    index = np.unique(keys, return_inverse=True)[1]
    rng = np.random.default_rng(seed)
    draws = [
        expected_calibration_error(probabilities, rng.random(index.max() + 1)[index] < probabilities)
        for _ in range(NOISE_DRAWS)
    ]
    return float(np.quantile(draws, 0.95))


def calibration_report(
    p: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    temperature: float,
    unit: str,
    groups: Sequence[str] | None = None,
    group_unit: str = "groups",
) -> dict[str, Any]:
    """A card's calibration on held-out items: the temperature, ECE, the reliability bins, whether ECE meets
    ECE_TARGET and, when it does not, a sentence saying whether sampling noise on this few items (or groups of items)
    explains it."""
    ece = expected_calibration_error(p, labels)
    report: dict[str, Any] = {
        "method": "temperature",
        "temperature": temperature,
        "n": len(np.asarray(labels)),
        "ece": ece,
        "ece_target": ECE_TARGET,
        "meets_target": ece <= ECE_TARGET,
        "reliability": reliability_bins(p, labels),
    }
    if ece > ECE_TARGET:
        noise = calibrated_noise_ece(p, groups)
        report["noise_ece_95"] = noise
        if ece <= noise:
            report["note"] = (
                f"ECE {ece:.3f} on {len(report['reliability'])} bins of {report['n']} held-out {unit} is "
                f"above {ECE_TARGET} but within what a perfectly calibrated model shows on so few "
                f"(95th percentile {noise:.3f}): more held-out {group_unit if groups is not None else unit} are "
                "needed to judge it"
            )
        else:
            report["note"] = (
                f"ECE {ece:.3f} on {report['n']} held-out {unit} is above {ECE_TARGET} and above what "
                f"sampling alone gives on so few (95th percentile {noise:.3f}): the temperature fitted "
                f"on the validation {unit} does not carry to the test {unit}"
            )
    return report
