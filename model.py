"""
A GPT whose block is chosen by name from the ladder of "Simplifying Transformer
Blocks" (He & Hofmann, ICLR 2024, arXiv 2311.01906). The blocks and their
parts live in blocks/; this file holds what every variant shares: embeddings,
the stack of blocks, the final norm, the tied head, and the initialisation.

Where the paper and the official code (bobby-he/simplified_transformers)
disagree, we follow the code and say so where it matters.
"""

from dataclasses import dataclass, fields

import torch
import torch.nn as nn
from torch.nn import functional as F

from blocks import BLOCKS
from blocks.parts import CausalSelfAttention, IdentityPlusLinear, KVCache, RMSNorm, ShapedAttention
from configurator import Settings, positive, setting
from errors import ConfigError


@dataclass
class ModelSettings(Settings):
    """The settings that shape a model, as train.py, probe.py and compare.py take them (--n_layer=...).
    A new model setting is added here, once: the scripts' settings and GPTConfig inherit it."""
    n_layer: int = setting(4, "number of blocks", check=positive)
    n_head: int = setting(4, "attention heads per block (head size n_embd / n_head; the paper: 64)", check=positive)
    n_embd: int = setting(256, "width of the residual stream", check=positive)
    block_size: int = setting(128, "context length T in tokens (the paper trains at 128)", check=positive)
    mlp_ratio: int = setting(4, "MLP hidden width = mlp_ratio * n_embd", check=positive)
    # beta_FF at init in the shaped blocks: O(1/sqrt(depth)), 0.1 at depth 18 (§4.1)
    mlp_gain: float = setting(0.1, "initial beta_FF, the MLP branch gain of the shaped blocks: O(1/sqrt(n_layer))")
    # sas_vp's W_V, W_P = alpha B + beta dW. Fig. 4 trains alpha and beta from 1 and 0.2; Fig. 3 fixes them at 1
    # and beta, and sweeps beta and B (the official code's trainable_value_gains=false trainable_proj_gains=false)
    vp_gain: float = setting(0.2, "sas_vp only: beta of W_V, W_P = alpha B + beta dW: its starting value (the "
                                  "official code's Fig. 4 script: 0.2), or its fixed value with vp_fixed_gains")
    vp_base: str = setting("identity", "sas_vp only: the fixed matrix B of W_V, W_P = alpha B + beta dW: identity, or "
                                       "a random orthogonal one (the paper's Fig. 3)",
                           choices=["identity", "orthogonal"])
    vp_fixed_gains: bool = setting(False, "sas_vp only: fix alpha at 1 and beta at vp_gain in every layer, so that "
                                          "only dW trains (the paper's Fig. 3); false trains them too (Fig. 4)")
    # Eq. 5's shaped attention, or Eq. 4's Value-SkipInit matrix in the same block: the paper's Fig. 13 (v1 Fig. 12)
    attn_matrix: str = setting("shaped", "the attention matrix of the blocks with shaped attention: shaped, alpha I + "
                                         "beta A - gamma C (Eq. 5); or v_skipinit, alpha I + beta A with beta from 0 "
                                         "(Eq. 4; the v_skipinit block has it whatever this says)",
                               choices=["shaped", "v_skipinit"])

    def __post_init__(self):
        super().__post_init__()
        if self.n_embd % self.n_head != 0:
            raise ConfigError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}")


@dataclass
class GPTConfig(ModelSettings):
    block: str = setting("pre_ln", "which block of blocks/ every layer uses", choices=BLOCKS)
    vocab_size: int = setting(4097, "the default stdlib BPE: 4096 tokens + <|endoftext|>", check=positive)

    @classmethod
    def of(cls, settings, block, vocab_size):
        """The GPTConfig of a script's settings (a ModelSettings), for one block and vocabulary."""
        shape = {f.name: getattr(settings, f.name) for f in fields(ModelSettings)}
        return cls(**shape, block=block, vocab_size=vocab_size)


def has_shaped_attention(block):
    """Whether a block's attention is shaped: which forms of attention hardware.pick_attention times for it."""
    with torch.device("meta"):  # shapes only
        layer = BLOCKS[block](GPTConfig(n_layer=1, n_head=1, n_embd=8, vocab_size=1), 0)
    return any(isinstance(module, ShapedAttention) for module in layer.modules())


class GPT(nn.Module):

    def __init__(self, config):
        super().__init__()
        self.config = config
        Block = BLOCKS[config.block]
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        # learned positions, as the official code (GPT-2's wpe); the paper's text says sinusoidal
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.blocks = nn.ModuleList(Block(config, i) for i in range(config.n_layer))
        # the final norm is a LayerNorm in the official code, kept even in sas_p_nonorm
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied, as in GPT-2
        self.init_weights()

    @torch.no_grad()
    def init_weights(self):
        """Set the starting value of every tensor in the model. Half of the paper is here.

        tensor                                   init              why
        wte (= lm_head)                          N(0, 0.02)        App. D.1
        wpe (learned positions)                  N(0, 0.02)        the official code (GPT-2's wpe); the
                                                                   paper's App. D.1 says sinusoidal
        every nn.Linear weight (QK, MLP, V, P)   N(0, 0.02)        App. D.1; the official code has no
                                                                   1/sqrt(2 n_layer) scaling of projections
        every nn.Linear bias (the QK bias)       0
        RMSNorm / LayerNorm scale, bias          1, 0
        shaped attention: W_Q and b_Q            0                 logits = 0, so A = C and the attention
                                                                   matrix alpha I + beta A - gamma C = I (§4.1)
        shaped attention: dense W_V, W_P         orthogonal        the V-SkipInit baseline (§4.1)
        W = alpha B + beta dW (W_V, W_P in       dW 0, alpha 1,    starts as B (Eq. 6); B = I, or in sas_vp
          sas_vp; the first layer's W_V in sas)  B I or orthog.    a fixed orthogonal O (vp_base, Fig. 3);
                                                 beta vp_gain in   beta: the official code's Fig. 4 script
                                                 sas_vp, else 1    (0.2), or Fig. 3's fixed value (with
                                                                   vp_fixed_gains alpha and beta never
                                                                   train); sas: as its layer-0 W_V
        alpha, beta, gamma (per head)            1                 Eq. 5, as the official code
        Eq. 4's alpha, beta (v_skipinit, and     1, 0              alpha I + beta A = I: with no - gamma C
          attn_matrix=v_skipinit)                                  to cancel A, beta must start at 0 (the
                                                                   official code: attn_mat_resid_gain=0)
        beta_SA, alpha_FF                        1
        beta_FF                                  config.mlp_gain   downweighted MLP branch (§4.1)
        """
        for module in self.modules():
            if module is self.lm_head:
                continue  # tied to wte: drawing it again would make wte depend on the blocks' draws
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, RMSNorm):
                nn.init.ones_(module.weight)
            elif isinstance(module, nn.LayerNorm):
                module.reset_parameters()
        for module in self.modules():
            if isinstance(module, ShapedAttention):
                n_embd = module.c_qk.in_features
                nn.init.zeros_(module.c_qk.weight[:n_embd])  # W_Q: the first half of the fused QK
                nn.init.ones_(module.alpha)
                if module.gamma is None:  # Eq. 4, alpha I + beta A
                    nn.init.zeros_(module.beta)
                else:  # Eq. 5, alpha I + beta A - gamma C
                    nn.init.ones_(module.beta)
                    nn.init.ones_(module.gamma)
                if isinstance(module.c_v, nn.Linear):
                    nn.init.orthogonal_(module.c_v.weight)
                    nn.init.orthogonal_(module.c_proj.weight)
                learned_around_identity = isinstance(module.c_proj, IdentityPlusLinear)  # sas_vp, every layer
                for matrix in (module.c_v, module.c_proj):
                    if isinstance(matrix, IdentityPlusLinear):
                        nn.init.zeros_(matrix.delta.weight)
                        nn.init.ones_(matrix.alpha)
                        nn.init.constant_(matrix.beta, self.config.vp_gain if learned_around_identity else 1.0)
                        if matrix.base is not None:
                            nn.init.orthogonal_(matrix.base)
        # A block's own parameters (not its parts') are its branch gains. A block file that adds
        # one must give it a starting value here: an unknown name stops the model being built.
        branch_gains = {"beta_sa": 1.0, "alpha_ff": 1.0, "beta_ff": self.config.mlp_gain}
        for block in self.blocks:
            for name, gain in block.named_parameters(recurse=False):
                if name not in branch_gains:
                    raise KeyError(f"{type(block).__module__} has a parameter {name!r} that GPT.init_weights "
                                   f"gives no starting value; add it to branch_gains")
                nn.init.constant_(gain, branch_gains[name])

    def gains(self):
        """Every gain by parameter name, as plain floats: the branch gains (beta_sa, alpha_ff, beta_ff), shaped
        attention's alpha, beta, gamma per head, and the alpha, beta of every W = alpha I + beta dW."""
        return {name: p.tolist() for name, p in self.named_parameters()
                if name.rsplit(".", 1)[-1] in ("alpha", "beta", "gamma", "beta_sa", "alpha_ff", "beta_ff")}

    def num_params(self, non_embedding=False):
        """Number of parameters. The head is tied to wte, so it is counted once.
        With non_embedding=True, the token and position tables are left out."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.wte.weight.numel() + self.wpe.weight.numel()
        return n

    def flops_per_token(self):
        """Training FLOPs per token (forward + backward), as in PaLM's appendix B:
        6 per weight that takes part in a matmul (wpe is a lookup, the tied head is
        a matmul), plus 12 * n_layer * n_embd * T for the attention scores and sums."""
        cfg = self.config
        matmul_weights = sum(p.numel() for p in self.blocks.parameters() if p.dim() >= 2)
        matmul_weights += self.lm_head.weight.numel()
        return 6 * matmul_weights + 12 * cfg.n_layer * cfg.n_embd * cfg.block_size

    def set_attention_kernel(self, kernel):
        """Every attention layer computes its softmax part on this kernel, fused or explicit
        (blocks.parts.causal_attention); hardware.pick_attention says which is faster where."""
        for module in self.modules():
            if isinstance(module, CausalSelfAttention):
                module.kernel = kernel

    def forward(self, idx, targets=None, seen=0):
        """Logits (B, T, vocab_size) of the tokens idx (B, T), and the loss if targets are given. seen: how many
        positions come before idx's first token, whose keys and values the layers' KV caches hold (generate)."""
        B, T = idx.size()
        if seen + T > self.config.block_size:
            raise ValueError(f"sequence of length {seen + T} is longer than block_size={self.config.block_size}")
        pos = torch.arange(seen, seen + T, device=idx.device)  # (T,)
        x = self.wte(idx) + self.wpe(pos)  # (B, T, C)
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))  # (B, T, vocab_size)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss

    def configure_optimizers(self, weight_decay, learning_rate, betas=(0.9, 0.999), eps=1e-8, device_type="cpu"):
        """AdamW with the paper's groups: matrices and embeddings are decayed; gains,
        norm scales and biases are not (App. D.1; the official code's train_utils).
        Every tensor with 2 or more dimensions is a matrix or an embedding."""
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, eps=eps, fused=device_type in ("cuda", "cpu"))

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, kv_cache=True):
        """Continue the token sequences idx (B, T) by max_new_tokens tokens, sampling from the softmax at the given
        temperature, optionally only among the top_k most likely tokens. Call model.eval() first; seed with
        torch.manual_seed.

        The model sees a window of at most block_size tokens (it has no position beyond). When the window is
        full, it drops its older half, and grows again from the newer half. With kv_cache, every attention layer
        keeps the keys and values of the window's positions (blocks.parts.KVCache), so a new token costs O(T),
        not O(T^2); when the window drops its older half, the caches are filled again from the newer half.
        Without it, every token runs the whole window again: the same window, so with top_k=1 (greedy) the
        same tokens."""
        layers = [module for module in self.modules() if isinstance(module, CausalSelfAttention)]
        block_size = self.config.block_size
        start, cached = max(0, idx.size(1) - block_size), 0  # the window is idx[:, start:]; the caches hold cached
        try:
            for _ in range(max_new_tokens):
                if idx.size(1) - start > block_size:  # the window is full: keep its newer half
                    start, cached = idx.size(1) - max(1, block_size // 2), 0
                if kv_cache and cached == 0:
                    for layer in layers:
                        layer.cache = KVCache()
                logits, _ = self(idx[:, start + cached:], seen=cached)  # the new positions only, with a cache
                if kv_cache:
                    cached = idx.size(1) - start
                logits = logits[:, -1, :].float()  # (B, vocab_size)
                # shifted by the largest first, so that a tiny temperature divides no logit into an overflow; one
                # below 1e-30 (which float32 would round to 0) already picks the likeliest token, as 1e-30 does
                logits = (logits - logits.max(dim=-1, keepdim=True).values) / max(temperature, 1e-30)
                if top_k is not None:
                    kth_best = torch.topk(logits, min(top_k, logits.size(-1))).values[:, [-1]]
                    logits = logits.masked_fill(logits < kth_best, float("-inf"))
                next_token = torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)  # (B, 1)
                idx = torch.cat((idx, next_token), dim=1)
        finally:
            for layer in layers:
                layer.cache = None
        return idx
