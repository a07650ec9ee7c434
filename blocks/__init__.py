"""
The block ladder of "Simplifying Transformer Blocks", one removal per file:

    pre_ln -> no_attn_skip -> sas -> sas_p -> sas_p_nonorm

plus side branches: v_skipinit, shaped attention's predecessor (Value-SkipInit's
alpha I + beta A, Eq. 4) in no_attn_skip's place; sas_vp, the rung between no_attn_skip
and sas whose values and projection learn around the identity (Eq. 6); parallel
(GPT-J / PaLM); and no_attn_skip_unshaped, a negative control. Every file defines
Block(config, layer_idx); its forward is the block's equation.
"""

from . import no_attn_skip, no_attn_skip_unshaped, parallel, pre_ln, sas, sas_p, sas_p_nonorm, sas_vp, v_skipinit

BLOCKS = {
    "pre_ln": pre_ln.Block,
    "no_attn_skip": no_attn_skip.Block,
    "v_skipinit": v_skipinit.Block,
    "sas_vp": sas_vp.Block,
    "sas": sas.Block,
    "sas_p": sas_p.Block,
    "sas_p_nonorm": sas_p_nonorm.Block,
    "parallel": parallel.Block,
    "no_attn_skip_unshaped": no_attn_skip_unshaped.Block,
}
LADDER = ["pre_ln", "no_attn_skip", "sas", "sas_p", "sas_p_nonorm"]

__all__ = ["BLOCKS", "LADDER"]
