"""Checks for exercise 5: DyT, the sas_p_dyt block, and a few training steps with train.py."""

import dataclasses
import math
import shutil
from pathlib import Path

import pytest
import torch

import blocks.sas_p
import train
from blocks import BLOCKS
from blocks.parts import RMSNorm
from checkpoint import read_log
from data.prepare import prepare
from exercises.checks import randomise, under_test
from model import GPT, GPTConfig

exercise = under_test("dynamic_tanh")
CONFIG = GPTConfig(block="sas_p", vocab_size=64, block_size=16, n_layer=2, n_head=2, n_embd=32)


def test_dyt_computes_its_formula():
    dyt = randomise(exercise.DyT(6))
    assert dyt.alpha.shape == () and dyt.weight.shape == dyt.bias.shape == (6,)
    x = 3 * torch.randn(4, 5, 6)
    torch.testing.assert_close(dyt(x), dyt.weight * torch.tanh(dyt.alpha * x) + dyt.bias)


def test_dyt_starts_at_its_init():
    dyt = exercise.DyT(8)
    assert dyt.alpha.item() == 0.5
    assert torch.equal(dyt.weight, torch.ones(8)) and torch.equal(dyt.bias, torch.zeros(8))
    assert exercise.DyT(8, alpha_init=0.2).alpha.item() == pytest.approx(0.2)


@pytest.mark.parametrize("layer", [0, 1])
def test_dyt_block_has_no_norm(layer):
    block = exercise.Block(CONFIG, layer)
    assert isinstance(block.ln_1, exercise.DyT)
    assert not any(isinstance(m, (RMSNorm, torch.nn.LayerNorm)) for m in block.modules())
    sas_p_count = sum(p.numel() for p in blocks.sas_p.Block(CONFIG, layer).parameters())
    assert sum(p.numel() for p in block.parameters()) == sas_p_count + CONFIG.n_embd + 1  # DyT: 2d + 1, RMSNorm: d


@pytest.mark.parametrize("layer", [0, 1])
def test_dyt_block_is_sas_p_with_dyt(layer):
    block = randomise(exercise.Block(CONFIG, layer))
    reference = blocks.sas_p.Block(CONFIG, layer)
    reference.ln_1 = block.ln_1  # the library's sas_p, with the student's DyT as its norm
    reference.load_state_dict(block.state_dict())
    x = torch.randn(3, CONFIG.block_size, CONFIG.n_embd)
    torch.testing.assert_close(block(x), reference(x))


def test_dyt_keeps_its_init_inside_a_gpt(monkeypatch):
    """GPT.init_weights runs after the blocks are built: the DyTs must come out of it at their init."""
    monkeypatch.setitem(BLOCKS, "sas_p_dyt", exercise.Block)
    torch.manual_seed(0)
    model = GPT(dataclasses.replace(CONFIG, block="sas_p_dyt"))
    for block in model.blocks:
        assert block.ln_1.alpha.item() == 0.5
        assert torch.equal(block.ln_1.weight, torch.ones(CONFIG.n_embd))
        assert torch.equal(block.ln_1.bias, torch.zeros(CONFIG.n_embd))
        assert (block.beta_sa.item(), block.beta_ff.item()) == (1.0, pytest.approx(CONFIG.mlp_gain))


def test_dyt_block_trains_with_train_py(monkeypatch, tmp_path):
    monkeypatch.setitem(BLOCKS, "sas_p_dyt", exercise.Block)
    for copy in range(4):  # a small corpus: this repo's block files, enough for both splits
        shutil.copytree(Path(blocks.__file__).parent, tmp_path / "corpus" / str(copy),
                        ignore=shutil.ignore_patterns("__pycache__"))
    dataset = prepare(tmp_path / "data", source=tmp_path / "corpus", vocab_size=300, val_fraction=0.3)
    flags = dict(dataset=dataset, out_dir=tmp_path / "run", block="sas_p_dyt", n_layer=2, n_head=2, n_embd=32,
                 block_size=32, batch_size=4, max_steps=20, eval_interval=10, eval_windows=8, log_interval=1,
                 learning_rate=3e-3, device="cpu", dtype="float32")
    final = train.train(*train.settings([f"--{k}={v}" for k, v in flags.items()]))
    rows = read_log(tmp_path / "run" / "log.jsonl")
    assert final["step"] == 20 and math.isfinite(final["val_loss"])
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
