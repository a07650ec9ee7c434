"""Checks for exercise 1: the explicit shaped attention against the library's fused one."""

import pytest
import torch

import blocks
import blocks.parts
from exercises.checks import under_test

exercise = under_test("shaped_attention")
B, H, D = 2, 3, 8


def random_inputs(T, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, H, T, D, generator=g) for _ in range(3))
    alpha, beta, gamma = (torch.rand(H, generator=g) * 2 - 0.5 for _ in range(3))  # a different gain per head
    return q, k, v, alpha, beta, gamma


def test_uniform_causal_averages_the_visible_past():
    C = exercise.uniform_causal(4)
    torch.testing.assert_close(C[2], torch.tensor([1 / 3, 1 / 3, 1 / 3, 0.0]))
    for T in (1, 5, 16):
        torch.testing.assert_close(exercise.uniform_causal(T), blocks.parts.uniform_causal_matrix(T))


@pytest.mark.parametrize("T", [1, 2, 17, 64])
def test_matches_the_library(T):
    inputs = random_inputs(T)
    torch.testing.assert_close(exercise.shaped_attention(*inputs), blocks.parts.shaped_attention(*inputs),
                               rtol=1e-5, atol=1e-5)


def test_identity_at_zero_queries():
    """§4.1: zero logits make A = C, so with alpha = beta = gamma = 1 the output is v."""
    _, k, v, *_ = random_inputs(T=33)
    ones = torch.ones(H)
    torch.testing.assert_close(exercise.shaped_attention(torch.zeros_like(k), k, v, ones, ones, ones), v,
                               rtol=0, atol=1e-6)


def test_gains_act_per_head():
    q, k, v, *_ = random_inputs(T=9)
    alpha, zeros = torch.tensor([1.0, 0.0, 2.0]), torch.zeros(H)  # beta = gamma = 0 leaves alpha I
    out = exercise.shaped_attention(q, k, v, alpha, zeros, zeros)
    torch.testing.assert_close(out, alpha.view(1, H, 1, 1) * v)


def test_causal():
    """Changing the keys and values at position t leaves every output before t unchanged."""
    q, k, v, alpha, beta, gamma = random_inputs(T=12)
    t = 7
    k2, v2 = k.clone(), v.clone()
    k2[..., t, :] += 1.0
    v2[..., t, :] += 1.0
    before = exercise.shaped_attention(q, k, v, alpha, beta, gamma)
    after = exercise.shaped_attention(q, k2, v2, alpha, beta, gamma)
    torch.testing.assert_close(before[..., :t, :], after[..., :t, :], rtol=0, atol=1e-6)


def test_built_without_the_library(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("exercise 1 asks for the explicit T x T form: do not call the library's attention")

    for module, name in [(blocks.parts, "shaped_attention"), (blocks.parts, "shaped_attention_matrix"),
                         (blocks.parts, "causal_softmax"), (blocks.parts, "uniform_causal_matrix"),
                         (torch.nn.functional, "scaled_dot_product_attention")]:
        monkeypatch.setattr(module, name, refuse)
    assert exercise.shaped_attention(*random_inputs(T=5)).shape == (B, H, 5, D)
