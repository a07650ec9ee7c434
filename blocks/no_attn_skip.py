"""
no_attn_skip: ladder step 1. Shaped attention replaces the attention skip (§4.1).

    X^  = beta_SA * ShA(N1(X))
    out = alpha_FF * X^ + beta_FF * MLP(N2(X^))

ShA starts as the identity, so at initialisation X^ = N1(X): the sub-block
passes the signal through as the skip used to. The MLP branch is downweighted
(beta_FF = 0.1 < alpha_FF = 1, Stable-ResNet style) to make up for the lost
implicit downweighting of the skip. W_V and W_P stay dense, orthogonally
initialised and trainable: this is the paper's V-SkipInit baseline (Fig. 2),
built as the official code builds it, with shaped rather than V-SkipInit
attention. All gains are trainable; alpha_FF only in the official code.
"""

import torch
import torch.nn as nn

from .parts import MLP, RMSNorm, ShapedAttention


class Block(nn.Module):

    def __init__(self, config, layer_idx):
        super().__init__()
        self.ln_1 = RMSNorm(config.n_embd)
        self.attn = ShapedAttention(config, layer_idx)
        self.ln_2 = RMSNorm(config.n_embd)
        self.mlp = MLP(config)
        self.beta_sa = nn.Parameter(torch.empty(()))
        self.alpha_ff = nn.Parameter(torch.empty(()))
        self.beta_ff = nn.Parameter(torch.empty(()))

    def forward(self, x):
        x = self.beta_sa * self.attn(self.ln_1(x))
        return torch.addcmul(self.alpha_ff * x, self.beta_ff, self.mlp(self.ln_2(x)))  # a + b * c, in one pass
