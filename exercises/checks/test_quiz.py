"""Checks for exercise 14: every answer against what the repository's code does, worked out here by measuring.

Each question's check builds tiny models and finds which option is true; a wrong answer fails with a hint.
"""

import dataclasses
from types import SimpleNamespace

import pytest
import torch

import train
from blocks.parts import IdentityPlusLinear, RMSNorm, shaped_attention_matrix
from exercises.checks import assert_none, under_test
from model import GPT, GPTConfig

exercise = under_test("quiz")
CONFIG = GPTConfig(vocab_size=64, block_size=8, n_layer=4, n_head=2, n_embd=16)
LETTERS = ("a", "b", "c", "d")


def model(block, **changes):
    torch.manual_seed(0)
    return GPT(dataclasses.replace(CONFIG, block=block, **changes))


def same(a, b):
    return a.shape == b.shape and torch.allclose(a, b, atol=1e-5)


@torch.no_grad()
def q1():
    attn = model("sas").blocks[1].attn
    q, k, _ = attn.heads(torch.randn(2, 8, 16))
    M = shaped_attention_matrix(q, k, attn.alpha, attn.beta, attn.gamma)
    I, C = torch.eye(8), torch.ones(8, 8).tril() / torch.arange(1, 9).view(8, 1)
    return {"a": same(M, C.expand_as(M)), "b": same(M, (I - C).expand_as(M)),
            "c": same(M, (2 * I - C).expand_as(M)), "d": same(M, I.expand_as(M))}


def q2():
    attn = model("no_attn_skip").blocks[1].attn  # dense W_V, to see whether it is zeroed
    d = CONFIG.n_embd
    zero = lambda t: bool((t == 0).all())  # noqa: E731
    return {"a": zero(attn.c_qk.weight[:d]) and zero(attn.c_qk.bias[:d]), "b": zero(attn.c_qk.weight[d:]),
            "c": zero(attn.c_v.weight), "d": all(zero(g) for g in (attn.alpha, attn.beta, attn.gamma))}


@torch.no_grad()
def q3():
    block = model("sas_p").blocks[1]
    x = torch.randn(2, 8, 16)
    out, h = block(x), block.ln_1(x)
    return {"a": same(out, x + h), "b": same(out, x + 0.1 * block.mlp(h)), "c": same(out, h + 0.1 * block.mlp(h)),
            "d": same(out, 0.1 * block.mlp(h))}


def q4():
    m = model("sas")
    decayed = {id(p) for p in m.configure_optimizers(weight_decay=0.1, learning_rate=1e-3).param_groups[0]["params"]}
    ids = lambda params: {id(p) for p in params}  # noqa: E731
    norm_scales = ids(mod.weight for mod in m.modules() if isinstance(mod, (RMSNorm, torch.nn.LayerNorm)))
    matrices = ids(p for p in m.parameters() if p.dim() >= 2)
    return {"a": decayed == ids(m.parameters()), "b": decayed == ids([m.wte.weight, m.wpe.weight]),
            "c": decayed == matrices | norm_scales, "d": decayed == matrices}


def q5():
    layers = [i for i, block in enumerate(model("sas").blocks) if isinstance(block.attn.c_v, IdentityPlusLinear)]
    return {"a": layers == [], "b": layers == [0], "c": layers == list(range(CONFIG.n_layer)),
            "d": layers == [CONFIG.n_layer - 1]}


def q6():
    m = model("sas_p_nonorm")
    norms = {name: type(mod) for name, mod in m.named_modules() if isinstance(mod, (RMSNorm, torch.nn.LayerNorm))}
    return {"a": norms == {}, "b": norms == {"ln_f": torch.nn.LayerNorm},
            "c": {f"blocks.{i}.ln_1" for i in range(CONFIG.n_layer)} <= norms.keys()
            and all(norms[f"blocks.{i}.ln_1"] is RMSNorm for i in range(CONFIG.n_layer)),
            "d": norms == {"blocks.0.ln_1": torch.nn.LayerNorm, "ln_f": torch.nn.LayerNorm}}


def q7():
    with torch.device("meta"):
        count = {block: model(block).num_params() for block in ("pre_ln", "no_attn_skip", "sas", "sas_p",
                                                                "sas_p_nonorm")}
    adds = lambda before, after: count[after] > count[before]  # noqa: E731
    return {"a": adds("sas", "sas_p"), "b": adds("pre_ln", "no_attn_skip"), "c": adds("no_attn_skip", "sas"),
            "d": adds("sas_p", "sas_p_nonorm")}


def q8():
    T = 6
    C = torch.ones(T, T, dtype=torch.float64).tril() / torch.arange(1, T + 1, dtype=torch.float64).view(T, 1)
    eigenvalues = torch.linalg.eigvals(C).real.sort(descending=True).values
    candidates = {"a": torch.ones(T), "b": torch.tensor([1.0] + [0.0] * (T - 1)),
                  "c": 1 / torch.arange(1, T + 1), "d": torch.full((T,), 1 / T)}
    return {letter: same(eigenvalues.float(), values) for letter, values in candidates.items()}


def q9():
    T = 5
    C = torch.zeros(T, T).softmax(dim=-1)  # zero logits, no mask
    return {"a": same(C, torch.full((T, T), 1 / T)), "b": same(C, torch.eye(T)),
            "c": same(C, torch.ones(T, T).tril() / torch.arange(1, T + 1).view(T, 1)), "d": same(C, torch.zeros(T, T))}


def q10():
    lr = train.learning_rate_at(0, SimpleNamespace(max_steps=1000, warmup_frac=0.05, learning_rate=1e-3))
    return {"a": lr == 0, "b": lr == pytest.approx(1e-3), "c": lr == pytest.approx(1e-3 / 51),
            "d": lr == pytest.approx(1e-3 / 50)}


QUESTIONS = {  # number: (how the check works it out, the option texts, a hint for a wrong answer)
    1: (q1, {"a": "C", "b": "I - C", "c": "2I - C", "d": "I"},
        "GPT.init_weights zeroes W_Q: what is A at zero logits, and what is left of alpha I + beta A - gamma C?"),
    2: (q2, {"a": "W_Q", "b": "W_K", "c": "W_V", "d": "alpha, beta, gamma"},
        "read the shaped attention lines of GPT.init_weights: which half of the fused c_qk is zeroed?"),
    3: (q3, {"a": "X + H", "b": "X + 0.1 MLP(H)", "c": "H + 0.1 MLP(H)", "d": "0.1 MLP(H)"},
        "sas_p has no skip: out = beta_SA ShA(H) + beta_FF MLP(H), with ShA = I at initialisation"),
    4: (q4, {"a": "every parameter", "b": "the embeddings only", "c": "matrices, embeddings and norm scales",
             "d": "matrices and embeddings"}, "configure_optimizers groups the tensors by their number of dimensions"),
    5: (q5, {"a": "no layer", "b": "layer 0 only", "c": "every layer", "d": "the last layer only"},
        "CausalSelfAttention in blocks/parts.py: when is c_v an IdentityPlusLinear?"),
    6: (q6, {"a": "nothing", "b": "the final LayerNorm only", "c": "an RMSNorm in every block",
             "d": "block 0's entry LayerNorm and the final LayerNorm"},
        "blocks/sas_p_nonorm.py: what is ln_1 in layer 0? And model.py's ln_f?"),
    7: (q7, {"a": "sas -> sas_p", "b": "pre_ln -> no_attn_skip", "c": "no_attn_skip -> sas",
             "d": "sas_p -> sas_p_nonorm"}, "removing a skip frees no parameter, but shaping attention adds gains"),
    8: (q8, {"a": "all 1", "b": "1 and T - 1 zeros", "c": "1, 1/2, ..., 1/T", "d": "all 1/T"},
        "C is lower triangular: where are a triangular matrix's eigenvalues?"),
    9: (q9, {"a": "every entry 1/T", "b": "I", "c": "lower triangular", "d": "zero"},
        "without a mask every position sees all T positions, and softmax of equal logits is uniform"),
    10: (q10, {"a": "0", "b": "1e-3", "c": "1e-3 / 51", "d": "1e-3 / 50"},
         "learning_rate_at in train.py: warmup = round(0.05 * 1000) steps, and step s gets lr (s + 1) / (warmup + 1)"),
}


def test_every_question_has_an_answer():
    given = exercise.answers()
    problems = [f"question {n}: no answer" for n in QUESTIONS if n not in given]
    problems += [f"question {n}: {given[n]!r} is not one of a, b, c, d" for n in QUESTIONS
                 if n in given and given[n] not in LETTERS]
    problems += [f"there is no question {n!r}: the keys are the numbers 1 to 10" for n in given if n not in QUESTIONS]
    assert_none(problems)


@pytest.mark.parametrize("number", list(QUESTIONS))
def test_answer(number):
    given = exercise.answers().get(number)
    work_out, options, hint = QUESTIONS[number]
    true = [letter for letter, holds in work_out().items() if holds]
    assert len(true) == 1, f"question {number} no longer has exactly one true option in this code: {true}"
    if given != true[0]:
        chosen = f"{given!r} ({options[given]})" if given in options else repr(given)
        raise AssertionError(f"question {number}: {chosen} is not what the code does. Hint: {hint}")
