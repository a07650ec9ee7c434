"""Checks for exercise 7: the counted savings against the parameters of the models themselves, exactly."""

import functools

import torch

from blocks import LADDER
from exercises.checks import assert_none, under_test
from model import GPT, GPTConfig

exercise = under_test("parameter_count")
SHAPES = [dict(n_layer=1, n_embd=32, n_head=2), dict(n_layer=3, n_embd=32, n_head=4),
          dict(n_layer=6, n_embd=384, n_head=6), dict(n_layer=18, n_embd=768, n_head=12)]
PAPER_SHAPE = dict(vocab_size=50257, block_size=1024, n_layer=18, n_embd=768, n_head=12)  # the official code's
WHAT_CHANGES = {  # per step: what appears and disappears, to point at a wrong count
    "no_attn_skip": "it removes no tensor (a skip has no parameters) and adds, in every layer, alpha, beta, gamma "
                    "per head and the gains beta_SA, alpha_FF, beta_FF: a negative saving",
    "sas": "W_V and W_P (d x d each) go in every layer, but layer 0 keeps W_V = alpha_V I + beta_V dW: dW (d x d) "
           "and two gains",
    "sas_p": "the second RMSNorm's scale (d) and alpha_FF go in every layer",
    "sas_p_nonorm": "every block's RMSNorm scale (d) goes, but block 0 gains an entry LayerNorm: scale and bias, 2d",
}


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
            problems.append((shape_name(shape), f"saved_by_identity_values is off by {got - expected:+,} (it should "
                                                f"be {expected:,}): {WHAT_CHANGES['sas']}"))
    return problems


def problems_with_ladder(saved_along_the_ladder):
    """Every wrong step at every shape, each with what that step changes."""
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
                off = f"off by {got - expected:+,}" if isinstance(got, int) else f"{got!r}"
                problems.append((shape_name(shape), f"{before} -> {block}: {off} (it should be {expected:,}): "
                                                    f"{WHAT_CHANGES[block]}"))
    return problems


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
    counted_sas = pre_ln - steps["no_attn_skip"] - steps["sas"]
    if counted_sas != sas:
        problems.append(f"pre_ln has {pre_ln:,} parameters and sas {sas:,} at the paper's shape (167M and 146M, "
                        f"rounded); your steps give sas {counted_sas:,}, off by {counted_sas - sas:+,}")
    saved = saved_by_identity_values(shape["n_layer"], shape["n_embd"])
    expected = num_params("no_attn_skip", **PAPER_SHAPE) - sas
    if saved != expected:
        problems.append(f"saved_by_identity_values(18, 768) = {saved:,}; the models say {expected:,}")
    return problems


def test_the_papers_counts():
    assert_none(problems_with_the_papers_counts(exercise.saved_along_the_ladder, exercise.saved_by_identity_values))
