"""Shaped attention on each kernel (fused: SDPA + running mean; explicit: the official code's one matrix product)
against the matrix alpha I + beta A - gamma C built whole, plain attention against softmax(q k^T / sqrt(hs) + M) v,
and generation with a KV cache against generation without."""

import pytest
import torch

from blocks import BLOCKS
from blocks.parts import (KVCache, causal_attention, causal_softmax, shaped_attention, shaped_attention_matrix,
                          uniform_causal_matrix)
from hardware import ATTENTION_KERNELS
from model import GPT, GPTConfig

B, H, D = 2, 3, 16


@pytest.fixture(params=ATTENTION_KERNELS)
def kernel(request):
    """A test that takes this fixture runs on each attention kernel."""
    return request.param


def random_inputs(T, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, H, T, D, generator=g) for _ in range(3))
    alpha, beta, gamma = (torch.rand(H, generator=g) * 2 - 0.5 for _ in range(3))
    return q, k, v, alpha, beta, gamma


def explicit(q, k, v, alpha, beta, gamma):
    """(alpha I + beta A - gamma C) v with each matrix built whole, as Eq. 5 writes it: the plain reference."""
    T = q.size(-2)
    matrix = alpha.view(-1, 1, 1) * torch.eye(T) + beta.view(-1, 1, 1) * causal_softmax(q, k)
    if gamma is not None:
        matrix = matrix - gamma.view(-1, 1, 1) * uniform_causal_matrix(T)
    return matrix @ v


@pytest.mark.parametrize("T", [1, 2, 3, 17, 64, 128, 257])
def test_equals_explicit_fp32(kernel, T):
    q, k, v, alpha, beta, gamma = random_inputs(T)
    torch.testing.assert_close(shaped_attention(q, k, v, alpha, beta, gamma, kernel),
                               explicit(q, k, v, alpha, beta, gamma), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("T", [1, 17, 257])
def test_gradients_equal_explicit_fp32(kernel, T):
    inputs = [t.requires_grad_() for t in random_inputs(T)]
    grad_out = torch.randn(B, H, T, D, generator=torch.Generator().manual_seed(T))
    got = torch.autograd.grad(shaped_attention(*inputs, kernel=kernel), inputs, grad_out)
    want = torch.autograd.grad(explicit(*inputs), inputs, grad_out)
    for name, g, w in zip(["q", "k", "v", "alpha", "beta", "gamma"], got, want):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4, msg=name)


@pytest.mark.parametrize("T", [1, 17, 257])
def test_without_the_centring_term_equals_eq_4_explicit(kernel, T):
    """Value-SkipInit's alpha I + beta A (Eq. 4, gamma None): forward and gradients against the explicit matrix."""
    q, k, v, alpha, beta, _ = [t.requires_grad_() for t in random_inputs(T)]
    inputs = [q, k, v, alpha, beta]
    got, want = shaped_attention(*inputs, kernel=kernel), explicit(*inputs, gamma=None)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(want, (alpha.view(-1, 1, 1) * v + beta.view(-1, 1, 1) * causal_softmax(q, k) @ v))
    grad_out = torch.randn(B, H, T, D, generator=torch.Generator().manual_seed(T))
    for name, g, w in zip(["q", "k", "v", "alpha", "beta"], torch.autograd.grad(got, inputs, grad_out),
                          torch.autograd.grad(want, inputs, grad_out)):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4, msg=name)


@pytest.mark.parametrize("T", [1, 64, 257])
def test_bf16_within_bf16_tolerance(kernel, T):
    q, k, v, alpha, beta, gamma = random_inputs(T)
    q, k, v = (t.bfloat16() for t in (q, k, v))
    got = shaped_attention(q, k, v, alpha, beta, gamma, kernel)
    assert got.dtype == torch.float32  # summed in the stream's precision
    # the reference sees the same bf16-rounded inputs, computed in fp32
    want = explicit(q.float(), k.float(), v.float(), alpha, beta, gamma)
    torch.testing.assert_close(got.float(), want, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("T", [1, 64, 257])
def test_bf16_gradients_within_bf16_tolerance(kernel, T):
    q, k, v, alpha, beta, gamma = random_inputs(T)
    low = [t.bfloat16().requires_grad_() for t in (q, k, v)] + [g.requires_grad_() for g in (alpha, beta, gamma)]
    grad_out = torch.randn(B, H, T, D, generator=torch.Generator().manual_seed(T))
    got = torch.autograd.grad(shaped_attention(*low, kernel=kernel), low, grad_out.bfloat16())
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
    grad_out = torch.randn(B, H, T, D, generator=torch.Generator().manual_seed(T)).to(dtype)
    got = causal_attention(*low, kernel)
    high = [t.detach().float().requires_grad_() for t in low]  # the same rounded inputs, in float32
    want = causal_softmax(*high[:2]) @ high[2]
    torch.testing.assert_close(got.float(), want, rtol=tolerance, atol=tolerance)
    for name, g, w in zip("qkv", torch.autograd.grad(got, low, grad_out),
                          torch.autograd.grad(want, high, grad_out.float())):
        torch.testing.assert_close(g.float(), w, rtol=10 * tolerance, atol=10 * tolerance, msg=name)


def test_the_kernels_are_really_different_code():
    """explicit builds the T x T matrix; fused calls torch's SDPA, whose CPU kernel never does (flash attention)."""
    q, k, v, *_ = random_inputs(T=64)
    ran = {}
    for kernel in ATTENTION_KERNELS:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            causal_attention(q, k, v, kernel)
        ran[kernel] = {event.key for event in prof.key_averages()}
    assert "aten::_scaled_dot_product_flash_attention_for_cpu" in ran["fused"] and "aten::softmax" not in ran["fused"]
    assert "aten::softmax" in ran["explicit"] and not any("scaled_dot_product" in key for key in ran["explicit"])


def test_the_explicit_form_is_the_matrix_built_whole():
    q, k, v, alpha, beta, gamma = random_inputs(T=17)
    for g in (gamma, None):
        torch.testing.assert_close(shaped_attention_matrix(q, k, alpha, beta, g) @ v, explicit(q, k, v, alpha, beta, g))


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
    torch.testing.assert_close(shaped_attention(q, k, v, ones, ones, ones, kernel), v, rtol=0, atol=1e-6)


# -----------------------------------------------------------------------------
# generation with a KV cache


def trained_looking(block, kernel="fused", block_size=16):
    """A tiny model of the block with its weights moved away from their initial values (at init W_Q = 0, and
    shaped attention is the identity: a cache could be wrong and not show it)."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(block=block, vocab_size=64, block_size=block_size, n_layer=2, n_head=2, n_embd=32))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    model.set_attention_kernel(kernel)
    return model.eval()


@pytest.mark.parametrize("block", BLOCKS)
def test_greedy_generation_with_a_kv_cache_equals_generation_without(block, kernel):
    """Token for token, past block_size (16): the window is full twice and drops its older half, and the cache is
    filled again from the newer half, as the uncached path crops its context."""
    model = trained_looking(block, kernel)
    prompt = torch.randint(0, 64, (2, 5), generator=torch.Generator().manual_seed(1))
    cached = model.generate(prompt, 30, top_k=1, kv_cache=True)
    assert torch.equal(cached, model.generate(prompt, 30, top_k=1, kv_cache=False))
    assert all(layer.cache is None for layer in model.modules() if hasattr(layer, "cache"))  # let go afterwards


@pytest.mark.parametrize("block", ["pre_ln", "sas", "sas_p"])
def test_the_cached_logits_are_the_full_passs_at_every_position(block):
    """One token at a time through the caches gives, at each position, the logits the whole sequence gives."""
    model = trained_looking(block)
    idx = torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(2))
    whole, _ = model(idx)
    layers = [layer for layer in model.modules() if hasattr(layer, "cache")]
    for layer in layers:
        layer.cache = KVCache()
    try:
        one_by_one = torch.cat([model(idx[:, [t]], seen=t)[0] for t in range(idx.size(1))], dim=1)
    finally:
        for layer in layers:
            layer.cache = None
    torch.testing.assert_close(one_by_one, whole, rtol=1e-5, atol=1e-5)
