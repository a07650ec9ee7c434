"""Shaped attention without a T x T matrix (SDPA + running mean) against the explicit T x T matrix, and plain
attention against softmax(q k^T / sqrt(hs) + M) v, on every attention kernel."""

import pytest
import torch
from torch.nn import functional as F

from blocks.parts import causal_softmax, shaped_attention, shaped_attention_matrix, uniform_causal_matrix
from hardware import ATTENTION_KERNELS, attention_kernel

B, H, D = 2, 3, 16


@pytest.fixture(params=ATTENTION_KERNELS)
def kernel(request):
    """A test that takes this fixture runs on each attention kernel."""
    with attention_kernel(request.param):
        yield request.param


def random_inputs(T, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, H, T, D, generator=g) for _ in range(3))
    alpha, beta, gamma = (torch.rand(H, generator=g) * 2 - 0.5 for _ in range(3))
    return q, k, v, alpha, beta, gamma


def explicit(q, k, v, alpha, beta, gamma):
    return shaped_attention_matrix(q, k, alpha, beta, gamma) @ v


@pytest.mark.parametrize("T", [1, 2, 3, 17, 64, 128, 257])
def test_equals_explicit_fp32(kernel, T):
    q, k, v, alpha, beta, gamma = random_inputs(T)
    torch.testing.assert_close(shaped_attention(q, k, v, alpha, beta, gamma),
                               explicit(q, k, v, alpha, beta, gamma), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("T", [1, 17, 257])
def test_gradients_equal_explicit_fp32(kernel, T):
    inputs = [t.requires_grad_() for t in random_inputs(T)]
    grad_out = torch.randn(B, H, T, D)
    got = torch.autograd.grad(shaped_attention(*inputs), inputs, grad_out)
    want = torch.autograd.grad(explicit(*inputs), inputs, grad_out)
    for name, g, w in zip(["q", "k", "v", "alpha", "beta", "gamma"], got, want):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4, msg=name)


@pytest.mark.parametrize("T", [1, 17, 257])
def test_without_the_centring_term_equals_eq_4_explicit(kernel, T):
    """Value-SkipInit's alpha I + beta A (Eq. 4, gamma None): forward and gradients against the explicit matrix."""
    q, k, v, alpha, beta, _ = [t.requires_grad_() for t in random_inputs(T)]
    inputs = [q, k, v, alpha, beta]
    got, want = shaped_attention(*inputs), explicit(*inputs, gamma=None)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(want, (alpha.view(-1, 1, 1) * v + beta.view(-1, 1, 1) * causal_softmax(q, k) @ v))
    grad_out = torch.randn(B, H, T, D)
    for name, g, w in zip(["q", "k", "v", "alpha", "beta"], torch.autograd.grad(got, inputs, grad_out),
                          torch.autograd.grad(want, inputs, grad_out)):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4, msg=name)


@pytest.mark.parametrize("T", [1, 64, 257])
def test_bf16_within_bf16_tolerance(kernel, T):
    q, k, v, alpha, beta, gamma = random_inputs(T)
    q, k, v = (t.bfloat16() for t in (q, k, v))
    got = shaped_attention(q, k, v, alpha, beta, gamma)
    assert got.dtype == torch.float32  # summed in the stream's precision
    # the reference sees the same bf16-rounded inputs, computed in fp32
    want = explicit(q.float(), k.float(), v.float(), alpha, beta, gamma)
    torch.testing.assert_close(got.float(), want, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("T", [1, 64, 257])
def test_bf16_gradients_within_bf16_tolerance(kernel, T):
    q, k, v, alpha, beta, gamma = random_inputs(T)
    low = [t.bfloat16().requires_grad_() for t in (q, k, v)] + [g.requires_grad_() for g in (alpha, beta, gamma)]
    grad_out = torch.randn(B, H, T, D)
    got = torch.autograd.grad(shaped_attention(*low), low, grad_out.bfloat16())
    # the reference sees the same bf16-rounded inputs, computed in fp32
    high = [t.detach().float().requires_grad_() for t in low]
    want = torch.autograd.grad(explicit(*high), high, grad_out.bfloat16().float())
    for name, g, w in zip(["q", "k", "v", "alpha", "beta", "gamma"], got, want):
        assert g.dtype == (torch.bfloat16 if name in "qkv" else torch.float32), name
        scale = w.abs().max().item()  # the gains' gradients are sums over B*T*D terms
        torch.testing.assert_close(g.float(), w, rtol=3e-2, atol=3e-2 * scale + 1e-5, msg=name)


@pytest.mark.parametrize("T", [1, 17, 257])
@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
def test_plain_attention_and_its_gradients_equal_the_explicit_softmax(kernel, T, dtype, tolerance):
    q, k, v, *_ = random_inputs(T)
    low = [t.to(dtype).requires_grad_() for t in (q, k, v)]
    grad_out = torch.randn(B, H, T, D).to(dtype)
    got = F.scaled_dot_product_attention(*low, is_causal=True)
    high = [t.detach().float().requires_grad_() for t in low]  # the same rounded inputs, in float32
    want = causal_softmax(*high[:2]) @ high[2]
    torch.testing.assert_close(got.float(), want, rtol=tolerance, atol=tolerance)
    for name, g, w in zip("qkv", torch.autograd.grad(got, low, grad_out),
                          torch.autograd.grad(want, high, grad_out.float())):
        torch.testing.assert_close(g.float(), w, rtol=10 * tolerance, atol=10 * tolerance, msg=name)


def test_the_kernels_are_really_different_code():
    """explicit runs SDPA's math backend, which builds the softmax matrix; fused never does (on a CPU: flash)."""
    q, k, v, *_ = random_inputs(T=64)
    ran = {}
    for kernel in ATTENTION_KERNELS:
        with attention_kernel(kernel), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            F.scaled_dot_product_attention(q, k, v, is_causal=True)
        ran[kernel] = {event.key for event in prof.key_averages()}
    assert "aten::_scaled_dot_product_attention_math" in ran["explicit"]
    assert "aten::_scaled_dot_product_attention_math" not in ran["fused"]
    with attention_kernel("explicit"):
        pass
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert "aten::_scaled_dot_product_attention_math" not in {event.key for event in prof.key_averages()}  # scoped


def test_uniform_causal_matrix():
    C = uniform_causal_matrix(4)
    assert torch.equal(C[2], torch.tensor([1 / 3, 1 / 3, 1 / 3, 0.0]))
    torch.testing.assert_close(C.sum(dim=-1), torch.ones(4))


def test_causal_softmax():
    q, k, *_ = random_inputs(T=9)
    A = causal_softmax(q, k)
    assert A.shape == (B, H, 9, 9)
    torch.testing.assert_close(A.sum(dim=-1), torch.ones(B, H, 9))
    assert torch.equal(A.triu(diagonal=1), torch.zeros_like(A))  # no position sees its future
    torch.testing.assert_close(causal_softmax(torch.zeros_like(q), k), uniform_causal_matrix(9).expand(B, H, 9, 9))


def test_zero_logits_give_identity(kernel):
    """alpha = beta = gamma = 1 and q = 0: softmax = C, so the matrix is I and the output is v."""
    T = 33
    _, k, v, *_ = random_inputs(T)
    q = torch.zeros_like(k)
    ones = torch.ones(H)
    matrix = shaped_attention_matrix(q, k, ones, ones, ones)
    torch.testing.assert_close(matrix, torch.eye(T).expand(B, H, T, T), rtol=0, atol=1e-6)
    torch.testing.assert_close(shaped_attention(q, k, v, ones, ones, ones), v, rtol=0, atol=1e-6)
