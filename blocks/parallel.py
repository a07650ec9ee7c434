"""
parallel: the GPT-J / PaLM parallel block, a side branch of the ladder (§4.3).

    H   = N1(X)
    out = X + Attn(H) + MLP(H)

Attention and MLP read the same normalised input, so one norm goes and the two
sub-blocks no longer wait on each other.
"""

import torch.nn as nn

from .parts import MLP, CausalSelfAttention, RMSNorm


class Block(nn.Module):

    def __init__(self, config, layer_idx):
        super().__init__()
        self.ln_1 = RMSNorm(config.n_embd)
        self.attn = CausalSelfAttention(config, layer_idx)
        self.mlp = MLP(config)

    def forward(self, x):
        h = self.ln_1(x)
        return x + self.attn(h) + self.mlp(h)
