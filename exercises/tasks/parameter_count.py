"""
Exercise 7 · ladder step 2, no_attn_skip -> sas · the parameters a removal saves

Task
----
sas fixes the value and projection matrices to the identity, W_V = W_P = I
(§4.2), except in layer 0, which keeps a trainable W_V = alpha_V I + beta_V dW.
The paper: 146M parameters instead of 167M at 18 layers of width 768.

1. saved_by_identity_values(n_layer, n_embd): how many parameters this step
   saves, GPT(no_attn_skip).num_params() - GPT(sas).num_params() for the same
   shape. Work it out on paper from blocks/parts.py (CausalSelfAttention,
   IdentityPlusLinear) before you write it down.
2. saved_along_the_ladder(n_layer, n_embd, n_head): what each step of the ladder
   saves against the step before it, as a dict {"no_attn_skip": ..., "sas": ...,
   "sas_p": ..., "sas_p_nonorm": ...}; negative where a step adds parameters.
   Read blocks/pre_ln.py, blocks/no_attn_skip.py and blocks/sas.py, and count
   what appears and disappears. Count the last two steps from their equations,
   with sas's parts; do not open blocks/sas_p.py or blocks/sas_p_nonorm.py, since
   exercise 8 writes sas_p's block:

       sas_p          H = N1(X)                 out = beta_SA ShA(H) + beta_FF MLP(H)
       sas_p_nonorm   H = X, but in block 0     out = beta_SA ShA(H) + beta_FF MLP(H)
                      H = LayerNorm(X)

   The model's final norm is the same in every model of the ladder.

Count by reasoning, not by building models, and before you read tests/test_model.py:
its expected_num_params is the answer. The check builds the models and compares,
and it fails if your functions build one or call expected_num_params.

Check:  python -m pytest exercises -k parameter_count
It compares exact counts: the paper's 167M and 146M are rounded, and a count a
few thousand off would round the same.

Hint
----
A d x d matrix is d*d parameters, a scalar gain is 1, a norm's scale is d (and a
LayerNorm has a bias of d as well). The embeddings, the MLPs and the QK
projection are the same in every block of the ladder, so they cancel in every
difference. Only the attention sub-block's matrices and the small things (gains,
norms) move. Mind layer 0, in sas and after it, and the entry LayerNorm that
sas_p_nonorm keeps in block 0.

Questions
---------
a. Which step adds parameters, and what are they?
b. At 18 x 768 with GPT-2's vocabulary (50257 tokens), what fraction of pre_ln's
   parameters does sas save? The paper says 13%; the official code has 1024
   learned positions, this repo 128: does that explain the gap?
c. pre_ln has about 12 d^2 parameters per layer: which matrices make them up?
   How many of them does sas save per layer, and how many more does sas_p? Yet
   the paper's speed-up per step is larger for sas_p than for sas: why?
"""


def saved_by_identity_values(n_layer, n_embd):
    """Parameters no_attn_skip has and sas has not, at the same shape."""
    raise NotImplementedError("exercise 7: count what W_V = W_P = I saves")


def saved_along_the_ladder(n_layer, n_embd, n_head):
    """{block: parameters saved against the block before it on the ladder}, for the four steps."""
    raise NotImplementedError("exercise 7: count what every step of the ladder saves")
