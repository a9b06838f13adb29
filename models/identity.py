"""The identity net (pure, no disk): a gender net's trunk, a linear projection and L2 normalisation, so faces of one
animal lie close on the unit sphere (cosine similarity = dot product).

The trunk is the same architecture as the gender nets (ResNet18's pooled 512-d backbone output, or mini-Xception's
last stage globally average-pooled) without their classifier head, so a trained identity trunk can initialise a gender
net of the same arch (seed 003's general-to-specific step). Inference runs in eval mode: a face's embedding never
depends on the other faces of its batch.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.execution import Way
from models.gender import Arch, ConvBnPair, GenderNet, build_gender_net, normalised_pixels, predict_logits

DEFAULT_EMBEDDING_DIM = 128
TRUNK_PREFIX = "trunk."
NON_WEIGHT_BUFFERS = ("temperature",)  # the gender net's calibration, not a trunk weight


class IdentityNet(nn.Module):
    """A gender net's trunk (its head removed), Linear(feature_dim, embedding_dim) and L2 normalisation."""

    def __init__(self, arch: Arch, input_size: int, embedding_dim: int = DEFAULT_EMBEDDING_DIM) -> None:
        """Build the trunk of the named architecture and the projection to `embedding_dim`."""
        super().__init__()
        if embedding_dim < 2:
            raise ValueError(f"embedding_dim must be at least 2, got {embedding_dim}")
        trunk = build_gender_net(arch, input_size)
        for name in trunk.head_names:
            delattr(trunk, name)
        self.trunk: GenderNet = trunk
        self.arch, self.input_size, self.embedding_dim = arch, int(input_size), int(embedding_dim)
        self.projection = nn.Linear(trunk.feature_dim, self.embedding_dim)

    def forward(self, x: Tensor) -> Tensor:
        """Unit-length N x embedding_dim embeddings of a batch of normalised N x 3 x H x W images."""
        return F.normalize(self.projection(self.trunk.features(x)).float(), dim=1)

    def blocks(self) -> list[nn.Module]:
        """The trunk's stages, stem first."""
        return self.trunk.blocks()

    def conv_bn_pairs(self) -> list[ConvBnPair]:
        """The trunk's convolution/BatchNorm pairs (models.gender.folded_copy folds them)."""
        return self.trunk.conv_bn_pairs()


def build_identity_net(arch: Arch, input_size: int, embedding_dim: int = DEFAULT_EMBEDDING_DIM) -> IdentityNet:
    """A freshly initialised identity net for square inputs of `input_size` pixels."""
    return IdentityNet(arch, input_size, embedding_dim)


def identity_net_from_state(
    state: Mapping[str, Tensor], arch: Arch, input_size: int, embedding_dim: int
) -> IdentityNet:
    """Rebuild a trained identity net (eval mode) from its state dict (loaded with weights_only=True), strictly."""
    with torch.device("meta"):
        model = build_identity_net(arch, input_size, embedding_dim)
    model.load_state_dict(dict(state), strict=True, assign=True)
    unset = [name for name, tensor in [*model.named_parameters(), *model.named_buffers()] if tensor.is_meta]
    if unset:
        raise ValueError(f"the {arch} identity state dict does not set {', '.join(unset)}")
    return model.eval()


def trunk_state(identity_state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The trunk's weights of an identity net's state dict, with the gender net's key names."""
    return {
        key.removeprefix(TRUNK_PREFIX): value
        for key, value in identity_state.items()
        if key.startswith(TRUNK_PREFIX) and key.removeprefix(TRUNK_PREFIX) not in NON_WEIGHT_BUFFERS
    }


def init_gender_from_identity(gender: GenderNet, identity_state: Mapping[str, Tensor], identity_arch: str) -> int:
    """Copy an identity net's trunk weights into a gender net of the same arch (its head and temperature untouched);
    the number of tensors copied, or ValueError when the arch or a shape differs."""
    if identity_arch != gender.arch:
        raise ValueError(f"an identity net of arch {identity_arch} cannot initialise a {gender.arch} gender net")
    trunk = trunk_state(identity_state)
    heads = tuple(f"{name}." for name in gender.head_names)
    expected = {
        key: value.shape
        for key, value in gender.state_dict().items()
        if not key.startswith(heads) and key not in NON_WEIGHT_BUFFERS
    }
    wrong = sorted(
        set(expected) ^ set(trunk) | {k for k in set(expected) & set(trunk) if trunk[k].shape != expected[k]}
    )
    if wrong:
        raise ValueError(
            f"the identity trunk does not fit this {gender.arch} gender net ({len(wrong)} keys differ, e.g. {wrong[0]})"
        )
    gender.load_state_dict(trunk, strict=False)
    return len(trunk)


def embed_pixels(model: nn.Module, pixels: Tensor, device: torch.device | str, way: Way) -> Tensor:
    """Unit-length float32 CPU embeddings of a batch of N x H x W x 3 uint8 RGB crops, normalised on the device as the
    gender stage does and run in the given way (precision, layout); re-normalised in float32 after reduced precision."""
    device = torch.device(device)
    batch = normalised_pixels(pixels.to(device, non_blocking=True))
    return F.normalize(predict_logits(model, batch, device, way.precision, way.layout), dim=1)
