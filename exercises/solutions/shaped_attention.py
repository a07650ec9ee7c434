"""
Exercise 2, solved: shaped attention from its formula. The task and the hint are in
exercises/tasks/shaped_attention.py.

Answers
-------
a. Zero logits make the softmax uniform over the visible positions, so A = C and the
   matrix is alpha I + (beta - gamma) C = I: ShA returns v unchanged. GPT.init_weights
   zeroes W_Q, the first half of the fused c_qk weight (its bias starts at 0 with
   every other bias), so every block starts as the identity, as the removed skip did.
b. Without - gamma C the matrix at zero logits is alpha I + beta C: every token gets
   the average of its past added to it, the start of rank collapse (§4.1). Centring
   by C cancels the averaging exactly at initialisation, while training moves A away
   from C.
c. C[i, j] = 1/(i+1) for j <= i, so (C v)_i = (v_0 + ... + v_i) / (i+1): a cumulative
   sum divided by the position, O(T) work and memory.
"""

import torch


def uniform_causal(T, device=None):
    """C, shape (T, T), on device: C[i, j] = 1/(i+1) for j <= i, else 0."""
    visible = torch.ones(T, T, device=device).tril()
    return visible / visible.sum(dim=-1, keepdim=True)


def shaped_attention(q, k, v, alpha, beta, gamma):
    """(alpha I + beta A - gamma C) v for every head, with the T x T matrices built explicitly.

    q, k, v: (B, nh, T, hs); alpha, beta, gamma: (nh,). Returns (B, nh, T, hs).
    """
    T, hs = q.size(-2), q.size(-1)
    visible = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    logits = q @ k.transpose(-2, -1) / hs**0.5  # (B, nh, T, T)
    A = logits.masked_fill(~visible, float("-inf")).softmax(dim=-1)  # + M: the future gets weight 0
    I = torch.eye(T, device=q.device)
    C = uniform_causal(T, device=q.device)
    alpha, beta, gamma = (g.view(-1, 1, 1) for g in (alpha, beta, gamma))  # (nh, 1, 1): one gain per head
    return (alpha * I + beta * A - gamma * C) @ v
