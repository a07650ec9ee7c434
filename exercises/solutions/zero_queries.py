"""
Exercise 3, solved: zero queries. The task and the hint are in exercises/tasks/zero_queries.py.

What `python -m exercises.solutions.zero_queries` prints:

    init                            identity      W_Q learns      W_K learns   max |M - I|   (predicted/measured)
    W_Q = 0                        True/True       True/True     False/False   9.9e-09
    W_Q = 0, b_Q random          False/False       True/True       True/True   1.0e-01
    W_K = 0, b_K random            True/True     False/False       True/True   9.9e-09
    W_Q = W_K = 0                  True/True     False/False     False/False   9.9e-09
    W_Q, W_K ~ N(0, 0.02)        False/False       True/True       True/True   1.1e-02

Answers
-------
a. Softmax does not change when a constant is added to a whole row, so A = C whenever the
   logits are constant along each row (over the positions the row may see). All zero is enough,
   not necessary: q_i . k_j only has to be the same for every j, which W_Q = 0 (q_i = 0) and
   W_K = 0 (k_j = b_K for every j) both give.
b. Yes. With W_Q = 0 but b_Q random, every position has the same query q_i = b_Q, and the
   logits b_Q . k_j / sqrt(hs) still vary with j: A is not C, and the matrix is 0.1 away from I
   here. Zero weights and a zero bias make the query zero.
c. dL/dk_j = sum_i G_ij q_i / sqrt(hs) = 0 when q = 0: W_K gets no gradient at the first
   step, W_Q does (dL/dq_i = sum_j G_ij k_j / sqrt(hs), and the keys are random). After one
   update the queries are not zero, and W_K learns from then on. With W_Q = W_K = 0, q = k = 0
   makes both gradients zero, the biases' too, and nothing ever changes: a saddle point that
   training cannot leave, as in an MLP whose two layers both start at zero.
d. With W_K = 0 every key is b_K, the logits q_i . b_K / sqrt(hs) are constant along the row,
   and the matrix is I. Now dL/dq_i = (sum_j G_ij) b_K / sqrt(hs) = 0, since a softmax's
   gradient sums to zero along each row (G_ij = A_ij (dL/dA_ij - sum_l A_il dL/dA_il), and the
   rows of A sum to 1; equivalently, moving a whole row of logits changes nothing): W_K
   learns first, then W_Q. The mirror image of the paper's start; either gives the identity and
   one side that learns. The paper and the official code zero the queries and give no reason
   for zeroing W_Q rather than W_K.
e. No: 0.01 away from I. Each layer then mixes a little (A - C, about 0.01 here, more with
   larger logits), and 18 layers compound it. Zero queries make the start exactly the identity
   at any depth, and cost nothing: W_Q still learns from the first step.
"""

import torch

from blocks.parts import ShapedAttention, shaped_attention_matrix
from model import GPTConfig

CONFIG = GPTConfig(block="sas", vocab_size=64, block_size=16, n_layer=2, n_head=2, n_embd=32)
INITS = ["W_Q = 0", "W_Q = 0, b_Q random", "W_K = 0, b_K random", "W_Q = W_K = 0", "W_Q, W_K ~ N(0, 0.02)"]
IDENTITY_TOL = 1e-6  # the matrix counts as the identity if no entry is further from it than this
LEARNS_TOL = 1e-6  # a weight learns if its gradient's norm is above this


def predict():
    """{init: {"identity": bool, "W_Q learns": bool, "W_K learns": bool}} for every init in INITS."""
    return {
        # logits 0: A = C, the matrix is I; dL/dq = G k != 0, dL/dk = G^T q = 0
        "W_Q = 0": {"identity": True, "W_Q learns": True, "W_K learns": False},
        # q_i = b_Q for all i: logits b_Q . k_j vary with j, so A != C; q != 0 and k != 0: both learn
        "W_Q = 0, b_Q random": {"identity": False, "W_Q learns": True, "W_K learns": True},
        # k_j = b_K for all j: logits constant along each row, A = C; dL/dq = (sum_j G_ij) b_K = 0
        "W_K = 0, b_K random": {"identity": True, "W_Q learns": False, "W_K learns": True},
        # q = k = 0: A = C, and both gradients vanish, for good
        "W_Q = W_K = 0": {"identity": True, "W_Q learns": False, "W_K learns": False},
        # small logits, not zero: A is close to C, not equal
        "W_Q, W_K ~ N(0, 0.02)": {"identity": False, "W_Q learns": True, "W_K learns": True},
    }


def attention_matrix(attn, x):
    """alpha I + beta A - gamma C of the ShapedAttention attn for input x (B, T, d): (B, nh, T, T)."""
    q, k, _ = attn.heads(x)
    return shaped_attention_matrix(q, k, attn.alpha, attn.beta, attn.gamma)


def first_gradients(attn, x):
    """{"W_Q": norm of dL/dW_Q, "W_K": norm of dL/dW_K} for L = loss_of(attn, x), as floats."""
    attn.zero_grad()
    loss_of(attn, x).backward()
    d = x.size(-1)
    grad = attn.c_qk.weight.grad  # (2d, d): W_Q's rows, then W_K's
    return {"W_Q": grad[:d].norm().item(), "W_K": grad[d:].norm().item()}


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
