"""
The parts every block is built from: norm, MLP, attention, shaped attention.

Block files in this folder only wire these parts together, so the difference
between two neighbouring blocks of the ladder is exactly one removal.

The parts define shapes only. Every starting value (including the ones the
paper cares most about: zero queries, identity values, the branch gains) is set
in one place, GPT.init_weights in model.py.

Section and equation numbers refer to He & Hofmann, "Simplifying Transformer
Blocks" (ICLR 2024, arXiv 2311.01906).
"""

import torch
import torch.nn as nn
from torch.nn import functional as F


class RMSNorm(nn.Module):
    """RMSNorm with a learnable scale: the paper's normalisation layer N (§3)."""

    def __init__(self, dim, eps=1e-5):
        super().__init__()
        # eps is 1e-5 and is added to the RMS, not inside the square root: the
        # official code does both (the paper writes 1e-8).
        self.eps = eps
        self.weight = nn.Parameter(torch.empty(dim))

    def forward(self, x):
        rms = x.pow(2).mean(dim=-1, keepdim=True).sqrt()  # (B, T, 1)
        return self.weight * x / (rms + self.eps)


class MLP(nn.Module):
    """Two matrices with a ReLU between them and no biases, as in the official code."""

    def __init__(self, config):
        super().__init__()
        hidden = config.mlp_ratio * config.n_embd
        self.c_fc = nn.Linear(config.n_embd, hidden, bias=False)
        self.c_proj = nn.Linear(hidden, config.n_embd, bias=False)

    def forward(self, x):
        return self.c_proj(F.relu(self.c_fc(x)))


class IdentityPlusLinear(nn.Module):
    """x -> x (alpha I + beta dW): a matrix reparameterised around the identity (Eq. 6).

    The SAS blocks fix W_V = I, except in the first layer, where the official
    code keeps this trainable form (§4.2: it is the only layer whose learned
    dW stays non-negligible).
    """

    def __init__(self, dim):
        super().__init__()
        self.alpha = nn.Parameter(torch.empty(()))
        self.beta = nn.Parameter(torch.empty(()))
        self.delta = nn.Linear(dim, dim, bias=False)

    def forward(self, x):
        return self.alpha * x + self.beta * self.delta(x)


class CausalSelfAttention(nn.Module):
    """Multi-head causal attention: per head softmax(q k^T / sqrt(hs) + M) v, then W_P.

    As in the official code, W_Q and W_K are one fused projection with a bias;
    W_V and W_P have no bias. With identity_values=True, W_V and W_P are fixed
    to the identity (§4.2) and disappear from the parameter count, except in
    layer 0, which keeps W_V = alpha I + beta dW.
    """

    def __init__(self, config, layer_idx, identity_values=False):
        super().__init__()
        self.n_head = config.n_head
        d = config.n_embd
        self.c_qk = nn.Linear(d, 2 * d, bias=True)
        if not identity_values:
            self.c_v = nn.Linear(d, d, bias=False)
            self.c_proj = nn.Linear(d, d, bias=False)
        else:
            self.c_v = IdentityPlusLinear(d) if layer_idx == 0 else nn.Identity()
            self.c_proj = nn.Identity()

    def attend(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    def heads(self, x):
        """q, k, v of x (B, T, C), the channels split into heads: (B, nh, T, hs) each."""
        B, T, C = x.size()  # batch, sequence length, embedding dim (n_embd)
        q, k = self.c_qk(x).split(C, dim=2)
        v = self.c_v(x).to(q.dtype)  # identity values too are in the dtype autocast gives q and k
        return (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))

    def forward(self, x):
        B, T, C = x.size()
        y = self.attend(*self.heads(x))  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # heads side by side again
        return self.c_proj(y)


class ShapedAttention(CausalSelfAttention):
    """Shaped attention (Eq. 5): per head h, (alpha_h I + beta_h A_h - gamma_h C) v_h.

    alpha, beta, gamma are trainable, one per head. W_Q starts at zero, so the
    logits are zero, A = C and the attention matrix is exactly the identity at
    initialisation: the sub-block passes its input straight through, which is
    what the removed skip connection used to guarantee (§4.1).
    """

    def __init__(self, config, layer_idx, identity_values=False):
        super().__init__(config, layer_idx, identity_values)
        self.alpha = nn.Parameter(torch.empty(config.n_head))
        self.beta = nn.Parameter(torch.empty(config.n_head))
        self.gamma = nn.Parameter(torch.empty(config.n_head))

    def attend(self, q, k, v):
        return shaped_attention(q, k, v, self.alpha, self.beta, self.gamma)


def shaped_attention(q, k, v, alpha, beta, gamma):
    """Causal shaped attention without building a T x T matrix.

    q, k, v: (B, nh, T, hs); alpha, beta, gamma: (nh,). Returns (B, nh, T, hs).
    (alpha I + beta A - gamma C) v is a sum of three terms, each with an O(T) form:
        I v  = v
        A v  = torch's fused scaled_dot_product_attention (flash / memory-efficient kernels)
        C v  = running mean of v over positions <= t, since C[i, j] = 1/(i+1) for j <= i
    shaped_attention_matrix below is the explicit form the tests hold this to.
    """
    softmax_v = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
    return ShapedSum.apply(v, softmax_v, alpha, beta, gamma)  # alpha v + beta softmax_v - gamma C v


def positions(T, device):
    """1, 2, ..., T as a (T, 1) column: how many positions each row of C averages over."""
    return torch.arange(1, T + 1, device=device, dtype=torch.float32).view(T, 1)


class ShapedSum(torch.autograd.Function):
    """alpha v + beta softmax_v - gamma C v, per head, with a hand-written backward.

    Left to autograd, this elementwise sum would keep its fp32 intermediates alive until the
    backward pass: several times the memory of the attention itself. Here the backward needs only
    v and softmax_v, which SDPA keeps for its own backward anyway. Everything is computed in v's
    dtype (bf16 under autocast: mixed-dtype ops would make hidden fp32 copies), except the running
    sums, which are fp32 because a bf16 running sum drifts.
    """

    @staticmethod
    def forward(ctx, v, softmax_v, alpha, beta, gamma):
        ctx.save_for_backward(v, softmax_v, alpha, beta, gamma)
        c_scale = -gamma.view(-1, 1, 1) / positions(v.size(-2), v.device)  # (nh, T, 1): -gamma / (t+1)
        out = v.cumsum(dim=-2, dtype=torch.float32).mul_(c_scale).to(v.dtype)  # -gamma C v
        alpha, beta = (g.to(v.dtype).view(-1, 1, 1) for g in (alpha, beta))  # (nh, 1, 1)
        return out.addcmul_(v, alpha).addcmul_(softmax_v, beta)

    @staticmethod
    def backward(ctx, grad):
        v, softmax_v, alpha, beta, gamma = ctx.saved_tensors
        # through C the gradient is C^T grad: (C^T g)_j = sum over i >= j of g_i / (i+1), a running
        # sum from the end: flip the positions, take the running sum, flip back
        scaled = grad.float() / positions(grad.size(-2), grad.device)
        through_c = scaled.flip(-2).cumsum_(dim=-2).flip(-2).to(v.dtype)
        per_head = (0, 2, 3)  # sum over batch, positions and channels
        grad_alpha = (grad * v).sum(per_head).float()
        grad_beta = (grad * softmax_v).sum(per_head).float()
        grad_gamma = -(through_c * v).sum(per_head).float()  # sum of (C^T g) v = sum of g (C v)
        alpha, beta, gamma = (g.to(v.dtype).view(-1, 1, 1) for g in (alpha, beta, gamma))
        grad_v = through_c.mul_(-gamma).addcmul_(grad, alpha)  # alpha g - gamma C^T g
        return grad_v, grad * beta, grad_alpha, grad_beta, grad_gamma


def uniform_causal_matrix(T, device=None):
    """C: the causal attention matrix at zero logits, C[i, j] = 1/(i+1) for j <= i, else 0. (T, T)"""
    ones = torch.ones(T, T, device=device).tril()
    return ones / ones.sum(dim=-1, keepdim=True)


def shaped_attention_matrix(q, k, alpha, beta, gamma):
    """The explicit shaped attention matrix alpha I + beta A - gamma C, (B, nh, T, T).

    O(T^2) memory: the reference that tests compare shaped_attention against,
    and what the signal-propagation probe inspects. Not used for training.
    """
    T, hs = q.size(-2), q.size(-1)
    logits = q @ k.transpose(-2, -1) / hs**0.5  # (B, nh, T, T)
    causal = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    A = logits.masked_fill(~causal, float("-inf")).softmax(dim=-1)
    I = torch.eye(T, device=q.device)
    C = uniform_causal_matrix(T, device=q.device)
    alpha, beta, gamma = (g.view(-1, 1, 1) for g in (alpha, beta, gamma))  # (nh, 1, 1)
    return alpha * I + beta * A - gamma * C
