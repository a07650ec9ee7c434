"""
Exercise 2 · ladder step 1, pre_ln -> no_attn_skip · shaped attention from its formula

Task
----
no_attn_skip deletes the attention skip, X + Attn(N1(X)). Without it, attention
averages the tokens into one (exercise 1). What keeps the signal flowing
instead is shaped attention (§4.1, Eq. 5): per head h,

    ShA_h(X) = (alpha_h I + beta_h A_h - gamma_h C) v_h,
    A_h      = softmax(q_h k_h^T / sqrt(hs) + M)

where M is the causal mask (0 on and below the diagonal, -inf above it), C is the
value of A at zero logits (every row averages the positions it may see), and
alpha, beta, gamma are trainable, one of each per head.

The library computes this without ever building a T x T matrix (blocks/parts.py,
shaped_attention). Write the slow, explicit version: build I, A and C as T x T
matrices and multiply. Do not open blocks/parts.py until your check passes; you
may not call anything from it (the check makes sure).

    1. uniform_causal(T): the matrix C.
    2. shaped_attention(q, k, v, alpha, beta, gamma).

Check:  python -m pytest exercises -k shaped_attention

Hint
----
torch.ones(T, T).tril() marks what each row may see; divide each row by its sum
and you have C. For M, masked_fill the logits with float("-inf") where the mask
is False before the softmax: exp(-inf) = 0. alpha has shape (nh,) but the
matrices are (B, nh, T, T): alpha.view(-1, 1, 1) lines a head's gain up with
that head's matrix. Finally (B, nh, T, T) @ (B, nh, T, hs) -> (B, nh, T, hs).

Questions
---------
a. Take q = 0 and alpha = beta = gamma = 1. What is A? What does ShA return?
   Which line of GPT.init_weights (model.py) makes q = 0 at initialisation?
b. Why subtract gamma C at all? What would alpha I + beta A be at zero logits?
c. The library's version costs O(T) memory per head instead of O(T^2). Read the
   docstring of shaped_attention in blocks/parts.py: why is C v a running mean?
"""

import torch


def uniform_causal(T, device=None):
    """C, shape (T, T), on device: C[i, j] = 1/(i+1) for j <= i, else 0."""
    raise NotImplementedError("exercise 2: build the uniform causal matrix C")


def shaped_attention(q, k, v, alpha, beta, gamma):
    """(alpha I + beta A - gamma C) v for every head, with the T x T matrices built explicitly.

    q, k, v: (B, nh, T, hs); alpha, beta, gamma: (nh,). Returns (B, nh, T, hs).
    """
    raise NotImplementedError("exercise 2: write shaped attention from Eq. 5")
