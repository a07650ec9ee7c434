"""
sas_vp: the rung between no_attn_skip and sas (Eq. 6, §4.1; Fig. 4, §4.2), a side branch of the ladder.

    X^  = beta_SA * ShA(N1(X))
    out = alpha_FF * X^ + beta_FF * MLP(N2(X^))

with W_V = alpha_V I + beta_V dW_V and W_P = alpha_P I + beta_P dW_P in every layer, all trainable:
dW starts at zero, so the values and projection start as the identity, and beta starts small (0.2,
as the official code's Fig. 4 script). The paper trained this model and watched beta/alpha fall
towards 0 in almost every layer: the learned W_V and W_P stay the identity, which is what licenses
fixing them there in sas. (A branch scaled by a small beta learns as if its learning rate were
smaller, App. A: beta is how slowly dW may move away from zero.) With --vp_fixed_gains, alpha and beta
stay at 1 and vp_gain and only dW trains: the model of the paper's Fig. 3 (config/fig3.py).
"""

import torch
import torch.nn as nn

from .parts import MLP, RMSNorm, ShapedAttention


class Block(nn.Module):

    def __init__(self, config, layer_idx):
        super().__init__()
        self.ln_1 = RMSNorm(config.n_embd)
        self.attn = ShapedAttention(config, layer_idx, near_identity_values=True)
        self.ln_2 = RMSNorm(config.n_embd)
        self.mlp = MLP(config)
        self.beta_sa = nn.Parameter(torch.empty(()))
        self.alpha_ff = nn.Parameter(torch.empty(()))
        self.beta_ff = nn.Parameter(torch.empty(()))

    def forward(self, x):
        x = self.beta_sa * self.attn(self.ln_1(x))
        return torch.addcmul(self.alpha_ff * x, self.beta_ff, self.mlp(self.ln_2(x)))  # a + b * c, in one pass
