"""Checks for exercise 3: the counted savings against the parameters of the models themselves."""

import functools

import pytest
import torch

from blocks import LADDER
from exercises.checks import under_test
from model import GPT, GPTConfig

exercise = under_test("parameter_count")
SHAPES = [dict(n_layer=1, n_embd=32, n_head=2), dict(n_layer=3, n_embd=32, n_head=4),
          dict(n_layer=6, n_embd=384, n_head=6), dict(n_layer=18, n_embd=768, n_head=12)]
PAPER_SHAPE = dict(vocab_size=50257, n_layer=18, n_embd=768, n_head=12)


@functools.cache
def num_params(block, vocab_size=64, block_size=16, **shape):
    with torch.device("meta"):  # shapes only: no memory, no init cost
        return GPT(GPTConfig(block=block, vocab_size=vocab_size, block_size=block_size, **shape)).num_params()


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s['n_layer']}x{s['n_embd']}")
def test_identity_values_saving_matches_the_models(shape):
    saved = num_params("no_attn_skip", **shape) - num_params("sas", **shape)
    assert exercise.saved_by_identity_values(shape["n_layer"], shape["n_embd"]) == saved


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s['n_layer']}x{s['n_embd']}")
def test_every_step_matches_the_models(shape):
    counted = exercise.saved_along_the_ladder(**shape)
    assert list(counted) == LADDER[1:]
    for before, block in zip(LADDER, LADDER[1:]):
        assert counted[block] == num_params(before, **shape) - num_params(block, **shape), f"{before} -> {block}"


def test_the_papers_counts():
    """The paper's 167M for Pre-LN and 146M for SAS, with the official code's 1024 learned positions."""
    pre_ln = num_params("pre_ln", block_size=1024, **PAPER_SHAPE)
    steps = exercise.saved_along_the_ladder(PAPER_SHAPE["n_layer"], PAPER_SHAPE["n_embd"], PAPER_SHAPE["n_head"])
    sas = pre_ln - steps["no_attn_skip"] - steps["sas"]
    assert (round(pre_ln / 1e6), round(sas / 1e6)) == (167, 146)
