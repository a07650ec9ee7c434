# The paper's CodeParrot model and optimiser (App. D.1 and the official code), for one CUDA GPU:
#   python train.py config/paper.py --block=sas_p
# For the paper's documents, build them once with network access:
#   pip install datasets && python data/prepare.py --codeparrot=200000 --name=codeparrot
# and add --dataset=codeparrot. The data path still differs from the official one, so absolute losses
# and parameter counts do not compare with the paper's: the official code tokenises with the
# code-search-net tokenizer (~50K tokens; ours is a 4,096-token BPE trained on the data), shuffles the
# documents with seed 0 before taking its 200K, cuts each document into whole 128-token pieces and
# leaves end-of-text tokens out of the loss; we take the first N documents in order, join them into one
# token stream and train on random 128-token windows of it. On the default stdlib corpus (~3.5M
# tokens) this recipe runs ~190 epochs and overfits: use it there for speed measurements, not losses.

n_layer = 18
n_embd = 768
n_head = 12
block_size = 128
mlp_ratio = 4
mlp_gain = 0.1  # beta_FF at depth 18

# global batch 128 sequences = 32 per micro-batch x 4 accumulation steps, ~16K tokens per step
batch_size = 32
grad_accum = 4
max_steps = 40_000  # the README's "40K steps" (~655M tokens; the appendix says ~43K)

# AdamW(0.9, 0.999, eps 1e-8), weight decay 0.1 on matrices and embeddings only, clip 1.0
learning_rate = 1e-3
beta1, beta2, eps = 0.9, 0.999, 1e-8
weight_decay = 0.1
grad_clip = 1.0
warmup_frac = 0.05  # 5% linear warmup, then linear decay to ~0

# The paper tuned the peak learning rate per block on a log grid: 1e-3 suits pre_ln, parallel,
# sas and sas_p. The V-SkipInit baseline (our no_attn_skip) needed 3e-4 at depth 18 (Fig. 6).
if block == "no_attn_skip":
    learning_rate = 3e-4

eval_interval = 500
eval_windows = 2000  # ~256K validation tokens
log_interval = 100
checkpoint_interval = 2000
compile = True
