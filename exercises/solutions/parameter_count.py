"""
Exercise 7, solved: the parameters a removal saves. The task and the hint are in
exercises/tasks/parameter_count.py.

Answers
-------
a. Step 1, pre_ln -> no_attn_skip, adds 3 n_head + 3 per layer: shaped attention's
   alpha, beta, gamma per head, and the branch gains beta_SA, alpha_FF, beta_FF.
   It removes no tensor: the skip connection had no parameters.
b. sas saves 20,643,136 of pre_ln's 166,154,496 parameters, 12.4%, leaving 145,511,360.
   With the official code's 1024 positions: 166,842,624 and 146,199,488, 12.4% again (the
   positions are in both counts and cancel in the saving). The positions are not the gap:
   the paper's 13% is 1 - 146/167 of its rounded counts (12.6%), rounded again.
c. Per layer: W_Q and W_K (2 d^2), W_V and W_P (2 d^2), the MLP's two d x 4d
   matrices (8 d^2). Removing W_V, W_P saves 2 d^2, 1/6 of the block's weights and
   matmuls. sas_p saves only d + 1 more per layer (a norm's scale and alpha_FF), but
   its two branches read the same input and no longer wait on each other, so their
   matmuls can run together (fused in one kernel, as in PaLM's parallel block), and
   one norm per block is gone (§4.3, Fig. 5).
"""


def saved_by_identity_values(n_layer, n_embd):
    """Parameters no_attn_skip has and sas has not, at the same shape."""
    d = n_embd
    values_and_projection = 2 * d * d  # dense W_V and W_P in every layer
    first_layer_value = d * d + 2  # layer 0 keeps W_V = alpha_V I + beta_V dW: dW, alpha_V, beta_V
    return n_layer * values_and_projection - first_layer_value


def saved_along_the_ladder(n_layer, n_embd, n_head):
    """{block: parameters saved against the block before it on the ladder}, for the four steps."""
    L, d = n_layer, n_embd
    return {
        "no_attn_skip": -L * (3 * n_head + 3),  # adds alpha, beta, gamma per head; beta_SA, alpha_FF, beta_FF
        "sas": saved_by_identity_values(L, d),
        "sas_p": L * (d + 1),  # the second norm's scale and alpha_FF
        "sas_p_nonorm": L * d - 2 * d,  # every RMSNorm scale, but block 0 gains a LayerNorm (scale and bias)
    }
