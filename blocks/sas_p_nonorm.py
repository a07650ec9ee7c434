"""
sas_p_nonorm: ladder step 4. The normalisation goes (§4.4).

    H   = X
    out = beta_SA * ShA(H) + beta_FF * MLP(H)

Following the official code (the paper only says "no normalisation"), a
LayerNorm stays on the input of block 0 and the model's final norm stays.
The paper found this slightly slower per step, and unstable to fine-tune.
"""

import torch
import torch.nn as nn

from .parts import MLP, ShapedAttention


class Block(nn.Module):

    def __init__(self, config, layer_idx):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd) if layer_idx == 0 else nn.Identity()
        self.attn = ShapedAttention(config, layer_idx, identity_values=True)
        self.mlp = MLP(config)
        self.beta_sa = nn.Parameter(torch.empty(()))
        self.beta_ff = nn.Parameter(torch.empty(()))

    def forward(self, x):
        h = self.ln_1(x)
        return torch.addcmul(self.beta_sa * self.attn(h), self.beta_ff, self.mlp(h))  # a + b * c, in one pass
