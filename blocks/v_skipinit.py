"""
v_skipinit: shaped attention's predecessor, Value-SkipInit (He et al., 2023; this paper's Eq. 4), a side
branch of the ladder beside no_attn_skip.

    X^  = beta_SA * VSI(N1(X))
    out = alpha_FF * X^ + beta_FF * MLP(N2(X^))

VSI is attention with the matrix alpha I + beta A in place of A: no centring term gamma C. It starts as
the identity only because beta starts at 0 (GPT.init_weights), so at initialisation the softmax part is
switched off rather than cancelled. Everything else is no_attn_skip's, dense orthogonal W_V and W_P too:
the file is one line away from no_attn_skip, to show what the centring buys. The paper compares the two
matrices inside SAS and SAS-P instead, with identity values (v1 Fig. 12 / v2 Fig. 13, where shaped
attention wins by a small margin): that is --attn_matrix=v_skipinit on sas or sas_p (config/attn_matrix.py),
the official code's model.attn_mat_resid_gain=0, whose gamma follows beta to 0 and stays frozen there.
"""

import torch
import torch.nn as nn

from .parts import MLP, RMSNorm, ShapedAttention


class Block(nn.Module):

    def __init__(self, config, layer_idx):
        super().__init__()
        self.ln_1 = RMSNorm(config.n_embd)
        # Eq. 4: alpha I + beta A, without Eq. 5's - gamma C. So beta starts at 0, not 1 (GPT.init_weights):
        # at zero logits A = C, and no - gamma C would cancel it
        self.attn = ShapedAttention(config, layer_idx, centred=False)
        self.ln_2 = RMSNorm(config.n_embd)
        self.mlp = MLP(config)
        self.beta_sa = nn.Parameter(torch.empty(()))
        self.alpha_ff = nn.Parameter(torch.empty(()))
        self.beta_ff = nn.Parameter(torch.empty(()))

    def forward(self, x):
        x = self.beta_sa * self.attn(self.ln_1(x))
        return torch.addcmul(self.alpha_ff * x, self.beta_ff, self.mlp(self.ln_2(x)))  # a + b * c, in one pass
