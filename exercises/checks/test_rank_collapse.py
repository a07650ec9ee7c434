"""Checks for exercise 1: powers of C, their limit, and the rate at which they reach it."""

import pytest
import torch

from exercises.checks import Operations, assert_none, close, under_test

exercise = under_test("rank_collapse")
PRODUCTS = ("mm", "bmm", "addmm", "baddbmm", "addbmm", "mv")  # matrix products; and every linalg_ operation


def C(T):
    """The uniform causal matrix in float64 (blocks.parts builds it in float32)."""
    visible = torch.ones(T, T, dtype=torch.float64).tril()
    return visible / visible.sum(dim=1, keepdim=True)


def true_power(T, n):
    result = torch.eye(T, dtype=torch.float64)
    for _ in range(n):
        result = result @ C(T)
    return result


def true_limit(T):
    return torch.zeros(T, T, dtype=torch.float64).index_fill_(1, torch.tensor([0]), 1.0)


def true_distance(T, n):
    return (true_power(T, n) - true_limit(T)).abs().max().item()


def problems_with_power(power):
    problems = []
    for T, n in [(1, 3), (5, 0), (5, 1), (6, 2), (16, 7)]:
        got = torch.as_tensor(power(T, n)).double()
        if not close(got, true_power(T, n), atol=1e-7):
            hint = ("C^0 is the identity" if n == 0 else
                    "that is C^(n+1): count the factors" if close(got, true_power(T, n + 1)) else
                    "that is C^(n-1): count the factors" if n > 0 and close(got, true_power(T, n - 1)) else
                    "each entry raised to the n-th power: C^n is a matrix power (torch.linalg.matrix_power)"
                    if close(got, C(T) ** n) else "compare with C @ C @ ... @ C, n times")
            problems.append(f"power({T}, {n}): {hint}")
    return problems


def problems_with_limit(limit):
    problems = []
    for T in (1, 4, 9):
        got = torch.as_tensor(limit(T)).double()
        if close(got, true_limit(T), atol=1e-7):
            continue
        if got.shape != (T, T):
            problems.append(f"limit({T}): shape {tuple(got.shape)}, expected ({T}, {T})")
        elif close(got, torch.full((T, T), 1.0 / T, dtype=torch.float64)):
            problems.append(f"limit({T}): every entry 1/T is an encoder's collapse (no mask, question d); with the "
                            f"causal mask position 0 sees only itself, so row 0 of C^n stays (1, 0, ..., 0)")
        elif not close(got.sum(dim=1), torch.ones(T, dtype=torch.float64)):
            problems.append(f"limit({T}): its rows must sum to 1, as every row of C^n does (C 1 = 1)")
        else:
            problems.append(f"limit({T}): not the limit; what is row 0 of C^n, for every n?")
    return problems


def test_power_is_a_matrix_power():
    assert_none(problems_with_power(exercise.power))


def test_limit_of_the_powers():
    assert_none(problems_with_limit(exercise.limit))


def problems_with_limit_by_hand(limit):
    """[] if limit(T) is the limit and torch multiplied or decomposed no T x T matrix to make it."""
    problems = []
    for T in (4, 9):
        with Operations() as operations:
            got = limit(T)
        taken = sorted({name for name, inputs, _ in operations.seen
                        if (name in PRODUCTS or name.startswith(("linalg_", "_linalg_")))
                        and any(shape[-2:] == (T, T) for shape in inputs)})
        if taken:
            problems.append(f"limit({T}) multiplied or decomposed {T} x {T} matrices (torch's {', '.join(taken)}): "
                            f"build it by hand from what you derived, not from powers of C")
        elif not close(torch.as_tensor(got).double(), true_limit(T), atol=1e-7):
            problems.append(f"limit({T}) is built by hand but is not the limit: see test_limit_of_the_powers")
    return problems


def test_limit_is_derived_not_computed():
    assert_none(problems_with_limit_by_hand(exercise.limit))


def test_distance_and_layers_to_collapse():
    problems = []
    for T, n in [(2, 3), (8, 5), (64, 10)]:
        got, expected = exercise.distance(T, n), true_distance(T, n)
        if got != pytest.approx(expected, rel=1e-5, abs=1e-10):
            problems.append(f"distance({T}, {n}) = {got:.6g}, expected {expected:.6g}: the largest entry of "
                            f"|C^n - limit(T)|")
    for T, tol in [(2, 1e-3), (8, 1e-3), (64, 1e-3), (16, 1e-2)]:
        n = exercise.layers_to_collapse(T, tol)
        if not (true_distance(T, n) < tol and (n == 0 or true_distance(T, n - 1) >= tol)):
            problems.append(f"layers_to_collapse({T}, {tol}) = {n}: C^{n} is {true_distance(T, n):.3g} from the "
                            f"limit; the answer is the first n whose distance is below tol")
    assert_none(problems)


def test_second_eigenvalue_sets_the_rate():
    problems = []
    for T in (2, 5, 32):
        eigenvalues = torch.linalg.eigvals(C(T)).real.sort(descending=True).values
        measured_rate = true_distance(T, 21) / true_distance(T, 20)
        got = exercise.second_eigenvalue(T)
        if got != pytest.approx(eigenvalues[1].item(), abs=1e-9):
            problems.append(f"second_eigenvalue({T}) = {got}: C is lower triangular, so its eigenvalues are its "
                            f"diagonal entries; the distance shrinks by {measured_rate:.3f} per layer at n = 20")
    assert_none(problems)
