"""The identity net: unit-length, batch-independent embeddings; state round trip; the gender net's trunk init."""

from __future__ import annotations

import pytest
import torch

from models.execution import Way
from models.gender import build_gender_net, folded_copy, normalised_pixels
from models.identity import (
    build_identity_net,
    embed_pixels,
    identity_net_from_state,
    init_gender_from_identity,
    trunk_state,
)

SIZE = 40


def pixels(n: int, seed: int = 0) -> torch.Tensor:
    """n random uint8 crops of SIZE x SIZE x 3."""
    return torch.randint(0, 256, (n, SIZE, SIZE, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("arch", ["mini_xception", "resnet18"])
def test_embeddings_are_unit_length_and_batch_independent(arch, one_thread) -> None:
    torch.manual_seed(0)
    model = build_identity_net(arch, SIZE, 16)
    model.train()
    model(normalised_pixels(pixels(8, 1)))  # running statistics move away from their initial values
    model.eval()
    x = normalised_pixels(pixels(5))
    with torch.inference_mode():
        together = model(x)
        alone = torch.cat([model(x[i : i + 1]) for i in range(5)])
    assert together.shape == (5, 16) and model.embedding_dim == 16 and model.arch == arch
    assert torch.allclose(together.norm(dim=1), torch.ones(5), atol=1e-5)
    assert torch.allclose(together, alone, atol=1e-5)


def test_state_round_trip_gives_the_same_embeddings(one_thread) -> None:
    torch.manual_seed(1)
    model = build_identity_net("mini_xception", SIZE, 8).eval()
    rebuilt = identity_net_from_state(model.state_dict(), "mini_xception", SIZE, 8)
    x = normalised_pixels(pixels(3))
    with torch.inference_mode():
        assert torch.equal(model(x), rebuilt(x))
    with pytest.raises(RuntimeError):
        identity_net_from_state(model.state_dict(), "mini_xception", SIZE, 16)


def test_embed_pixels_matches_the_net_and_folding(one_thread) -> None:
    torch.manual_seed(2)
    model = build_identity_net("mini_xception", SIZE, 8).eval()
    batch = pixels(4)
    way = Way("fp32", "contiguous", 4, None)
    embedded = embed_pixels(model, batch, "cpu", way)
    with torch.inference_mode():
        direct = model(normalised_pixels(batch))
    assert torch.allclose(embedded, direct, atol=1e-5)
    assert torch.allclose(embed_pixels(folded_copy(model), batch, "cpu", way), direct, atol=1e-4)


def test_gender_init_copies_the_trunk_and_keeps_the_head(one_thread) -> None:
    torch.manual_seed(3)
    identity = build_identity_net("mini_xception", SIZE, 8)
    gender = build_gender_net("mini_xception", 64)
    head_before = gender.head.weight.clone()
    copied = init_gender_from_identity(gender, identity.state_dict(), "mini_xception")
    trunk = trunk_state(identity.state_dict())
    assert copied == len(trunk) > 0
    for key, value in gender.state_dict().items():
        if key in trunk:
            assert torch.equal(value, trunk[key]), key
    assert torch.equal(gender.head.weight, head_before)
    x = normalised_pixels(pixels(2))
    with torch.inference_mode():
        assert torch.allclose(gender.eval().features(x), identity.eval().trunk.features(x))


def test_gender_init_refuses_another_arch_or_shape() -> None:
    identity = build_identity_net("mini_xception", SIZE, 8)
    with pytest.raises(ValueError, match="cannot initialise a resnet18"):
        init_gender_from_identity(build_gender_net("resnet18", 64), identity.state_dict(), "mini_xception")
    state = identity.state_dict()
    state["trunk.stem.0.weight"] = torch.zeros(3, 3, 3, 3)
    with pytest.raises(ValueError, match="does not fit"):
        init_gender_from_identity(build_gender_net("mini_xception", 64), state, "mini_xception")
