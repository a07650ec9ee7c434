"""Device and precision choices, on the CPU: GPUs are simulated with mocks of torch.cuda."""

import pytest
import torch

import common
import train
from checkpoint import load_checkpoint
from configurator import ConfigError
from helpers import tiny_flags

GPUS = {"T4": (7, 5), "V100": (7, 0), "A100": (8, 0), "H100": (9, 0)}


@pytest.fixture
def gpu(monkeypatch):
    """Pretend a GPU of the named kind is here. torch.cuda.is_bf16_supported() says True on all of
    them, as it does on a real T4: it counts emulated bfloat16."""
    def pretend(name):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: GPUS[name])
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: f"Tesla {name}")
    return pretend


@pytest.mark.parametrize("name, dtype", [("T4", "float16"), ("V100", "float16"), ("A100", "bfloat16"),
                                         ("H100", "bfloat16")])
def test_auto_picks_bfloat16_only_where_the_gpu_has_it_natively(gpu, name, dtype):
    gpu(name)
    assert common.pick_dtype("auto", "cuda")[0] == dtype


def test_emulated_bfloat16_is_refused_with_the_dtype_that_works(gpu):
    gpu("T4")
    with pytest.raises(ConfigError, match=r"only emulated on this GPU \(compute capability 7.5\).*--dtype=float16"):
        common.pick_dtype("bfloat16", "cuda")


def test_auto_on_a_cpu_picks_the_faster_precision(monkeypatch):
    for bf16_seconds, expected in ((0.25, "bfloat16"), (1.7, "float32")):  # the two CPUs of the README
        monkeypatch.setattr(common, "matmul_seconds", lambda device, dtype: bf16_seconds if dtype == "bfloat16" else 1)
        dtype, why = common.pick_dtype("auto", "cpu")
        assert dtype == expected and f"{1 / bf16_seconds:.1f}x" in why


SHAPE = (16, 4, 128, 32, 12)  # batch, heads, T, head size, layers: the ladder preset's attention


@pytest.mark.parametrize("explicit_seconds, expected", [(0.37, "explicit"), (0.95, "fused"), (1.6, "fused")])
def test_auto_attention_on_a_cpu_picks_the_faster_kernel(monkeypatch, explicit_seconds, expected):
    """explicit only where it is more than 10% faster: a close call keeps the fused kernel."""
    monkeypatch.setattr(common, "attention_seconds", lambda kernel, *args: explicit_seconds if kernel == "explicit"
                        else 1)
    kernel, why = common.pick_attention("auto", "cpu", "bfloat16", SHAPE)
    assert kernel == expected and f"{1 / explicit_seconds:.1f}x" in why and "T=128" in why


def test_auto_attention_keeps_the_fused_kernel_where_the_matrices_would_not_fit(monkeypatch):
    monkeypatch.setattr(common, "attention_seconds", lambda kernel, *args: pytest.fail("nothing to measure"))
    kernel, why = common.pick_attention("auto", "cpu", "bfloat16", (1, 12, 4096, 64, 18))
    assert kernel == "fused" and "13.5 GiB" in why  # 18 layers x 12 heads x 4096^2 float32 probabilities


def test_auto_attention_on_a_gpu_is_fused_and_a_set_kernel_is_kept():
    assert common.pick_attention("auto", "cuda", "bfloat16", SHAPE) == ("fused", "on a GPU")
    assert common.pick_attention("explicit", "cpu", "float32", SHAPE) == ("explicit", "as set")


def test_float16_is_for_cuda_only():
    with pytest.raises(ConfigError, match="for CUDA GPUs"):
        common.pick_dtype("float16", "cpu")


def test_the_mfu_probe_leaves_no_trace_in_the_peak_memory(monkeypatch):
    """The probe's matrices are not the run's: after measuring, CUDA's peak statistic is reset."""
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append("synchronize"))
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append("empty_cache"))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: calls.append("reset"))
    randn = torch.randn
    monkeypatch.setattr(torch, "randn", lambda *shape, device=None, **kwargs: randn(*shape, **kwargs))  # on the CPU
    assert common.measure_matmul_flops("cuda", "float32", n=16, rounds=2, seconds=0.01) > 0
    assert calls[-2:] == ["empty_cache", "reset"]


@pytest.fixture(scope="module")
def bf16_run(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("bf16")
    train.train(*train.settings(tiny_flags(tiny_dataset, out, max_steps=4, dtype="bfloat16")))
    return out


def test_a_run_records_its_device_precision_and_attention_kernel(bf16_run):
    ckpt = load_checkpoint(bf16_run / "ckpt.pt")
    assert (ckpt["device"], ckpt["dtype"], ckpt["scaler"], ckpt["attention"]) == ("cpu", "bfloat16", {}, "fused")


def test_float16_resumes_a_run_saved_without_a_grad_scaler(tiny_dataset, bf16_run):
    """A run trained in bfloat16 (no scaler state), resumed in float16 on an older GPU: the scaler starts
    afresh instead of crashing on the empty state."""
    cfg, ckpt = train.settings(tiny_flags(tiny_dataset, bf16_run, max_steps=4, dtype="float16", resume=True,
                                          allow_changes=True))
    state = train.start_or_resume(cfg, ckpt, ckpt["model_config"]["vocab_size"], "cpu", "float16", "fused")
    assert state.scaler.is_enabled() and state.scaler.get_scale() == 2.0**16 and state.step == 4


def test_a_resumed_auto_run_keeps_the_precision_it_started_with(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(common, "matmul_seconds", lambda device, dtype: 0.5 if dtype == "bfloat16" else 1)
    train.train(*train.settings(tiny_flags(tiny_dataset, tmp_path, max_steps=2, dtype="auto")))
    monkeypatch.setattr(common, "matmul_seconds", lambda device, dtype: 2 if dtype == "bfloat16" else 1)
    train.train(*train.settings(tiny_flags(tiny_dataset, tmp_path, max_steps=4, dtype="auto", resume=True,
                                           allow_changes=True)))
    assert load_checkpoint(tmp_path / "ckpt.pt")["dtype"] == "bfloat16"


def test_a_resumed_auto_run_keeps_the_attention_kernel_it_started_with(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(common, "attention_seconds", lambda kernel, *args: 0.5 if kernel == "explicit" else 1)
    train.train(*train.settings(tiny_flags(tiny_dataset, tmp_path, max_steps=2, attention="auto")))
    assert load_checkpoint(tmp_path / "ckpt.pt")["attention"] == "explicit"
    monkeypatch.setattr(common, "attention_seconds", lambda kernel, *args: 2 if kernel == "explicit" else 1)
    train.train(*train.settings(tiny_flags(tiny_dataset, tmp_path, max_steps=4, attention="auto", resume=True,
                                           allow_changes=True)))
    assert load_checkpoint(tmp_path / "ckpt.pt")["attention"] == "explicit"


def test_the_gpu_check_refuses_to_run_without_a_gpu(monkeypatch):
    import gpu_check

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="^error: no CUDA GPU here"):
        gpu_check.main()
