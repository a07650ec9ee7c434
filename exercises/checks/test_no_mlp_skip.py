"""Checks for exercise 9: sas without its MLP skip, its output at initialisation, and a few training steps."""

import dataclasses
import math

import torch

import blocks.sas
import train
from blocks import BLOCKS
from run_folder import read_log
from settings import run_settings
from exercises.checks import assert_none, diagnose, randomise, tiny_run_flags, under_test
from model import GPT, GPTConfig

exercise = under_test("no_mlp_skip")
CONFIG = GPTConfig(block="sas", vocab_size=64, block_size=16, n_layer=2, n_head=2, n_embd=32)


def shapes(module):
    return {name: tuple(tensor.shape) for name, tensor in module.state_dict().items()}


def problems_with_parameters(Block):
    problems = []
    for layer in (0, 1):  # layer 0 keeps a trainable W_V
        got = shapes(Block(CONFIG, layer))
        expected = shapes(blocks.sas.Block(CONFIG, layer))
        expected.pop("alpha_ff")
        if "alpha_ff" in got:
            problems.append((f"layer {layer}", "alpha_ff should not be there: it scaled the MLP skip, which is gone"))
        for name in sorted(got.keys() - expected.keys() - {"alpha_ff"}):
            problems.append((f"layer {layer}", f"{name} should not be there: sas has no such tensor"))
        for name in sorted(expected.keys() - got.keys()):
            hint = ("the block stays sequential, with two norms: ln_2 normalises X^ for the MLP"
                    if name == "ln_2.weight" else "keep sas's parts and attribute names (blocks/sas.py)")
            problems.append((f"layer {layer}", f"{name} is missing: {hint}"))
    return problems


def problems_with_forward(Block):
    problems = []
    for layer in (0, 1):
        reference = randomise(blocks.sas.Block(CONFIG, layer))
        block = Block(CONFIG, layer)
        state = {name: tensor for name, tensor in reference.state_dict().items() if name != "alpha_ff"}
        extra, lacking = block.load_state_dict(state, strict=False)
        if lacking:
            problems.append((f"layer {layer}", f"cannot load sas's weights, {', '.join(lacking)} missing: fix the "
                                               f"parameters first"))
            continue
        x = torch.randn(3, CONFIG.block_size, CONFIG.n_embd)
        with torch.no_grad():
            for name in extra:  # a tensor the block should not have (alpha_ff): at 1, the mistakes below show
                block.state_dict(keep_vars=True)[name].fill_(1.0)
            r = reference
            x_hat = r.beta_sa * r.attn(r.ln_1(x))
            mistakes = {"the MLP skip is still there: out = beta_FF MLP(N2(X^)), no alpha_FF X^ term":
                            x_hat + r.beta_ff * r.mlp(r.ln_2(x_hat)),
                        "the skip around the MLP was taken from X: remove it, out = beta_FF MLP(N2(X^))":
                            x + r.beta_ff * r.mlp(r.ln_2(x_hat)),
                        "the MLP reads X, not X^: the block stays sequential, attention first":
                            r.beta_ff * r.mlp(r.ln_2(x)),
                        "beta_FF is missing: out = beta_FF MLP(N2(X^))": r.mlp(r.ln_2(x_hat))}
            problems += diagnose(block(x), r.beta_ff * r.mlp(r.ln_2(x_hat)), mistakes, f"layer {layer}")
    return problems


def test_no_mlp_skip_has_the_parameters_of_sas_but_alpha_ff():
    assert_none(problems_with_parameters(exercise.Block))


def test_no_mlp_skip_computes_its_equation():
    assert_none(problems_with_forward(exercise.Block))


def test_no_mlp_skip_at_initialisation(monkeypatch):
    """In a GPT, after init_weights: the block's output at initialisation (question a)."""
    monkeypatch.setitem(BLOCKS, "sas_no_mlp_skip", exercise.Block)
    torch.manual_seed(0)
    block = GPT(dataclasses.replace(CONFIG, block="sas_no_mlp_skip")).blocks[1]
    x = torch.randn(3, CONFIG.block_size, CONFIG.n_embd)
    with torch.no_grad():
        expected = CONFIG.mlp_gain * block.mlp(block.ln_2(block.ln_1(x)))
        assert_none(diagnose(block(x), expected, {}, "at initialisation, in a GPT after GPT.init_weights: write "
                                                     "the block's output out (question a)"))


def test_no_mlp_skip_trains_with_train_py(monkeypatch, tmp_path, tiny_dataset, quick_training):
    monkeypatch.setitem(BLOCKS, "sas_no_mlp_skip", exercise.Block)
    final = train.train(*run_settings(tiny_run_flags(tiny_dataset, tmp_path / "run", block="sas_no_mlp_skip")))
    rows = read_log(tmp_path / "run" / "log.jsonl")
    assert_none([] if final["step"] == 12 and math.isfinite(final["val_loss"]) and rows else
                [f"12 steps with train.py should end with a finite validation loss, got {final}"])
