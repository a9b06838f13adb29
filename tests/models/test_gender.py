"""Gender nets: seed 000's ResNet18 head, mini-Xception, weight loading, freezing, batched inference, Grad-CAM."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image

from models.gender import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    GenderResNet18,
    MiniXception,
    build_gender_net,
    calibrated_probs,
    crop_pixels,
    folded_copy,
    freeze_first_blocks,
    gender_net_from_state,
    grad_cam,
    load_backbone_weights,
    normalised_pixels,
    predict_logits,
    predict_probs,
    preprocess,
    set_temperature,
)
from models.precision import autocast_dtype

SIZE = 64


def trained_statistics(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every BatchNorm non-trivial running statistics (a few train-mode passes), then switch to eval."""
    generator = torch.Generator().manual_seed(seed)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(6, 3, SIZE, SIZE, generator=generator) * 2 + 0.5)
    return model.eval()


@pytest.fixture(scope="module")
def resnet() -> GenderResNet18:
    """A seeded ResNet18 gender net with running statistics, at 64 px."""
    torch.manual_seed(0)
    return trained_statistics(build_gender_net("resnet18", SIZE))


@pytest.fixture(scope="module")
def xception() -> MiniXception:
    """A seeded mini-Xception with running statistics, at 64 px."""
    torch.manual_seed(1)
    return trained_statistics(build_gender_net("mini_xception", SIZE))


def batch(n: int, seed: int = 3) -> torch.Tensor:
    """n random normalised-looking images."""
    return torch.randn(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def test_resnet_head_is_bn_l2_then_bias_free_linear(resnet: GenderResNet18) -> None:
    assert isinstance(resnet.bn, torch.nn.BatchNorm1d) and resnet.bn.num_features == 512
    assert resnet.fc.bias is None and tuple(resnet.fc.weight.shape) == (2, 512)
    assert isinstance(resnet.backbone.fc, torch.nn.Identity)
    x = batch(4)
    with torch.no_grad():
        embedding = resnet.embed(x)
        logits = resnet(x)
    assert embedding.shape == (4, 512)
    torch.testing.assert_close(embedding.norm(dim=1), torch.ones(4))
    torch.testing.assert_close(logits, embedding @ resnet.fc.weight.T)


def test_mini_xception_shapes_and_size(xception: MiniXception) -> None:
    assert xception(batch(3)).shape == (3, 2)
    assert 40_000 < sum(p.numel() for p in xception.parameters()) < 80_000  # seed 001: about 60k parameters
    assert len(xception.stages) == 4
    assert isinstance(build_gender_net("mini_xception", 160)(torch.zeros(2, 3, 160, 160)), torch.Tensor)


def test_unknown_arch_and_tiny_input_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown gender architecture"):
        build_gender_net("vgg11", SIZE)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="minimum"):
        build_gender_net("resnet18", 16)


@pytest.mark.parametrize("arch", ["resnet18", "mini_xception"])
def test_batch_equals_one_at_a_time_in_eval(arch: str, resnet: GenderResNet18, xception: MiniXception) -> None:
    model = resnet if arch == "resnet18" else xception
    x = batch(6)
    together = predict_probs(model, x, precision="fp32")
    alone = torch.cat([predict_probs(model, x[i : i + 1], precision="fp32") for i in range(len(x))])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)
    together_bf16 = predict_probs(model, x, precision="bf16")
    alone_bf16 = torch.cat([predict_probs(model, x[i : i + 1], precision="bf16") for i in range(len(x))])
    torch.testing.assert_close(together_bf16, alone_bf16, atol=2e-2, rtol=0)
    torch.testing.assert_close(together_bf16, together, atol=5e-2, rtol=0)
    assert not model.training


def test_train_mode_would_make_a_face_depend_on_its_batch(resnet: GenderResNet18) -> None:
    """The defect the eval-mode inference avoids: batch statistics couple the faces of a batch."""
    x = batch(6)
    resnet.train()
    try:
        with torch.no_grad():
            coupled = torch.softmax(resnet(x), 1)[:3, 1]
            other = torch.softmax(resnet(torch.cat([x[:3], batch(3, seed=9)])), 1)[:3, 1]
    finally:
        resnet.eval()
    assert not torch.allclose(coupled, other, atol=1e-4)


def test_backbone_weights_load_from_a_saved_torchvision_state_dict(tmp_path) -> None:
    torch.manual_seed(5)
    source = torchvision.models.resnet18(weights=None)
    torch.save(source.state_dict(), tmp_path / "resnet18.pt")
    state = torch.load(tmp_path / "resnet18.pt", map_location="cpu", weights_only=True)
    model = GenderResNet18(SIZE)
    report = load_backbone_weights(model, state)
    assert report.ignored == ("fc.bias", "fc.weight")
    assert report.loaded == len(state) - 2
    torch.testing.assert_close(model.backbone.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    torch.testing.assert_close(model.backbone.bn1.running_var, source.bn1.running_var)


def test_backbone_loading_names_the_mismatched_keys() -> None:
    model = GenderResNet18(SIZE)
    state = torchvision.models.resnet18(weights=None).state_dict()
    del state["layer3.0.conv1.weight"]
    state["layer5.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"missing keys \(1\): layer3.0.conv1.weight.*unexpected keys \(1\): layer5"):
        load_backbone_weights(model, state)
    with pytest.raises(ValueError, match=r"unexpected keys \(\d+\): layer1.2"):
        load_backbone_weights(model, torchvision.models.resnet34(weights=None).state_dict())
    reshaped = torchvision.models.resnet18(weights=None).state_dict()
    reshaped["conv1.weight"] = torch.zeros(64, 3, 3, 3)
    with pytest.raises(ValueError, match=r"another shape \(1\): conv1.weight"):
        load_backbone_weights(model, reshaped)


def test_freeze_first_two_resnet_blocks() -> None:
    model = GenderResNet18(SIZE)
    frozen = freeze_first_blocks(model, 2)
    prefixes = ("backbone.conv1.", "backbone.bn1.", "backbone.layer1.", "backbone.layer2.")
    assert frozen and all(name.startswith(prefixes) for name in frozen)
    for name, parameter in model.named_parameters():
        assert parameter.requires_grad == (not name.startswith(prefixes)), name
    with pytest.raises(ValueError, match="0 to 4"):
        freeze_first_blocks(model, 5)


def test_freeze_mini_xception_stem_and_modules() -> None:
    model = MiniXception(SIZE)
    frozen = freeze_first_blocks(model, 1)
    assert all(name.startswith(("stem.", "stages.0.")) for name in frozen)
    assert all(p.requires_grad for p in model.stages[1].parameters())
    assert freeze_first_blocks(MiniXception(SIZE), 0) == []


def test_preprocess_resizes_and_normalises() -> None:
    mean_grey = tuple(round(m * 255) for m in IMAGENET_MEAN)
    tensor = preprocess(Image.new("RGB", (100, 80), mean_grey), SIZE)
    assert tensor.shape == (3, SIZE, SIZE) and tensor.dtype == torch.float32
    assert float(tensor.abs().max()) < 0.02
    grey = preprocess(Image.new("L", (30, 30), 255), 40)
    assert grey.shape == (3, 40, 40) and float(grey.min()) > 1.5


def test_preprocess_is_contiguous_with_each_channel_normalised_by_its_own_mean_and_std() -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (37, 37, 3), dtype=np.uint8)
    tensor = preprocess(Image.fromarray(pixels), 37)
    assert tensor.is_contiguous()
    expected = (
        torch.from_numpy(pixels).permute(2, 0, 1) / 255 - torch.tensor(IMAGENET_MEAN)[:, None, None]
    ) / torch.tensor(IMAGENET_STD)[:, None, None]
    torch.testing.assert_close(tensor, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("size, mode", [(37, "RGB"), (52, "RGB"), (23, "L")])
def test_crop_pixels_normalised_in_rows_equal_preprocess_exactly_in_channels_last(size: int, mode: str) -> None:
    rng = np.random.default_rng(size)
    images = [Image.fromarray(rng.integers(0, 256, (37, 37, 3), dtype=np.uint8)).convert(mode) for _ in range(3)]
    pixels = torch.stack([crop_pixels(image, size) for image in images])
    assert pixels.shape == (3, size, size, 3) and pixels.dtype == torch.uint8
    batch = normalised_pixels(pixels)
    expected = torch.stack([preprocess(image, size) for image in images])
    assert batch.is_contiguous(memory_format=torch.channels_last) and torch.equal(batch, expected)


def test_temperature_softens_probabilities_and_travels_in_the_state_dict(resnet: GenderResNet18, tmp_path) -> None:
    model = build_gender_net("resnet18", SIZE)
    model.load_state_dict(resnet.state_dict())
    logits = torch.tensor([[0.0, 2.0], [1.0, -1.0]])
    torch.testing.assert_close(calibrated_probs(model, logits), torch.softmax(logits, 1)[:, 1])
    set_temperature(model, 2.0)
    torch.testing.assert_close(calibrated_probs(model, logits), torch.softmax(logits / 2, 1)[:, 1])
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    restored = gender_net_from_state(torch.load(tmp_path / "weights.pt", weights_only=True), "resnet18", SIZE)
    assert float(restored.temperature) == 2.0
    x = batch(2)
    torch.testing.assert_close(predict_probs(restored, x, precision="fp32"), predict_probs(model, x, precision="fp32"))
    with pytest.raises(ValueError, match="positive"):
        set_temperature(model, 0.0)


@pytest.mark.parametrize("arch", ["resnet18", "mini_xception"])
def test_a_net_rebuilt_from_its_state_holds_every_tensor_and_predicts_alike(arch: str) -> None:
    model = trained_statistics(build_gender_net(arch, SIZE))
    restored = gender_net_from_state(model.state_dict(), arch, SIZE)
    assert not any(t.is_meta for t in [*restored.parameters(), *restored.buffers()])
    assert all(p.requires_grad for p in restored.parameters())  # Grad-CAM and fine-tuning still work on it
    x = batch(2)
    torch.testing.assert_close(predict_probs(restored, x, precision="fp32"), predict_probs(model, x, precision="fp32"))


def test_a_state_that_leaves_a_buffer_unset_is_refused() -> None:
    class WithScratch(GenderResNet18):
        def __init__(self, input_size: int) -> None:
            super().__init__(input_size)
            self.register_buffer("scratch", torch.zeros(3), persistent=False)

    state = build_gender_net("resnet18", SIZE).state_dict()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("models.gender.build_gender_net", lambda arch, size: WithScratch(size))
        with pytest.raises(ValueError, match="does not set scratch"):
            gender_net_from_state(state, "resnet18", SIZE)


@pytest.mark.parametrize("arch", ["resnet18", "mini_xception"])
def test_folded_copy_gives_the_same_probabilities_without_batchnorm2d(arch: str) -> None:
    model = trained_statistics(build_gender_net(arch, SIZE))
    set_temperature(model, 1.7)
    folded = folded_copy(model)
    x = batch(3)
    assert not any(isinstance(layer, torch.nn.BatchNorm2d) for layer in folded.modules())
    assert any(isinstance(layer, torch.nn.BatchNorm2d) for layer in model.modules())  # the original is untouched
    assert folded.input_size == SIZE and float(folded.temperature) == pytest.approx(1.7)
    torch.testing.assert_close(
        predict_probs(folded, x, precision="fp32"), predict_probs(model, x, precision="fp32"), atol=1e-5, rtol=1e-4
    )


def test_folding_leaves_modules_running_in_other_threads_alone() -> None:
    other = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
    failures: list[BaseException] = []
    stop = threading.Event()

    def keep_running() -> None:
        while not stop.is_set():
            try:
                with torch.no_grad():
                    other(torch.zeros(1, 3, 8, 8))
            except BaseException as error:  # noqa: BLE001 - any error in the other thread fails the test
                failures.append(error)
                return

    runner = threading.Thread(target=keep_running)
    runner.start()
    try:
        for arch in ("resnet18", "mini_xception"):
            folded_copy(build_gender_net(arch, SIZE))
    finally:
        stop.set()
        runner.join()
    assert failures == []


def test_predict_logits_precisions(xception: MiniXception) -> None:
    x = batch(2)
    fp32 = predict_logits(xception, x, precision="fp32")
    assert fp32.dtype == torch.float32 and fp32.shape == (2, 2)
    torch.testing.assert_close(predict_logits(xception, x, precision="amp"), fp32, atol=5e-2, rtol=5e-2)
    with pytest.raises(ValueError, match="unknown precision"):
        predict_logits(xception, x, precision="fp16")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="CPU only"):
        autocast_dtype(torch.device("cuda"), "int8")


@pytest.mark.parametrize("arch", ["resnet18", "mini_xception"])
def test_grad_cam_is_a_unit_range_map_and_leaves_the_model_alone(
    arch: str, resnet: GenderResNet18, xception: MiniXception
) -> None:
    model = resnet if arch == "resnet18" else xception
    before = {k: v.clone() for k, v in model.state_dict().items()}
    image = batch(1)[0]
    maps = [grad_cam(model, image, target) for target in (0, 1)]
    for cam in maps:
        assert cam.shape == (SIZE, SIZE) and cam.dtype == np.float32
        assert cam.min() >= 0.0 and cam.max() <= 1.0
    assert any(cam.max() == pytest.approx(1.0) for cam in maps)
    assert not model.training
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key])


def test_grad_cam_matches_a_manual_computation(resnet: GenderResNet18) -> None:
    """Hooks give the same map as running the backbone by hand and keeping layer4's gradient."""
    image = batch(1, seed=11)[0]
    b = resnet.backbone
    x = image.unsqueeze(0)
    x = b.layer3(b.layer2(b.layer1(b.maxpool(b.relu(b.bn1(b.conv1(x)))))))
    maps = b.layer4(x)
    maps.retain_grad()
    logits = resnet.fc(F.normalize(resnet.bn(torch.flatten(b.avgpool(maps), 1)), dim=1))
    logits[0, 1].backward()
    resnet.zero_grad(set_to_none=True)
    cam = F.relu((maps.grad.mean(dim=(2, 3), keepdim=True) * maps).sum(1, keepdim=True)).detach()
    cam = F.interpolate(cam, size=(SIZE, SIZE), mode="bilinear", align_corners=False)[0, 0]
    expected = (cam / cam.max()).numpy() if float(cam.max()) > 0 else np.zeros((SIZE, SIZE), np.float32)
    np.testing.assert_allclose(grad_cam(resnet, image, 1), expected, atol=1e-5)
