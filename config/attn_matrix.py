# The paper's v1 Fig. 12 / v2 Fig. 13: Value-SkipInit's attention matrix (Eq. 4) against shaped attention (Eq. 5)
# inside SAS and SAS-P, at the scale of config/fig3.py:
#   python compare.py config/attn_matrix.py
# attn_matrix=v_skipinit gives sas and sas_p the matrix alpha I + beta A, beta starting at 0 (and no - gamma C); their
# values and projection stay the identity. The official code's knob is model.attn_mat_resid_gain=0 with
# model=skipless (SAS) or model=skipless-parallel (SAS-P): gamma follows beta to 0 there and is frozen.
# The paper's runs are 18 layers of width 768 after ~40K steps; ours 12 layers of width 64 after 800 steps of
# 64 tokens x 16, over two seeds.

blocks = "sas,sas_p"
sweep = "attn_matrix=shaped,v_skipinit"
seeds = "1337,1"
speed = False  # these runs shared the machine with other work: their speeds are not comparable
out_dir = "results/attn_matrix/{block}"
report = "results/attn_matrix"

n_layer = 12
n_embd = 64
n_head = 2
block_size = 64
mlp_gain = 0.1  # beta_FF, as at depth 18

dtype = "float32"  # float32 computes alike on every CPU

batch_size = 16
max_steps = 800
learning_rate = 1e-3  # the paper's, for SAS and SAS-P
warmup_frac = 0.2  # a fifth, as the other CPU presets (config/ladder.py says why)

eval_interval = 100
eval_windows = 200
log_interval = 25
checkpoint_interval = 800
