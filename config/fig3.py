# The paper's Fig. 3 (§4.1, Eq. 6), at a CPU's scale:
#   python compare.py config/fig3.py --out_dir=results/fig3/{block} --report=results/fig3
#   python compare.py config/fig3.py --blocks=pre_ln,no_attn_skip,sas --sweep= --out_dir=results/fig3_references/{block} --report=results/fig3_references
#   python plot_sweep.py --sweep=results/fig3 --references=results/fig3_references --out=assets/fig3.png
# The first command trains sas_vp with W_V, W_P = alpha B + beta dW in every layer, the first one too: alpha fixed
# at 1 and beta fixed at vp_gain (vp_fixed_gains), dW trainable from zero with weight decay. Every run therefore
# starts at W = B, and beta only sets how fast W may move away from it (App. A). B is the identity or a fixed random
# orthogonal matrix (vp_base). The official code's knobs for one point: model=skipless
# model.value_resid_gain=B model.first_layer_value_resid_gain=B model.trainable_value_gains=false
# model.trainable_proj_gains=false model.val_init_type={id|orth}. The second command trains the reference lines:
# pre_ln, the V-SkipInit baseline (no_attn_skip, at the same learning rate), and sas (identity values, but the
# first layer's W_V trainable); the third draws the figure in the paper's form.
# The paper's figure is for 18 layers of width 768 after ~40K steps of 128 x 128 tokens; ours is 12 layers of
# width 64 after 800 steps of 16 x 64 tokens, the cheapest scale at which we measured sas ending at least as low
# as no_attn_skip (the premise of the figure; at config/class.py's scale it ends higher).

blocks = "sas_vp"
sweep = "vp_gain=0,0.2,0.4,0.6,0.8,1 vp_base=identity,orthogonal"
vp_fixed_gains = True
speed = False  # these runs shared the machine with other work: their speeds are not comparable
out_dir = "results/fig3/{block}"
report = "results/fig3"

n_layer = 12
n_embd = 64
n_head = 2
block_size = 64
mlp_gain = 0.1  # beta_FF, as at depth 18

dtype = "float32"  # float32 computes alike on every CPU

batch_size = 16
max_steps = 800
learning_rate = 1e-3  # the paper's peak for Pre-LN, SAS and SAS-P; here for every block
warmup_frac = 0.2  # a fifth, as the other CPU presets (config/ladder.py says why)

eval_interval = 100
eval_windows = 200
log_interval = 25
checkpoint_interval = 800
