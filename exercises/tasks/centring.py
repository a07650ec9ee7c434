"""
Exercise 6 · ladder step 1, pre_ln -> no_attn_skip · the centring term: Eq. 4 against Eq. 5 at initialisation

Task
----
Shaped attention has a predecessor. Value-SkipInit (He et al., 2023; the paper's
Eq. 4; blocks/v_skipinit.py) takes the place of the attention skip with the matrix

    alpha I + beta A                 (per head; alpha and beta trainable)

Shaped attention (Eq. 5; blocks/no_attn_skip.py; exercise 2) subtracts a
centring term:

    alpha I + beta A - gamma C

Everything else in the two blocks is the same, W_Q = 0 included, so at
initialisation the logits are zero and A = C in both. GPT.init_weights starts
v_skipinit at alpha = 1, beta = 0, and no_attn_skip at alpha = beta = gamma = 1.
What does the centring term change? (The paper compares the two matrices in
training in v1 Fig. 12 / v2 Fig. 13.)

1. matrix_at_zero_logits(T, alpha, beta, gamma=None): one head's attention
   matrix when every logit is zero, (T, T) float64; gamma None for Eq. 4.
2. first_gradients(model, idx): clear the model's gradients, then one forward
   and backward pass of its next-token loss on idx, model(idx[:, :-1],
   idx[:, 1:]). Return the size of the gradient of W_Q, of W_K and of the
   attention gain beta, each over all layers together (the square root of the
   sum of the squares of every layer's entries), as floats:
       {"W_Q": ..., "W_K": ..., "beta": ...}
3. gradients_by_step(block, steps=3): build(block), then `steps` training steps
   on the batch tokens(), with the model's own optimizer,
   model.configure_optimizers(weight_decay=0.1, learning_rate=1e-3) (AdamW with
   the paper's parameter groups). Return first_gradients' dict at every step,
   taken before that step's update: a list of `steps` dicts.
4. Derive on paper, before you run anything: in first_learning_step(), for each
   block the first training step (1, 2, 3, ...) at which W_Q, and the first at
   which W_K, has a gradient that is not zero.
5. Check:  python -m pytest exercises -k centring
   The check grades your three functions. Your derivation is not graded: any
   step passes, and the end of the check's output shows it next to the
   measurement. Where it was off, leave it as you wrote it: find out why
   (questions b and c) and add what you learned as a comment beside it.
   python -m exercises.tasks.centring  prints the matrices at T = 4 and your
   gradients, step by step.

Hint
----
At zero logits each row of the causal softmax is uniform over the positions it
may see: blocks.parts.uniform_causal_matrix(T) is C (in float32: .double() it).
In the models, every ShapedAttention (isinstance, over model.modules()) holds the
fused projection c_qk, whose weight (2d, d) has W_Q in rows 0..d-1 and W_K in
rows d..2d-1, and the gains alpha, beta and gamma (None in v_skipinit). For the
derivation, exercise 3's hint: with G = dL/dlogits, dL/dq_i = sum_j G_ij k_j /
sqrt(hs) and dL/dk_j = sum_i G_ij q_i / sqrt(hs); and the output is M v with
M = alpha I + beta A (- gamma C), so dL/dA = beta (dL/d output) v^T. What is G
when beta = 0? What do W_Q and W_K get when q = 0?

Questions
---------
a. At zero logits with alpha = beta = gamma = 1, what is each matrix? What does
   Eq. 4's do to the tokens, layer after layer (exercise 1, question e)? So why
   does Value-SkipInit start at beta = 0?
b. Value-SkipInit at its start: which of W_Q, W_K, alpha, beta get a gradient at
   the first step? Does beta's own gradient vanish with the others? Why?
c. Shaped attention at its start: beta = 1, and gamma C cancels the value of the
   softmax part. Which of W_Q and W_K get a gradient at the first step, and why?
d. Compare W_Q's first gradient that is not zero in v_skipinit with W_Q's at the
   same step in no_attn_skip: about how many times smaller is it, and what sets
   the ratio? (How large is beta by then?)
e. The key bias b_K (the second half of c_qk.bias): print its gradient in either
   block, at any step. Why is it so small? (Exercise 3's hint on softmax.)
f. So what does the centring term buy? Compare the two blocks' attention matrices
   at their starts, and how each can start to learn.
"""

import torch

from blocks.parts import ShapedAttention, uniform_causal_matrix
from model import GPT, GPTConfig

BLOCKS = ["v_skipinit", "no_attn_skip"]
CONFIG = dict(vocab_size=64, block_size=16, n_layer=2, n_head=2, n_embd=32)


def matrix_at_zero_logits(T, alpha, beta, gamma=None):
    """alpha I + beta A - gamma C (Eq. 5), or alpha I + beta A (Eq. 4) if gamma is None, where the logits are
    zero: (T, T), float64."""
    raise NotImplementedError("exercise 6: the two matrices at zero logits")


def first_gradients(model, idx):
    """{"W_Q", "W_K", "beta": the norm of that gradient over all layers} after one backward pass of the
    next-token loss on idx, as floats."""
    raise NotImplementedError("exercise 6: backpropagate once and measure the attention's gradients")


def gradients_by_step(block, steps=3):
    """[first_gradients before each update] for `steps` AdamW steps of build(block) on tokens()."""
    raise NotImplementedError("exercise 6: train a few steps and record the gradients")


def first_learning_step():
    """{block: {"W_Q": the first step with a non-zero gradient, "W_K": the same}} for every block in BLOCKS,
    derived on paper."""
    raise NotImplementedError("exercise 6: derive when W_Q and W_K first get a gradient")


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
