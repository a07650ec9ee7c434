"""Checks for exercise 3: the shaped attention matrix and first gradients of five starts, and the prediction."""

import functools

import pytest
import torch

from blocks.parts import ShapedAttention, causal_softmax, shaped_attention_matrix, uniform_causal_matrix
from exercises.checks import assert_none, diagnose, under_test
from model import GPTConfig

exercise = under_test("zero_queries")
CONFIG = GPTConfig(block="sas", vocab_size=64, block_size=16, n_layer=2, n_head=2, n_embd=32)
INITS = ["W_Q = 0", "W_Q = 0, b_Q random", "W_K = 0, b_K random", "W_Q = W_K = 0", "W_Q, W_K ~ N(0, 0.02)"]
KEYS = ("identity", "W_Q learns", "W_K learns")
WHY = {  # the reason, shown when a prediction disagrees with the measurement
    ("W_Q = 0", "identity"): "q = 0 makes every logit 0, so A = C and alpha I + beta A - gamma C = I",
    ("W_Q = 0", "W_Q learns"): "dL/dq_i = sum_j G_ij k_j / sqrt(hs), and the keys are random",
    ("W_Q = 0", "W_K learns"): "dL/dk_j = sum_i G_ij q_i / sqrt(hs) is 0 while q = 0",
    ("W_Q = 0, b_Q random", "identity"): "every query is b_Q, but the logits b_Q . k_j still vary with j",
    ("W_K = 0, b_K random", "identity"): "every key is b_K: the logits q_i . b_K are constant along each row, "
                                         "and softmax ignores a constant added to a row",
    ("W_K = 0, b_K random", "W_Q learns"): "dL/dq_i = (sum_j G_ij) b_K / sqrt(hs), and a softmax's gradient sums "
                                           "to 0 along each row",
    ("W_Q = W_K = 0", "W_Q learns"): "q = k = 0: dL/dq = G k = 0 and dL/dk = G^T q = 0",
    ("W_Q = W_K = 0", "W_K learns"): "q = k = 0: dL/dq = G k = 0 and dL/dk = G^T q = 0",
    ("W_Q, W_K ~ N(0, 0.02)", "identity"): "small logits are not zero logits: A is close to C, not equal",
}


def build(init, seed=0):
    """The task's build(): a float64 ShapedAttention with alpha = beta = gamma = 1 and the given start."""
    g = torch.Generator().manual_seed(seed)
    attn = ShapedAttention(CONFIG, layer_idx=1, identity_values=True).double()
    d = CONFIG.n_embd
    with torch.no_grad():
        for gain in (attn.alpha, attn.beta, attn.gamma):
            gain.fill_(1.0)
        attn.c_qk.weight.copy_(0.02 * torch.randn(2 * d, d, generator=g, dtype=torch.float64))
        attn.c_qk.bias.zero_()
        W_Q, W_K, b_Q, b_K = attn.c_qk.weight[:d], attn.c_qk.weight[d:], attn.c_qk.bias[:d], attn.c_qk.bias[d:]
        if init in ("W_Q = 0", "W_Q = 0, b_Q random", "W_Q = W_K = 0"):
            W_Q.zero_()
        if init in ("W_K = 0, b_K random", "W_Q = W_K = 0"):
            W_K.zero_()
        if init == "W_Q = 0, b_Q random":
            b_Q.copy_(torch.randn(d, generator=g, dtype=torch.float64))
        if init == "W_K = 0, b_K random":
            b_K.copy_(torch.randn(d, generator=g, dtype=torch.float64))
    return attn


def inputs(seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, CONFIG.block_size, CONFIG.n_embd, generator=g, dtype=torch.float64)


def loss_of(attn, x):
    g = torch.Generator().manual_seed(2)
    return (attn(x) * torch.randn(x.shape, generator=g, dtype=torch.float64)).sum()


@functools.cache
def measured(init):
    attn, x = build(init), inputs()
    q, k, _ = attn.heads(x)
    with torch.no_grad():
        off = (shaped_attention_matrix(q, k, attn.alpha, attn.beta, attn.gamma) - torch.eye(x.size(1))).abs().max()
    loss_of(attn, x).backward()
    d, grad = CONFIG.n_embd, attn.c_qk.weight.grad
    return {"identity": off.item() < 1e-6, "W_Q learns": grad[:d].norm().item() > 1e-6,
            "W_K learns": grad[d:].norm().item() > 1e-6}


def test_attention_matrix_of_a_module():
    problems = []
    for init in INITS:
        attn, x = build(init, seed=3), inputs(seed=4)
        with torch.no_grad():
            attn.alpha.copy_(torch.tensor([0.5, 2.0]))  # gains that differ, to catch a term left out
            attn.gamma.copy_(torch.tensor([1.5, 0.25]))
            q, k, _ = attn.heads(x)
            T, eye = x.size(1), torch.eye(x.size(1), dtype=x.dtype)
            A, C = causal_softmax(q, k), uniform_causal_matrix(T).double()
            alpha, beta, gamma = (g.view(-1, 1, 1) for g in (attn.alpha, attn.beta, attn.gamma))
            expected = alpha * eye + beta * A - gamma * C
            mistakes = {"the gains are not the module's (attn.alpha, attn.beta, attn.gamma)": eye + A - C,
                        "+ gamma C: the centring matrix is subtracted": alpha * eye + beta * A + gamma * C,
                        "that is A alone: add alpha I and subtract gamma C": A}
            got = exercise.attention_matrix(attn, x)
        problems += diagnose(got, expected, mistakes, f"start {init!r}")
    assert_none(problems)


def test_first_gradients_of_a_module():
    problems = []
    for init in INITS:
        reference = build(init, seed=5)
        x = inputs(seed=6)
        loss_of(reference, x).backward()
        d, grad = CONFIG.n_embd, reference.c_qk.weight.grad
        expected = {"W_Q": grad[:d].norm().item(), "W_K": grad[d:].norm().item()}
        got = exercise.first_gradients(build(init, seed=5), x)
        for name in ("W_Q", "W_K"):
            if got.get(name) != pytest.approx(expected[name], rel=1e-6, abs=1e-9):
                swapped = got.get(name) == pytest.approx(expected["W_K" if name == "W_Q" else "W_Q"], rel=1e-6)
                hint = ("that is the other half: rows 0..d-1 of c_qk.weight are W_Q, rows d..2d-1 W_K" if swapped
                        else "the norm of the rows of attn.c_qk.weight.grad that belong to it, after one backward")
                problems.append(f"first_gradients, start {init!r}, {name}: {got.get(name)}, expected "
                                f"{expected[name]:.6g}: {hint}")
    assert_none(problems)


@pytest.mark.parametrize("init", INITS)
def test_prediction_agrees_with_the_measurement(init):
    predicted = exercise.predict()
    if init not in predicted:
        raise AssertionError(f"predict() has no entry for {init!r}; its keys must be the task's INITS")
    problems = []
    for key in KEYS:
        got, truth = predicted[init].get(key), measured(init)[key]
        if got is not truth:
            why = WHY.get((init, key), "measure it: python -m exercises.tasks.zero_queries")
            problems.append(f"{init}: you predicted {key!r} = {got}, measured {truth}: {why}")
    assert_none(problems)
