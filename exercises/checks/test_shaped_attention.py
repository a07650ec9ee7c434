"""Checks for exercise 2: the explicit shaped attention against the library's fused one."""

import torch

import blocks
import blocks.parts
from exercises.checks import assert_none, diagnose, names_used, under_test

exercise = under_test("shaped_attention")
B, H, D = 2, 3, 8
FORBIDDEN = {"parts", "scaled_dot_product_attention"}  # blocks/parts.py, however imported; torch's fused attention


def random_inputs(T, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, H, T, D, generator=g) for _ in range(3))
    alpha, beta, gamma = (torch.rand(H, generator=g) * 2 - 0.5 for _ in range(3))  # a different gain per head
    return q, k, v, alpha, beta, gamma


def written_out(q, k, v, alpha, beta, gamma, scale=None, mask="causal", softmax_dim=-1, sign=-1, normalise=True,
                gains="per head"):
    """Shaped attention with the usual mistakes switchable, to name the one a wrong answer made."""
    T, hs = q.size(-2), q.size(-1)
    logits = q @ k.transpose(-2, -1) * (hs**-0.5 if scale is None else scale)
    visible = torch.ones(T, T, dtype=torch.bool).tril()
    if mask == "future":
        visible = visible.T
    if mask != "none":
        logits = logits.masked_fill(~visible, float("-inf"))
    A = logits.softmax(dim=softmax_dim).nan_to_num()
    C = torch.ones(T, T).tril()
    if normalise:
        C = C / C.sum(dim=-1, keepdim=True)
    if gains == "head 0":
        alpha, beta, gamma = (g[:1] for g in (alpha, beta, gamma))
    alpha, beta, gamma = (g.view(-1, 1, 1) for g in (alpha, beta, gamma))
    return (alpha * torch.eye(T) + beta * A + sign * gamma * C) @ v


def problems_with_uniform_causal(uniform_causal):
    problems = []
    for T in (1, 4, 5, 16):
        got, expected = uniform_causal(T), blocks.parts.uniform_causal_matrix(T)
        if got.shape == expected.shape and got.triu(diagonal=1).abs().max() > 0:
            problems.append((f"uniform_causal({T})", "C[i, j] for j > i must be 0: keep the lower triangle (tril), "
                                                     "position i sees only j <= i"))
        elif got.shape == expected.shape and not torch.allclose(got.sum(dim=-1), torch.ones(T)):
            problems.append((f"uniform_causal({T})", "each row must average what it sees, so sum to 1: divide row i "
                                                     "by i + 1, the number of positions it sees"))
        else:
            problems += diagnose(got, expected, {}, f"uniform_causal({T})")
    return problems


def problems_with_shaped_attention(shaped_attention):
    problems = []
    for T in (1, 2, 17, 64):
        inputs = random_inputs(T)
        mistakes = {"check the 1/sqrt(head size) scale of the logits: there is none": written_out(*inputs, scale=1.0),
                    "check the 1/sqrt(head size) scale of the logits: divide by sqrt(hs), not by hs":
                        written_out(*inputs, scale=1 / D),
                    "the causal mask is missing: position i may only see j <= i": written_out(*inputs, mask="none"),
                    "the mask hides the past instead of the future: keep the lower triangle (tril)":
                        written_out(*inputs, mask="future"),
                    "the softmax normalises columns: take it over the last dimension (keys)":
                        written_out(*inputs, softmax_dim=-2),
                    "+ gamma C: the centring matrix is subtracted": written_out(*inputs, sign=+1),
                    "C's rows are not averages: divide each row of the lower triangle by its sum":
                        written_out(*inputs, normalise=False),
                    "every head got head 0's gains: view the (nh,) gains as (nh, 1, 1)":
                        written_out(*inputs, gains="head 0")}
        problems += diagnose(shaped_attention(*inputs), blocks.parts.shaped_attention(*inputs), mistakes,
                             f"at T = {T}")
    return problems


def test_uniform_causal_averages_the_visible_past():
    assert_none(problems_with_uniform_causal(exercise.uniform_causal))


def test_matches_the_library():
    assert_none(problems_with_shaped_attention(exercise.shaped_attention))


def test_output_at_zero_queries():
    """q = 0 and alpha = beta = gamma = 1, as GPT.init_weights starts it (question a)."""
    _, k, v, *_ = random_inputs(T=33)
    ones = torch.ones(H)
    out = exercise.shaped_attention(torch.zeros_like(k), k, v, ones, ones, ones)
    assert_none(diagnose(out, v, {}, "with q = 0 and alpha = beta = gamma = 1, as at initialisation: question a "
                                     "asks what it should be", atol=1e-6))


def test_gains_act_per_head():
    q, k, v, *_ = random_inputs(T=9)
    alpha, zeros = torch.tensor([1.0, 0.0, 2.0]), torch.zeros(H)  # beta = gamma = 0 leaves alpha I
    out = exercise.shaped_attention(q, k, v, alpha, zeros, zeros)
    assert_none(diagnose(out, alpha.view(1, H, 1, 1) * v, {}, "with beta = gamma = 0, head h should return "
                                                              "alpha_h v_h: line each head's gain up with its head"))


def test_causal():
    """Changing the keys and values at position t leaves every output before t unchanged."""
    q, k, v, alpha, beta, gamma = random_inputs(T=12)
    t = 7
    k2, v2 = k.clone(), v.clone()
    k2[..., t, :] += 1.0
    v2[..., t, :] += 1.0
    before = exercise.shaped_attention(q, k, v, alpha, beta, gamma)
    after = exercise.shaped_attention(q, k2, v2, alpha, beta, gamma)
    assert_none(diagnose(after[..., :t, :], before[..., :t, :], {},
                         f"changing position {t} changed the outputs before it: the future must get weight 0"))


def problems_with_library_use(module):
    """[] if the student's file names nothing from blocks/parts.py and not torch's fused attention."""
    return [f"line {line}, `{code}`: exercise 2 asks for the explicit T x T form; use nothing from blocks/parts.py "
            f"and not torch's scaled_dot_product_attention" for line, code in names_used(module, FORBIDDEN)]


def test_built_without_the_library(monkeypatch):
    """Neither named in the file nor reached at run time, through whatever the file imports."""
    def refuse(*args, **kwargs):
        raise AssertionError("exercise 2 asks for the explicit T x T form: do not call the library's attention")

    problems = problems_with_library_use(exercise._module())
    for module, name in [(blocks.parts, "shaped_attention"), (blocks.parts, "shaped_attention_matrix"),
                         (blocks.parts, "causal_softmax"), (blocks.parts, "uniform_causal_matrix"),
                         (torch.nn.functional, "scaled_dot_product_attention")]:
        monkeypatch.setattr(module, name, refuse)
    assert exercise.shaped_attention(*random_inputs(T=5)).shape == (B, H, 5, D)
    assert_none(problems)
