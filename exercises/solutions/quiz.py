"""
Exercise 14, solved: the quiz. The questions are in exercises/tasks/quiz.py.

Answers
-------
 1. d) I. W_Q = 0 makes the logits 0, so A = C, and alpha = beta = gamma = 1 leave I + C - C.
 2. a) W_Q, the first half of the fused c_qk (its bias starts at 0 with every bias). W_K stays
    N(0, 0.02): queries learn from the first step (exercise 3).
 3. c) H + 0.1 MLP(H): no skip, the shaped attention branch is the identity and beta_FF = 0.1.
 4. d) Matrices and embeddings. Gains, norm scales and biases have fewer than two dimensions
    and are not decayed: decaying a gain would pull it towards 0, not towards "small weights".
 5. b) Layer 0 only: the only layer whose learned value matrix stayed away from the identity
    in the paper (§4.2).
 6. d) The official code keeps a LayerNorm on block 0's input and the final LayerNorm.
 7. b) pre_ln -> no_attn_skip adds alpha, beta, gamma per head and beta_SA, alpha_FF, beta_FF
    per layer. (At 1 layer sas_p -> sas_p_nonorm adds d too: block 0's LayerNorm has a bias.)
 8. c) C is lower triangular: its eigenvalues are its diagonal, 1/(i+1).
 9. a) Every position sees all T, and softmax of T equal logits is 1/T each: C = 11^T / T.
10. c) Warmup lasts 50 steps, and step s gets lr (s + 1) / (50 + 1): not zero at step 0, so
    the first step already moves the weights.
"""


def answers():
    """{question number: "a", "b", "c" or "d"} for questions 1 to 10."""
    return {1: "d", 2: "a", 3: "c", 4: "d", 5: "b", 6: "d", 7: "b", 8: "c", 9: "a", 10: "c"}
