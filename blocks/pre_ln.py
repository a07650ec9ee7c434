"""
pre_ln: the paper's baseline, a standard Pre-LN GPT block (§3, Eq. 1).

    X1  = X  + Attn(N1(X))
    out = X1 + MLP(N2(X1))

As in the official code (not vanilla GPT-2): RMSNorm, a ReLU MLP without
biases, a fused QK projection with bias, dense W_V and W_P.
"""

import torch.nn as nn

from .parts import MLP, CausalSelfAttention, RMSNorm


class Block(nn.Module):

    def __init__(self, config, layer_idx):
        super().__init__()
        self.ln_1 = RMSNorm(config.n_embd)
        self.attn = CausalSelfAttention(config, layer_idx)
        self.ln_2 = RMSNorm(config.n_embd)
        self.mlp = MLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))
