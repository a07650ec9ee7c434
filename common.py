"""
What every script shares: the exit status convention, and device, precision and timing helpers.
"""

import sys
import time
from contextlib import nullcontext

import torch

from checkpoint import CheckpointError
from configurator import ConfigError
from data.bpe import DataError

# ---------------------------------------------------------------------------------------------------
# exit statuses, the same for every script


def run_main(main, argv):
    """Run a script's main(argv), which returns its exit status, and exit with it. A refused input exits
    with one line on stderr saying what was wrong: 2 for bad usage (a setting, a flag, a config file),
    1 for anything else (a missing or damaged checkpoint or dataset, a diverged run). A run stopped by
    a signal exits 128 + its number (130 for Ctrl-C, 143 for SIGTERM), as shells expect."""
    try:
        status = main(argv)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        status = 2
    except (CheckpointError, DataError, FloatingPointError) as e:
        print(f"error: {e}", file=sys.stderr)
        status = 1
    sys.exit(status)


def pyplot():
    """matplotlib's pyplot, drawing into files only (never a window), imported when a figure is made."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


# ---------------------------------------------------------------------------------------------------
# device, precision, timing


def pick_device(name):
    """The device to run on: auto picks cuda, then mps, then cpu."""
    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if torch.backends.mps.is_available() else "cpu"
    try:
        kind = torch.device(name).type
    except RuntimeError:
        raise ConfigError(f"--device={name} is not a device; use auto, cpu, cuda, cuda:N or mps") from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available.get(kind, False):
        raise ConfigError(f"--device={name} is not available on this machine; use --device=auto")
    return name


def pick_dtype(name, device_type):
    """bfloat16 autocast where the hardware has it, float16 with a grad scaler on GPUs without bfloat16."""
    bf16_ok = {"cuda": torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
               "cpu": torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported(),
               "mps": False}[device_type]
    if name == "auto":
        if device_type == "cuda":
            return "bfloat16" if bf16_ok else "float16"
        return "bfloat16" if bf16_ok else "float32"
    if name == "bfloat16" and not bf16_ok:
        raise ConfigError(f"--dtype=bfloat16 is not supported on {device_type} here; use --dtype=float32")
    if name == "float16" and device_type != "cuda":
        raise ConfigError("--dtype=float16 is for CUDA GPUs; use --dtype=bfloat16 or float32")
    return name


def autocast(device_type, dtype):
    """Mixed precision: parameters and the residual stream stay float32, matmuls run in dtype."""
    if dtype == "float32":
        return nullcontext()
    return torch.autocast(device_type, dtype=getattr(torch, dtype))


def synchronize(device):
    """Wait for the device to finish its queued work (timings are meaningless without it)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    elif device == "mps":
        torch.mps.synchronize()


def peak_memory(device):
    """Peak memory of this process so far, in bytes: the CUDA allocator's peak on a GPU, else the
    peak resident memory of the whole process (interpreter and data included)."""
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated(device)
    try:
        import resource  # not on Windows
    except ImportError:
        return float("nan")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS reports bytes, Linux KiB


def measure_matmul_flops(device, dtype, seconds=0.5):
    """This machine's dense matmul rate in FLOP/s, measured: the peak that MFU is taken against."""
    n = 8192 if device.startswith("cuda") else 2048  # large enough to reach the peak, small enough for a CPU
    a, b = (torch.randn(n, n, device=device, dtype=getattr(torch, dtype)) for _ in range(2))
    a @ b  # warm up
    synchronize(device)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(4):
            a @ b
        synchronize(device)
        count += 4
    flops = 2 * n**3 * count / (time.perf_counter() - start)
    if device.startswith("cuda"):  # the matrices were not the run's: free them, forget their peak
        del a, b
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    return flops
