"""Shared fixtures: a tiny dataset, built once per test session from a corpus written on the spot; the CPU's
bfloat16 units, switched on and off whatever the machine running the tests has; and no MFU probe in the runs
that do not test it."""

import pytest

import hardware
from data.prepare import prepare
from helpers import trains_in_this_process, write_corpus


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """The path of a small dataset (vocab 320) built from a synthetic Python corpus."""
    root = tmp_path_factory.mktemp("tiny_dataset")
    return str(prepare(root / "data", source=write_corpus(root / "corpus", n_files=24), vocab_size=320,
                       val_fraction=0.3))


@pytest.fixture(params=[True, False], ids=["cpu_bf16", "no_cpu_bf16"])
def cpu_bf16(request, monkeypatch):
    """Whether the CPU has bfloat16 instructions, as hardware.cpu_has_native_bfloat16 (the one place that asks)
    answers: a test that takes this fixture runs twice, once on each side, on any machine. What the CPU then
    really computes is what it has; only the decisions taken on that answer follow the fixture."""
    monkeypatch.setattr(hardware, "cpu_has_native_bfloat16", lambda: request.param)
    return request.param


@pytest.fixture(autouse=True)
def no_mfu_probe(request, monkeypatch):
    """The runs in this process skip train.py's start-up measurement of the matmul peak (a few tenths of a second
    each, which only sets MFU's denominator), unless a test is marked mfu_probe: it is about that measurement."""
    if "mfu_probe" not in request.keywords:
        import train
        monkeypatch.setattr(train, "measure_matmul_flops", lambda *args, **kwargs: 1e12)


@pytest.fixture
def compare_trains_in_this_process(monkeypatch):
    """compare.py's runs train in this process (helpers.trains_in_this_process)."""
    import compare

    trains_in_this_process(monkeypatch, compare)
