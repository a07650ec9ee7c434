"""Shared fixtures: a tiny dataset, built once per test session from a corpus written on the spot; and the
CPU's bfloat16 units, switched on and off whatever the machine running the tests has."""

import pytest

import common
from data.prepare import prepare
from helpers import write_corpus


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """The path of a small dataset (vocab 320) built from a synthetic Python corpus."""
    root = tmp_path_factory.mktemp("tiny_dataset")
    return str(prepare(root / "data", source=write_corpus(root / "corpus", n_files=24), vocab_size=320,
                       val_fraction=0.3))


@pytest.fixture(params=[True, False], ids=["cpu_bf16", "no_cpu_bf16"])
def cpu_bf16(request, monkeypatch):
    """Whether the CPU has bfloat16 instructions, as common.cpu_has_native_bfloat16 (the one place that asks)
    answers: a test that takes this fixture runs twice, once on each side, on any machine. What the CPU then
    really computes is what it has; only the decisions taken on that answer follow the fixture."""
    monkeypatch.setattr(common, "cpu_has_native_bfloat16", lambda: request.param)
    return request.param
