"""
Exercise 9 · ladder step 3, sas -> sas_p · the sequential block without its MLP skip

Task
----
sas_p removes the MLP skip by going parallel. Could the skip simply be deleted
from sas, keeping the block sequential?

    X^  = beta_SA * ShA(N1(X))
    out = beta_FF * MLP(N2(X^))          (sas: alpha_FF * X^ + beta_FF * MLP(N2(X^)))

The paper tried it (§4.3). Predict before you build anything: will it train as
fast per step as sas and sas_p? Write your guess and a one-line reason in a
comment above Block. Then build the block, see what it does at initialisation,
and train it next to sas and sas_p.

1. Block: sas's block with the MLP skip removed, sas's attribute names kept
   (ln_1, attn, ln_2, mlp, beta_sa, beta_ff).
2. Check:  python -m pytest exercises -k no_mlp_skip
   It also trains your block for a few steps with train.py's train().
3. Compare. Running this file registers your block as "sas_no_mlp_skip" in
   blocks.BLOCKS and starts train.py with it. Train the three with the same
   settings, about 15 seconds each on a 2-core CPU (in bash):
       F="--n_layer=6 --n_embd=128 --n_head=4 --block_size=64 --batch_size=8 --max_steps=300"
       F="$F --eval_interval=50 --eval_windows=100 --out_dir=out/no_mlp_skip/{block} --overwrite"
       python -m exercises.tasks.no_mlp_skip $F
       python train.py --block=sas_p $F
       python train.py --block=sas $F
   Each prints its validation loss as it goes and writes out/no_mlp_skip/<block>/log.jsonl.

Hint
----
Start from a copy of blocks/sas.py: two lines change. Create the gains with
torch.empty(()), as sas does: GPT.init_weights sets beta_sa to 1 and beta_ff to
config.mlp_gain. The skip is the term alpha_FF * X^, and alpha_FF goes with it.

Questions
---------
a. Write out the block's output at initialisation (shaped attention is the
   identity). What path does a token's own vector take through the block? How
   large is the output next to the input?
b. Which block learns fastest per step, which slowest? By how much after 300
   steps?
c. Try a lower learning rate, --learning_rate=3e-4, for the block without the
   skip: does it help here? (The paper tried 10x lower; §4.3 says what it saw.)
d. Why does the parallel block not need the skip? Compare what carries the
   signal through sas_p at initialisation with what carries it here.
"""

import sys

import torch.nn as nn

import train
from blocks import BLOCKS
from common import run_main


class Block(nn.Module):
    """sas without the MLP skip: X^ = beta_SA ShA(N1(X)); out = beta_FF MLP(N2(X^))."""

    def __init__(self, config, layer_idx):
        super().__init__()
        raise NotImplementedError("exercise 9: sas's parts, without alpha_FF")

    def forward(self, x):
        raise NotImplementedError("exercise 9: sas's equation without the MLP skip")


if __name__ == "__main__":
    BLOCKS["sas_no_mlp_skip"] = Block  # train.py's --block choices read this same dict
    run_main(train.main, ["--block=sas_no_mlp_skip", *sys.argv[1:]])
