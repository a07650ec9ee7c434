"""Checks for exercise 4: the similarity measurement; the prediction is recorded and reported next to it, not graded."""

import functools

import pytest
import torch

from exercises.checks import assert_none, how_far_off, note, problems_with_prediction, under_test
from model import GPT, GPTConfig

exercise = under_test("attention_skip")
BLOCKS = ["pre_ln", "no_attn_skip_unshaped", "no_attn_skip"]
SHAPE = dict(vocab_size=256, block_size=64, n_layer=18, n_head=2, n_embd=128)  # the task's model
WORDS = ("apart", "partial", "collapsed")  # in order: a prediction is as far off as the steps between two words
QUESTION = {"pre_ln": "c", "no_attn_skip_unshaped": "a", "no_attn_skip": "b"}  # the one that explains each block


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
    same = torch.randn(1, 1, 16).expand(2, 5, 16)  # one vector, of norm about 4, at every position
    orthogonal = 3.0 * torch.eye(6).unsqueeze(0)  # six tokens, each along its own axis
    opposite = torch.tensor([[[1.0, 2.0], [-2.0, -4.0]]])
    both = torch.cat([same[:1, :, :6], orthogonal[:, :5]])  # a collapsed sequence and a spread-out one
    cases = [("identical tokens", same, 1.0), ("orthogonal tokens", orthogonal, 0.0),
             ("two opposite tokens", opposite, -1.0), ("a collapsed sequence and an orthogonal one", both, 0.5)]
    problems = []
    for name, x, expected in cases:
        got = exercise.mean_token_similarity(x)
        if got == pytest.approx(expected, abs=1e-5):
            continue
        T = x.size(1)
        if got == pytest.approx((expected * (T - 1) + 1) / T, abs=1e-5):
            hint = "the diagonal (each token with itself, always 1) is in your mean: leave it out"
        elif abs(got) > 1 + 1e-5:
            hint = "a cosine lies in [-1, 1]: normalise every token to a unit vector first (F.normalize(x, dim=-1))"
        else:
            hint = "the mean over pairs i != j of each sequence, then the mean over the batch"
        problems.append(f"{name}: {got:.4f}, expected {expected}: {hint}")
    assert_none(problems)


def problems_with_similarity_by_depth(similarity_by_depth, block):
    measured = similarity_by_depth(build(block), random_tokens())
    expected = reference(block)
    problems = []
    if len(measured) != SHAPE["n_layer"] + 1:
        problems.append(f"{len(measured)} values, expected {SHAPE['n_layer'] + 1}: the stream entering block 0 "
                        f"(the embeddings, from a forward pre-hook on block 0), then the output of each block")
    elif measured[1:] == pytest.approx(expected[:-1], abs=1e-4):
        problems.append("every value is one block early: the first is the stream entering block 0, the second "
                        "the output of block 0")
    else:
        if measured[0] != pytest.approx(expected[0], abs=1e-4):
            problems.append(f"entering block 0: {measured[0]:.4f}, expected {expected[0]:.4f}: args[0] of a forward "
                            f"pre-hook on block 0, the embeddings")
        wrong = [i for i in range(1, len(expected)) if measured[i] != pytest.approx(expected[i], abs=1e-4)]
        if wrong:
            problems.append(f"after blocks {', '.join(str(i - 1) for i in wrong)}: e.g. {measured[wrong[0]]:.4f}, "
                            f"expected {expected[wrong[0]]:.4f}: the output of each block, from forward hooks")
    return problems


@pytest.mark.parametrize("block", BLOCKS)
def test_similarity_by_depth_matches_the_check(block):
    assert_none(problems_with_similarity_by_depth(exercise.similarity_by_depth, block))


def test_similarity_by_depth_removes_its_hooks():
    model = build("pre_ln")
    exercise.similarity_by_depth(model, random_tokens(batch=1))
    left = [name or "the model" for name, module in model.named_modules()
            if module._forward_hooks or module._forward_pre_hooks]
    assert_none([f"hooks left on {', '.join(left)}: remove every hook you register (handle.remove(), in a finally)"]
                if left else [])


def how_far(block, predicted):
    """A line for the student: the prediction next to the similarity after the last block, and how far apart."""
    measured = reference(block)[-1]
    verdict = how_far_off(predicted, bucket(measured), WORDS)
    why = "" if verdict == "as predicted" else f": question {QUESTION[block]} says why"
    return f"{block:23} predicted {predicted!r:12} measured {measured:.2f} ({bucket(measured)}): {verdict}{why}"


def test_prediction_is_recorded():
    """Any honest guess passes: the prediction is reported next to the measurement at the end of the run."""
    predicted = exercise.predict()
    problems = problems_with_prediction(predicted, BLOCKS, WORDS)
    if not problems:
        for block in BLOCKS:
            note("exercise 4, attention_skip: your prediction next to the measurement (not graded)",
                 how_far(block, predicted[block]))
    assert_none(problems)
