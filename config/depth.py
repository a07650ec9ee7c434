# The paper's depth experiment (§5, Fig. 6 of v1: 18 against 72 blocks) at an extreme depth-to-width ratio:
#   python compare.py config/depth.py
# Pre-LN, the V-SkipInit baseline (no_attn_skip), SAS and SAS-P, each at both depths, two seeds each.
# Narrow (width 64, two heads of 32) and short (T = 64) so that 72 blocks train on a CPU: the deeper model has
# 72/64 = 1.1 blocks per unit of width, 12 times the paper's 72/768, and 1K tokens a step for 1,000 steps, with a
# fifth of the run as warmup (the paper: 5%). config/depth_ratio.py runs the experiment near the paper's ratio. What
# follows the paper: an MLP 2d wide, beta_FF 0.2 at 18 blocks and 0.1 at 72, and peak learning rate 1e-3, lowered
# for V-SkipInit as the paper had to (3e-4 at 18 blocks, 1e-4 at 72; §5, App. D.1).

blocks = "pre_ln,no_attn_skip,sas,sas_p"
sweep = "n_layer=18,72"
seeds = "1337,1"
speed = False  # these runs shared the machine with other work: their speeds are not comparable
out_dir = "out/depth/{block}"
report = "out/depth"

# n_layer comes from the sweep (or --n_layer): the settings below depend on it, so this file must not set it
n_embd = 64
n_head = 2
block_size = 64
mlp_ratio = 2
mlp_gain = 0.2 if n_layer <= 18 else 0.1  # beta_FF: O(1/sqrt(depth))

dtype = "float32"  # at width 64 bfloat16 does not pay on a CPU, and float32 computes alike everywhere

batch_size = 16
max_steps = 1000
learning_rate = 1e-3
if block == "no_attn_skip":
    learning_rate = 3e-4 if n_layer <= 18 else 1e-4
warmup_frac = 0.2  # a fifth, as the other CPU presets (config/ladder.py says why)

eval_interval = 50
eval_windows = 200
log_interval = 25
checkpoint_interval = 250
