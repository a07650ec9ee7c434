# The ladder in a class, in under ten minutes on a 2-core laptop CPU (7.2 minutes for these three blocks here):
#   python compare.py config/class.py --blocks=pre_ln,sas_p,no_attn_skip_unshaped
# The unshaped control fails (it stays near the unigram loss), sas_p keeps up with pre_ln per step.
# The class plan (exercises/class_plan.md) says what to expect and how much seeds move it.
# Deep enough (8 blocks) for the missing attention skip to matter; narrow and short enough for a lesson.

n_layer = 8
n_embd = 128
n_head = 4
block_size = 128
mlp_gain = 0.1  # beta_FF

batch_size = 16
max_steps = 500
learning_rate = 1e-3
warmup_frac = 0.2  # a fifth, as the ladder preset: with 5% sas_p sits on the unigram plateau for longer

eval_interval = 50
eval_windows = 100
log_interval = 25
checkpoint_interval = 500
