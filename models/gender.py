"""Giant-panda gender nets (pure, no disk): seed 000's ResNet18 + BN + L2 + bias-free FC, and seed 001's mini-Xception.

Both nets output two logits in the order (female, male) and carry a `temperature` buffer, fitted after training
(temperature scaling), that `calibrated_probs` and `predict_probs` divide the logits by. Inference runs in eval
mode, so every BatchNorm uses its running statistics and a face's probability never depends on the other faces
of its batch (the defect of seed 004's web service, whose net normalised with batch statistics at inference).
Nothing is downloaded: the ResNet18 backbone starts from random weights unless the caller passes a state dict.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torchvision.transforms.v2 import functional as TF

from models.execution import Layout, Precision
from models.precision import inference, memory_format
from models.training import POSITIVE_AT

Arch = Literal["resnet18", "mini_xception"]
ARCHS: tuple[str, ...] = ("resnet18", "mini_xception")
CLASSES = ("female", "male")  # logit order: label 0 is female, label 1 is male
SEED_INPUT_SIZE = 448  # seed 000: crops randomly resized and cropped to 448 x 448
EMBEDDING_DIM = 512
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MIN_INPUT_SIZE = 32
ConvBnPair = tuple[nn.Module, str, nn.Module, str]
RESNET_BLOCKS = (("conv1", "bn1"), ("layer1",), ("layer2",), ("layer3",), ("layer4",))


class GenderNet(nn.Module):
    """Base of the gender nets: architecture name, input size and a temperature buffer (1.0 until calibrated)."""

    arch: str

    def __init__(self, input_size: int) -> None:
        """Record the input size and register the temperature buffer (saved in the state dict)."""
        super().__init__()
        if input_size < MIN_INPUT_SIZE:
            raise ValueError(f"input size {input_size} is below the minimum of {MIN_INPUT_SIZE} pixels")
        self.input_size = int(input_size)
        self.register_buffer("temperature", torch.ones(()))

    head_names: tuple[str, ...] = ()  # submodules after the pooled features: the classifier head

    def features(self, x: Tensor) -> Tensor:
        """The pooled N x feature_dim output of the last convolutional stage (what the classifier head reads)."""
        raise NotImplementedError

    def blocks(self) -> list[nn.Module]:
        """The backbone's stages from input to output (stem first), as freeze_first_blocks counts them."""
        raise NotImplementedError

    def cam_layer(self) -> nn.Module:
        """The last convolutional block, whose activations Grad-CAM weighs."""
        raise NotImplementedError

    def conv_bn_pairs(self) -> list[ConvBnPair]:
        """Each BatchNorm2d with the convolution whose output it normalises: (conv owner, name, BN owner, name)."""
        raise NotImplementedError


class GenderResNet18(GenderNet):
    """Seed 000: ResNet18 without its classifier, BatchNorm1d(512), L2 normalisation, Linear(512, 2, bias=False)."""

    arch = "resnet18"
    head_names = ("bn", "fc")
    feature_dim = EMBEDDING_DIM

    def __init__(self, input_size: int = SEED_INPUT_SIZE) -> None:
        """A randomly initialised net; load_backbone_weights puts local ResNet18 weights into the backbone."""
        super().__init__(input_size)
        self.backbone = torchvision.models.resnet18(weights=None)
        self.backbone.fc = nn.Identity()
        self.bn = nn.BatchNorm1d(EMBEDDING_DIM)
        self.fc = nn.Linear(EMBEDDING_DIM, len(CLASSES), bias=False)

    def features(self, x: Tensor) -> Tensor:
        """The backbone's globally average-pooled 512-d output."""
        return self.backbone(x)

    def embed(self, x: Tensor) -> Tensor:
        """The unit-length 512-d feature fed to the bias-free classifier."""
        return F.normalize(self.bn(self.backbone(x)), dim=1)

    def forward(self, x: Tensor) -> Tensor:
        """Logits (female, male) of a batch of normalised N x 3 x H x W images."""
        return self.fc(self.embed(x))

    def blocks(self) -> list[nn.Module]:
        """conv1+bn1 (the stem), layer1, layer2, layer3, layer4."""
        return [nn.ModuleList(getattr(self.backbone, name) for name in names) for names in RESNET_BLOCKS]

    def int8_parts(self) -> tuple[str, ...]:
        """The submodules quantized for int8: the convolutional backbone (the head stays float)."""
        return ("backbone",)

    def cam_layer(self) -> nn.Module:
        """layer4, the final convolutional block (seed 000, figure 7)."""
        return self.backbone.layer4

    def conv_bn_pairs(self) -> list[ConvBnPair]:
        """The stem's conv1/bn1, each basic block's conv1/bn1 and conv2/bn2, and each downsample's conv/BN."""
        backbone = self.backbone
        pairs: list[ConvBnPair] = [(backbone, "conv1", backbone, "bn1")]
        for block in (
            block for layer in (backbone.layer1, backbone.layer2, backbone.layer3, backbone.layer4) for block in layer
        ):
            pairs += [(block, "conv1", block, "bn1"), (block, "conv2", block, "bn2")]
            if block.downsample is not None:
                pairs.append((block.downsample, "0", block.downsample, "1"))
        return pairs


class SeparableConv2d(nn.Sequential):
    """Depthwise 3x3 then pointwise 1x1 convolution, without bias (Keras SeparableConv2D)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        """Depthwise and pointwise parts; spatial size kept ('same' padding)."""
        super().__init__(
            nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels, bias=False),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
        )


class XceptionModule(nn.Module):
    """One mini-Xception residual module: two separable convs with BN (ReLU between), max-pool, strided 1x1 shortcut."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        """Halves the spatial size (ceil) and maps in_channels to out_channels."""
        super().__init__()
        self.shortcut = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride=2, bias=False), nn.BatchNorm2d(out_channels)
        )
        self.body = nn.Sequential(
            SeparableConv2d(in_channels, out_channels),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            SeparableConv2d(out_channels, out_channels),
            nn.BatchNorm2d(out_channels),
            nn.MaxPool2d(3, stride=2, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Residual sum of the pooled separable branch and the strided shortcut."""
        return self.body(x) + self.shortcut(x)


class MiniXception(GenderNet):
    """Seed 001's mini-Xception: two 3x3 conv+BN+ReLU, four residual depthwise-separable modules, conv to 2 maps, GAP.

    Arriaga et al.'s net: stem of two unpadded 8-channel 3x3 convolutions, modules of 16, 32, 64 and 128 channels,
    a 3x3 convolution to one map per class and global average pooling (softmax applied by the caller), about 57k
    parameters for two classes. RGB input (seed 001 used grayscale; panda fur tint carries no harm and costs nothing).
    `stem_stride` 2 halves the stem's resolution for large inputs; 1 is the seed's net.
    """

    arch = "mini_xception"
    head_names = ("head",)

    def __init__(
        self,
        input_size: int = SEED_INPUT_SIZE,
        widths: tuple[int, ...] = (16, 32, 64, 128),
        stem_channels: int = 8,
        stem_stride: int = 1,
    ) -> None:
        """Build the stem, the residual modules and the class-map head."""
        super().__init__(input_size)
        self.stem = nn.Sequential(
            nn.Conv2d(3, stem_channels, 3, stride=stem_stride, bias=False),
            nn.BatchNorm2d(stem_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(stem_channels, stem_channels, 3, bias=False),
            nn.BatchNorm2d(stem_channels),
            nn.ReLU(inplace=True),
        )
        channels = (stem_channels, *widths)
        self.stages = nn.ModuleList(XceptionModule(a, b) for a, b in zip(channels[:-1], channels[1:]))
        self.head = nn.Conv2d(channels[-1], len(CLASSES), 3, padding=1)
        self.feature_dim = channels[-1]

    def stage_maps(self, x: Tensor) -> Tensor:
        """The last residual module's feature maps."""
        x = self.stem(x)
        for module in self.stages:
            x = module(x)
        return x

    def int8_parts(self) -> tuple[str, ...]:
        """The submodules quantized for int8: the stem and each residual module (the class-map head stays float)."""
        return ("stem", *(f"stages.{index}" for index in range(len(self.stages))))

    def features(self, x: Tensor) -> Tensor:
        """The last residual module's maps globally average-pooled (128-d)."""
        return self.stage_maps(x).mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        """Logits (female, male): the class maps averaged over space."""
        return self.head(self.stage_maps(x)).mean(dim=(2, 3))

    def blocks(self) -> list[nn.Module]:
        """The stem, then each residual module."""
        return [self.stem, *self.stages]

    def cam_layer(self) -> nn.Module:
        """The last residual module (the head only maps its 128 channels to two class maps)."""
        return self.stages[-1]

    def conv_bn_pairs(self) -> list[ConvBnPair]:
        """The stem's two conv/BN pairs; per module the shortcut's conv/BN and each separable conv's pointwise
        convolution with the BN after it."""
        pairs: list[ConvBnPair] = [(self.stem, "0", self.stem, "1"), (self.stem, "3", self.stem, "4")]
        for module in self.stages:
            body = module.body
            pairs += [
                (module.shortcut, "0", module.shortcut, "1"),
                (body[0], "1", body, "1"),
                (body[3], "1", body, "4"),
            ]
        return pairs


def build_gender_net(arch: Arch, input_size: int = SEED_INPUT_SIZE) -> GenderNet:
    """A freshly initialised gender net of the named architecture for square inputs of `input_size` pixels."""
    if arch == "resnet18":
        return GenderResNet18(input_size)
    if arch == "mini_xception":
        return MiniXception(input_size)
    raise ValueError(f"unknown gender architecture {arch!r}; choose one of {', '.join(ARCHS)}")


def gender_net_from_state(state: Mapping[str, Tensor], arch: Arch, input_size: int) -> GenderNet:
    """Rebuild a trained net from its state dict (loaded with weights_only=True) and the model card's arch and size,
    built on the meta device and given the state's tensors (no random initialisation to overwrite: ResNet18 at 448 px
    74 -> 9 ms)."""
    with torch.device("meta"):
        model = build_gender_net(arch, input_size)
    model.load_state_dict(dict(state), strict=True, assign=True)
    unset = [name for name, tensor in [*model.named_parameters(), *model.named_buffers()] if tensor.is_meta]
    if unset:
        raise ValueError(f"the {arch} state dict does not set {', '.join(unset)}")
    return model.eval()


@dataclass(frozen=True)
class BackboneLoad:
    """What load_backbone_weights did: tensors loaded, and the keys it ignored (torchvision's fc.*)."""

    loaded: int
    ignored: tuple[str, ...]


def load_backbone_weights(model: GenderResNet18, state_dict: Mapping[str, Tensor]) -> BackboneLoad:
    """Put a torchvision resnet18 state dict (fc.* ignored, 'backbone.' prefix allowed) into the backbone; ValueError on
    any mismatch."""
    state = {k.removeprefix("backbone."): v for k, v in state_dict.items()}
    ignored = tuple(sorted(k for k in state if k.startswith("fc.")))
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    expected = {k: v.shape for k, v in model.backbone.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if tuple(state[k].shape) != tuple(expected[k]))
    problems = [
        f"{label} ({len(keys)}): {', '.join(keys[:6])}{' ...' if len(keys) > 6 else ''}"
        for label, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("keys with another shape", wrong),
        )
        if keys
    ]
    if problems:
        raise ValueError("these are not torchvision resnet18 backbone weights: " + "; ".join(problems))
    model.backbone.load_state_dict(state, strict=True)
    return BackboneLoad(loaded=len(state), ignored=ignored)


def freeze_first_blocks(model: GenderNet, n: int = 2) -> list[str]:
    """Stop gradients in the stem and the first n stages (seed 000: conv1/bn1, layer1, layer2); the frozen names.

    BatchNorm running statistics of frozen blocks still follow the data in train mode, as in the seed's PyTorch.
    """
    blocks = model.blocks()
    if not 0 <= n <= len(blocks) - 1:
        raise ValueError(f"can freeze 0 to {len(blocks) - 1} blocks of {model.arch}, not {n}")
    chosen = blocks[: n + 1] if n > 0 else []
    frozen_ids = set()
    for block in chosen:
        for parameter in block.parameters():
            parameter.requires_grad_(False)
            frozen_ids.add(id(parameter))
    return [name for name, p in model.named_parameters() if id(p) in frozen_ids]


def preprocess(image: Image.Image, size: int) -> Tensor:
    """A PIL image as a float32 3 x size x size tensor: RGB, resized (antialiased), ImageNet mean/std normalised.

    Made contiguous first: Pillow's pixels arrive channel-innermost, where the per-channel normalisation ran 6x
    slower (a 448 px crop: 0.87 -> 0.45 ms, the same values)."""
    tensor = TF.pil_to_tensor(image.convert("RGB")).contiguous()
    tensor = TF.resize(tensor, [size, size], antialias=True)
    return normalise(TF.to_dtype(tensor, torch.float32, scale=True))


def crop_pixels(image: Image.Image, size: int) -> Tensor:
    """A PIL image as size x size x 3 uint8 RGB pixels (rows, columns, channels: Pillow's own layout, which is the
    classifier's channels_last layout), resized as preprocess resizes it only when it is not that size already."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    if rgb.size == (size, size):
        return torch.from_numpy(np.array(rgb))
    return TF.resize(TF.pil_to_tensor(rgb), [size, size], antialias=True).permute(1, 2, 0).contiguous()


def normalised_pixels(pixels: Tensor) -> Tensor:
    """N x H x W x 3 uint8 RGB pixels as the classifier's N x 3 x H x W float32 input in channels_last memory, with
    the values preprocess gives: scaled to [0, 1], then ImageNet mean and std, along rows of W x 3 values (so no
    broadcast over a 3-long innermost dimension, and no copy into another layout)."""
    n, h, w, c = pixels.shape
    rows = TF.to_dtype(pixels.reshape(n * h, w * c), torch.float32, scale=True)
    mean, std = (
        torch.tensor(values, dtype=torch.float32, device=pixels.device).repeat(w)
        for values in (IMAGENET_MEAN, IMAGENET_STD)
    )
    return rows.sub_(mean).div_(std).view(n, h, w, c).permute(0, 3, 1, 2)


def normalise(tensor: Tensor) -> Tensor:
    """ImageNet mean/std normalisation of float images in [0, 1] (3 x H x W or N x 3 x H x W)."""
    return TF.normalize(tensor, list(IMAGENET_MEAN), list(IMAGENET_STD))


def predict_logits(
    model: nn.Module,
    batch: Tensor,
    device: torch.device | str = "cpu",
    precision: Precision = "fp32",
    layout: Layout = "channels_last",
) -> Tensor:
    """Uncalibrated float32 CPU logits of a batch: eval mode, inference_mode, the layout's memory format, autocast per
    precision ('int8': a net from tasks.quantized, run as it is)."""
    device = torch.device(device)
    model.eval()
    if precision != "int8":  # an int8 net's quantized parts stay as packed
        model.to(device=device, memory_format=memory_format(layout))
    batch = batch.to(device=device, dtype=torch.float32).contiguous(memory_format=memory_format(layout))
    with inference(device, precision):
        logits = model(batch)
    return logits.float().cpu()


def folded_copy(model: GenderNet) -> GenderNet:
    """A copy for inference whose BatchNorm2d layers are folded into the convolutions before them (running
    statistics, as in eval mode): the same logits up to rounding, one pass over memory fewer per layer. The pairs
    come from the architecture, not from tracing: torch.fx patches every module call process-wide while it traces,
    which broke a CGANet running at the same time in another task's thread."""
    folded = copy.deepcopy(model).eval()
    for conv_owner, conv_name, bn_owner, bn_name in folded.conv_bn_pairs():
        fused = fuse_conv_bn_eval(getattr(conv_owner, conv_name), getattr(bn_owner, bn_name))
        setattr(conv_owner, conv_name, fused)
        setattr(bn_owner, bn_name, nn.Identity())
    return folded


def calibrated_probs(model: nn.Module, logits: Tensor) -> Tensor:
    """P(male) from logits divided by the model's fitted temperature (1.0 when uncalibrated)."""
    temperature = getattr(model, "temperature", torch.ones(()))
    return torch.softmax(logits.float() / temperature.float().cpu(), dim=1)[:, 1]


def set_temperature(model: GenderNet, temperature: float) -> None:
    """Store a fitted temperature in the model (it travels in the state dict)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    model.temperature.fill_(float(temperature))


def predict_probs(
    model: nn.Module, batch: Tensor, device: torch.device | str = "cpu", precision: Precision = "fp32"
) -> Tensor:
    """Calibrated P(male) of each image of a normalised N x 3 x H x W batch, as a float32 CPU tensor."""
    return calibrated_probs(model, predict_logits(model, batch, device, precision))


def grad_cam(model: GenderNet, image_tensor: Tensor, target_class: int) -> np.ndarray:
    """Grad-CAM (seed 000, figure 7) of one normalised 3 x H x W image for class 0 (female) or 1 (male): H x W in [0,
    1]."""
    layer, store = model.cam_layer(), {}
    handle = layer.register_forward_hook(lambda _module, _inputs, output: store.__setitem__("maps", output))
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            x = image_tensor.detach().float().unsqueeze(0).to(next(model.parameters()).device).requires_grad_(True)
            logits = model(x)
            (grads,) = torch.autograd.grad(logits[0, target_class], store["maps"])
    finally:
        handle.remove()
        model.train(was_training)
    maps = store["maps"].detach()
    cam = F.relu((grads.mean(dim=(2, 3), keepdim=True) * maps).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam.float(), size=tuple(image_tensor.shape[-2:]), mode="bilinear", align_corners=False)[0, 0]
    peak = float(cam.max())
    return (cam / peak).cpu().numpy() if peak > 0 else np.zeros(tuple(image_tensor.shape[-2:]), np.float32)


class GuidedReLUFunction(torch.autograd.Function):
    """ReLU whose backward pass lets through only positive gradients at positive inputs (guided backpropagation)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        """max(x, 0), keeping which inputs were positive."""
        output = x.clamp(min=0)
        ctx.save_for_backward(output)
        return output

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        """The gradient where both it and the forward output are positive."""
        (output,) = ctx.saved_tensors
        return grad.clamp(min=0) * (output > 0).to(grad.dtype)


class GuidedReLU(nn.Module):
    """A ReLU layer that backpropagates as guided backpropagation does."""

    def forward(self, x: Tensor) -> Tensor:
        """max(x, 0) with the guided backward pass."""
        return GuidedReLUFunction.apply(x)


def guided_copy(model: nn.Module) -> nn.Module:
    """A copy of the net with every ReLU layer replaced by GuidedReLU, in eval mode on the CPU in float32."""
    guided = copy.deepcopy(model).float().to("cpu").eval()
    for parent in list(guided.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.ReLU):
                setattr(parent, name, GuidedReLU())
    return guided


def guided_grad_cam(model: GenderNet, image_tensor: Tensor, target_class: int) -> np.ndarray:
    """Seed 001's guided backpropagation weighted by Grad-CAM (guided Grad-CAM) of one normalised 3 x H x W image for
    class 0 (female) or 1 (male): an H x W x 3 image in [0, 1], grey where the class score does not depend on the
    pixel."""
    guided = guided_copy(model)
    with torch.enable_grad():
        x = image_tensor.detach().float().unsqueeze(0).requires_grad_(True)
        (gradient,) = torch.autograd.grad(guided(x)[0, target_class], x)
    weighted = gradient[0].numpy() * grad_cam(model, image_tensor, target_class)[None]
    spread = float(weighted.std())
    shown = 0.5 + 0.15 * (weighted - float(weighted.mean())) / spread if spread > 0 else np.full_like(weighted, 0.5)
    return np.clip(shown, 0.0, 1.0).transpose(1, 2, 0)


def gradcam_sample(rows: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """Up to n faces spread evenly over the range of P(male), so both sexes and the doubtful middle are shown."""
    ordered = sorted(rows, key=lambda row: (row["p_male"], row["face_id"]))
    if n <= 0 or not ordered:
        return []
    if len(ordered) <= n:
        return ordered
    return (
        [ordered[round(i * (len(ordered) - 1) / (n - 1))] for i in range(n)] if n > 1 else [ordered[len(ordered) // 2]]
    )


def prediction_rows(
    faces: list[dict[str, Any]], p_male: list[float], drop_id: str, run_id: str, label: str
) -> list[dict[str, Any]]:
    """One gender_predictions row per face."""
    return [
        {
            "face_id": f["face_id"],
            "media_id": f["media_id"],
            "drop_id": drop_id,
            "animal_id": f["animal_id"],
            "p_male": p,
            "label": "male" if p >= POSITIVE_AT else "female",
            "model_version": label,
            "run_id": run_id,
            "gradcam_path": None,
        }
        for f, p in zip(faces, p_male)
    ]
