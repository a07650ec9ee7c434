# The ladder experiment on a CPU: every block, deep and narrow so that what depth does to each block
# shows, and small enough to train a block on 2 CPU cores (tutorial.md's contents table says how long):
#   python compare.py config/ladder.py
# Everything else is the paper's recipe (config/paper.py), at a smaller scale, except two things: every block
# gets the peak learning rate the paper used for Pre-LN, SAS and SAS-P, and a fifth of the run is warmup.

blocks = "pre_ln,no_attn_skip,v_skipinit,sas_vp,sas,sas_p,sas_p_nonorm,parallel,no_attn_skip_unshaped"

n_layer = 12
n_embd = 128
n_head = 4
block_size = 128
mlp_gain = 0.1  # beta_FF, as at depth 18

batch_size = 16
max_steps = 2000
learning_rate = 1e-3  # the paper's peak for Pre-LN, SAS and SAS-P; here for every block
# The paper warms up for 2,000 steps (5% of 40K). Our runs are short, so we warm up for a fifth of the
# run, 400 steps (exercise 10 asks what a 5% warmup does here).
warmup_frac = 0.2

eval_interval = 100
eval_windows = 200
log_interval = 25
checkpoint_interval = 500
