"""
sas_p: ladder step 3. The MLP skip goes too: attention and MLP run in parallel (§4.3).

    H   = N1(X)
    out = beta_SA * ShA(H) + beta_FF * MLP(H)

No skip connection is left. At initialisation ShA is the identity, so
out = H + 0.1 MLP(H): the shaped attention branch plays the part of the skip.
One norm, no alpha_FF.
"""

import torch
import torch.nn as nn

from .parts import MLP, RMSNorm, ShapedAttention


class Block(nn.Module):

    def __init__(self, config, layer_idx):
        super().__init__()
        self.ln_1 = RMSNorm(config.n_embd)
        self.attn = ShapedAttention(config, layer_idx, identity_values=True)
        self.mlp = MLP(config)
        self.beta_sa = nn.Parameter(torch.empty(()))
        self.beta_ff = nn.Parameter(torch.empty(()))

    def forward(self, x):
        h = self.ln_1(x)
        return torch.addcmul(self.beta_sa * self.attn(h), self.beta_ff, self.mlp(h))  # a + b * c, in one pass
