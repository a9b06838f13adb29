"""CGANet (seed 002): convolution, bidirectional GRU and attention over the 86 MFCC frames of a 2 s segment.

Layout follows the seed (Sections 2.3-2.4): input F_in (B, 2, 86, 40), the two audio channels as input
planes; three identical [Conv2d 128 3x3 same, BatchNorm2d, ReLU]; max-pool over the coefficient axis only
(40 -> 20); dropout 0.3; reshape to F_conv (B, 86, 2560); two bidirectional GRU layers of 32 units whose
forward and backward outputs are summed (Eq. 1), the second fed the first's summed output, giving F_GRU
(B, 86, 32); attention alpha = phi(F_GRU) (Eq. 2) and F_attn = alpha * F_GRU element-wise (Eq. 3); a softmax
over {success, failure} per frame, P (B, 86, 2); P_s and P_f summed over frames (Eq. 4); success iff P_s > P_f.

The seed's attention "consists of a fully-connected layer and a merge layer", gives "different weights to
different feature elements", keeps F_attn the size of F_GRU, and Fig. 3 plots "average weights of the 86
frames". That is the Keras attention block of its time (Permute, Dense(time_steps, softmax), Permute,
merge mode='mul'): phi is one Linear(86 -> 86) applied along the frame axis of each of the 32 features,
with a softmax over frames, so alpha is (B, 86, 32) and each feature's weights sum to 1 over the frames.
The per-frame attention reported for inspection is alpha averaged over the 32 features (sums to 1, as
plotted in Fig. 3). Conv layers keep their bias (Keras' default). With the default sizes the network has
816,636 trainable parameters.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

N_CHANNELS = 2
N_FRAMES = 86
N_COEFFS = 40
N_CLASSES = 2  # column 0 success, column 1 failure (seed Eq. 4)


class CGANetOutput(NamedTuple):
    """Frame probabilities (B, 86, 2), summed scores (B, 2), p_success (B,), attention (B, 86) and alpha."""

    frame_probs: torch.Tensor
    scores: torch.Tensor
    p_success: torch.Tensor
    attention: torch.Tensor
    alpha: torch.Tensor


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Conv2d 3x3 with same padding, BatchNorm2d, ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class SummedBiGRU(nn.Module):
    """One bidirectional GRU layer whose forward and backward outputs are added (seed Eq. 1)."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.gru = nn.GRU(input_size, hidden_size, batch_first=True, bidirectional=True)

    def forward(self, sequence: torch.Tensor) -> torch.Tensor:
        """(B, T, input) to (B, T, hidden), zero initial state."""
        output, _ = self.gru(sequence)
        return output[..., : self.hidden_size] + output[..., self.hidden_size :]


class FrameAttention(nn.Module):
    """alpha = softmax over frames of a Linear(T -> T) on each feature's time series; F_attn = alpha * F."""

    def __init__(self, n_frames: int) -> None:
        super().__init__()
        self.phi = nn.Linear(n_frames, n_frames)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, D) to (F_attn (B, T, D), alpha (B, T, D))."""
        alpha = torch.softmax(self.phi(features.transpose(1, 2)).float(), dim=-1).transpose(
            1, 2
        )  # float32 under autocast too
        return alpha * features, alpha


class CGANet(nn.Module):
    """Mating-success classifier on (B, 2, 86, 40) MFCCs; see the module docstring for the layout."""

    def __init__(
        self,
        filters: int = 128,
        hidden: int = 32,
        dropout: float = 0.3,
        n_frames: int = N_FRAMES,
        n_coeffs: int = N_COEFFS,
    ) -> None:
        super().__init__()
        self.input_shape = (N_CHANNELS, n_frames, n_coeffs)
        self.conv = nn.Sequential(
            conv_block(N_CHANNELS, filters), conv_block(filters, filters), conv_block(filters, filters)
        )
        self.pool = nn.MaxPool2d(kernel_size=(1, 2))
        self.dropout = nn.Dropout(dropout)
        self.gru1 = SummedBiGRU(filters * (n_coeffs // 2), hidden)
        self.gru2 = SummedBiGRU(hidden, hidden)
        self.attention = FrameAttention(n_frames)
        self.classifier = nn.Linear(hidden, N_CLASSES)

    def features(self, mfcc: torch.Tensor) -> torch.Tensor:
        """F_conv (B, 86, filters * 20): conv module, pool over coefficients, dropout, frame-major reshape."""
        if tuple(mfcc.shape[1:]) != self.input_shape:
            expected = ", ".join(map(str, self.input_shape))
            raise ValueError(f"expected input shaped (B, {expected}), got {tuple(mfcc.shape)}")
        maps = self.dropout(self.pool(self.conv(mfcc)))
        return maps.permute(0, 2, 1, 3).flatten(2)

    def forward(self, mfcc: torch.Tensor) -> CGANetOutput:
        """Per-frame success/failure probabilities, their sums over frames and the attention weights."""
        attended, alpha = self.attention(self.gru2(self.gru1(self.features(mfcc))))
        frame_probs = torch.softmax(self.classifier(attended).float(), dim=-1)  # the sums of Eq. 4 in float32
        scores = frame_probs.sum(dim=1)
        return CGANetOutput(
            frame_probs=frame_probs,
            scores=scores,
            p_success=scores[:, 0] / frame_probs.shape[1],
            attention=alpha.mean(dim=-1),
            alpha=alpha,
        )


def build_cganet(seed: int = 0, **sizes: int | float) -> CGANet:
    """A freshly initialised CGANet whose weights depend only on `seed` (the global RNG is left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CGANet(**sizes)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def predicted_success(output: CGANetOutput) -> torch.Tensor:
    """The seed's decision: success iff P_s > P_f (bool, (B,))."""
    return output.scores[:, 0] > output.scores[:, 1]


def segment_nll(output: CGANetOutput, success: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the frame-summed probabilities (normalised to 1) against labels (1 = success)."""
    p_label = torch.where(success.bool(), output.p_success, 1.0 - output.p_success)
    return -torch.log(p_label.clamp_min(1e-12)).mean()
