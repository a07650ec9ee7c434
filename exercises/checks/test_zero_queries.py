"""Checks for exercise 3: the shaped attention matrix and first gradients of five starts; the prediction is recorded
and reported next to the measurement, not graded."""

import functools

import pytest
import torch

from blocks.parts import ShapedAttention, causal_softmax, shaped_attention_matrix, uniform_causal_matrix
from exercises.checks import assert_none, diagnose, note, problems_with_predictions, under_test
from model import GPTConfig

exercise = under_test("zero_queries")
CONFIG = GPTConfig(block="sas", vocab_size=64, block_size=16, n_layer=2, n_head=2, n_embd=32)
INITS = ["W_Q = 0", "W_Q = 0, b_Q random", "W_K = 0, b_K random", "W_Q = W_K = 0", "W_Q, W_K ~ N(0, 0.02)"]
KEYS = ("identity", "W_Q learns", "W_K learns")
QUESTION = {"W_Q = 0": "c", "W_Q = 0, b_Q random": "b", "W_K = 0, b_K random": "d", "W_Q = W_K = 0": "c",
            "W_Q, W_K ~ N(0, 0.02)": "e"}  # the question that explains each start


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


def next_to_the_measurement(init, predicted):
    """A line for the student: the prediction for one start next to the measurement, and how many were off."""
    cells = "".join(f"{f'{predicted[key]}/{measured(init)[key]}':>13}" for key in KEYS)
    off = sum(predicted[key] != measured(init)[key] for key in KEYS)
    verdict = "as predicted" if not off else f"{off} off: question {QUESTION[init]} says why"
    return f"{init:24}{cells}   {verdict}"


def test_prediction_is_recorded():
    """Any honest guess passes: the prediction is reported next to the measurement at the end of the run."""
    predicted = exercise.predict()
    problems = problems_with_predictions(predicted, INITS, KEYS, (True, False))
    if not problems:
        heading = "exercise 3, zero_queries: your prediction next to the measurement (not graded)"
        note(heading, f"{'start':24}" + "".join(f"{key:>13}" for key in KEYS) + "   (predicted/measured)")
        for init in INITS:
            note(heading, next_to_the_measurement(init, predicted[init]))
    assert_none(problems)
