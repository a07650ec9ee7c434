"""
Exercise 11 · ladder step 4, sas_p -> sas_p_nonorm · Dynamic Tanh instead of no norm (open-ended)

Task
----
The last step removes normalisation: sas_p_nonorm trains a little slower per
step, and the paper could not fine-tune it (§4.4). Dynamic Tanh (Zhu et al.,
"Transformers without Normalization", CVPR 2025) replaces a norm layer by an
element-wise squashing with no statistics at all:

    DyT(x) = weight * tanh(alpha * x) + bias

alpha is one learnable scalar (starting at 0.5 by default), weight and bias one
per channel (starting at 1 and 0). Does it do better here than no norm at all?

1. DyT(dim, alpha_init=0.5): the module, with parameters named alpha (a 0-dim
   tensor), weight and bias (dim each), starting at alpha_init, 1 and 0.
2. Block: sas_p_dyt, sas_p's block with DyT where sas_p has RMSNorm:
       H   = DyT(X)
       out = beta_SA * ShA(H) + beta_FF * MLP(H)
   Keep sas_p's attribute names (ln_1, now a DyT; attn, mlp, beta_sa, beta_ff).
3. Check:  python -m pytest exercises -k dynamic_tanh
   It also trains your block for a few steps with train.py's train().
4. Compare, open-ended. Running this file registers your block as "sas_p_dyt"
   in blocks.BLOCKS and starts train.py with it; train all three blocks with the
   same settings (about 1-2 minutes each on a laptop CPU):
       python -m exercises.tasks.dynamic_tanh --max_steps=300 --eval_interval=100 --out_dir=out/dyt/{block} --overwrite
       python train.py --block=sas_p --max_steps=300 --eval_interval=100 --out_dir=out/dyt/{block} --overwrite
       python train.py --block=sas_p_nonorm --max_steps=300 --eval_interval=100 --out_dir=out/dyt/{block} --overwrite
   Each run prints its validation loss and writes out/dyt/<block>/log.jsonl
   (step, train and val loss, tokens/s). Then answer the questions below.

Hint
----
GPT.init_weights (model.py) gives every tensor it knows its starting value:
nn.Linear, nn.Embedding, RMSNorm, nn.LayerNorm, the shaped attention's parts,
and every parameter a block holds directly (1, or config.mlp_gain for
beta_ff). It knows nothing of DyT and leaves a DyT's tensors as they are. So,
unlike the repo's own parts (torch.empty, filled in later by init_weights), DyT
must create its parameters with their starting values, e.g.
nn.Parameter(torch.tensor(float(alpha_init))), torch.ones(dim), torch.zeros(dim).
And keep alpha inside the DyT module: a block that held it directly
(self.alpha = ...) would see init_weights set it to 1.

Questions
---------
a. Which of the three has the lowest validation loss after 300 steps? Are the
   differences larger than what another --seed gives the same block?
b. tokens/s: is DyT as cheap as no norm, or as costly as RMSNorm?
c. For small x, tanh(alpha x) is about alpha x. sas_p has no skip connection:
   what does a DyT with alpha = 0.5 do to the size of the residual stream at
   initialisation, block after block? (Measure it with forward hooks, as in
   exercise 4.) What would alpha_init = 1 do?
d. What alpha did each layer learn? In Python, from the repository root:
       import torch
       model = torch.load("out/dyt/sas_p_dyt/ckpt.pt")["model"]
       print({k: round(v.item(), 3) for k, v in model.items() if k.endswith("ln_1.alpha")})
e. Is the comparison fair? Think of the learning rate (the paper lowered it
   for no norm in BERT), the number of steps, and the final LayerNorm and block
   0's entry LayerNorm (sas_p_nonorm) that stay.
"""

import sys

import torch.nn as nn

import train
from blocks import BLOCKS
from common import run_main


class DyT(nn.Module):
    """Dynamic Tanh, a norm layer's stand-in: weight * tanh(alpha * x) + bias."""

    def __init__(self, dim, alpha_init=0.5):
        super().__init__()
        raise NotImplementedError("exercise 11: create alpha, weight and bias with their starting values")

    def forward(self, x):
        raise NotImplementedError("exercise 11: write DyT(x)")


class Block(nn.Module):
    """sas_p_dyt: H = DyT(X); out = beta_SA * ShA(H) + beta_FF * MLP(H)."""

    def __init__(self, config, layer_idx):
        super().__init__()
        raise NotImplementedError("exercise 11: sas_p's block with DyT instead of RMSNorm")

    def forward(self, x):
        raise NotImplementedError("exercise 11: sas_p's equation")


if __name__ == "__main__":
    BLOCKS["sas_p_dyt"] = Block  # train.py's --block choices read this same dict
    run_main(train.main, ["--block=sas_p_dyt", *sys.argv[1:]])
