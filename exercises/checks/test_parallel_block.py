"""Checks for exercise 8: the student's parallel block against blocks/sas_p.py."""

import dataclasses

import torch

import blocks.sas
import blocks.sas_p
import blocks.sas_p_nonorm
from blocks import BLOCKS
from exercises.checks import assert_none, diagnose, names_used, randomise, under_test
from model import GPT, GPTConfig

exercise = under_test("parallel_block")
CONFIG = GPTConfig(block="sas_p", vocab_size=64, block_size=16, n_layer=2, n_head=2, n_embd=32)
ANSWERS = (blocks.sas_p.Block, blocks.sas_p_nonorm.Block)  # the answer, and nearly the answer
WHY_NOT = {  # a tensor the block should not have: why it is gone
    "alpha_ff": "sas_p has no alpha_FF: the skip it scaled is gone",
    "ln_2.weight": "sas_p has one norm: both branches read the same H = N1(X), so ln_2 is gone",
    "attn.c_v.weight": "W_V = I as in sas: ShapedAttention(config, layer_idx, identity_values=True)",
    "attn.c_proj.weight": "W_P = I as in sas: ShapedAttention(config, layer_idx, identity_values=True)",
}
WHY_NEEDED = {  # a tensor the block should have: what provides it
    "attn.c_v.delta.weight": "layer 0 keeps W_V = alpha_V I + beta_V dW: pass layer_idx on to ShapedAttention",
    "attn.alpha": "the attention is ShapedAttention (blocks/parts.py), with alpha, beta, gamma per head",
    "beta_sa": "the attention branch's gain beta_SA: nn.Parameter(torch.empty(())), named beta_sa",
    "beta_ff": "the MLP branch's gain beta_FF: nn.Parameter(torch.empty(())), named beta_ff",
    "ln_1.weight": "one RMSNorm, named ln_1, in front of both branches",
}


def shapes(module):
    return {name: tuple(tensor.shape) for name, tensor in module.state_dict().items()}


def problems_with_parameters(Block):
    problems = []
    for layer in (0, 1):  # layer 0 keeps a trainable W_V
        got, expected = shapes(Block(CONFIG, layer)), shapes(blocks.sas_p.Block(CONFIG, layer))
        for name in sorted(got.keys() - expected.keys()):
            problems.append((f"layer {layer}", f"{name} should not be there: "
                                               f"{WHY_NOT.get(name, 'sas_p has no such tensor')}"))
        for name in sorted(expected.keys() - got.keys()):
            problems.append((f"layer {layer}", f"{name} is missing: "
                                               f"{WHY_NEEDED.get(name, 'keep the attribute names of blocks/sas.py')}"))
        for name in sorted(got.keys() & expected.keys()):
            if got[name] != expected[name]:
                problems.append((f"layer {layer}", f"{name} has shape {got[name]}, expected {expected[name]}"))
    return problems


def problems_with_forward(Block):
    problems = []
    for layer in (0, 1):
        reference = randomise(blocks.sas_p.Block(CONFIG, layer))
        block = Block(CONFIG, layer)
        _, lacking = block.load_state_dict(reference.state_dict(), strict=False)  # (its extra keys, those it lacks)
        if lacking:
            problems.append((f"layer {layer}", f"cannot load sas_p's weights, {', '.join(lacking)} missing: fix the "
                                               f"parameters first"))
            continue
        with torch.no_grad():
            for name, tensor in block.state_dict(keep_vars=True).items():
                if name not in reference.state_dict():
                    tensor.fill_(1.0)  # a tensor sas_p has not (alpha_ff, ln_2): at 1, the mistakes below show
        x = torch.randn(3, CONFIG.block_size, CONFIG.n_embd)
        with torch.no_grad():
            r = reference
            h = r.ln_1(x)
            attended = r.beta_sa * r.attn(h)
            mistakes = {
                "the MLP skip is still there (x + ...): sas_p removes it": x + attended + r.beta_ff * r.mlp(h),
                "the MLP reads the attention's output: in the parallel block both branches read H = N1(X)":
                    attended + r.beta_ff * r.mlp(r.ln_1(attended)),
                "the MLP reads X, not H = N1(X): one norm in front of both branches": attended + r.beta_ff * r.mlp(x),
                "beta_SA and beta_FF are missing: out = beta_SA ShA(H) + beta_FF MLP(H)": r.attn(h) + r.mlp(h),
                "the attention branch reads X, not H = N1(X)": r.beta_sa * r.attn(x) + r.beta_ff * r.mlp(h),
            }
            problems += diagnose(block(x), reference(x), mistakes, f"layer {layer}")
    return problems


def problems_with_the_answer_used(module):
    """[] if the student's block is neither sas_p's (the answer) nor sas_p_nonorm's (nearly the answer), and their
    file does not import them."""
    problems = [f"line {line}, `{code}`: blocks/sas_p.py is the answer and blocks/sas_p_nonorm.py nearly so: write "
                f"the block from blocks/sas.py's parts" for line, code in names_used(module, ("sas_p", "sas_p_nonorm"))]
    block = module.Block(CONFIG, 1)
    answer = next((Block for Block in ANSWERS if isinstance(block, Block)), None)
    if not problems and answer:
        problems.append(f"Block is {answer.__module__}.Block, or made from it: write the block from blocks/sas.py's "
                        f"parts")
    return problems


def test_parallel_block_is_written_not_imported():
    assert_none(problems_with_the_answer_used(exercise._module()))


def test_parallel_block_has_the_parameters_of_sas_p():
    assert_none(problems_with_parameters(exercise.Block))


def test_parallel_block_drops_the_mlp_skip_and_its_norm():
    block = exercise.Block(CONFIG, 1)
    sas_count = sum(p.numel() for p in blocks.sas.Block(CONFIG, 1).parameters())
    count = sum(p.numel() for p in block.parameters())
    problems = [WHY_NOT[name] for name in ("alpha_ff", "ln_2.weight") if name in block.state_dict()]
    if count != sas_count - (CONFIG.n_embd + 1):
        problems.append(f"{count} parameters; sas has {sas_count}, and sas_p drops the second norm's scale "
                        f"({CONFIG.n_embd}) and alpha_FF (1): {sas_count - CONFIG.n_embd - 1}")
    assert_none(problems)


def test_parallel_block_computes_sas_p():
    assert_none(problems_with_forward(exercise.Block))


def test_parallel_block_at_initialisation(monkeypatch):
    """In a GPT, after init_weights: the block's output at initialisation (question a)."""
    monkeypatch.setitem(BLOCKS, "exercise_sas_p", exercise.Block)
    torch.manual_seed(0)
    block = GPT(dataclasses.replace(CONFIG, block="exercise_sas_p")).blocks[1]
    x = torch.randn(3, CONFIG.block_size, CONFIG.n_embd)
    with torch.no_grad():
        h = block.ln_1(x)
        expected = h + CONFIG.mlp_gain * block.mlp(h)
        assert_none(diagnose(block(x), expected, {}, "at initialisation, in a GPT after GPT.init_weights: write "
                                                     "the block's output out (question a)"))
