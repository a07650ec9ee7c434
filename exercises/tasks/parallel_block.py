"""
Exercise 8 · ladder step 3, sas -> sas_p · the parallel block

Task
----
sas still has the MLP's skip: X^ = beta_SA ShA(N1(X)), out = alpha_FF X^ +
beta_FF MLP(N2(X^)). sas_p removes it by running attention and MLP side by
side on the same normalised input (§4.3):

    H   = N1(X)
    out = beta_SA * ShA(H) + beta_FF * MLP(H)

Write Block, sas_p's block, from this equation: the constructor and forward.
Start from a copy of blocks/sas.py and remove what the parallel block no
longer needs. Do not open blocks/sas_p.py: it is the answer, and
blocks/sas_p_nonorm.py nearly so. The check fails if your file uses either.

Check:  python -m pytest exercises -k parallel_block

Hint
----
Build from the parts in blocks/parts.py, as blocks/sas.py does, and keep its
attribute names (ln_1, attn, mlp, beta_sa, beta_ff): the check loads the same
weights into your block and into the library's. Create the gains with
torch.empty(()): GPT.init_weights (model.py) sets every parameter a block holds
directly, beta_ff to config.mlp_gain and the others to 1.

Questions
---------
a. With nothing but two branches summed, what plays the part of the skip at
   initialisation? Write out the block's output at init.
b. Why does the parallel block need one norm, not two? Why is alpha_FF gone?
c. blocks/parallel.py is the GPT-J / PaLM parallel block. What does it keep
   that sas_p drops, and why can sas_p drop it?
"""

import torch.nn as nn


class Block(nn.Module):
    """sas_p: H = N1(X); out = beta_SA * ShA(H) + beta_FF * MLP(H)."""

    def __init__(self, config, layer_idx):
        super().__init__()
        raise NotImplementedError("exercise 8: build the parallel block's parts and gains")

    def forward(self, x):
        raise NotImplementedError("exercise 8: write the parallel block's equation")
