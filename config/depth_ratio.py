# The paper's depth experiment (§5, Fig. 6: 18 against 72 blocks) near the paper's depth-to-width
# ratio (twice it), on a CPU:
#   python compare.py config/depth_ratio.py
#   python compare.py config/depth_ratio.py --blocks=no_attn_skip --learning_rate=1e-3 --out_dir=results/depth_ratio_equal_lr/{block} --report=results/depth_ratio_equal_lr
# The first command trains Pre-LN, the V-SkipInit baseline (no_attn_skip) at the paper's lowered learning rates, SAS
# and SAS-P at 6 and 24 blocks of width 128, two seeds each; the second trains the V-SkipInit baseline at the others'
# learning rate, so that its depth result does not hinge on a lower rate alone.
# The paper: 18 and 72 blocks of width 768 (72/768 = 0.09), an MLP 2d wide, beta_FF 0.2 at 18 blocks and 0.1 at 72,
# peak learning rate 1e-3 but 3e-4 (18) and 1e-4 (72) for V-SkipInit, a 5% warmup, 128 tokens x 128 sequences a
# step, ~40K steps. Ours keeps the factor of 4 in depth, a ratio under 0.2 (24/128 = 0.19), the MLP width, the
# gains, the learning rates (each taken by its place: shallow or deep), the 5% warmup and the 128-token sequences;
# it is 6x narrower, takes 8 sequences a step (16x fewer) and 300 steps (over 100x fewer): what one CPU thread
# could train in the time this issue had, two seeds of every run.

blocks = "pre_ln,no_attn_skip,sas,sas_p"
sweep = "n_layer=6,24"
seeds = "1337,1"
speed = False  # these runs shared the machine with other work: their speeds are not comparable
out_dir = "results/depth_ratio/{block}"
report = "results/depth_ratio"

# n_layer comes from the sweep (or --n_layer): the settings below depend on it, so this file must not set it
n_embd = 128
n_head = 2  # heads of 64, the paper's
block_size = 128
mlp_ratio = 2
mlp_gain = 0.2 if n_layer <= 6 else 0.1  # beta_FF: the paper's 0.2 for its shallower model, 0.1 for its deeper one

dtype = "float32"  # float32 computes alike on every CPU

batch_size = 8
max_steps = 300
learning_rate = 1e-3
if block == "no_attn_skip":
    learning_rate = 3e-4 if n_layer <= 6 else 1e-4  # the paper's 3e-4 at its shallower depth, 1e-4 at its deeper
warmup_frac = 0.05  # the paper's

eval_interval = 50
eval_windows = 100
log_interval = 25
checkpoint_interval = 300
