"""
Exercise 4, solved: what the attention skip does. The task and the hint are in
exercises/tasks/attention_skip.py.

What `python -m exercises.solutions.attention_skip` prints (the last column is after block 18):

    block                      0     3     6     9    12    15    18  (layer)
    pre_ln                  0.00  0.59  0.65  0.68  0.73  0.75  0.75
    no_attn_skip_unshaped   0.00  0.96  1.00  1.00  1.00  1.00  1.00
    no_attn_skip            0.00  0.00  0.00  0.00  0.00  0.00  0.00

Answers
-------
a. W_Q is N(0, 0.02), so the logits are close to 0 and A is close to C: each token
   becomes the average of the tokens up to it. A product of such averaging matrices
   tends to a rank-one matrix, every row the first token's (exercise 1): after three
   blocks the tokens are already alike (rank collapse, §4.1). Deep, it trains badly
   (question d).
b. Shaped attention's matrix is exactly the identity at initialisation, and
   no_attn_skip's W_V and W_P start orthogonal, so X^ = N1(X) W_V W_P: the block
   re-normalises its input, applies a fixed orthogonal map, which keeps every length
   and angle, and adds 0.1 MLP(...), about 1% of its size. The tokens stay as distinct
   as the embeddings, however deep the model.
c. The skip keeps each token's own vector in the stream, so the tokens never all
   become the same one. But the embeddings are small (N(0, 0.02), about 0.03 per
   coordinate) next to what the branches add (about 0.07 per coordinate for the
   MLP at width 128), and both branches add a part that every token shares: the
   attention adds averages over the past, and a ReLU's output has a positive mean,
   which W_2 turns into the same vector for every token. So pre_ln ends in between,
   about 0.6 to 0.8 (it grows with the width). Zeroing either branch with a hook
   shows both at work. The stream grows with depth, so each later branch moves it
   less: Pre-LN's implicit downweighting of the residual branches, which the
   shaped blocks make explicit with beta_FF < 1 (§4.1).
d. One unshaped layer memorises a batch; three cannot in the same number of steps,
   and three no_attn_skip layers can: the collapse at initialisation is a
   training problem, and it gets worse with depth.
"""

import torch
from torch.nn import functional as F

from model import GPT, GPTConfig

BLOCKS = ["pre_ln", "no_attn_skip_unshaped", "no_attn_skip"]
SHAPE = dict(vocab_size=256, block_size=64, n_layer=18, n_head=2, n_embd=128)


def predict():
    """Your prediction, written before measuring: {block: "apart" | "partial" | "collapsed"}."""
    return {
        "pre_ln": "partial",  # the skip keeps each token's own part; the branches add a part all tokens share
        "no_attn_skip_unshaped": "collapsed",  # every layer replaces each token by the mean of its past
        "no_attn_skip": "apart",  # shaped attention is the identity at init and the MLP branch is scaled by 0.1
    }


def mean_token_similarity(x):
    """x: (B, T, C), T >= 2. The mean over the batch of the mean cosine similarity between the
    tokens at two different positions i != j of one sequence. Returns a float."""
    x = F.normalize(x.float(), dim=-1)
    cosines = x @ x.transpose(-1, -2)  # (B, T, T)
    T = x.size(1)
    pairs = cosines.sum(dim=(-1, -2)) - cosines.diagonal(dim1=-2, dim2=-1).sum(dim=-1)  # without i == j
    return (pairs / (T * (T - 1))).mean().item()


@torch.no_grad()
def similarity_by_depth(model, idx):
    """Run model on idx (B, T) and return n_layer + 1 floats: mean_token_similarity of the
    residual stream entering block 0, then after each block. Leaves no hook on the model."""
    streams = []
    handles = [model.blocks[0].register_forward_pre_hook(lambda module, args: streams.append(args[0]))]
    handles += [block.register_forward_hook(lambda module, args, out: streams.append(out)) for block in model.blocks]
    try:
        model(idx)
    finally:
        for handle in handles:
            handle.remove()
    return [mean_token_similarity(x) for x in streams]


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
