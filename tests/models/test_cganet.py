"""CGANet: shapes, probabilities, attention, determinism, batch independence in eval mode, and a tiny overfit."""

from __future__ import annotations

import pytest
import torch

from models.cganet import (
    CGANet,
    build_cganet,
    count_parameters,
    predicted_success,
    segment_nll,
)

SEED_PARAMETERS = 816_636  # the default (seed 002) sizes


@pytest.fixture(scope="module")
def model() -> CGANet:
    return build_cganet(seed=0).eval()


def mfcc_batch(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 2, 86, 40, generator=torch.Generator().manual_seed(seed)) * 20


def test_shapes_probabilities_and_attention(model: CGANet) -> None:
    with torch.inference_mode():
        out = model(mfcc_batch(3))
    assert out.frame_probs.shape == (3, 86, 2) and out.scores.shape == (3, 2)
    assert out.p_success.shape == (3,) and out.attention.shape == (3, 86) and out.alpha.shape == (3, 86, 32)
    torch.testing.assert_close(out.frame_probs.sum(-1), torch.ones(3, 86))
    torch.testing.assert_close(out.scores.sum(-1), torch.full((3,), 86.0))
    torch.testing.assert_close(out.attention.sum(-1), torch.ones(3))
    torch.testing.assert_close(out.alpha.sum(1), torch.ones(3, 32))  # each feature's weights over the frames
    assert torch.all((out.p_success >= 0) & (out.p_success <= 1)) and torch.all(out.attention >= 0)
    assert torch.equal(predicted_success(out), out.scores[:, 0] > out.scores[:, 1])


def test_parameter_count_of_the_seed_layout(model: CGANet) -> None:
    assert count_parameters(model) == SEED_PARAMETERS
    assert model.gru1.gru.input_size == 128 * 20 and model.gru2.gru.input_size == 32


def test_eval_batch_equals_one_at_a_time(model: CGANet) -> None:
    batch = mfcc_batch(4, seed=1)
    with torch.inference_mode():
        together = model(batch)
        alone = [model(batch[i : i + 1]) for i in range(4)]
    torch.testing.assert_close(together.frame_probs, torch.cat([o.frame_probs for o in alone]), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(together.attention, torch.cat([o.attention for o in alone]), rtol=1e-5, atol=1e-7)


def test_same_seed_same_weights_and_global_rng_untouched() -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first, second, other = (
        build_cganet(seed=7, filters=8),
        build_cganet(seed=7, filters=8),
        build_cganet(seed=8, filters=8),
    )
    assert torch.equal(torch.rand(1), expected_next)
    for name, tensor in first.state_dict().items():
        assert torch.equal(tensor, second.state_dict()[name])
    assert not torch.equal(first.conv[0][0].weight, other.conv[0][0].weight)


def test_wrong_input_shape_is_refused(model: CGANet) -> None:
    with pytest.raises(ValueError, match="expected input shaped"):
        model(torch.zeros(1, 2, 87, 40))


def test_one_training_step_reaches_every_parameter(one_thread) -> None:
    model = build_cganet(seed=0).train()
    segment_nll(model(mfcc_batch(2)), torch.tensor([1, 0])).backward()
    assert all(p.grad is not None and torch.any(p.grad != 0) for p in model.parameters())


def test_tiny_overfit_on_two_separable_classes(one_thread) -> None:
    """A narrow CGANet (8 filters) learns two classes that differ in the time course of coefficient 1."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(16) % 2
    inputs = torch.randn(16, 2, 86, 40, generator=generator)
    ramp = torch.linspace(-3, 3, 86)
    inputs[:, :, :, 1] += torch.where(labels[:, None, None] == 1, ramp, -ramp)
    model = build_cganet(seed=0, filters=8).train()
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)  # the seed's learning rate
    first_loss = segment_nll(model(inputs), labels).item()
    for _ in range(40):
        optimiser.zero_grad()
        loss = segment_nll(model(inputs), labels)
        loss.backward()
        optimiser.step()
    with torch.inference_mode():
        out = model.eval()(inputs)
    # alpha sums to 1 over 86 frames, so F_attn is ~F_GRU / 86 and confidence grows slowly: ask for a clear drop
    assert segment_nll(out, labels).item() < 0.75 * first_loss
    assert torch.equal(predicted_success(out), labels.bool())
