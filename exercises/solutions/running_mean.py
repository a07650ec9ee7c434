"""
Exercise 5, solved: the running mean and its gradient. The task and the hint are in
exercises/tasks/running_mean.py.

Answers
-------
a. Position j's value enters the mean of every position i >= j, with weight 1/(i+1):
   (C^T g)_j = sum_{i >= j} g_i / (i+1). A value feeds the future, so its gradient comes back
   from the future: divide g by the positions, then a running sum from the end
   (flip, cumsum, flip).
b. (C^T 1)_j = 1/(j+1) + ... + 1/T = H_T - H_j: largest at j = 0, H_T = 1 + 1/2 + ... + 1/T,
   about ln T + 0.58 (5.43 at T = 128). Position 0 is in every average, so it gets the most
   gradient and, layer after layer, the most weight: the direction the collapse of exercise 1
   goes.
c. The backward of cumsum is exactly this reversed cumsum (flip, cumsum, flip), and the
   division by the positions is element-wise, so autograd already computes C^T g in O(T) from
   v.cumsum(-2) / positions. A hand-written backward only saves keeping an intermediate for the
   backward pass; here that was 2-5% of a step's memory and no time, so the library chose the
   shorter, readable code that autograd checks for it.
d. Measured on this CPU, with
       torch.manual_seed(0); v = torch.randn(64, 1024, 1)
       (running_mean(v.bfloat16()) - running_mean(v))[:, -1].abs().mean()
   the bfloat16 running mean at the last position is off by 5e-5 on average, on a mean of
   size 0.027: about 0.2%, bfloat16's own precision (8 significant bits, 2^-9 = 0.2%), since
   torch's CPU cumsum adds bfloat16 up in a wider type and rounds only what it stores. A kernel
   that accumulated in bfloat16 would drift: the next bfloat16 number after 256 is 258, so
   256 + 1 stays 256, and the increments of a long sequence would start to vanish. Accumulating
   in float32 costs little and makes that question go away, for the gains' gradients too.
"""

import torch

from blocks.parts import positions


def running_mean(v):
    """C v along dim -2, in O(T): (C v)_i = (v_0 + ... + v_i) / (i + 1)."""
    return v.cumsum(dim=-2) / positions(v.size(-2), v.device)


def running_mean_transposed(g):
    """C^T g along dim -2, in O(T)."""
    weighted = g / positions(g.size(-2), g.device)  # g_i / (i+1)
    return weighted.flip(dims=(-2,)).cumsum(dim=-2).flip(dims=(-2,))  # sum over i >= j


class RunningMean(torch.autograd.Function):
    """C v, with its backward written by hand."""

    @staticmethod
    def forward(ctx, v):
        return running_mean(v)

    @staticmethod
    def backward(ctx, grad_output):
        return running_mean_transposed(grad_output)  # C is a constant: nothing to save
