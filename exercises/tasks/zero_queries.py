"""
Exercise 3 · ladder step 1, pre_ln -> no_attn_skip · zero queries: why the identity, and can it learn?

Task
----
Shaped attention, alpha I + beta A - gamma C with alpha = beta = gamma = 1, is the
identity exactly when A = C. GPT.init_weights gets there by zeroing the query
weights W_Q (and the query bias b_Q starts at 0, like every bias). Is that the
only way? And does a zero start leave the query and key weights able to learn?

Five starting points for the fused query/key projection of one ShapedAttention
(the keys of INITS below; q = x W_Q + b_Q, k = x W_K + b_K):

    "W_Q = 0"                 the paper's: W_Q = 0, b_Q = 0, W_K ~ N(0, 0.02), b_K = 0
    "W_Q = 0, b_Q random"     the same, but b_Q ~ N(0, 1)
    "W_K = 0, b_K random"     W_Q ~ N(0, 0.02), b_Q = 0, W_K = 0, b_K ~ N(0, 1)
    "W_Q = W_K = 0"           both zero, both biases zero
    "W_Q, W_K ~ N(0, 0.02)"   pre_ln's: small, but not zero

1. Derive, then predict, before you run anything: in predict(), for each start,
   whether the shaped attention matrix is the identity, and whether W_Q and W_K
   get a non-zero gradient at the first step. Add a comment with your reason for
   each.
2. attention_matrix(attn, x): the module's shaped attention matrix for input x.
3. first_gradients(attn, x): the size (norm) of the gradient of loss_of(attn, x)
   with respect to W_Q and to W_K.
4. Check:  python -m pytest exercises -k zero_queries
   The check grades your two functions. Your prediction is not graded: any True
   or False passes, and the end of the check's output shows it next to the
   measurement. Where it was off, leave it as you wrote it: find out why
   (questions below) and add what you learned as a comment beside it.
   python -m exercises.tasks.zero_queries  prints your prediction next to your
   own measurement, with the matrix's distance from I.

Hint
----
attn.heads(x) gives q, k, v of shape (B, nh, T, hs), and
blocks.parts.shaped_attention_matrix(q, k, alpha, beta, gamma) builds the matrix
(exercise 2 wrote it). The fused projection attn.c_qk has weight (2d, d): rows
0..d-1 are W_Q, rows d..2d-1 are W_K; after loss.backward() the gradient is in
attn.c_qk.weight.grad. softmax(z + c) = softmax(z) for any constant c added to a
whole row. For the gradients: write the logits' gradient G = dL/dlogits; then
dL/dq_i = sum_j G_ij k_j / sqrt(hs), dL/dk_j = sum_i G_ij q_i / sqrt(hs), and a
softmax's gradient sums to zero along each row: sum_j G_ij = 0. Why?

Questions
---------
a. Which logits give A = C? Is "all zero" necessary?
b. Does b_Q have to start at zero with W_Q? How far from the identity is the
   matrix with b_Q random?
c. With the paper's start, which of W_Q and W_K gets a gradient at the first
   step, and why? Is a weight without one frozen for good? And with W_Q = W_K = 0?
d. Zeroing W_K instead of W_Q, with b_K random: is the matrix the identity?
   Which weights learn first then? Is there a reason to prefer one start over
   the other? (The paper does not say.)
e. pre_ln's small random start: is the matrix close to the identity? Is close
   enough? (Think of 18 layers.)
"""

import torch

from blocks.parts import ShapedAttention
from model import GPTConfig

CONFIG = GPTConfig(block="sas", vocab_size=64, block_size=16, n_layer=2, n_head=2, n_embd=32)
INITS = ["W_Q = 0", "W_Q = 0, b_Q random", "W_K = 0, b_K random", "W_Q = W_K = 0", "W_Q, W_K ~ N(0, 0.02)"]
IDENTITY_TOL = 1e-6  # the matrix counts as the identity if no entry is further from it than this
LEARNS_TOL = 1e-6  # a weight learns if its gradient's norm is above this


def predict():
    """{init: {"identity": bool, "W_Q learns": bool, "W_K learns": bool}} for every init in INITS."""
    raise NotImplementedError("exercise 3: derive, then predict")


def attention_matrix(attn, x):
    """alpha I + beta A - gamma C of the ShapedAttention attn for input x (B, T, d): (B, nh, T, T)."""
    raise NotImplementedError("exercise 3: build the module's shaped attention matrix")


def first_gradients(attn, x):
    """{"W_Q": norm of dL/dW_Q, "W_K": norm of dL/dW_K} for L = loss_of(attn, x), as floats."""
    raise NotImplementedError("exercise 3: backpropagate once and measure the gradients")


def build(init):
    """A ShapedAttention (layer 1 of a sas model: W_V = W_P = I) in float64, alpha = beta = gamma = 1."""
    g = torch.Generator().manual_seed(0)
    attn = ShapedAttention(CONFIG, layer_idx=1, identity_values=True).double()
    d = CONFIG.n_embd
    with torch.no_grad():
        for gain in (attn.alpha, attn.beta, attn.gamma):
            gain.fill_(1.0)
        weight, bias = attn.c_qk.weight, attn.c_qk.bias
        weight.copy_(0.02 * torch.randn(weight.shape, generator=g, dtype=torch.float64))
        bias.zero_()
        W_Q, W_K, b_Q, b_K = weight[:d], weight[d:], bias[:d], bias[d:]
        if init in ("W_Q = 0", "W_Q = 0, b_Q random", "W_Q = W_K = 0"):
            W_Q.zero_()
        if init in ("W_K = 0, b_K random", "W_Q = W_K = 0"):
            W_K.zero_()
        if init == "W_Q = 0, b_Q random":
            b_Q.copy_(torch.randn(d, generator=g, dtype=torch.float64))
        if init == "W_K = 0, b_K random":
            b_K.copy_(torch.randn(d, generator=g, dtype=torch.float64))
    return attn


def inputs():
    """A normalised-looking input (B, T, d): what RMSNorm hands the attention."""
    g = torch.Generator().manual_seed(1)
    return torch.randn(2, CONFIG.block_size, CONFIG.n_embd, generator=g, dtype=torch.float64)


def loss_of(attn, x):
    """Some loss of the attention's output: its dot product with a fixed random tensor."""
    g = torch.Generator().manual_seed(2)
    return (attn(x) * torch.randn(x.shape, generator=g, dtype=torch.float64)).sum()


def measure(init):
    """What your functions measure for init, in predict()'s format, and the matrix's distance from I."""
    attn, x = build(init), inputs()
    with torch.no_grad():
        off = (attention_matrix(attn, x) - torch.eye(x.size(1), dtype=x.dtype)).abs().max().item()
    gradients = first_gradients(attn, x)
    return {"identity": off < IDENTITY_TOL, "W_Q learns": gradients["W_Q"] > LEARNS_TOL,
            "W_K learns": gradients["W_K"] > LEARNS_TOL}, off


if __name__ == "__main__":
    predicted = predict()
    print(f"{'init':24}{'identity':>16}{'W_Q learns':>16}{'W_K learns':>16}   max |M - I|   (predicted/measured)")
    for init in INITS:
        measured, off = measure(init)
        cells = "".join(f"{str(predicted[init][key]) + '/' + str(measured[key]):>16}" for key in measured)
        print(f"{init:24}{cells}   {off:.1e}")
