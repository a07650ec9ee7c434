"""
Exercise 4 · ladder step 1, pre_ln -> no_attn_skip · what the attention skip does: predict, then measure

Task
----
no_attn_skip drops the attention skip and uses shaped attention instead. Why the
shaping? no_attn_skip_unshaped drops the skip and keeps plain softmax attention.
Three blocks, one question: at initialisation, feed random tokens through an
18-layer model; after the last block, how alike are the tokens of a sequence?
Measure "alike" as the mean cosine similarity over all pairs of positions.

1. Predict, before you run anything. In predict(), give for each block one of
       "apart"      similarity below 0.2: tokens stay as distinct as the random
                    embeddings they start from
       "partial"    between 0.2 and 0.95
       "collapsed"  above 0.95: every token holds nearly the same vector
                    (rank collapse, §4.1)
   and add a comment with your one-line reason for each.
2. Measure. Complete mean_token_similarity and similarity_by_depth, then run
       python -m exercises.tasks.attention_skip
   to print the similarity entering block 0 and after every third block.
3. Check:  python -m pytest exercises -k attention_skip
   The check measures again with its own code and compares your measurement with
   it. Your prediction is not graded: any of the three words passes, and the end
   of the check's output shows it next to the measurement. Where it was off, leave
   it as you wrote it: find out why (questions below) and add what you learned as
   a comment beside it.

The model is fixed by build() below: width 128, 2 heads, T = 64, 18 blocks.

Hint
----
A forward hook, block.register_forward_hook(fn), calls fn(module, args, output)
after the block runs: append output to a list. The stream entering block 0 is
args[0] of that block, or register_forward_pre_hook(fn), which calls fn(module,
args). register_* returns a handle: call handle.remove() when done, even if the
forward pass raises (try/finally), or the hooks stay on the model. For the
similarity, F.normalize(x, dim=-1) makes every token a unit vector; then
x @ x.transpose(-1, -2) holds every pairwise cosine, and its diagonal (each
token with itself, always 1) must be left out of the mean.

Questions
---------
a. no_attn_skip_unshaped: what does one layer's attention do to the tokens at
   initialisation (W_Q is small, so what is A close to)? And eighteen layers?
   (Exercise 1.)
b. no_attn_skip: what does shaped attention do at initialisation (exercises 2
   and 3)? And the MLP branch, with beta_FF = 0.1?
c. pre_ln has plain softmax attention too: what does its skip do to the
   collapse? Where between "apart" and "collapsed" does it end, and why?
   (Compare the size of the N(0, 0.02) embeddings with what the attention and
   MLP branches add; what do all tokens share in what a ReLU MLP adds?)
d. Now look at training: python -m pytest tests/test_model.py -k unshaped, and
   read that test. What does it show about depth?
"""

import torch
from torch.nn import functional as F

from model import GPT, GPTConfig

BLOCKS = ["pre_ln", "no_attn_skip_unshaped", "no_attn_skip"]
SHAPE = dict(vocab_size=256, block_size=64, n_layer=18, n_head=2, n_embd=128)


def predict():
    """Your prediction, written before measuring: {block: "apart" | "partial" | "collapsed"}."""
    raise NotImplementedError("exercise 4: write down your prediction first")


def mean_token_similarity(x):
    """x: (B, T, C), T >= 2. The mean over the batch of the mean cosine similarity between the
    tokens at two different positions i != j of one sequence. Returns a float."""
    raise NotImplementedError("exercise 4: measure how alike the tokens are")


@torch.no_grad()
def similarity_by_depth(model, idx):
    """Run model on idx (B, T) and return n_layer + 1 floats: mean_token_similarity of the
    residual stream entering block 0, then after each block. Leaves no hook on the model."""
    raise NotImplementedError("exercise 4: record the residual stream with forward hooks")


def build(block, seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(block=block, **SHAPE)).eval()


def random_tokens(batch=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, SHAPE["vocab_size"], (batch, SHAPE["block_size"]), generator=g)


if __name__ == "__main__":
    print("block".ljust(24) + "  ".join(f"{i:>4}" for i in range(0, SHAPE["n_layer"] + 1, 3)) + "  (layer)")
    for block in BLOCKS:
        similarity = similarity_by_depth(build(block), random_tokens())
        print(block.ljust(24) + "  ".join(f"{s:4.2f}" for s in similarity[::3]))
