"""Checks for exercise 7: the counted savings against the parameters of the models themselves, exactly, and
counted without building a model."""

import functools

import pytest
import torch

from blocks import LADDER
from exercises.checks import assert_none, names_used, under_test
from model import GPT, GPTConfig

exercise = under_test("parameter_count")
SHAPES = [dict(n_layer=1, n_embd=32, n_head=2), dict(n_layer=3, n_embd=32, n_head=4),
          dict(n_layer=6, n_embd=384, n_head=6), dict(n_layer=18, n_embd=768, n_head=12)]
PAPER_SHAPE = dict(vocab_size=50257, block_size=1024, n_layer=18, n_embd=768, n_head=12)  # the official code's
WHERE = {  # per step: where to look again, without the count
    "no_attn_skip": "compare blocks/pre_ln.py with blocks/no_attn_skip.py, and CausalSelfAttention with "
                    "ShapedAttention in blocks/parts.py",
    "sas": "CausalSelfAttention and IdentityPlusLinear in blocks/parts.py, with identity_values=True; mind layer 0",
    "sas_p": "blocks/sas.py against sas_p's equation in the task",
    "sas_p_nonorm": "sas_p's equation against sas_p_nonorm's in the task; mind block 0",
}


def mistakes(block, expected, n_layer, n_embd, n_head):
    """{the count a usual mistake gives for this step: what the mistake is}."""
    L, d = n_layer, n_embd
    return {
        "no_attn_skip": {-expected: "the sign: a step that adds parameters saves a negative number",
                         expected + 3 * n_head * L: "shaped attention's gains per head are missing",
                         expected + 3 * L: "the branch gains of every block are missing"},
        "sas": {expected + 2: "layer 0's W_V = alpha_V I + beta_V dW has two gains as well as dW",
                expected + d * d + 2: "layer 0 keeps a trainable W_V = alpha_V I + beta_V dW",
                expected - L * d * d: "W_V and W_P both go, not one of them"},
        "sas_p": {expected - L: "alpha_FF goes too: it scaled the MLP skip",
                  expected - L * d: "the second norm goes too: both branches read the same H"},
        "sas_p_nonorm": {expected + 2 * d: "block 0 keeps an entry LayerNorm",
                         expected + d: "a LayerNorm has a bias as well as a scale"},
    }[block]


def wrong(block, got, expected, shape):
    """What is wrong with a count, without the count: the mistake it matches, or too high or too low and where to
    look."""
    if not isinstance(got, int):
        return f"{got!r}: a count is an int"
    named = mistakes(block, expected, **shape).get(got)
    return named or f"too {'high' if got > expected else 'low'}: {WHERE[block]}"


@functools.cache
def num_params(block, vocab_size=64, block_size=16, **shape):
    with torch.device("meta"):  # shapes only: no memory, no init cost
        return GPT(GPTConfig(block=block, vocab_size=vocab_size, block_size=block_size, **shape)).num_params()


def shape_name(shape):
    return f"{shape['n_layer']} layers, width {shape['n_embd']}, {shape['n_head']} heads"


def problems_with_identity_values(saved_by_identity_values):
    problems = []
    for shape in SHAPES:
        expected = num_params("no_attn_skip", **shape) - num_params("sas", **shape)
        got = saved_by_identity_values(shape["n_layer"], shape["n_embd"])
        if got != expected:
            problems.append((shape_name(shape), f"saved_by_identity_values: {wrong('sas', got, expected, shape)}"))
    return problems


def problems_with_ladder(saved_along_the_ladder):
    """Every wrong step at every shape, each with the mistake it matches or where to look, never the count."""
    problems = []
    for shape in SHAPES:
        counted = saved_along_the_ladder(**shape)
        if list(counted) != LADDER[1:]:
            problems.append((shape_name(shape), f"the keys must be the four steps in ladder order, {LADDER[1:]}; "
                                                f"got {list(counted)}"))
        for before, block in zip(LADDER, LADDER[1:]):
            expected = num_params(before, **shape) - num_params(block, **shape)
            got = counted.get(block)
            if got != expected:
                problems.append((shape_name(shape), f"{before} -> {block}: {wrong(block, got, expected, shape)}"))
    return problems


def problems_with_shortcuts(module):
    """[] if the student's functions count by reasoning: they build no model as they run, and their file names
    neither tests/test_model.py's expected_num_params nor a model's num_params."""
    problems = [f"line {line}, `{code}`: count by reasoning; expected_num_params (tests/test_model.py) and "
                f"num_params are the answer" for line, code in
                names_used(module, ("expected_num_params", "num_params", "test_model"))]
    built, initialise = [], torch.nn.Module.__init__

    def record(self, *args, **kwargs):
        built.append(type(self).__name__)
        initialise(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.nn.Module, "__init__", record)
        module.saved_by_identity_values(3, 32)
        module.saved_along_the_ladder(3, 32, 4)
    if built:
        problems.append(f"your functions built a {built[0]} as they ran: count by reasoning, not by building models")
    return problems


def test_counted_not_built():
    assert_none(problems_with_shortcuts(exercise._module()))


def test_identity_values_saving_matches_the_models():
    assert_none(problems_with_identity_values(exercise.saved_by_identity_values))


def test_every_step_matches_the_models():
    assert_none(problems_with_ladder(exercise.saved_along_the_ladder))


def problems_with_the_papers_counts(saved_along_the_ladder, saved_by_identity_values):
    """The paper's 167M for Pre-LN and 146M for SAS, with the official code's 1024 learned positions: the
    exact counts of the models, not their rounding (a count off by a few thousand still rounds to 146M)."""
    pre_ln, sas = num_params("pre_ln", **PAPER_SHAPE), num_params("sas", **PAPER_SHAPE)
    assert (round(pre_ln / 1e6), round(sas / 1e6)) == (167, 146), "the models no longer have the paper's counts"
    shape = {key: PAPER_SHAPE[key] for key in ("n_layer", "n_embd", "n_head")}
    steps = saved_along_the_ladder(**shape)
    problems = []
    saved = steps["no_attn_skip"] + steps["sas"]
    if saved != pre_ln - sas:
        problems.append(f"at the paper's shape your first two steps save {'more' if saved > pre_ln - sas else 'less'} "
                        f"than pre_ln and sas differ by: the paper's 167M and 146M are rounded, the check counts "
                        f"exactly")
    identity_values = saved_by_identity_values(shape["n_layer"], shape["n_embd"])
    expected = num_params("no_attn_skip", **PAPER_SHAPE) - sas
    if identity_values != expected:
        problems.append(f"saved_by_identity_values(18, 768): {wrong('sas', identity_values, expected, shape)}")
    return problems


def test_the_papers_counts():
    assert_none(problems_with_the_papers_counts(exercise.saved_along_the_ladder, exercise.saved_by_identity_values))
