"""What every training loop records per epoch (gender nets and CGANet alike)."""

from __future__ import annotations

from dataclasses import dataclass


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
