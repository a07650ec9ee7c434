"""
Exercise 1, solved: rank collapse, powers of the uniform causal matrix. The task and the hint
are in exercises/tasks/rank_collapse.py.

What `python -m exercises.solutions.rank_collapse` prints:

    distance of C^n from its limit
        T        1        2        4        8       16   layers to 1e-3
        2 5.00e-01 2.50e-01 6.25e-02 3.91e-03 1.53e-05         10
        8 8.75e-01 6.60e-01 2.72e-01 2.46e-02 1.06e-04         13
       64 9.84e-01 9.26e-01 6.55e-01 1.34e-01 9.23e-04         16
      128 9.92e-01 9.58e-01 7.53e-01 2.01e-01 1.80e-03         17

Answers
-------
a. Row 0 of C is e_0 = (1, 0, ..., 0): position 0 sees only itself, so its row never changes,
   e_0^T C = e_0^T. Every other row gives position 0 some weight and keeps it, since rows stay
   averages (C 1 = 1). The part of C with eigenvalue 1 is therefore 1 e_0^T (right eigenvector 1,
   left eigenvector e_0), and every other eigenvalue is below 1, so C^n -> 1 e_0^T: every row
   becomes e_0. Applied to tokens, (C^n x)_i -> x_0: every position holds the first token's
   vector, a rank-one matrix. That is rank collapse (§4.1).
b. C is lower triangular, so its eigenvalues are its diagonal: 1, 1/2, 1/3, ..., 1/T. Once n is
   large the slowest-dying part, eigenvalue 1/2, is all that is left: the distance halves every
   layer (the table's T = 2 row is exactly 2^-n). Position 1 is the last to forget itself: it
   keeps 2^-n of its own vector, position i keeps (i+1)^-n.
c. 10 layers at T = 2, 16 at T = 64, 17 at T = 128: it grows slowly (about like log T), because
   a far position needs more steps of averaging to pass its weight down to position 0. With the
   paper's 18 layers and T = 128, attention alone would collapse the tokens to 1e-3.
d. C = 11^T / T is a projection: C^2 = C. One layer collapses every token onto the mean of all
   the tokens, and there it stays.
e. (I + C) / 2 is lower triangular too, with diagonal (1 + 1/(i+1)) / 2: 1, 3/4, 2/3, ..., so it
   still collapses onto position 0, but slower: 3/4 per layer, 0.75^18 = 0.006 after 18 layers.
   In pre_ln the attention branch is much smaller than that, next to a stream that grows with
   depth (exercise 4, question c), so it mixes far less per layer: the tokens grow more alike, but
   the skip stops the collapse (the tutorial's section 2 measures them still apart, along several
   directions, after 18 blocks).
   Shaped attention at initialisation is I, and I^n = I: no collapse at any depth.
"""

import torch

from blocks.parts import uniform_causal_matrix


def power(T, n):
    """C^n, shape (T, T), float64."""
    return torch.linalg.matrix_power(uniform_causal_matrix(T).double(), n)


def limit(T):
    """The limit of C^n as n grows, shape (T, T), float64, built by hand."""
    L = torch.zeros(T, T, dtype=torch.float64)
    L[:, 0] = 1.0  # 1 e_0^T: every row is position 0's
    return L


def distance(T, n):
    """The largest entry of |C^n - limit(T)|, a float."""
    return (power(T, n) - limit(T)).abs().max().item()


def layers_to_collapse(T, tol=1e-3):
    """The smallest n with distance(T, n) < tol."""
    n = 0
    while distance(T, n) >= tol:
        n += 1
    return n


def second_eigenvalue(T):
    """The second largest eigenvalue of C (T >= 2), read off C by hand."""
    return 1 / 2  # C is triangular: its eigenvalues are its diagonal 1, 1/2, ..., 1/T


if __name__ == "__main__":
    print("distance of C^n from its limit")
    print("T".rjust(5) + "".join(f"{n:>9}" for n in (1, 2, 4, 8, 16)) + "   layers to 1e-3")
    for T in (2, 8, 64, 128):
        print(f"{T:5}" + "".join(f"{distance(T, n):9.2e}" for n in (1, 2, 4, 8, 16)) + f"   {layers_to_collapse(T):>8}")
