"""
no_attn_skip_unshaped: a negative control. pre_ln with the attention skip
simply deleted, keeping ordinary softmax attention.

    X1  = Attn(N1(X))
    out = X1 + MLP(N2(X1))

Without the skip, every layer multiplies the signal by a softmax matrix whose
rows are close to uniform averages at initialisation, so token representations
become more alike with depth (rank collapse, §4.1) and training is slow. This
block exists to show why shaped attention is needed in no_attn_skip.
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
        x = self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))
