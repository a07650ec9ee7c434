"""
Exercise 9, solved: the sequential block without its MLP skip. The task and the hint are in
exercises/tasks/no_mlp_skip.py.

What we saw: the task's three commands (6 layers of width 128, 300 steps of 8 x 64 tokens on
the stdlib corpus, seed 1337, learning rate 1e-3), validation loss, on a 2-core CPU with one
thread, with python -m exercises.solutions.no_mlp_skip for the first; the fourth row is the
first command with --learning_rate=3e-4, the last two with --attention=fused and with
--dtype=float32:

    step                                  50      100     150     200     250     300
    sas_p                               6.798   6.494   6.214   6.030   5.938   5.905
    sas                                 6.799   6.504   6.227   6.042   5.946   5.913
    sas_no_mlp_skip                     6.711   6.718   6.707   6.684   6.675   6.674
    sas_no_mlp_skip, lr 3e-4            7.173   6.684   6.534   6.445   6.393   6.375
    sas_no_mlp_skip, --attention=fused  6.708   6.652   6.614   6.594   6.590   6.580
    sas_no_mlp_skip, --dtype=float32    6.746   6.644   6.623   6.599   6.582   6.579

train.py picks the precision and the attention kernel itself (--dtype=auto, --attention=auto;
a run's first lines say what it picked): on that CPU bfloat16 and the explicit kernel, for every
run above but the last two (the float32 run picked the fused kernel). The fused kernel moves the
block without the skip by 0.09, to 6.580, and sas and sas_p by less than 0.001 (5.905 and
5.913): on the plateau, rounding decides where a run drifts. A machine that picks otherwise
sees other numbers for that block, such as the last two rows. Even the thread count matters: the
same three commands with two threads instead of one, on the same kind of CPU and the same picks,
gave 6.562 for the block without the skip and again 5.905 and 5.913 (results/no_mlp_skip/).

At initialisation, the mean cosine similarity between positions entering block 0 and after
blocks 3, 6, ..., 18 of exercise 4's model (18 layers, width 128), with BLOCKS["sas_no_mlp_skip"]
= Block and, from exercises/solutions/attention_skip.py,
similarity_by_depth(build(block), random_tokens())[::3]:

    sas                    0.00  0.00  0.00  0.00  0.00  0.00  0.00
    sas_no_mlp_skip        0.00  0.62  0.83  0.88  0.91  0.94  0.93

Answers (open-ended: what to look for, not the only right ones)
-------
a. Shaped attention is the identity, so X^ = N1(X) and out = 0.1 MLP(N2(N1(X))): the only path
   through the block goes through a random ReLU MLP, downweighted by beta_FF. Block 3 of that
   18-layer model at initialisation, fed torch.randn(8, 64, 128) (RMS 1), returned RMS 0.007,
   at a mean cosine of -0.01 with its input: nothing of the token's own vector is left, and
   the next block's norm scales the rest back up. A stack of random ReLU MLPs makes the tokens
   alike (a ReLU's output has a positive mean that W_2 turns into a vector every token shares:
   exercise 4, question c): 0.62 after 3 blocks, 0.93 after 18.
b. sas_p and sas learn at the same pace (5.905 and 5.913 after 300 steps). The block without
   the skip sits near the unigram plateau, about 6.6 to 6.7, and ends 0.77 higher at 6.674
   (0.67 higher, 6.580, with the fused kernel): it has barely started to use the context.
c. It helps here: 6.375 at 3e-4, against 6.674 at 1e-3 (6.580 with the fused kernel), but it
   is still 0.47 behind sas_p. One seed and 300 steps: a first look. The paper saw the same
   direction (§4.3): without the skip the sequential block trained much slower, even at a 10x
   smaller learning rate, and linearising the ReLU did not save it.
d. In sas_p both branches read H = N1(X), and the shaped attention branch, the identity at
   initialisation, hands H on unchanged: out = H + 0.1 MLP(H). The token's own vector has a
   path around the MLP, a skip in all but name. In the sequential block without the skip the
   MLP sits on the only path, so nothing carries the token past it.
"""

import sys

import torch
import torch.nn as nn

import train
from blocks import BLOCKS
from blocks.parts import MLP, RMSNorm, ShapedAttention
from common import run_main


class Block(nn.Module):
    """sas without the MLP skip: X^ = beta_SA ShA(N1(X)); out = beta_FF MLP(N2(X^))."""

    def __init__(self, config, layer_idx):
        super().__init__()
        self.ln_1 = RMSNorm(config.n_embd)
        self.attn = ShapedAttention(config, layer_idx, identity_values=True)
        self.ln_2 = RMSNorm(config.n_embd)
        self.mlp = MLP(config)
        self.beta_sa = nn.Parameter(torch.empty(()))  # set by GPT.init_weights
        self.beta_ff = nn.Parameter(torch.empty(()))  # no alpha_ff: the skip it scaled is gone

    def forward(self, x):
        x = self.beta_sa * self.attn(self.ln_1(x))
        return self.beta_ff * self.mlp(self.ln_2(x))


if __name__ == "__main__":
    BLOCKS["sas_no_mlp_skip"] = Block  # train.py's --block choices read this same dict
    run_main(train.main, ["--block=sas_no_mlp_skip", *sys.argv[1:]])
