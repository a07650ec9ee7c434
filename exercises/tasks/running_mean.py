"""
Exercise 5 · ladder step 1, pre_ln -> no_attn_skip · the running mean and its gradient, in O(T)

Task
----
Shaped attention needs C v for every head, and the library never builds C: since
C[i, j] = 1/(i+1) for j <= i, (C v)_i = (v_0 + ... + v_i) / (i+1), a running mean
(blocks/parts.py, shaped_attention). Training needs the gradient too: for a loss L
and g = dL/d(C v), the gradient with respect to v is C^T g. Derive an O(T) form of
C^T g, then write both directions as an autograd Function, as a library would when
it writes its own backward.

    1. running_mean(v): C v in O(T), v of shape (..., T, hs): a running sum along
       positions (dim -2), each position divided by how many positions it averages.
    2. running_mean_transposed(g): C^T g in O(T), g of the same shape. Write out
       (C^T g)_j as a sum over i first: which i take part?
    3. RunningMean, a torch.autograd.Function whose forward is running_mean and whose
       backward is running_mean_transposed.

Build no T x T matrix: the check looks at every tensor your functions make.
Check:  python -m pytest exercises -k running_mean

Hint
----
torch.cumsum(x, dim=-2) is the running sum. positions(T) = 1, 2, ..., T as a
(T, 1) column is in blocks.parts (positions(T, device)). A sum over i >= j is a
running sum taken from the end: flip along dim -2, cumsum, flip back
(torch.flip(x, dims=(-2,))). An autograd Function has two static methods,
forward(ctx, v) and backward(ctx, grad_output); call it as RunningMean.apply(v).

Questions
---------
a. Why does the gradient of position j collect from the positions after it?
b. Take g = 1 at every position. Which position of v gets the largest gradient,
   and how large is it? (A harmonic number.) What does this say about the first
   token in a skipless model?
c. torch's autograd already differentiates v.cumsum(-2) / positions: what does
   it compute for the backward of cumsum? The library once had a hand-written
   backward for the whole shaped attention sum, and dropped it: it saved 2-5% of
   a training step's memory and no time. Is writing your own backward worth it?
d. Why does blocks.parts.shaped_attention take the running sum in float32 even
   when v is bfloat16? Measure: compare running_mean(v.bfloat16()) with
   running_mean(v) at T = 1024 (v ~ N(0, 1)), at the last position.
"""

import torch

from blocks.parts import positions


def running_mean(v):
    """C v along dim -2, in O(T): (C v)_i = (v_0 + ... + v_i) / (i + 1)."""
    raise NotImplementedError("exercise 5: the running mean")


def running_mean_transposed(g):
    """C^T g along dim -2, in O(T)."""
    raise NotImplementedError("exercise 5: derive C^T g and write it in O(T)")


class RunningMean(torch.autograd.Function):
    """C v, with its backward written by hand."""

    @staticmethod
    def forward(ctx, v):
        raise NotImplementedError("exercise 5: the forward")

    @staticmethod
    def backward(ctx, grad_output):
        raise NotImplementedError("exercise 5: the backward")
