"""The model and every block of the ladder, at tiny sizes on the CPU."""

import math

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from blocks import BLOCKS, LADDER
from blocks.parts import ShapedAttention, shaped_attention_matrix
from model import GPT, GPTConfig

TINY = dict(vocab_size=64, block_size=16, n_layer=3, n_head=2, n_embd=32)


def tiny_model(block, seed=0, **overrides):
    torch.manual_seed(seed)
    return GPT(GPTConfig(block=block, **{**TINY, **overrides}))


def random_tokens(batch=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, TINY["vocab_size"], (batch, TINY["block_size"]), generator=g)


# What each step of the ladder takes out of a block (after layer 0, which keeps W_V = a I + b dW and, in
# sas_p_nonorm, an entry LayerNorm), and what it adds: only the first step adds anything, its gains.
LADDER_STEPS = {
    ("pre_ln", "no_attn_skip"): (set(), {"attn.alpha", "attn.beta", "attn.gamma", "beta_sa", "alpha_ff", "beta_ff"}),
    ("no_attn_skip", "sas"): ({"attn.c_v.weight", "attn.c_proj.weight"}, set()),
    ("sas", "sas_p"): ({"ln_2.weight", "alpha_ff"}, set()),
    ("sas_p", "sas_p_nonorm"): ({"ln_1.weight"}, set()),
}


def test_every_ladder_step_removes_one_thing():
    assert list(LADDER_STEPS) == list(zip(LADDER, LADDER[1:]))
    for (before, after), (removed, added) in LADDER_STEPS.items():
        names = [{name for name, _ in tiny_model(block).blocks[1].named_parameters()} for block in (before, after)]
        assert (names[0] - names[1], names[1] - names[0]) == (removed, added), (before, after)


def test_unknown_block_lists_the_valid_names():
    with pytest.raises(ValueError, match="block='sasp' is not valid; choose one of: pre_ln.*sas_p_nonorm"):
        GPTConfig(block="sasp")


@pytest.mark.parametrize("bad", [dict(n_embd=30, n_head=4), dict(n_layer=0), dict(vocab_size=-1), dict(n_head=2.0),
                                 dict(attn_matrix="eq4"), dict(vp_base="random")])
def test_impossible_configs_raise_at_construction(bad):
    with pytest.raises(ValueError):
        GPTConfig(**{**TINY, **bad})


@pytest.mark.parametrize("block", BLOCKS)
def test_forward_backward_shapes(block):
    model = tiny_model(block)
    idx = random_tokens()
    logits, loss = model(idx, idx)
    assert logits.shape == (*idx.shape, TINY["vocab_size"])
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape, name
        assert torch.isfinite(p.grad).all(), name


def test_too_long_sequence_is_refused():
    with pytest.raises(ValueError, match="block_size"):
        tiny_model("pre_ln")(torch.zeros(1, TINY["block_size"] + 1, dtype=torch.long))


@pytest.mark.parametrize("block", BLOCKS)
def test_causal(block):
    """Changing token t leaves the logits at positions before t unchanged."""
    model = tiny_model(block)
    # trained-looking weights: at init W_Q = 0 in the shaped blocks, which would hide a leak
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    idx = random_tokens(batch=1)
    t = 9
    changed = idx.clone()
    changed[0, t] = (idx[0, t] + 1) % TINY["vocab_size"]
    before, _ = model(idx)
    after, _ = model(changed)
    torch.testing.assert_close(before[:, :t], after[:, :t], rtol=0, atol=1e-6)
    assert not torch.allclose(before[:, t:], after[:, t:])


@pytest.mark.parametrize("block", BLOCKS)
def test_loss_at_init_is_close_to_uniform(block):
    idx = random_tokens()
    _, loss = tiny_model(block, vocab_size=512)(torch.randint(0, 512, idx.shape), torch.randint(0, 512, idx.shape))
    assert abs(loss.item() - math.log(512)) < 0.05


def final_loss_on_one_batch(model, steps=150):
    idx = random_tokens(batch=2)
    optimizer = model.configure_optimizers(weight_decay=0.0, learning_rate=1e-2)
    for _ in range(steps):
        _, loss = model(idx[:, :-1], idx[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return loss.item()


@pytest.mark.parametrize("block", [b for b in BLOCKS if b != "no_attn_skip_unshaped"])
def test_overfits_one_batch(block):
    assert final_loss_on_one_batch(tiny_model(block)) < 0.1


def test_unshaped_control_overfits_only_when_shallow():
    """Without the skip and without shaping, depth breaks training (rank collapse, §4.1):
    one layer memorises the batch, three layers cannot in the same budget, and the same
    three layers with shaped attention (no_attn_skip) can."""
    assert final_loss_on_one_batch(tiny_model("no_attn_skip_unshaped", n_layer=1)) < 0.1
    assert final_loss_on_one_batch(tiny_model("no_attn_skip_unshaped", n_layer=3)) > 1.0


def attention_input_and_output(model, layer):
    """The normalised input H of a block's attention and the attention's output ShA(H)."""
    captured = {}
    attn = model.blocks[layer].attn
    handle = attn.register_forward_hook(lambda m, args, out: captured.update(h=args[0], out=out))
    model(random_tokens())
    handle.remove()
    return captured["h"], captured["out"]


@pytest.mark.parametrize("block", ["sas_vp", "sas", "sas_p", "sas_p_nonorm"])
@pytest.mark.parametrize("layer", [0, 2])  # layer 0 has the trainable W_V = alpha I + beta dW
def test_shaped_attention_sub_block_is_identity_at_init(block, layer):
    h, out = attention_input_and_output(tiny_model(block), layer)
    torch.testing.assert_close(out, h, rtol=0, atol=1e-6)


@pytest.mark.parametrize("block", ["no_attn_skip", "v_skipinit", "sas_vp", "sas", "sas_p", "sas_p_nonorm"])
def test_attention_matrix_is_identity_at_init(block):
    model = tiny_model(block)
    attn = model.blocks[1].attn
    assert isinstance(attn, ShapedAttention)
    h, _ = attention_input_and_output(model, layer=1)
    B, T, C = h.shape
    q, k = (t.view(B, T, 2, C // 2).transpose(1, 2) for t in attn.c_qk(h).split(C, dim=2))
    assert torch.count_nonzero(q) == 0  # W_Q and b_Q start at zero
    matrix = shaped_attention_matrix(q, k, attn.alpha, attn.beta, attn.gamma)
    torch.testing.assert_close(matrix, torch.eye(T).expand(B, 2, T, T), rtol=0, atol=1e-6)


def test_no_attn_skip_has_orthogonal_dense_values():
    attn = tiny_model("no_attn_skip").blocks[1].attn
    for w in (attn.c_v.weight, attn.c_proj.weight):
        torch.testing.assert_close(w @ w.T, torch.eye(w.size(0)), rtol=0, atol=1e-5)


def test_v_skipinit_is_no_attn_skip_with_eq_4_for_eq_5():
    """Value-SkipInit's alpha I + beta A (Eq. 4): no gamma, beta starting at 0 instead of 1, everything else as in
    no_attn_skip (dense orthogonal W_V, W_P, the same branch gains)."""
    model, control = tiny_model("v_skipinit"), tiny_model("no_attn_skip")
    names = [{name for name, _ in m.blocks[1].named_parameters()} for m in (control, model)]
    assert (names[0] - names[1], names[1] - names[0]) == ({"attn.gamma"}, set())
    for block in model.blocks:
        assert block.attn.gamma is None
        assert torch.equal(block.attn.alpha, torch.ones(TINY["n_head"]))
        assert torch.equal(block.attn.beta, torch.zeros(TINY["n_head"]))
        for w in (block.attn.c_v.weight, block.attn.c_proj.weight):
            torch.testing.assert_close(w @ w.T, torch.eye(w.size(0)), rtol=0, atol=1e-5)


def test_v_skipinit_attention_starts_with_the_softmax_switched_off_and_learns_to_use_it():
    """At init beta = 0, so W_Q and W_K get no gradient, but every head's beta does: training switches the softmax
    part on through beta first."""
    model = tiny_model("v_skipinit")
    idx = random_tokens()
    _, loss = model(idx, idx)
    loss.backward()
    attn = model.blocks[1].attn
    assert torch.count_nonzero(attn.c_qk.weight.grad) == 0
    assert torch.count_nonzero(attn.beta.grad) == TINY["n_head"]


def test_sas_vp_learns_values_and_projection_around_the_identity():
    """Eq. 6 in every layer: W = alpha I + beta dW with dW = 0, alpha = 1 and a small beta = 0.2 at init
    (the official code's Fig. 4 script), all trained; sas is the same block with dW removed."""
    model = tiny_model("sas_vp")
    for block in model.blocks:
        for matrix in (block.attn.c_v, block.attn.c_proj):
            assert (matrix.alpha.item(), matrix.beta.item()) == (1.0, pytest.approx(0.2))
            assert torch.count_nonzero(matrix.delta.weight) == 0 and matrix.delta.weight.requires_grad
    sas = {name for name, _ in tiny_model("sas").blocks[1].named_parameters()}
    sas_vp = {name for name, _ in model.blocks[1].named_parameters()}
    assert sas_vp - sas == {f"attn.{m}.{p}" for m in ("c_v", "c_proj") for p in ("alpha", "beta", "delta.weight")}
    assert sas <= sas_vp


def test_sas_vp_starts_from_the_gain_and_base_it_is_given():
    """vp_gain is sas_vp's initial beta; vp_base=orthogonal puts a fixed orthogonal O where I was (Fig. 3), saved
    in the state dict, so that W_V = O at init and the attention sub-block is no longer the identity."""
    model = tiny_model("sas_vp", vp_gain=0.5, vp_base="orthogonal")
    for block in model.blocks:
        for matrix in (block.attn.c_v, block.attn.c_proj):
            assert matrix.beta.item() == 0.5
            torch.testing.assert_close(matrix.base @ matrix.base.T, torch.eye(TINY["n_embd"]), rtol=0, atol=1e-5)
            assert not matrix.base.requires_grad
    assert "blocks.1.attn.c_v.base" in model.state_dict()
    assert not torch.equal(model.blocks[0].attn.c_v.base, model.blocks[0].attn.c_proj.base)
    h, out = attention_input_and_output(model, layer=1)
    attn = model.blocks[1].attn
    torch.testing.assert_close(out, h @ attn.c_v.base.T @ attn.c_proj.base.T, rtol=0, atol=1e-5)
    assert "blocks.1.attn.c_v.base" not in tiny_model("sas_vp").state_dict()  # identity: nothing to store


def train_a_few_steps(model, steps=3, lr=1e-2):
    optimizer = model.configure_optimizers(weight_decay=0.1, learning_rate=lr)
    for step in range(steps):
        idx = random_tokens(seed=step)
        _, loss = model(idx, idx)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return optimizer


@pytest.mark.parametrize("base", ["identity", "orthogonal"])
def test_fig3_fixes_alpha_and_beta_and_trains_dw_alone(base):
    """vp_fixed_gains (Fig. 3): alpha = 1 and beta = vp_gain in every layer, the first too, stay put; the optimizer
    does not hold them; dW trains from zero; the gains log still reports them."""
    model = tiny_model("sas_vp", vp_gain=0.4, vp_base=base, vp_fixed_gains=True)
    matrices = [m for block in model.blocks for m in (block.attn.c_v, block.attn.c_proj)]
    optimizer = train_a_few_steps(model)
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    for matrix in matrices:
        assert (matrix.alpha.item(), matrix.beta.item()) == (1.0, pytest.approx(0.4))
        assert not matrix.alpha.requires_grad and not matrix.beta.requires_grad
        assert id(matrix.alpha) not in held and id(matrix.beta) not in held
        assert torch.count_nonzero(matrix.delta.weight) > 0  # dW moved away from zero
    assert model.gains()["blocks.0.attn.c_v.beta"] == pytest.approx(0.4)
    trained = tiny_model("sas_vp", vp_gain=0.4, vp_base=base)  # Fig. 4's model: the gains train
    train_a_few_steps(trained)
    assert trained.blocks[0].attn.c_v.beta.item() != pytest.approx(0.4)


@pytest.mark.parametrize("base", ["identity", "orthogonal"])
def test_fig3_at_beta_zero_w_is_its_base_whatever_dw_is(base):
    """At beta = 0 the point is W = B fixed: the output is x B^T for any dW, and dW gets no gradient."""
    model = tiny_model("sas_vp", vp_gain=0.0, vp_base=base, vp_fixed_gains=True)
    matrix = model.blocks[1].attn.c_v
    with torch.no_grad():
        matrix.delta.weight.normal_()
    x = torch.randn(2, 5, TINY["n_embd"])
    expected = x if base == "identity" else x @ matrix.base.T
    torch.testing.assert_close(matrix(x), expected, rtol=0, atol=1e-6)
    idx = random_tokens()
    model(idx, idx)[1].backward()
    assert torch.count_nonzero(matrix.delta.weight.grad) == 0


@pytest.mark.parametrize("block", ["sas", "sas_p"])
def test_eq_4_in_sas_and_sas_p_is_one_setting(block):
    """attn_matrix=v_skipinit (Fig. 13): the block keeps its identity values and loses only gamma; beta starts at
    0, so the attention matrix alpha I + beta A is the identity at init, and the sub-block computes that matrix
    times its values once the gains and queries have moved."""
    model, control = tiny_model(block, attn_matrix="v_skipinit"), tiny_model(block)
    names = [{name for name, _ in m.blocks[1].named_parameters()} for m in (control, model)]
    assert (names[0] - names[1], names[1] - names[0]) == ({"attn.gamma"}, set())
    attn = model.blocks[1].attn
    assert attn.gamma is None and torch.equal(attn.beta, torch.zeros(TINY["n_head"]))
    h, out = attention_input_and_output(model, layer=1)
    torch.testing.assert_close(out, h, rtol=0, atol=1e-6)  # alpha I + 0 A = I, and W_V = W_P = I
    with torch.no_grad():
        attn.c_qk.weight.normal_(std=0.3)
        attn.alpha.uniform_(0.5, 1.5)
        attn.beta.uniform_(0.5, 1.5)
    h, out = attention_input_and_output(model, layer=1)
    B, T, C = h.shape
    q, k, v = (t.view(B, T, 2, C // 2).transpose(1, 2) for t in (*attn.c_qk(h).split(C, dim=2), h))
    assert torch.count_nonzero(q) > 0
    explicit = shaped_attention_matrix(q, k, attn.alpha, attn.beta) @ v  # (B, nh, T, hs)
    torch.testing.assert_close(out, explicit.transpose(1, 2).reshape(B, T, C), rtol=1e-5, atol=1e-5)


def test_init_weights_sets_every_tensor():
    """Every starting value comes from GPT.init_weights: wipe all tensors, re-init, compare."""
    for block in BLOCKS:
        model = tiny_model(block)
        torch.manual_seed(3)
        model.init_weights()
        first = {k: v.clone() for k, v in model.state_dict().items()}
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(float("nan"))
        torch.manual_seed(3)
        model.init_weights()
        for name, value in model.state_dict().items():
            torch.testing.assert_close(value, first[name], msg=f"{block}: {name}")


def test_gains_start_at_the_paper_values():
    model = tiny_model("sas", mlp_gain=0.2)
    block = model.blocks[0]
    assert (block.beta_sa.item(), block.alpha_ff.item(), block.beta_ff.item()) == (1.0, 1.0, pytest.approx(0.2))
    for gain in (block.attn.alpha, block.attn.beta, block.attn.gamma):
        assert torch.equal(gain, torch.ones(TINY["n_head"]))


def expected_num_params(block, V, T, d, H, L, r=4):
    """The parameter count from the block definitions, by hand."""
    embeddings = V * d + T * d  # wte (tied to the head) + wpe
    final_norm = 2 * d  # LayerNorm scale and bias
    qk = 2 * d * d + 2 * d  # fused W_Q, W_K with bias
    mlp = 2 * r * d * d
    dense_vp = 2 * d * d
    shaped_gains = 3 * H  # alpha, beta, gamma per head
    first_layer_value = d * d + 2  # dW, alpha_V, beta_V
    per_layer = {
        "pre_ln": qk + dense_vp + mlp + 2 * d,
        "parallel": qk + dense_vp + mlp + d,
        "no_attn_skip_unshaped": qk + dense_vp + mlp + 2 * d,
        "no_attn_skip": qk + dense_vp + mlp + 2 * d + shaped_gains + 3,
        "v_skipinit": qk + dense_vp + mlp + 2 * d + 2 * H + 3,  # alpha, beta per head: no gamma
        "sas_vp": qk + dense_vp + 4 + mlp + 2 * d + shaped_gains + 3,  # W_V, W_P: dW plus alpha, beta each
        "sas": qk + mlp + 2 * d + shaped_gains + 3,
        "sas_p": qk + mlp + d + shaped_gains + 2,
        "sas_p_nonorm": qk + mlp + shaped_gains + 2,
    }[block]
    extra = {"sas": first_layer_value, "sas_p": first_layer_value,
             "sas_p_nonorm": first_layer_value + 2 * d}.get(block, 0)  # + the entry LayerNorm
    return embeddings + final_norm + L * per_layer + extra


PAPER_SHAPE = dict(vocab_size=50257, block_size=128, n_embd=768, n_head=12, n_layer=18)


@pytest.mark.parametrize("block", BLOCKS)
def test_num_params_matches_formula(block):
    assert tiny_model(block).num_params() == expected_num_params(block, 64, 16, 32, 2, 3)
    with torch.device("meta"):  # shapes only: no memory, no init cost
        model = GPT(GPTConfig(block=block, **PAPER_SHAPE))
    assert model.num_params() == expected_num_params(block, 50257, 128, 768, 12, 18)


def test_sas_saves_about_12_percent_at_paper_shape():
    """Paper (§5): 146M vs 167M parameters; its count has 1,024 learned positions, ours T = 128."""
    with torch.device("meta"):
        pre_ln, sas = (GPT(GPTConfig(block=b, **PAPER_SHAPE)).num_params() for b in ("pre_ln", "sas"))
    assert 1 - sas / pre_ln == pytest.approx(0.124, abs=0.001)
    extra_positions = (1024 - 128) * PAPER_SHAPE["n_embd"]
    assert (pre_ln + extra_positions) / 1e6 == pytest.approx(167, abs=1)
    assert (sas + extra_positions) / 1e6 == pytest.approx(146, abs=1)


def test_weight_decay_groups():
    model = tiny_model("sas")
    decayed, undecayed = model.configure_optimizers(weight_decay=0.1, learning_rate=1e-3).param_groups
    assert decayed["weight_decay"] == 0.1 and undecayed["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    decayed_names = {names[id(p)] for p in decayed["params"]}
    undecayed_names = {names[id(p)] for p in undecayed["params"]}
    assert {"wte.weight", "wpe.weight", "blocks.0.attn.c_qk.weight", "blocks.0.attn.c_v.delta.weight",
            "blocks.1.mlp.c_fc.weight", "blocks.1.mlp.c_proj.weight"} <= decayed_names
    assert {"blocks.0.beta_sa", "blocks.0.alpha_ff", "blocks.0.beta_ff", "blocks.0.attn.alpha",
            "blocks.0.attn.beta", "blocks.0.attn.gamma", "blocks.0.attn.c_v.alpha", "blocks.0.attn.c_v.beta",
            "blocks.0.ln_1.weight", "blocks.0.attn.c_qk.bias", "ln_f.weight", "ln_f.bias"} <= undecayed_names
    assert len(decayed_names) + len(undecayed_names) == len(names)


def test_seeded_generate_is_deterministic():
    model = tiny_model("sas_p").eval()
    prompt = random_tokens(batch=2)[:, :4]
    runs = []
    for _ in range(2):
        torch.manual_seed(42)
        runs.append(model.generate(prompt, max_new_tokens=20, temperature=0.9, top_k=10))
    assert runs[0].shape == (2, 24)
    assert torch.equal(runs[0], runs[1])
    assert torch.equal(runs[0][:, :4], prompt)


@pytest.mark.parametrize("block", BLOCKS)
def test_flops_per_token_counts_every_matmul_of_a_training_step(block):
    """torch's FLOP counter watches one forward and backward (attention in its math form, whose
    matmuls it sees) and must count exactly what flops_per_token claims, identity values included."""
    model, idx = tiny_model(block), random_tokens()
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        _, loss = model(idx, idx)
        loss.backward()
    assert counter.get_total_flops() == model.flops_per_token() * idx.numel()


@pytest.mark.parametrize("block", BLOCKS)
def test_residual_stream_stays_float32_under_autocast(block):
    """One precision for every block: matmuls in bfloat16, the stream between blocks in float32, with or
    without skip connections (a 0-dim float32 gain times a bfloat16 branch would stay bfloat16)."""
    model, dtypes = tiny_model(block), []
    for b in model.blocks:
        b.register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, loss = model(random_tokens(), random_tokens())
    loss.backward()
    assert dtypes == [torch.float32] * TINY["n_layer"]
    gains = [p for name, p in model.named_parameters() if p.dim() < 2]
    assert all(p.grad.dtype == torch.float32 for p in gains)
