"""
sas: ladder step 2. Values and projection fixed to the identity (§4.2).

    X^  = beta_SA * ShA(N1(X))
    out = alpha_FF * X^ + beta_FF * MLP(N2(X^))

with W_V = W_P = I, so ShA(H) = (alpha I + beta A - gamma C) H per head: the
attention sub-block keeps only W_Q and W_K. Trained from the identity, W_V
and W_P stay near it (beta/alpha -> 0, Fig. 4), and fixing them there ends
slightly lower (1.178 against 1.194, §4.2). Layer 0 keeps W_V = alpha_V I + beta_V dW (dW starting at zero), as the
official code does.
"""

import torch
import torch.nn as nn

from .parts import MLP, RMSNorm, ShapedAttention


class Block(nn.Module):

    def __init__(self, config, layer_idx):
        super().__init__()
        self.ln_1 = RMSNorm(config.n_embd)
        self.attn = ShapedAttention(config, layer_idx, identity_values=True)
        self.ln_2 = RMSNorm(config.n_embd)
        self.mlp = MLP(config)
        self.beta_sa = nn.Parameter(torch.empty(()))
        self.alpha_ff = nn.Parameter(torch.empty(()))
        self.beta_ff = nn.Parameter(torch.empty(()))

    def forward(self, x):
        x = self.beta_sa * self.attn(self.ln_1(x))
        return torch.addcmul(self.alpha_ff * x, self.beta_ff, self.mlp(self.ln_2(x)))  # a + b * c, in one pass
