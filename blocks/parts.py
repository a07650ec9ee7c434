"""
The parts every block is built from: norm, MLP, attention, shaped attention.

Block files in this folder only wire these parts together, so the difference
between two neighbouring blocks of the ladder is exactly one removal.

Precision: under autocast the matmuls run in bfloat16 (or float16), but every part hands back its
output in its input's dtype, so the residual stream stays float32 in every block. A skip connection
would do that by itself (float32 x + bfloat16 branch is float32), but the blocks without skips scale
their branches by 0-dim gains, and a 0-dim float32 gain times a bfloat16 tensor stays bfloat16.

Speed: a step's time beyond the matmuls goes in passes over the activations, one per elementwise
operation. The parts and blocks take as few as they can: torch.addcmul(a, b, c) is a + b * c in one
pass, where a + b * c would take two and a temporary; the RMS of the norm is one reduction.

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
        rms = torch.linalg.vector_norm(x, dim=-1, keepdim=True) / x.size(-1) ** 0.5  # (B, T, 1), in one pass
        return self.weight * x / (rms + self.eps)


class MLP(nn.Module):
    """Two matrices with a ReLU between them and no biases, as in the official code."""

    def __init__(self, config):
        super().__init__()
        hidden = config.mlp_ratio * config.n_embd
        self.c_fc = nn.Linear(config.n_embd, hidden, bias=False)
        self.c_proj = nn.Linear(hidden, config.n_embd, bias=False)

    def forward(self, x):
        return self.c_proj(F.relu(self.c_fc(x))).to(x.dtype)  # back in the stream's dtype: see the top


class IdentityPlusLinear(nn.Module):
    """x -> x (alpha W_init + beta dW), W_init = I or a fixed orthogonal O: a matrix around W_init (Eq. 6).

    sas_vp's W_V and W_P in every layer, and the first layer's W_V in the SAS blocks (as the official code).
    orthogonal_base: O (a buffer, saved with the model) for Fig. 3's comparison. trainable_gains=False: alpha
    and beta stay at their start and dW alone trains (Fig. 3); they stay parameters, so the gains log shows them.
    """

    def __init__(self, dim, orthogonal_base=False, trainable_gains=True):
        super().__init__()
        self.alpha = nn.Parameter(torch.empty(()), requires_grad=trainable_gains)
        self.beta = nn.Parameter(torch.empty(()), requires_grad=trainable_gains)
        self.delta = nn.Linear(dim, dim, bias=False)
        self.register_buffer("base", torch.empty(dim, dim) if orthogonal_base else None)

    def forward(self, x):
        fixed = x if self.base is None else F.linear(x, self.base)
        return self.alpha * fixed + self.beta * self.delta(x)


class CausalSelfAttention(nn.Module):
    """Multi-head causal attention: per head softmax(q k^T / sqrt(hs) + M) v, then W_P.

    As in the official code, W_Q and W_K are one fused projection with a bias;
    W_V and W_P have no bias. With near_identity_values=True they are trainable
    in the form alpha I + beta dW (Eq. 6). With identity_values=True they are
    fixed to the identity (§4.2) and disappear from the parameter count, except
    in layer 0, which keeps W_V = alpha I + beta dW.

    kernel: how the softmax part is computed, the same in every layer (GPT.set_attention_kernel): fused or
    explicit (causal_attention). cache: while GPT.generate runs with its KV cache, the layer's KVCache.
    """
    kernel = "fused"
    cache = None

    def __init__(self, config, layer_idx, identity_values=False, near_identity_values=False):
        super().__init__()
        self.n_head = config.n_head
        d = config.n_embd
        self.c_qk = nn.Linear(d, 2 * d, bias=True)
        if identity_values:
            self.c_v = IdentityPlusLinear(d) if layer_idx == 0 else nn.Identity()
            self.c_proj = nn.Identity()
        elif near_identity_values:
            orthogonal, trainable = config.vp_base == "orthogonal", not config.vp_fixed_gains
            self.c_v, self.c_proj = (IdentityPlusLinear(d, orthogonal, trainable) for _ in range(2))
        else:
            self.c_v = nn.Linear(d, d, bias=False)
            self.c_proj = nn.Linear(d, d, bias=False)

    def attend(self, q, k, v):
        return causal_attention(q, k, v, self.kernel)

    def attend_cached(self, q, k, v):
        """attend() for the newest positions (q, k, v of those), the earlier ones' keys and values in the cache."""
        k, v = self.cache.extend(k, v)  # (B, nh, every position so far, hs)
        return causal_attention(q, k, v, self.kernel)

    def heads(self, x):
        """q, k, v of x (B, T, C), the channels split into heads: (B, nh, T, hs) each."""
        B, T, C = x.size()  # batch, sequence length, embedding dim (n_embd)
        q, k = self.c_qk(x).split(C, dim=2)
        v = self.c_v(x).to(q.dtype)  # identity values too are in the dtype autocast gives q and k
        return tuple(t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))

    def forward(self, x):
        B, T, C = x.size()
        y = (self.attend if self.cache is None else self.attend_cached)(*self.heads(x))  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # heads side by side again
        return self.c_proj(y).to(x.dtype)  # back in the stream's dtype: see the top


class ShapedAttention(CausalSelfAttention):
    """Shaped attention (Eq. 5): per head h, (alpha_h I + beta_h A_h - gamma_h C) v_h.

    alpha, beta, gamma are trainable, one per head. W_Q starts at zero, so the
    logits are zero, A = C and the attention matrix is exactly the identity at
    initialisation (§4.1). With identity values (sas and after) the sub-block then
    passes its input straight through, as the removed skip connection did; with
    dense orthogonal W_V, W_P (no_attn_skip) it starts as an orthogonal map, which
    keeps the lengths of the positions and the angles between them.

    With centred=False (the v_skipinit block), or config.attn_matrix="v_skipinit" (any shaped block),
    there is no gamma C: the matrix is Value-SkipInit's alpha I + beta A (Eq. 4; He et al., 2023),
    which starts as the identity only because beta starts at 0. The paper compares the two matrices
    inside SAS and SAS-P (v1 Fig. 12 / v2 Fig. 13); the official code gets Eq. 4 from
    model.attn_mat_resid_gain=0, where gamma follows beta to 0 and is frozen there.
    """

    def __init__(self, config, layer_idx, identity_values=False, near_identity_values=False, centred=True):
        super().__init__(config, layer_idx, identity_values, near_identity_values)
        self.alpha = nn.Parameter(torch.empty(config.n_head))
        self.beta = nn.Parameter(torch.empty(config.n_head))
        centred = centred and config.attn_matrix == "shaped"
        self.gamma = nn.Parameter(torch.empty(config.n_head)) if centred else None

    def attend(self, q, k, v):
        return shaped_attention(q, k, v, self.alpha, self.beta, self.gamma, self.kernel)

    def attend_cached(self, q, k, v):
        """The newest positions' rows of (alpha I + beta A - gamma C) v, from the cache: I v needs only their own
        values, A v the keys and values of every position so far, and C v, a running mean, only the running sum
        of the values, which the cache keeps (one vector per head, whatever the length)."""
        seen = self.cache.length  # positions before these
        k_all, v_all = self.cache.extend(k, v)
        alpha, beta = (g.view(-1, 1, 1) for g in (self.alpha, self.beta))  # (nh, 1, 1)
        out = torch.addcmul(alpha * v, beta, causal_attention(q, k_all, v_all, self.kernel))  # alpha v + beta A v
        if self.gamma is not None:  # - gamma C v: the running sum up to each new position, over how many it holds
            running_sum = self.cache.value_sum + v.cumsum(dim=-2, dtype=torch.promote_types(v.dtype, torch.float32))
            self.cache.value_sum = running_sum[..., -1:, :]  # (B, nh, 1, hs)
            out = torch.addcmul(out, running_sum, -self.gamma.view(-1, 1, 1) / (positions(v.size(-2), v.device) + seen))
        return out


class KVCache:
    """What a layer keeps of the positions seen so far while GPT.generate decodes one token at a time: their keys
    and values (B, nh, length, hs), and for shaped attention the sum of their values (B, nh, 1, hs), all that C v
    needs of them. With identity values (sas and after) the values are the layer's (normalised) input itself."""

    def __init__(self):
        self.k = self.v = None
        self.length, self.value_sum = 0, 0.0

    def extend(self, k, v):
        """Add the newest positions' keys and values; return those of every position so far."""
        self.k = k if self.k is None else torch.cat([self.k, k], dim=-2)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=-2)
        self.length += v.size(-2)
        return self.k, self.v


def causal_attention(q, k, v, kernel="fused"):
    """A v: causal softmax attention, per head softmax(q k^T / sqrt(hs) + M) v, for q the last q.size(-2) of the
    positions of k and v (all of them in training; the newest while generating with a cache).
        fused     torch's scaled_dot_product_attention (SDPA): flash or memory-efficient kernels, O(T) memory
        explicit  the T x T matrix (causal_softmax), then times v: O(T^2) memory, faster on some CPUs at short T
    q, k, v: (B, nh, T, hs). Returns (B, nh, T_q, hs)."""
    if kernel == "explicit":
        return causal_softmax(q, k).to(v.dtype) @ v
    if q.size(-2) == k.size(-2):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    if q.size(-2) == 1:  # one new position: it may see every position so far
        return F.scaled_dot_product_attention(q, k, v)
    raise ValueError("the fused kernel takes as many queries as keys, or one query")


def shaped_attention(q, k, v, alpha, beta, gamma=None, kernel="fused"):
    """Causal shaped attention, per head (alpha I + beta A - gamma C) v (Eq. 5); alpha I + beta A without gamma
    (Eq. 4). q, k, v: (B, nh, T, hs); alpha, beta, gamma: (nh,). Returns (B, nh, T, hs) in float32 (float64 for
    float64 inputs), the residual stream's precision, even for bfloat16 q, k, v under autocast.
    fused kernel, no T x T matrix:  I v = v,  A v = torch's fused attention (SDPA),  C v = the running mean of v
    explicit kernel, the official code's form: one product with the matrix beta A + (alpha I - gamma C)
    """
    precision = torch.promote_types(v.dtype, torch.float32)  # float32, or float64 for a float64 v
    if kernel == "explicit":
        matrix = shaped_attention_matrix(q, k, alpha, beta, gamma)  # (B, nh, T, T), in float32
        return (matrix.to(v.dtype) @ v).to(precision)  # the product in v's dtype, as autocast would run it
    alpha, beta = (g.view(-1, 1, 1) for g in (alpha, beta))  # (nh, 1, 1), float32
    # each addcmul is one pass over the activations: a + b * c
    out = torch.addcmul(alpha * v, beta, F.scaled_dot_product_attention(q, k, v, is_causal=True))
    if gamma is not None:  # Eq. 5's centring: - gamma C v, the running sum times -gamma / (how many it averages)
        T = v.size(-2)
        out = torch.addcmul(out, v.cumsum(dim=-2, dtype=precision), -gamma.view(-1, 1, 1) / positions(T, v.device))
    return out


def positions(T, device):
    """1, 2, ..., T as a (T, 1) column: how many positions each row of C averages over."""
    return torch.arange(1, T + 1, device=device, dtype=torch.float32).view(T, 1)


def causal_softmax(q, k):
    """A: causal softmax attention, softmax(q k^T / sqrt(hs) + M) with M = -inf where a query would see a later
    position; q the last q.size(-2) positions of k (usually all of them).

    q, k: (B, nh, T_q, hs) and (B, nh, T, hs). Returns (B, nh, T_q, T), in float32 or float64: O(T^2) memory, for
    the explicit kernel, the tests and the probe.
    """
    T_q, T, hs = q.size(-2), k.size(-2), q.size(-1)
    logits = q @ k.transpose(-2, -1) / hs**0.5  # (B, nh, T_q, T)
    causal = torch.ones(T_q, T, dtype=torch.bool, device=q.device).tril(diagonal=T - T_q)
    # the softmax in float32 (float64 for float64 inputs) even under autocast, as SDPA's kernels and the official
    # code take it: a bfloat16 softmax would round every probability, and the gains' gradients with them
    precision = torch.promote_types(q.dtype, torch.float32)
    return logits.masked_fill(~causal, float("-inf")).softmax(dim=-1, dtype=precision)


def uniform_causal_matrix(T, device=None):
    """C: the causal attention matrix at zero logits, C[i, j] = 1/(i+1) for j <= i, else 0. (T, T)"""
    ones = torch.ones(T, T, device=device).tril()
    return ones / ones.sum(dim=-1, keepdim=True)


def shaped_attention_matrix(q, k, alpha, beta, gamma=None):
    """The explicit shaped attention matrix alpha I + beta A - gamma C, (B, nh, T, T); alpha I + beta A
    without gamma (Eq. 4). Built as (alpha I - gamma C) + beta A: the first term is a constant of the gains,
    (nh, T, T), so beta A is added to it in one pass over the B x nh matrices.

    O(T^2) memory: the explicit kernel's form (shaped_attention), and what the probe and exercises look at.
    """
    T = q.size(-2)
    alpha, beta = (g.view(-1, 1, 1) for g in (alpha, beta))  # (nh, 1, 1)
    constant = alpha * torch.eye(T, device=q.device)  # (nh, T, T)
    if gamma is not None:  # Eq. 5's centring
        constant = constant - gamma.view(-1, 1, 1) * uniform_causal_matrix(T, device=q.device)
    return torch.addcmul(constant, beta, causal_softmax(q, k))
