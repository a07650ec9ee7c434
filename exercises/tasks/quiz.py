"""
Exercise 14 · the whole ladder · a quiz

Task
----
Ten questions, one letter each. Answer from what you know first, then check:
    python -m pytest exercises -k quiz
Each wrong answer fails its own check, with a hint. The checks do not look the
answers up: they work them out from the repository's code (they build tiny
models and measure), so if one surprises you, read the check and the code.

 1. In sas at initialisation, the shaped attention matrix alpha I + beta A - gamma C is
        a) C        b) I - C        c) 2I - C        d) I
 2. In a shaped attention layer, GPT.init_weights (model.py) sets to zero
        a) W_Q (and b_Q, as every bias)   b) W_K   c) W_V   d) alpha, beta and gamma
 3. With H = N1(X), sas_p's block at initialisation returns
        a) X + H    b) X + 0.1 MLP(H)    c) H + 0.1 MLP(H)    d) 0.1 MLP(H)
 4. AdamW's weight decay applies to
        a) every parameter                 b) the embeddings only
        c) matrices, embeddings and norm scales
        d) matrices and embeddings: every tensor with two or more dimensions
 5. In sas, W_V is a trainable matrix (alpha_V I + beta_V dW) in
        a) no layer    b) layer 0 only    c) every layer    d) the last layer only
 6. sas_p_nonorm still normalises with
        a) nothing at all                  b) the final LayerNorm only
        c) an RMSNorm in every block       d) a LayerNorm on block 0's input, and the final LayerNorm
 7. Which step of the ladder adds parameters (at 4 layers)?
        a) sas -> sas_p                    b) pre_ln -> no_attn_skip
        c) no_attn_skip -> sas             d) sas_p -> sas_p_nonorm
 8. The eigenvalues of the uniform causal matrix C (T x T) are
        a) all 1    b) 1, and T - 1 zeros    c) 1, 1/2, 1/3, ..., 1/T    d) all 1/T
 9. Without a causal mask (an encoder), the matrix C, softmax at zero logits, is
        a) every entry 1/T   b) I   c) lower triangular, 1/(i+1) on row i   d) zero
10. With --max_steps=1000 --warmup_frac=0.05 --learning_rate=1e-3, train.py's
    learning rate at step 0 is
        a) 0        b) 1e-3        c) 1e-3 / 51        d) 1e-3 / 50

Hint
----
Questions 1-3 and 5-6: blocks/*.py and GPT.init_weights; 4: configure_optimizers
in model.py; 7: exercise 7; 8: exercise 1; 9: softmax of a row of zeros;
10: learning_rate_at in train.py.
"""


def answers():
    """{question number: "a", "b", "c" or "d"} for questions 1 to 10."""
    raise NotImplementedError("exercise 14: answer the quiz")
