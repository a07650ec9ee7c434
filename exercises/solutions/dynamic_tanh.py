"""
Exercise 11, solved: Dynamic Tanh. The task and the hint are in exercises/tasks/dynamic_tanh.py.

What we saw (the task's commands: 4 x 256, 300 steps on the stdlib corpus, validation loss;
seed 1337 unless noted; alpha_init = 1 by editing Block to DyT(config.n_embd, alpha_init=1.0)):

    sas_p                          5.08   (seed 1: 5.11)
    sas_p_nonorm                   5.31   (seed 1: 5.14)
    sas_p_dyt, alpha_init = 0.5    5.35
    sas_p_dyt, alpha_init = 1      5.22

Answers (open-ended: these are what to look for, not the only right ones)
-------
a. sas_p, by about 0.1 to 0.25. DyT and no norm land in the same band, and no norm alone
   moves by 0.17 between two seeds: at this budget DyT shows no clear gain over no norm.
   A fair verdict needs several seeds and longer runs.
b. DyT has no reduction over the channels, only an element-wise tanh, so it should cost
   about as little as no norm; next to the matmuls, neither norm is a large share of a
   step on a CPU. Time it on an idle machine: on a shared one, tokens/s moves more
   between runs than between blocks.
c. With no skip, the stream after block 0 is ShA(DyT(X)) + 0.1 MLP(...), about
   0.5 X at alpha = 0.5: every block halves it. The embeddings start at RMS 0.028;
   after 4 blocks the stream is at 0.002, and after 18 it would be ~1e-7, below the
   final LayerNorm's eps: the signal is gone before training starts. RMSNorm (sas_p)
   and the entry LayerNorm (sas_p_nonorm) put it back at RMS 1. With alpha_init = 1,
   tanh(x) is about x for the small x here, so the stream keeps its size, as in
   sas_p_nonorm without the entry norm; here it ended at 5.22 against 5.35 (one seed).
   The DyT paper keeps the skips, where a shrunk branch input does no such harm, and
   tunes alpha_init for its LLMs (0.05 to 0.8, by position and size).
d. About 0.57 to 0.59 in every layer after 300 steps, up from 0.5: training makes
   the DyTs shrink the stream less.
e. Not quite: one learning rate (tuned for the normalised blocks) for all three, one seed,
   300 steps, and norms remain in every model (the final LayerNorm in all, block 0's
   entry LayerNorm in sas_p_nonorm). Nor does it test what the paper found hard about no
   norm: fine-tuning.
"""

import sys

import torch
import torch.nn as nn

import train
from blocks import BLOCKS
from blocks.parts import MLP, ShapedAttention
from common import run_main


class DyT(nn.Module):
    """Dynamic Tanh, a norm layer's stand-in: weight * tanh(alpha * x) + bias."""

    def __init__(self, dim, alpha_init=0.5):
        super().__init__()
        # starting values here, not in GPT.init_weights, which does not know DyT and leaves it alone
        self.alpha = nn.Parameter(torch.tensor(float(alpha_init)))
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        return self.weight * torch.tanh(self.alpha * x) + self.bias


class Block(nn.Module):
    """sas_p_dyt: H = DyT(X); out = beta_SA * ShA(H) + beta_FF * MLP(H)."""

    def __init__(self, config, layer_idx):
        super().__init__()
        self.ln_1 = DyT(config.n_embd)
        self.attn = ShapedAttention(config, layer_idx, identity_values=True)
        self.mlp = MLP(config)
        self.beta_sa = nn.Parameter(torch.empty(()))  # set by GPT.init_weights
        self.beta_ff = nn.Parameter(torch.empty(()))

    def forward(self, x):
        h = self.ln_1(x)
        return self.beta_sa * self.attn(h) + self.beta_ff * self.mlp(h)


if __name__ == "__main__":
    BLOCKS["sas_p_dyt"] = Block  # train.py's --block choices read this same dict
    run_main(train.main, ["--block=sas_p_dyt", *sys.argv[1:]])
