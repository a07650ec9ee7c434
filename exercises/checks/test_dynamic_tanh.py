"""Checks for exercise 11: DyT, the sas_p_dyt block, and a few training steps with train.py."""

import dataclasses
import math

import pytest
import torch

import blocks.sas_p
import train
from blocks import BLOCKS
from blocks.parts import RMSNorm
from run_folder import read_log
from settings import run_settings
from exercises.checks import assert_none, diagnose, randomise, tiny_run_flags, under_test
from model import GPT, GPTConfig

exercise = under_test("dynamic_tanh")
CONFIG = GPTConfig(block="sas_p", vocab_size=64, block_size=16, n_layer=2, n_head=2, n_embd=32)


def test_dyt_computes_its_formula():
    dyt = randomise(exercise.DyT(6))
    problems = []
    for name, shape in (("alpha", ()), ("weight", (6,)), ("bias", (6,))):
        tensor = getattr(dyt, name, None)
        if not isinstance(tensor, torch.nn.Parameter) or tensor.shape != shape:
            problems.append(f"DyT(6).{name} should be an nn.Parameter of shape {shape} (alpha is one scalar, "
                            f"weight and bias one per channel)")
    if problems:
        assert_none(problems)
    x = 3 * torch.randn(4, 5, 6)
    with torch.no_grad():
        w, a, b = dyt.weight, dyt.alpha, dyt.bias
        mistakes = {"alpha scales the output: it goes inside, tanh(alpha * x)": w * a * torch.tanh(x) + b,
                    "the bias is missing: + bias": w * torch.tanh(a * x),
                    "the weight is missing: weight * tanh(...)": torch.tanh(a * x) + b,
                    "the bias is inside the tanh: weight * tanh(alpha * x) + bias": w * torch.tanh(a * x + b)}
        assert_none(diagnose(dyt(x), w * torch.tanh(a * x) + b, mistakes, "DyT(x)"))


def test_dyt_starts_at_its_init():
    problems = []
    for alpha_init in (0.5, 0.2):
        dyt = exercise.DyT(8) if alpha_init == 0.5 else exercise.DyT(8, alpha_init=alpha_init)
        if dyt.alpha.item() != pytest.approx(alpha_init):
            problems.append(f"alpha starts at {dyt.alpha.item()}, expected {alpha_init}: "
                            f"nn.Parameter(torch.tensor(float(alpha_init)))")
        if not torch.equal(dyt.weight.detach(), torch.ones(8)):
            problems.append("weight should start at 1 (torch.ones(dim)): torch.empty leaves whatever was in memory")
        if not torch.equal(dyt.bias.detach(), torch.zeros(8)):
            problems.append("bias should start at 0 (torch.zeros(dim))")
    assert_none(sorted(set(problems), key=problems.index))


def test_dyt_block_has_no_norm():
    problems = []
    for layer in (0, 1):
        block = exercise.Block(CONFIG, layer)
        if not isinstance(getattr(block, "ln_1", None), exercise.DyT):
            problems.append((f"layer {layer}", "ln_1 should be a DyT, where sas_p has its RMSNorm"))
        if any(isinstance(m, (RMSNorm, torch.nn.LayerNorm)) for m in block.modules()):
            problems.append((f"layer {layer}", "a norm layer is left: DyT replaces it"))
        sas_p_count = sum(p.numel() for p in blocks.sas_p.Block(CONFIG, layer).parameters())
        count = sum(p.numel() for p in block.parameters())
        if count != sas_p_count + CONFIG.n_embd + 1:
            problems.append((f"layer {layer}", f"{count} parameters, expected sas_p's {sas_p_count} + "
                                               f"{CONFIG.n_embd + 1}: DyT has 2d + 1 (weight, bias, alpha), "
                                               f"RMSNorm d"))
    assert_none(problems)


def test_dyt_block_is_sas_p_with_dyt():
    problems = []
    for layer in (0, 1):
        block = randomise(exercise.Block(CONFIG, layer))
        reference = blocks.sas_p.Block(CONFIG, layer)
        reference.ln_1 = block.ln_1  # the library's sas_p, with the student's DyT as its norm
        _, lacking = reference.load_state_dict(block.state_dict(), strict=False)
        if lacking:
            problems.append((f"layer {layer}", f"keep sas_p's attribute names: {', '.join(lacking)} should not be "
                                               f"there"))
            continue
        x = torch.randn(3, CONFIG.block_size, CONFIG.n_embd)
        with torch.no_grad():
            h = reference.ln_1(x)
            mistakes = {"the MLP reads X, not H = DyT(X)": reference.beta_sa * reference.attn(h)
                        + reference.beta_ff * reference.mlp(x)}
            problems += diagnose(block(x), reference(x), mistakes, f"layer {layer}")
    assert_none(problems)


def test_dyt_keeps_its_init_inside_a_gpt(monkeypatch):
    """GPT.init_weights runs after the blocks are built: the DyTs must come out of it at their init."""
    monkeypatch.setitem(BLOCKS, "sas_p_dyt", exercise.Block)
    torch.manual_seed(0)
    model = GPT(dataclasses.replace(CONFIG, block="sas_p_dyt"))
    problems = []
    for i, block in enumerate(model.blocks):
        if block.ln_1.alpha.item() != 0.5:
            problems.append((f"block {i}", f"alpha is {block.ln_1.alpha.item()} after GPT.init_weights, not 0.5: "
                                           f"keep alpha inside DyT, where init_weights leaves it alone"))
        if not (torch.equal(block.ln_1.weight.detach(), torch.ones(CONFIG.n_embd))
                and torch.equal(block.ln_1.bias.detach(), torch.zeros(CONFIG.n_embd))):
            problems.append((f"block {i}", "DyT's weight and bias left GPT.init_weights changed: give DyT its own "
                                           "parameter class, not RMSNorm or LayerNorm, which init_weights resets"))
        if (block.beta_sa.item(), block.beta_ff.item()) != (1.0, pytest.approx(CONFIG.mlp_gain)):
            problems.append((f"block {i}", "beta_sa and beta_ff should start at 1 and mlp_gain: name them so"))
    assert_none(problems)


def test_dyt_block_trains_with_train_py(monkeypatch, tmp_path, tiny_dataset, quick_training):
    monkeypatch.setitem(BLOCKS, "sas_p_dyt", exercise.Block)
    final = train.train(*run_settings(tiny_run_flags(tiny_dataset, tmp_path / "run", block="sas_p_dyt",
                                                       max_steps=20, eval_interval=10, log_interval=1)))
    rows = read_log(tmp_path / "run" / "log.jsonl")
    problems = []
    if not (final["step"] == 20 and math.isfinite(final["val_loss"])):
        problems.append(f"20 steps should end with a finite validation loss, got {final}")
    if not rows[-1]["train_loss"] < rows[0]["train_loss"]:
        problems.append(f"the training loss did not fall in 20 steps: {rows[0]['train_loss']:.3f} -> "
                        f"{rows[-1]['train_loss']:.3f}")
    assert_none(problems)
