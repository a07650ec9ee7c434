"""Checks for exercise 2: the similarity measurement, then the prediction against it."""

import functools

import pytest
import torch

from exercises.checks import under_test
from model import GPT, GPTConfig

exercise = under_test("attention_skip")
BLOCKS = ["pre_ln", "no_attn_skip_unshaped", "no_attn_skip"]
SHAPE = dict(vocab_size=256, block_size=64, n_layer=18, n_head=2, n_embd=128)  # the task's model
WORDS = ("apart", "partial", "collapsed")


def build(block):
    torch.manual_seed(0)
    return GPT(GPTConfig(block=block, **SHAPE)).eval()


def random_tokens(batch=8):
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, SHAPE["vocab_size"], (batch, SHAPE["block_size"]), generator=g)


def bucket(similarity):
    """The word for a similarity, with the task's thresholds."""
    return "apart" if similarity < 0.2 else "collapsed" if similarity > 0.95 else "partial"


def similarity(x):
    """The check's own mean_token_similarity: the cosine matrix without its diagonal, averaged."""
    unit = x / x.norm(dim=-1, keepdim=True)
    cosines = unit @ unit.transpose(-1, -2)
    off_diagonal = ~torch.eye(x.size(1), dtype=torch.bool)
    return cosines[:, off_diagonal].mean().item()


@functools.cache
@torch.no_grad()
def reference(block):
    """The similarity entering block 0 and after each block, from a forward pass written out by hand."""
    model, idx = build(block), random_tokens()
    x = model.wte(idx) + model.wpe(torch.arange(idx.size(1)))
    measured = [similarity(x)]
    for layer in model.blocks:
        x = layer(x)
        measured.append(similarity(x))
    return measured


def test_mean_token_similarity_on_known_inputs():
    same = torch.randn(1, 1, 16).expand(2, 5, 16)
    assert exercise.mean_token_similarity(same) == pytest.approx(1.0, abs=1e-5)
    orthogonal = 3.0 * torch.eye(6).unsqueeze(0)  # six tokens, each along its own axis
    assert exercise.mean_token_similarity(orthogonal) == pytest.approx(0.0, abs=1e-6)
    opposite = torch.tensor([[[1.0, 2.0], [-2.0, -4.0]]])
    assert exercise.mean_token_similarity(opposite) == pytest.approx(-1.0, abs=1e-5)
    both = torch.cat([same[:1, :, :6], orthogonal[:, :5]])  # a collapsed sequence and a spread-out one
    assert exercise.mean_token_similarity(both) == pytest.approx(0.5, abs=1e-5)


@pytest.mark.parametrize("block", BLOCKS)
def test_similarity_by_depth_matches_the_check(block):
    measured = exercise.similarity_by_depth(build(block), random_tokens())
    assert len(measured) == SHAPE["n_layer"] + 1, "the stream entering block 0, then after each block"
    assert measured == pytest.approx(reference(block), abs=1e-4)


def test_similarity_by_depth_removes_its_hooks():
    model = build("pre_ln")
    exercise.similarity_by_depth(model, random_tokens(batch=1))
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks, "remove every hook you register"


@pytest.mark.parametrize("block", BLOCKS)
def test_prediction_agrees_with_the_measurement(block):
    predicted = exercise.predict()[block]
    assert predicted in WORDS, f"predict()[{block!r}] must be one of {WORDS}"
    measured = reference(block)[-1]
    assert predicted == bucket(measured), (f"{block}: you predicted {predicted!r}, the similarity after the last "
                                           f"block is {measured:.2f} ({bucket(measured)!r}): why?")
