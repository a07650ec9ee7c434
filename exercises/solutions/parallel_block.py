"""
Exercise 8, solved: the parallel block. The task and the hint are in
exercises/tasks/parallel_block.py.

Answers
-------
a. The shaped attention branch: at initialisation ShA is the identity and
   beta_SA = 1, so out = H + 0.1 MLP(H), a skip around the MLP in all but name,
   taken from the normalised input.
b. Both branches read the same input H, so one norm serves both. alpha_FF
   scaled the MLP's skip, and that skip is gone.
c. parallel keeps the skip, out = X + Attn(H) + MLP(H), with plain attention and
   dense W_V, W_P. sas_p can drop the skip because shaped attention starts as the
   identity and so carries the signal through, as the skip did.
"""

import torch
import torch.nn as nn

from blocks.parts import MLP, RMSNorm, ShapedAttention


class Block(nn.Module):
    """sas_p: H = N1(X); out = beta_SA * ShA(H) + beta_FF * MLP(H)."""

    def __init__(self, config, layer_idx):
        super().__init__()
        self.ln_1 = RMSNorm(config.n_embd)  # one norm for both branches
        self.attn = ShapedAttention(config, layer_idx, identity_values=True)
        self.mlp = MLP(config)
        self.beta_sa = nn.Parameter(torch.empty(()))  # set by GPT.init_weights
        self.beta_ff = nn.Parameter(torch.empty(()))

    def forward(self, x):
        h = self.ln_1(x)
        return self.beta_sa * self.attn(h) + self.beta_ff * self.mlp(h)
