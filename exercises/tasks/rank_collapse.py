"""
Exercise 1 · ladder step 1, pre_ln -> no_attn_skip · rank collapse: powers of the uniform causal matrix

Task
----
At initialisation the queries and keys are small, so every causal softmax attention
matrix A is close to C, its value at zero logits: each position averages the
positions it may see,

    C[i, j] = 1/(i+1) for j <= i, else 0        (rows and columns counted from 0)

Delete the attention skip, and n layers of attention multiply the tokens by about
C^n. What does C^n become? Derive it on paper first, then show it numerically.

    1. power(T, n): C^n, a (T, T) float64 matrix (C^0 is the identity).
    2. limit(T): the matrix C^n tends to as n grows. Derive it: build it by hand,
       without taking powers (the check fails if torch multiplies T x T
       matrices as limit runs).
    3. distance(T, n): how far C^n still is from the limit, the largest entry of
       |C^n - limit(T)|.
    4. layers_to_collapse(T, tol=1e-3): the smallest n with distance(T, n) < tol.
    5. second_eigenvalue(T): for T >= 2, the second largest eigenvalue of C,
       read off C by hand (no torch.linalg): it is the factor by which distance
       shrinks per layer once n is large.

Run  python -m exercises.tasks.rank_collapse  to print the distances, and check with
    python -m pytest exercises -k rank_collapse

Hint
----
blocks.parts.uniform_causal_matrix(T) builds C (in float32: .double() it);
torch.linalg.matrix_power(C, n) takes powers. For the limit: C @ 1 = 1 (every row
is an average), and row 0 of C is (1, 0, ..., 0): position 0 sees only itself.
What does that make row 0 of C^n? For the eigenvalues: C is lower triangular.

Questions
---------
a. Why does every row tend to position 0's row, and not to the mean of all
   positions? What does C^n x look like for tokens x (T, d)?
b. Why does the distance shrink by second_eigenvalue per layer in the end?
   Which position is the last to forget its own vector?
c. layers_to_collapse grows with T: about how many layers at T = 2, 64, 128?
   Compare with the 18 layers of the paper's model.
d. An encoder has no causal mask: its C is 11^T / T. What is C^2? After how many
   layers have the tokens collapsed, and onto what?
e. pre_ln keeps the skip: X + A X, about (I + C) X, and the norms rescale it, so
   think of (I + C) / 2. What are its eigenvalues, and so its rate of collapse?
   And shaped attention's alpha I + beta A - gamma C at initialisation?
   Compare with what exercise 4 measures.
"""

import torch

from blocks.parts import uniform_causal_matrix


def power(T, n):
    """C^n, shape (T, T), float64."""
    raise NotImplementedError("exercise 1: take the n-th power of C")


def limit(T):
    """The limit of C^n as n grows, shape (T, T), float64, built by hand."""
    raise NotImplementedError("exercise 1: derive the limit of C^n")


def distance(T, n):
    """The largest entry of |C^n - limit(T)|, a float."""
    raise NotImplementedError("exercise 1: measure how far C^n is from its limit")


def layers_to_collapse(T, tol=1e-3):
    """The smallest n with distance(T, n) < tol."""
    raise NotImplementedError("exercise 1: count the layers until C^n is within tol of its limit")


def second_eigenvalue(T):
    """The second largest eigenvalue of C (T >= 2), read off C by hand."""
    raise NotImplementedError("exercise 1: read the eigenvalues off C")


if __name__ == "__main__":
    print("distance of C^n from its limit")
    print("T".rjust(5) + "".join(f"{n:>9}" for n in (1, 2, 4, 8, 16)) + "   layers to 1e-3")
    for T in (2, 8, 64, 128):
        print(f"{T:5}" + "".join(f"{distance(T, n):9.2e}" for n in (1, 2, 4, 8, 16)) + f"   {layers_to_collapse(T):>8}")
