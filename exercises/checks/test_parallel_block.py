"""Checks for exercise 4: the student's parallel block against blocks/sas_p.py."""

import dataclasses

import pytest
import torch

import blocks.sas
import blocks.sas_p
from blocks import BLOCKS
from exercises.checks import randomise, under_test
from model import GPT, GPTConfig

exercise = under_test("parallel_block")
CONFIG = GPTConfig(block="sas_p", vocab_size=64, block_size=16, n_layer=2, n_head=2, n_embd=32)


def shapes(module):
    return {name: tuple(tensor.shape) for name, tensor in module.state_dict().items()}


@pytest.mark.parametrize("layer", [0, 1])  # layer 0 keeps a trainable W_V
def test_parallel_block_has_the_parameters_of_sas_p(layer):
    assert shapes(exercise.Block(CONFIG, layer)) == shapes(blocks.sas_p.Block(CONFIG, layer))


def test_parallel_block_drops_the_mlp_skip_and_its_norm():
    block = exercise.Block(CONFIG, 1)
    assert not hasattr(block, "ln_2") and not hasattr(block, "alpha_ff")
    sas_count = sum(p.numel() for p in blocks.sas.Block(CONFIG, 1).parameters())
    assert sum(p.numel() for p in block.parameters()) == sas_count - (CONFIG.n_embd + 1)


@pytest.mark.parametrize("layer", [0, 1])
def test_parallel_block_computes_sas_p(layer):
    reference = randomise(blocks.sas_p.Block(CONFIG, layer))
    block = exercise.Block(CONFIG, layer)
    block.load_state_dict(reference.state_dict())
    x = torch.randn(3, CONFIG.block_size, CONFIG.n_embd)
    torch.testing.assert_close(block(x), reference(x))


def test_parallel_block_starts_as_norm_plus_a_small_mlp(monkeypatch):
    """In a GPT, after init_weights: out = H + beta_FF MLP(H) with H = N1(X), beta_FF = mlp_gain (§4.3)."""
    monkeypatch.setitem(BLOCKS, "exercise_sas_p", exercise.Block)
    torch.manual_seed(0)
    block = GPT(dataclasses.replace(CONFIG, block="exercise_sas_p")).blocks[1]
    x = torch.randn(3, CONFIG.block_size, CONFIG.n_embd)
    h = block.ln_1(x)
    torch.testing.assert_close(block(x), h + CONFIG.mlp_gain * block.mlp(h))
