"""
Exercise 6, solved: the centring term, Eq. 4 against Eq. 5 at initialisation. The task and the
hint are in exercises/tasks/centring.py.

What `python -m exercises.solutions.centring` prints:

    Eq. 5 at zero logits, alpha = beta = gamma = 1, and Eq. 4 at its start (beta = 0): the identity
    Eq. 4 at zero logits, alpha = beta = 1 (T = 4):
        2.000  0.000  0.000  0.000
        0.500  1.500  0.000  0.000
        0.333  0.333  1.333  0.000
        0.250  0.250  0.250  1.250

    v_skipinit: gradient norms before each AdamW step (derived first step: W_Q 2, W_K 3)
      step 1: W_Q 0.00e+00  W_K 0.00e+00  beta 6.73e-03
      step 2: W_Q 4.33e-06  W_K 0.00e+00  beta 6.83e-03
      step 3: W_Q 8.50e-06  W_K 5.62e-07  beta 6.89e-03
      step 4: W_Q 1.28e-05  W_K 1.77e-06  beta 6.91e-03

    no_attn_skip: gradient norms before each AdamW step (derived first step: W_Q 1, W_K 2)
      step 1: W_Q 4.39e-03  W_K 0.00e+00  beta 6.73e-03
      step 2: W_Q 4.33e-03  W_K 4.70e-04  beta 6.78e-03
      step 3: W_Q 4.55e-03  W_K 8.96e-04  beta 6.74e-03
      step 4: W_Q 4.76e-03  W_K 1.28e-03  beta 6.63e-03

Answers
-------
a. Eq. 5: I + C - C = I. Eq. 4: I + C, every token plus the running mean of the tokens up to
   it: the averaging that collapses the tokens. Rescaled by the norms it is about (I + C) / 2,
   which collapses onto position 0 at 3/4 per layer (exercise 1, question e). Eq. 4 has no term
   to cancel C, so the only way to start at the identity is to switch the softmax part off:
   beta = 0 (alpha = 1), as He et al. (2023) do.
b. With beta = 0 the output is alpha v, whatever A is: dL/dA = beta (dL/d output) v^T = 0, so
   G = dL/dlogits = 0, and neither W_Q nor W_K (nor their biases) gets a gradient: exactly 0 at
   step 1. alpha and beta do: dL/dbeta_h = <dL/d output_h, A v_h> with A = C, which is not 0.
   It is the same 6.73e-03 as shaped attention's at step 1: with the same seed the two models
   have the same weights and compute the same function at initialisation.
c. beta = 1: dL/dA is not 0, and the softmax's Jacobian at A = C is not 0, so neither is G.
   dL/dq_i = sum_j G_ij k_j / sqrt(hs) with random keys (W_K ~ N(0, 0.02)): W_Q (and b_Q) learn
   from step 1. dL/dk_j = sum_i G_ij q_i / sqrt(hs) = 0 while q = 0: W_K gets nothing at step 1
   and learns from step 2, once W_Q has moved (exercise 3, question c). The softmax part is
   live at full weight; only its value at initialisation is cancelled by gamma C.
d. v_skipinit's W_Q first gets a gradient at step 2: 4.33e-06, against no_attn_skip's 4.33e-03
   at the same step, 1,000 times smaller. G carries the factor beta, and after one AdamW step
   beta is -1e-3 or +1e-3 in every head (measured), the learning rate: Adam's first update
   moves every parameter that has a gradient by about the learning rate, whatever the
   gradient's size. W_K follows a step later (5.62e-07 at step 3). Adam's steps for W_Q are
   about the learning rate in both blocks (an update divides by the gradient's running size);
   what is small in v_skipinit is the weight of the attention pattern in the output, beta A v,
   which grows only as fast as beta does.
e. Exactly 0 at first, then 1e-15 to 1e-11 in either block: rounding. The logits
   are q_i . (W_K x_j + b_K) / sqrt(hs), and q_i . b_K / sqrt(hs) is the same for every j of
   row i: softmax ignores a constant added to a row. b_K cannot change the output at any step,
   in either block (the official code has the bias too).
f. Both blocks start as the identity, in two ways. Value-SkipInit switches the softmax off
   (beta = 0): no query or key learns at step 1, and the attention pattern then weighs beta in
   the output, about the learning rate times the steps so far (0.01 after 10 steps of this
   model, measured). Shaped attention keeps the
   softmax at full weight and cancels its value with gamma C: W_Q learns from step 1, and a
   change of the logits changes the output at once, without first growing a gain. And a
   start at beta = 1 needs C: without it, beta = 1 averages the tokens (a). The paper
   measured shaped attention a small, consistent margin ahead over training (v1 Fig. 12 /
   v2 Fig. 13).
"""

import torch

from blocks.parts import ShapedAttention, uniform_causal_matrix
from model import GPT, GPTConfig

BLOCKS = ["v_skipinit", "no_attn_skip"]
CONFIG = dict(vocab_size=64, block_size=16, n_layer=2, n_head=2, n_embd=32)


def matrix_at_zero_logits(T, alpha, beta, gamma=None):
    """alpha I + beta A - gamma C (Eq. 5), or alpha I + beta A (Eq. 4) if gamma is None, where the logits are
    zero: (T, T), float64."""
    C = uniform_causal_matrix(T).double()  # A at zero logits: each row averages what it may see
    matrix = alpha * torch.eye(T, dtype=torch.float64) + beta * C
    return matrix if gamma is None else matrix - gamma * C


def first_gradients(model, idx):
    """{"W_Q", "W_K", "beta": the norm of that gradient over all layers} after one backward pass of the
    next-token loss on idx, as floats."""
    model.zero_grad()
    _, loss = model(idx[:, :-1], idx[:, 1:])
    loss.backward()
    squares = {"W_Q": 0.0, "W_K": 0.0, "beta": 0.0}
    for attn in (m for m in model.modules() if isinstance(m, ShapedAttention)):
        d, grad = attn.c_qk.in_features, attn.c_qk.weight.grad
        squares["W_Q"] += grad[:d].pow(2).sum().item()
        squares["W_K"] += grad[d:].pow(2).sum().item()
        squares["beta"] += attn.beta.grad.pow(2).sum().item()
    return {name: value**0.5 for name, value in squares.items()}


def gradients_by_step(block, steps=3):
    """[first_gradients before each update] for `steps` AdamW steps of build(block) on tokens()."""
    model, idx = build(block), tokens()
    optimizer = model.configure_optimizers(weight_decay=0.1, learning_rate=1e-3)
    measured = []
    for _ in range(steps):
        measured.append(first_gradients(model, idx))  # the gradient this step's update uses
        optimizer.step()
    return measured


def first_learning_step():
    """{block: {"W_Q": the first step with a non-zero gradient, "W_K": the same}} for every block in BLOCKS,
    derived on paper."""
    return {
        "v_skipinit": {"W_Q": 2, "W_K": 3},  # beta = 0 at step 1: G = 0; then q = 0 until W_Q has moved
        "no_attn_skip": {"W_Q": 1, "W_K": 2},  # beta = 1: G is live at once; dL/dk = G^T q / sqrt(hs) = 0 at q = 0
    }


def build(block, seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(block=block, **CONFIG))


def tokens(batch=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, CONFIG["vocab_size"], (batch, CONFIG["block_size"]), generator=g)


if __name__ == "__main__":
    torch.set_printoptions(precision=3)
    print("at zero logits, T = 4, alpha = beta = gamma = 1")
    print("Eq. 5, alpha I + beta A - gamma C:\n", matrix_at_zero_logits(4, 1.0, 1.0, 1.0))
    print("Eq. 4, alpha I + beta A:\n", matrix_at_zero_logits(4, 1.0, 1.0))
    print("Eq. 4 at its start, alpha = 1, beta = 0:\n", matrix_at_zero_logits(4, 1.0, 0.0))
    derived = first_learning_step()
    for block in BLOCKS:
        print(f"\n{block}: gradient norms before each AdamW step (derived first step: W_Q {derived[block]['W_Q']}, "
              f"W_K {derived[block]['W_K']})")
        for step, grads in enumerate(gradients_by_step(block, steps=4), start=1):
            print(f"  step {step}: " + "  ".join(f"{name} {value:.2e}" for name, value in grads.items()))
