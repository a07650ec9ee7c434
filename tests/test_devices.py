"""Device and precision choices, on the CPU: GPUs are simulated with mocks of torch.cuda, and the CPU's bfloat16
instructions switched on and off (the cpu_bf16 fixture)."""

import errno
import json
import os
import re
import signal
import time

import pytest
import torch

import common
import hardware
import processes
import train
from processes import stop_signals
from errors import ConfigError
from run_folder import load_checkpoint
from helpers import (assert_one_line_error, cuda_training_dtype, exit_status, recording_compile, run_script, tiny_flags,
                     trains_in_this_process)
from settings import run_settings

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
    assert hardware.pick_dtype("auto", "cuda")[0] == dtype


def speeds(monkeypatch, **by_dtype):
    """Pretend the matmuls of each dtype run at the given speed (FLOP/s, float32 at 1 if not given)."""
    monkeypatch.setattr(hardware, "matmul_speed", lambda device, dtype, stop=(): by_dtype.get(dtype, 1))


def test_emulated_bfloat16_on_a_t4_runs_with_one_warning_saying_what_it_costs(gpu, monkeypatch):
    gpu("T4")
    speeds(monkeypatch, bfloat16=0.5, float16=4)
    assert hardware.pick_dtype("bfloat16", "cuda") == ("bfloat16", "as set")
    assert hardware.emulation_warning("bfloat16", "cuda") == (
        "--dtype=bfloat16 is emulated here (bfloat16 units came with compute capability 8.0; this GPU has 7.5): its "
        "matmuls ran at 0.12x float16's speed; --dtype=auto would train in float16")
    gpu("A100")
    assert hardware.emulation_warning("bfloat16", "cuda") is None


def test_auto_on_a_cpu_picks_the_faster_precision_where_it_has_bfloat16(monkeypatch, cpu_bf16):
    for bf16_speed, expected in ((4.0, "bfloat16"), (0.6, "float32")):  # two CPUs with bfloat16 instructions
        speeds(monkeypatch, bfloat16=bf16_speed)
        dtype, why = hardware.pick_dtype("auto", "cpu")
        if cpu_bf16:
            assert dtype == expected and f"{bf16_speed:.1f}x" in why
        else:  # nothing to measure: bfloat16 would be emulated
            assert (dtype, why) == ("float32", "no native bfloat16 on cpu here")


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_a_precision_set_by_name_runs_on_a_cpu_with_a_warning_where_it_is_emulated(monkeypatch, cpu_bf16, dtype):
    speeds(monkeypatch, bfloat16=4.0 if cpu_bf16 else 0.2, float16=0.05)
    assert hardware.pick_dtype(dtype, "cpu") == (dtype, "as set")
    warning = hardware.emulation_warning(dtype, "cpu")
    if dtype == "bfloat16" and cpu_bf16:
        assert warning is None
    else:
        auto = "bfloat16" if cpu_bf16 else "float32"
        speed = {"bfloat16": 0.2, "float16": 0.05 / (4.0 if cpu_bf16 else 1)}[dtype]
        assert warning.startswith(f"--dtype={dtype} is emulated here (") and \
            warning.endswith(f"its matmuls ran at {speed:.2f}x {auto}'s speed; --dtype=auto would train in {auto}")


def test_mps_trains_in_float32_and_says_so_for_a_16_bit_setting(monkeypatch):
    for dtype in ("bfloat16", "float16"):
        with pytest.raises(ConfigError, match=f"--dtype={dtype}: on MPS this code trains in float32"):
            hardware.pick_dtype(dtype, "mps")


SHAPE = (16, 4, 128, 32, 12)  # batch, heads, T, head size, layers: the ladder preset's attention


@pytest.mark.parametrize("explicit_seconds, expected", [(0.37, "explicit"), (0.95, "fused"), (1.6, "fused")])
def test_auto_attention_on_a_cpu_picks_the_faster_kernel(monkeypatch, explicit_seconds, expected):
    """explicit only where it is more than 10% faster: a close call keeps the fused kernel."""
    monkeypatch.setattr(hardware, "attention_seconds", lambda kernel, *args, **kwargs: explicit_seconds
                        if kernel == "explicit" else 1)
    kernel, why = hardware.pick_attention("auto", "cpu", "float32", SHAPE)
    assert kernel == expected and f"{1 / explicit_seconds:.1f}x" in why and "T=128" in why


def test_auto_attention_times_one_sequence_where_the_precision_is_emulated(monkeypatch, cpu_bf16):
    timed = []
    monkeypatch.setattr(hardware, "attention_seconds", lambda kernel, device, dtype, shape, **kwargs:
                        timed.append(shape) or 1)
    hardware.pick_attention("auto", "cpu", "bfloat16", SHAPE)
    assert timed == [SHAPE if cpu_bf16 else (1, *SHAPE[1:])] * 2


def test_auto_attention_keeps_the_fused_kernel_where_the_matrices_would_not_fit(monkeypatch):
    monkeypatch.setattr(hardware, "attention_seconds", lambda *args, **kwargs: pytest.fail("nothing to measure"))
    kernel, why = hardware.pick_attention("auto", "cpu", "bfloat16", (1, 12, 4096, 64, 18))
    assert kernel == "fused" and "13.5 GiB" in why  # 18 layers x 12 heads x 4096^2 float32 probabilities


def test_auto_attention_on_a_gpu_is_fused_and_a_set_kernel_is_kept():
    assert hardware.pick_attention("auto", "cuda", "bfloat16", SHAPE) == ("fused", "on a GPU")
    assert hardware.pick_attention("explicit", "cpu", "float32", SHAPE) == ("explicit", "as set")


def test_the_mfu_probe_leaves_no_trace_in_the_peak_memory(monkeypatch):
    """The probe's matrices are not the run's: after measuring, CUDA's peak statistic is reset."""
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append("synchronize"))
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append("empty_cache"))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: calls.append("reset"))
    randn = torch.randn
    monkeypatch.setattr(torch, "randn", lambda *shape, device=None, **kwargs: randn(*shape, **kwargs))  # on the CPU
    assert hardware.measure_matmul_flops("cuda", "float32", n=16, rounds=2, seconds=0.01) > 0
    assert calls[-2:] == ["empty_cache", "reset"]


def test_the_mfu_probe_measures_an_emulated_precision_small(monkeypatch):
    """A matmul that takes 50 ms at 256 x 256 (an emulated precision, ~0.7 GFLOP/s): the probe does not grow
    its matrices to the 2048 x 2048 (25 s a matmul at that speed) it would take on a CPU's native precision."""
    sizes = []
    randn = torch.randn
    monkeypatch.setattr(torch, "randn", lambda *shape, **kwargs: sizes.append(shape) or randn(*shape, **kwargs))
    monkeypatch.setattr(hardware, "synchronize", lambda device: time.sleep(0.05))
    assert hardware.measure_matmul_flops("cpu", "bfloat16", rounds=2) > 0
    assert set(sizes) == {(256, 256)}


@pytest.fixture(scope="module")
def bf16_run(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("bf16")
    train.train(*run_settings(tiny_flags(tiny_dataset, out, max_steps=4, dtype="bfloat16")))
    return out


def test_a_run_records_its_device_precision_and_attention_kernel(bf16_run):
    ckpt = load_checkpoint(bf16_run / "ckpt.pt")
    assert (ckpt["device"], ckpt["dtype"], ckpt["scaler"], ckpt["attention"]) == ("cpu", "bfloat16", {}, "fused")


def test_float16_resumes_a_run_saved_without_a_grad_scaler(tiny_dataset, bf16_run):
    """A run trained in bfloat16 (no scaler state), resumed in float16 on an older GPU: the scaler starts
    afresh instead of crashing on the empty state."""
    cfg, ckpt = run_settings(tiny_flags(tiny_dataset, bf16_run, max_steps=4, dtype="float16", resume=True,
                                          allow_changes=True))
    state = train.start_or_resume(cfg, ckpt, ckpt["model_config"]["vocab_size"], "cpu", "float16", "fused")
    assert state.scaler.is_enabled() and state.scaler.get_scale() == 2.0**16 and state.step == 4


def test_a_resumed_auto_run_keeps_the_precision_it_started_with(tiny_dataset, tmp_path, monkeypatch, cpu_bf16):
    """The same machine, measuring otherwise on the second start: the run keeps its precision."""
    speeds(monkeypatch, bfloat16=2)
    train.train(*run_settings(tiny_flags(tiny_dataset, tmp_path, max_steps=2, dtype="auto")))
    speeds(monkeypatch, bfloat16=0.5)
    train.train(*run_settings(tiny_flags(tiny_dataset, tmp_path, max_steps=4, dtype="auto", resume=True,
                                           allow_changes=True)))
    assert load_checkpoint(tmp_path / "ckpt.pt")["dtype"] == ("bfloat16" if cpu_bf16 else "float32")


def test_a_resumed_auto_run_keeps_the_attention_kernel_it_started_with(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(hardware, "attention_seconds", lambda kernel, *args, **kwargs: 0.5 if kernel == "explicit" else 1)
    train.train(*run_settings(tiny_flags(tiny_dataset, tmp_path, max_steps=2, attention="auto")))
    assert load_checkpoint(tmp_path / "ckpt.pt")["attention"] == "explicit"
    monkeypatch.setattr(hardware, "attention_seconds", lambda kernel, *args, **kwargs: 2 if kernel == "explicit" else 1)
    train.train(*run_settings(tiny_flags(tiny_dataset, tmp_path, max_steps=4, attention="auto", resume=True,
                                           allow_changes=True)))
    assert load_checkpoint(tmp_path / "ckpt.pt")["attention"] == "explicit"


def test_the_gpu_check_refuses_to_run_without_a_gpu(monkeypatch):
    import gpu_check

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="^error: no CUDA GPU here"):
        gpu_check.main([])


def test_the_cuda_tests_train_in_the_gpus_own_precision(gpu):
    """tests/test_cuda.py trains in float16 on a T4 or a V100 (their bfloat16 is emulated), in bfloat16 on an A100."""
    for name, dtype in (("T4", "float16"), ("V100", "float16"), ("A100", "bfloat16")):
        gpu(name)
        assert cuda_training_dtype() == dtype


@pytest.mark.mfu_probe
def test_a_precision_set_by_name_prints_one_warning_line_where_it_is_emulated(tiny_dataset, tmp_path, capsys,
                                                                              cpu_bf16):
    """End to end, with the real measurement: --dtype=bfloat16 on a CPU without bfloat16 instructions trains,
    and says once, on stderr, that it is emulated and how fast its matmuls ran."""
    assert exit_status("train.py", tiny_flags(tiny_dataset, tmp_path, max_steps=2, dtype="bfloat16")) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    if cpu_bf16:
        assert warnings == []
    else:
        assert len(warnings) == 1 and re.fullmatch(
            r"warning: --dtype=bfloat16 is emulated here \(this CPU has no bfloat16 instructions\): its matmuls ran "
            r"at [\d.]+x float32's speed; --dtype=auto would train in float32", warnings[0]), warnings
    assert load_checkpoint(tmp_path / "ckpt.pt")["dtype"] == "bfloat16"


@pytest.mark.mfu_probe
def test_ctrl_c_during_the_start_up_measurements_ends_them_at_once(tiny_dataset, tmp_path, monkeypatch, cpu_bf16):
    """A signal in the first timed pass: no measurement goes on to larger matrices or more rounds, and the run
    stops before its first step, resumable, with the signal's exit status."""
    sizes, signalled = [], []
    randn = torch.randn
    monkeypatch.setattr(torch, "randn", lambda *shape, **kwargs: sizes.append(shape) or randn(*shape, **kwargs))

    def synchronize(device):
        if not signalled:
            signalled.append(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(hardware, "synchronize", synchronize)
    with stop_signals() as stop:
        final = train.train(*run_settings(tiny_flags(tiny_dataset, tmp_path, dtype="bfloat16", attention="auto")),
                            stop=stop)
    assert (final["stopped_by"], final["step"]) == (signal.SIGINT, 0)
    assert {shape for shape in sizes if len(shape) == 2} == {(256, 256)}  # the matmul probes never grew
    assert load_checkpoint(tmp_path / "ckpt.pt")["step"] == 0


# a checkpoint moves between machines

def resume_choice(ckpt, device):
    return hardware.precision_and_kernel("auto", "auto", device, shape=(4, 2, 32, 16, 2), saved=ckpt)


@pytest.mark.parametrize("saved, now, dtype, attention, line", [
    (("bfloat16", "fused", "NVIDIA A100-SXM4-80GB"), "T4", "float16", "fused",
     "a run that started on NVIDIA A100-SXM4-80GB: precision bfloat16 -> float16 (bfloat16 is only emulated here; "
     "--dtype=bfloat16 --allow_changes keeps it, emulated)."),
    (("float16", "fused", "Tesla T4"), "A100", "float16", "fused", None),  # native there too: kept, exact
    (("bfloat16", "explicit", "cpu"), "H100", "bfloat16", "fused",
     "a run that started on cpu: attention explicit -> fused (on a GPU)."),
    (("float32", "explicit", "cpu"), "T4", "float32", "fused", "attention explicit -> fused (on a GPU)."),
])
def test_a_resumed_auto_run_rechecks_its_precision_and_kernel_on_another_gpu(gpu, saved, now, dtype, attention,
                                                                             line):
    gpu(now)
    ckpt = dict(zip(("dtype", "attention", "device"), saved))
    got_dtype, _, got_attention, _, resumed = resume_choice(ckpt, "cuda")
    assert (got_dtype, got_attention) == (dtype, attention)
    if line is None:
        assert resumed is None
    else:
        assert resumed.startswith(f"resuming on Tesla {now} ") and line in resumed
        assert resumed.endswith("continues exactly from its checkpoint, but its steps from here round differently "
                                "from that machine's")


def test_a_bfloat16_run_resumed_on_a_cpu_without_bfloat16_switches_to_float32(tiny_dataset, tmp_path, monkeypatch,
                                                                              capsys):
    """Started where bfloat16 is native and faster, resumed with --dtype=auto where it is not: float32, in one line."""
    monkeypatch.setattr(hardware, "cpu_has_native_bfloat16", lambda: True)
    speeds(monkeypatch, bfloat16=4)
    train.train(*run_settings(tiny_flags(tiny_dataset, tmp_path, max_steps=2, dtype="auto")))
    assert load_checkpoint(tmp_path / "ckpt.pt")["dtype"] == "bfloat16"
    monkeypatch.setattr(hardware, "cpu_has_native_bfloat16", lambda: False)
    capsys.readouterr()
    final = train.train(*run_settings(tiny_flags(tiny_dataset, tmp_path, max_steps=4, dtype="auto", resume=True,
                                                   allow_changes=True)))
    out = capsys.readouterr().out
    assert final["step"] == 4 and load_checkpoint(tmp_path / "ckpt.pt")["dtype"] == "float32"
    assert [line for line in out.splitlines() if line.startswith("resuming on ")] == [
        "resuming on cpu a run that started on cpu: precision bfloat16 -> float32 (bfloat16 is only emulated here; "
        "--dtype=bfloat16 --allow_changes keeps it, emulated). The run continues exactly from its checkpoint, but "
        "its steps from here round differently from that machine's"]
    assert "cpu float32 (no native bfloat16 on cpu here)" in out


def test_a_gpu_run_resumed_on_a_cpu_picks_the_cpus_precision_and_kernel(tiny_dataset, tmp_path, monkeypatch, capsys,
                                                                        cpu_bf16):
    """A checkpoint written on an A100 in bfloat16 with the fused kernel, continued on this CPU."""
    train.train(*run_settings(tiny_flags(tiny_dataset, tmp_path, max_steps=2, dtype="auto", attention="auto")))
    ckpt = load_checkpoint(tmp_path / "ckpt.pt")
    torch.save(ckpt | {"device": "NVIDIA A100-SXM4-80GB", "dtype": "bfloat16", "attention": "fused"},
               tmp_path / "ckpt.pt")
    monkeypatch.setattr(hardware, "attention_seconds", lambda kernel, *args, **kwargs: 0.5 if kernel == "explicit" else 1)
    capsys.readouterr()
    final = train.train(*run_settings(tiny_flags(tiny_dataset, tmp_path, max_steps=4, dtype="auto",
                                                   attention="auto", resume=True, allow_changes=True)))
    out = capsys.readouterr().out
    saved = load_checkpoint(tmp_path / "ckpt.pt")
    assert final["step"] == 4 and (saved["dtype"], saved["attention"]) == \
        ("bfloat16" if cpu_bf16 else "float32", "explicit")
    line, = [line for line in out.splitlines() if line.startswith("resuming on ")]
    assert line.startswith("resuming on cpu a run that started on NVIDIA A100-SXM4-80GB: ")
    assert ("precision bfloat16 -> float32" in line) != cpu_bf16
    assert "attention fused -> explicit (explicit 2.0x fused's speed here at T=32)" in line


# the GPU's name, its number, and the torch release

@pytest.mark.parametrize("name, tflops", [
    ("Tesla T4", 65), ("NVIDIA A100-SXM4-80GB", 312), ("NVIDIA A100-PCIE-40GB", 312), ("NVIDIA A100 80GB PCIe", 312),
    ("NVIDIA H100 80GB HBM3", 989), ("NVIDIA H100 PCIe", 756), ("NVIDIA H100 NVL", 835), ("NVIDIA H200", 989),
    ("NVIDIA H200 NVL", 835), ("NVIDIA L40S", 362), ("NVIDIA L40", 181), ("NVIDIA L4", 121), ("NVIDIA A10", 125),
    ("NVIDIA GeForce RTX 4090", 165.2), ("Tesla V100-SXM2-16GB", 125), ("Tesla V100-PCIE-32GB", 112),
    # no data sheet figure rather than another GPU's
    ("NVIDIA RTX A1000", None), ("NVIDIA A10G", None), ("NVIDIA L20", None), ("Tesla V100S-PCIE-32GB", None),
    ("NVIDIA GeForce RTX 3090", None), ("NVIDIA B200", None),
])
def test_the_data_sheet_peak_is_the_named_gpus_own(monkeypatch, name, tflops):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    assert hardware.datasheet_flops("cuda", "float16") == (tflops * 1e12 if tflops else None)


def test_a_gpu_that_only_emulates_bfloat16_has_no_data_sheet_peak_for_it(gpu):
    gpu("T4")
    assert hardware.datasheet_flops("cuda", "bfloat16") is None and hardware.datasheet_flops("cuda", "float16") == 65e12


def test_a_numbered_gpu_becomes_the_current_one(gpu, monkeypatch):
    gpu("A100")
    current = []
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: current.append(str(device)))
    hardware.set_up_device(hardware.pick_device("cuda:1"))
    assert current == ["cuda:1"]
    with pytest.raises(ConfigError, match=r"--device=cuda:2: this machine has 2 CUDA GPU\(s\), cuda:0 to cuda:1"):
        hardware.pick_device("cuda:2")


class NoHeartbeat:
    """processes.Heartbeat without a store to count in."""

    def __init__(self, store, rank):
        pass

    def stop(self):
        pass


@pytest.mark.parametrize("visible, local_rank, device", [(4, 3, "cuda:3"), (1, 3, "cuda:0")])
def test_each_torchrun_process_takes_its_own_gpu(gpu, monkeypatch, visible, local_rank, device):
    """Four GPUs on the node, or (a cluster that hides the others) only the process's own, as cuda:0."""
    gpu("H100")
    current, joined = [], []
    monkeypatch.setattr(torch.cuda, "device_count", lambda: visible)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: current.append(device))
    monkeypatch.setattr(processes.dist, "rendezvous", lambda url, timeout: iter([("store", local_rank, 4)]))
    monkeypatch.setattr(processes.dist, "init_process_group", lambda **kwargs: joined.append(kwargs))
    monkeypatch.setattr(processes, "Heartbeat", NoHeartbeat)
    for name in ("barrier", "destroy_process_group"):
        monkeypatch.setattr(processes.dist, name, lambda: None)
    for name, value in (("RANK", local_rank), ("WORLD_SIZE", 4), ("LOCAL_RANK", local_rank)):
        monkeypatch.setenv(name, str(value))
    with processes.joined_processes("cuda", timeout=300) as procs:
        assert (procs.rank, procs.world_size, procs.device) == (local_rank, 4, device)
    assert current == [device] and [(kwargs["backend"], kwargs["device_id"]) for kwargs in joined] == \
        [("nccl", torch.device(device))]


def test_the_oldest_torch_release_is_checked_in_one_line():
    assert common.torch_too_old("2.4.1") == ("torch 2.4.1 is older than 2.5, the oldest release this code runs on "
                                             "(README, On a GPU); install the pinned one: pip install -r requirements.txt")
    for version in ("2.5.0", "2.13.0+cpu", "2.14.0.dev20260101+cu128", "3.0.0"):
        assert common.torch_too_old(version) is None
    result = run_script("-c", "import torch; torch.__version__ = '2.3.1+cu121'; import train")
    assert_one_line_error(result, "torch 2.3.1+cu121 is older than 2.5", status=1)


# gpu_check.py, run at a tiny size on the CPU

def test_the_gpu_check_runs_end_to_end_at_a_tiny_size(tiny_dataset, tmp_path, monkeypatch, capsys):
    import gpu_check

    trains_in_this_process(monkeypatch, gpu_check)
    recording_compile(monkeypatch)  # the compiled throughput part, without code generation
    monkeypatch.setattr(gpu_check.bench, "HEADS", 2)  # the attention part on 2 heads of 16, not the paper's 12 of 64
    monkeypatch.setattr(gpu_check.bench, "HEAD_SIZE", 16)
    status = gpu_check.main(["--tiny", "--device=cpu", f"--dataset={tiny_dataset}", f"--out={tmp_path}"])
    out = capsys.readouterr().out
    assert status == 0, out
    report = json.loads((tmp_path / "cpu.json").read_text())
    assert {name: part["status"] for name, part in report["parts"].items()} == {
        "cuda tests": "skipped", "training": "passed", "throughput, eager": "passed",
        "throughput, compiled": "passed", "attention": "passed"}
    summary = out[out.index("\nGPU check: cpu"):]
    assert "  cuda tests: skipped: needs a CUDA GPU\n" in summary and "  training: passed: pre_ln val loss " in summary
    assert "| throughput, compiled | passed | batch 2: sas " in (tmp_path / "cpu.md").read_text()


def test_the_gpu_check_prints_its_summary_before_it_writes_it(tmp_path, monkeypatch, capfd):
    """A write that fails after the work (the disk filled up meanwhile) is one line, after the summary."""
    import gpu_check

    for name in ("cuda_tests", "training", "throughput", "attention"):
        monkeypatch.setattr(gpu_check, name, lambda *args: {"status": "passed", "summary": "fine"})

    def out_of_room(path, text):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(gpu_check.Path, "write_text", out_of_room)
    capfd.readouterr()
    assert exit_status("gpu_check.py", ["--tiny", "--device=cpu", f"--out={tmp_path}"]) == 1
    printed = capfd.readouterr()
    assert printed.out.rstrip().endswith("  attention: passed: fine")
    assert printed.err.splitlines()[-1].startswith("error: could not write the results to") and \
        printed.err.splitlines()[-1].endswith("(No space left on device); the summary above is what they hold: make "
                                              "room on that disk")


def test_the_gpu_checks_dataset_path_is_taken_from_the_current_folder(tmp_path, monkeypatch):
    """Its train.py runs in the repository's folder: a relative --dataset reaches it made absolute."""
    import gpu_check

    monkeypatch.chdir(tmp_path)
    assert gpu_check.CheckConfig(tiny=True, dataset="./ds").dataset == str(tmp_path / "ds")
    assert gpu_check.CheckConfig(tiny=True, dataset="stdlib").dataset == "stdlib"  # a name: a folder in data/


def test_a_failing_part_of_the_gpu_check_is_reported_and_the_others_still_run(tmp_path, monkeypatch, capsys):
    import gpu_check

    def out_of_memory(cfg, device):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 12.00 GiB\nmore details")

    for name in ("training", "throughput"):
        monkeypatch.setattr(gpu_check, name, lambda *args: {"status": "passed", "summary": "fine"})
    monkeypatch.setattr(gpu_check, "attention", out_of_memory)
    assert gpu_check.main(["--tiny", "--device=cpu", f"--out={tmp_path}"]) == 1
    summary = capsys.readouterr().out.split("\nGPU check: cpu")[1]
    assert "  attention: FAILED: OutOfMemoryError: CUDA out of memory. Tried to allocate 12.00 GiB\n" in summary
    assert summary.count(": passed: fine") == 3
    assert json.loads((tmp_path / "cpu.json").read_text())["parts"]["attention"]["status"] == "failed"


def test_the_gpu_check_sizes_the_paper_shape_batch_to_the_gpu(gpu, monkeypatch):
    import gpu_check

    gpu("H100")
    for gib, batch in ((80, 128), (40, 128), (24, 64), (15, 32)):
        monkeypatch.setattr(torch.cuda, "get_device_properties",
                            lambda device, gib=gib: type("Properties", (), {"total_memory": gib * 2**30}))
        assert gpu_check.bench_batch("cuda") == batch
