"""Checks for exercise 5: C v and C^T g in O(T), against the explicit matrix, and the autograd Function; none
builds a T x T matrix."""

import math

import torch

from exercises.checks import Operations, assert_none, close, diagnose, under_test

exercise = under_test("running_mean")
SHAPES = [(1, 1, 1, 1), (2, 3, 7, 4), (5, 16, 8), (33, 2)]  # (..., T, hs): T = 1, 7, 16, 33
LONG = 300  # a T at which a T x T matrix (90,000 entries) dwarfs every O(T) tensor (the inputs have 1,800)


def C(T):
    """The uniform causal matrix in float64 (blocks.parts builds it in float32)."""
    visible = torch.ones(T, T, dtype=torch.float64).tril()
    return visible / visible.sum(dim=1, keepdim=True)


def tensors(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64)


def arange_column(T, start):
    return torch.arange(start, start + T, dtype=torch.float64).view(T, 1)


def problems_with_running_mean(running_mean):
    problems = []
    for shape in SHAPES:
        v = tensors(shape)
        T = v.size(-2)
        positions = arange_column(T, 1)
        mistakes = {"no division: that is the running sum; divide position i by i + 1": v.cumsum(-2),
                    "divided by 0, 1, ..., T - 1: position i averages i + 1 positions":
                        v.cumsum(-2) / arange_column(T, 0),
                    "the sum runs over the wrong dimension: positions are dim -2": v.cumsum(-1) / positions,
                    "that is C^T v, the running sum from the end": (v / positions).flip(-2).cumsum(-2).flip(-2)}
        problems += diagnose(running_mean(v), C(T) @ v, mistakes, f"shape {shape}", atol=1e-7)
    return problems


def problems_with_transposed(transposed):
    problems = []
    for shape in SHAPES:
        g = tensors(shape, seed=1)
        T = g.size(-2)
        positions = arange_column(T, 1)
        mistakes = {"that is C g, the forward direction: the gradient of position j collects from the positions "
                    "i >= j after it (flip, cumsum, flip)": C(T) @ g,
                    "divided after the reversed sum: divide each g_i by i + 1 first, then sum over i >= j":
                        g.flip(-2).cumsum(-2).flip(-2) / positions,
                    "no division: C^T g sums g_i / (i + 1), not g_i": g.flip(-2).cumsum(-2).flip(-2),
                    "flipped back too soon or not at all: flip, cumsum, then flip the result back":
                        (g / positions).flip(-2).cumsum(-2)}
        problems += diagnose(transposed(g), C(T).T @ g, mistakes, f"shape {shape}", atol=1e-7)
    return problems


def test_running_mean_is_C_times_v():
    assert_none(problems_with_running_mean(exercise.running_mean))


def test_running_mean_transposed_is_C_transposed_times_g():
    assert_none(problems_with_transposed(exercise.running_mean_transposed))


def test_function_forward_and_backward():
    problems = []
    for shape in SHAPES:
        v, g = tensors(shape), tensors(shape, seed=2)
        T = v.size(-2)
        leaf = v.clone().requires_grad_()
        out = exercise.RunningMean.apply(leaf)
        if not close(out.detach(), C(T) @ v, atol=1e-7):
            problems.append(f"RunningMean.apply, shape {shape}: the forward is not C v (use running_mean)")
        out.backward(g)
        if leaf.grad is None or not close(leaf.grad, C(T).T @ g, atol=1e-7):
            problems.append(f"RunningMean backward, shape {shape}: the gradient is not C^T g "
                            f"(use running_mean_transposed on grad_output)")
    if not problems:  # finite differences, as torch checks its own functions
        v = tensors((2, 9, 3)).requires_grad_()
        if not torch.autograd.gradcheck(exercise.RunningMean.apply, (v,), raise_exception=False):
            problems.append("torch.autograd.gradcheck disagrees with your backward")
    assert_none(problems)


def problems_with_memory(running_mean, transposed, Function):
    """[] if none of the three makes a tensor of O(T^2) entries, forward or backward, at T = LONG."""
    v, g = tensors((2, LONG, 3)), tensors((2, LONG, 3), seed=1)
    calls = {"running_mean": lambda: running_mean(v), "running_mean_transposed": lambda: transposed(g),
             "RunningMean, forward and backward": lambda: Function.apply(v.clone().requires_grad_()).backward(g)}
    problems = []
    for name, call in calls.items():
        with Operations() as operations:
            call()
        large = next(((op, shape) for op, _, outputs in operations.seen for shape in outputs
                      if math.prod(shape) >= LONG * LONG // 2), None)
        if large:
            problems.append(f"{name} made a tensor of shape {large[1]} (torch's {large[0]}) at T = {LONG}: build "
                            f"no T x T matrix, take running sums along the positions")
    return problems


def test_no_T_by_T_matrix():
    assert_none(problems_with_memory(exercise.running_mean, exercise.running_mean_transposed, exercise.RunningMean))
