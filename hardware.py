"""
Device, precision and attention kernel: which ones a run uses, chosen here for every script alike, and the
measurements those choices rest on (matmul rates, attention timings, peak memory).

Nothing here changes the process behind a caller's back: set_up_device says what it switches for the whole
process, and the attention kernel is the model's own (GPT.set_attention_kernel).
"""

import ctypes
import platform
import re
import sys
import time
from contextlib import nullcontext

import torch

from blocks.parts import causal_attention, shaped_attention
from errors import ConfigError

# ---------------------------------------------------------------------------------------------------
# the device


def pick_device(name):
    """The device a --device setting names, checked against this machine: auto picks cuda, then mps, then cpu."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device={name} is not a device; use auto, cpu, cuda, cuda:N or mps") from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available.get(device.type, False):
        raise ConfigError(f"--device={name} is not available on this machine; use --device=auto")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"--device={name}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                          f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return name


def set_up_device(device):
    """Set this whole process up to train on device, for every script alike: on a GPU, float32 matmuls run in TF32
    from here on, and cuda:N becomes the current GPU (else torch would open a context, and pin memory, on GPU 0
    too); on a CPU, freed memory is kept for reuse (keep_freed_memory)."""
    if device.startswith("cuda"):
        if torch.device(device).index is not None:
            torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    elif device == "cpu":
        keep_freed_memory()


def keep_freed_memory():
    """Make glibc's malloc keep freed memory for the next request instead of handing it back to the system.

    Every training step allocates and frees the same activations. By default glibc gives blocks above
    128 KiB back as soon as they are freed, and the next step pays a page fault for each 4 KiB of them:
    ~37,000 faults a step at the default shape, 15-25% of a CPU step (README, Benchmarks). On a GPU,
    PyTorch's caching allocator keeps memory for reuse; on a CPU nothing does. The process keeps its
    peak memory until it exits. Linux with glibc only; elsewhere nothing changes."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: macOS, Windows, musl
        return
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
    libc.mallopt(M_MMAP_THRESHOLD, 1 << 30)  # blocks up to 1 GiB come from the heap, which is reused...
    libc.mallopt(M_TRIM_THRESHOLD, (1 << 31) - 1)  # ...and is never trimmed back to the system


def device_name(device):
    """The device in words, as runs record it: cpu, mps, or the GPU's name."""
    return torch.cuda.get_device_name(device) if device.startswith("cuda") else torch.device(device).type


def to_device(batch, device):
    """Micro-batches, each a tuple of tensors, on the device. On a CUDA GPU the copy runs from pinned memory,
    asynchronously: the host goes on to queue the step while the copy is in flight."""
    if device.startswith("cuda"):
        return [tuple(t.pin_memory().to(device, non_blocking=True) for t in xy) for xy in batch]
    return [tuple(t.to(device) for t in xy) for xy in batch]


def synchronize(device):
    """Wait for the device to finish its queued work (timings are meaningless without it)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    elif device.startswith("mps"):
        torch.mps.synchronize()


def peak_memory(device):
    """Memory in bytes: on CUDA the allocator's peak since the last reset; on MPS what the Metal driver
    holds now (MPS keeps no peak); on a CPU the peak resident memory of the whole process (interpreter
    and data included)."""
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated(device)
    if device.startswith("mps"):
        return torch.mps.driver_allocated_memory()
    try:
        import resource  # not on Windows
    except ImportError:
        return float("nan")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS reports bytes, Linux KiB


def stopped(stop):
    """Whether a stop was asked for (stop: a processes.Stop, or None for a measurement nobody stops)."""
    return stop is not None and stop.requested is not None


# ---------------------------------------------------------------------------------------------------
# the precision


def cpu_has_native_bfloat16():
    """Whether this CPU has bfloat16 instructions; without them torch emulates bfloat16, several times slower
    than float32. x86: AVX512-BF16 (Intel since Cooper Lake, every Xeon with AMX, AMD since Zen 4). Arm: the
    BF16 extension (Graviton 3, Apple M2 and later), as oneDNN reads it. This is the one place that asks; the
    tests switch it on and off (tests/conftest.py), whatever the machine running them has."""
    if platform.machine().lower() in ("x86_64", "amd64", "x86", "i386", "i686"):
        return torch.cpu._is_avx512_bf16_supported()
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def gpu_capability(device):
    """The CUDA GPU's compute capability, as (major, minor)."""
    return tuple(torch.cuda.get_device_capability(device))


def native_precision(dtype, device):
    """Whether this device multiplies dtype matrices in hardware. float32: everywhere. bfloat16: on GPUs of
    compute capability 8.0 and later (A100, H100, L4, RTX 30xx/40xx; torch.cuda.is_bf16_supported() says yes on a
    T4 and a V100 too, but counts emulation) and on CPUs with bfloat16 instructions. float16: on CUDA GPUs.
    Elsewhere (float16 on a CPU, 16-bit on MPS, where this code does not autocast) it is emulated or unused."""
    kind = torch.device(device).type
    if dtype == "float32":
        return True
    if kind == "cuda":
        return dtype == "float16" or gpu_capability(device) >= (8, 0)
    return kind == "cpu" and dtype == "bfloat16" and cpu_has_native_bfloat16()


def pick_dtype(name, device, stop=None):
    """The autocast precision for a --dtype setting on this device, and why, in a few words.

    auto: on a GPU, bfloat16 where it is native (compute capability 8.0 and later), else float16 with a grad
    scaler (T4, V100). On a CPU with bfloat16 instructions, whichever of float32 and bfloat16 multiplies matrices
    faster here, measured: CPUs differ; on one without them, float32. A precision set by name is kept even where
    it is only emulated: emulation_warning says what it costs. On MPS this code trains in float32."""
    kind = torch.device(device).type
    if kind == "mps" and name in ("bfloat16", "float16"):
        raise ConfigError(f"--dtype={name}: on MPS this code trains in float32 (it does not autocast there); "
                          f"use --dtype=auto or float32")
    if name != "auto":
        return name, "as set"
    if kind == "cuda":
        capability = "{}.{}".format(*gpu_capability(device))
        return ("bfloat16", "native on this GPU") if native_precision("bfloat16", device) else \
            ("float16", f"no native bfloat16 below compute capability 8.0 (this GPU: {capability})")
    if not native_precision("bfloat16", device):
        return "float32", f"no native bfloat16 on {kind} here"
    speedup = matmul_speed(device, "bfloat16", stop) / matmul_speed(device, "float32", stop)
    return ("bfloat16" if speedup > 1.1 else "float32"), f"bfloat16 matmuls {speedup:.1f}x float32's speed here"


def emulation_warning(dtype, device, stop=None):
    """None where this device computes dtype natively; else one line saying that it is emulated here, and how fast
    its matmuls ran against those of the precision --dtype=auto picks, measured in a fraction of a second."""
    if native_precision(dtype, device):
        return None
    kind = torch.device(device).type
    where = {"bfloat16": "this CPU has no bfloat16 instructions",
             "float16": "float16 is a GPU precision: most CPUs have no float16 units"}[dtype] if kind == "cpu" else \
        "bfloat16 units came with compute capability 8.0; this GPU has {}.{}".format(*gpu_capability(device))
    auto, _ = pick_dtype("auto", device, stop)
    speed = matmul_speed(device, dtype, stop) / matmul_speed(device, auto, stop)
    return (f"--dtype={dtype} is emulated here ({where}): its matmuls ran at {speed:.2f}x {auto}'s speed; "
            f"--dtype=auto would train in {auto}")


def matmul_speed(device, dtype, stop=None):
    """A quick measure of the dense matmul rate in dtype, FLOP/s, to compare precisions: a fraction of a second."""
    return measure_matmul_flops(device, dtype, n=4096 if device.startswith("cuda") else 1024, rounds=3, seconds=0.05,
                                stop=stop)


def autocast(device_type, dtype):
    """Mixed precision: parameters and the residual stream stay float32, matmuls run in dtype."""
    if dtype == "float32":
        return nullcontext()
    return torch.autocast(device_type, dtype=getattr(torch, dtype))


# ---------------------------------------------------------------------------------------------------
# the attention kernel: one policy for plain and shaped attention alike

ATTENTION_KERNELS = ("fused", "explicit")  # blocks.parts.causal_attention and shaped_attention compute on either
EXPLICIT_MEMORY = 2**30  # bytes of T x T matrices the explicit kernel may keep for the backward pass, at most


def pick_attention(name, device, dtype, shape, stop=None, shaped=False):
    """The attention kernel for an --attention setting on this device, and why, in a few words.
    shape: (batch, heads, T, head size, layers) of the run's attention; shaped: whether the model's attention is
    shaped (the forms timed are the ones it computes: blocks.parts.shaped_attention, else causal_attention).

    auto: on a GPU, fused. On a CPU, whichever runs attention's forward and backward pass at this shape
    faster here, timed in a fraction of a second: CPUs and precisions differ (README, Benchmarks: on one
    CPU the explicit kernel wins in bfloat16 at short T and loses in float32). Explicit only where it wins
    by more than 10%, so that a close call does not flip between runs, and only where the T x T matrices
    it keeps for the backward pass of every layer take at most 1 GiB. In a precision the CPU only emulates
    (tens of times slower) the kernels are timed on one sequence, not the whole batch."""
    if name != "auto":
        return name, "as set"
    if not device.startswith("cpu"):
        return "fused", "on a GPU"
    batch, heads, T, head_size, layers = shape
    matrices = layers * batch * heads * T * T * 4  # float32 attention probabilities, one matrix per head
    if matrices > EXPLICIT_MEMORY:
        return "fused", f"explicit would keep {matrices / 2**30:.1f} GiB of T x T matrices"
    timed = shape if native_precision(dtype, device) else (1, *shape[1:])
    speedup = attention_seconds("fused", device, dtype, timed, shaped=shaped, stop=stop) / \
        attention_seconds("explicit", device, dtype, timed, shaped=shaped, stop=stop)
    return ("explicit" if speedup > 1.1 else "fused"), f"explicit {speedup:.1f}x fused's speed here at T={T}"


def attention_seconds(kernel, device, dtype, shape, shaped=False, repeats=3, seconds=1.0, stop=None):
    """The best time of a few forward and backward passes of one layer's causal attention (shaped or plain) on
    kernel, after one untimed pass: fewer once `seconds` have gone by, or once a stop is asked for (train.py's
    Ctrl-C)."""
    batch, heads, T, head_size, _ = shape
    q, k, v = (torch.randn(batch, heads, T, head_size, device=device, dtype=getattr(torch, dtype),
                           requires_grad=True) for _ in range(3))
    gains = [torch.ones(heads, device=device, requires_grad=True) for _ in range(3)]  # alpha, beta, gamma
    times, start = [], time.perf_counter()
    while len(times) < repeats + 1:  # the first is a warm-up
        t0 = time.perf_counter()
        out = shaped_attention(q, k, v, *gains, kernel=kernel) if shaped else causal_attention(q, k, v, kernel)
        out.sum().backward()
        synchronize(device)
        times.append(time.perf_counter() - t0)
        if len(times) >= 2 and (time.perf_counter() - start > seconds or stopped(stop)):
            break
    return min(times[1:])


def precision_and_kernel(dtype_setting, attention_setting, device, shape, saved=None, stop=None, shaped=False):
    """The run's autocast precision and attention kernel, each with why in a few words, and for a resumed run
    that changes them, one line saying how and why (else None). shape: as pick_attention takes it; saved: a
    resumed run's checkpoint (its device, dtype and attention), None for a new run.

    A new run, or a setting given by name, is picked as pick_dtype and pick_attention say. A resumed run with
    --dtype=auto keeps the precision it started with wherever this device computes it natively, and else
    switches to what auto picks here: a checkpoint from a bfloat16 machine never trains several times slower on
    one that only emulates bfloat16 (a CPU without bfloat16 instructions, a T4). With --attention=auto it keeps
    its kernel on the same kind of device in the same precision, and else picks again: the explicit T x T
    matrix a CPU run chose is the slow path on a GPU. shaped: as pick_attention takes it. Resume stays exact in
    what it continues (weights, optimizer, data position, random state), but a new precision or kernel rounds
    the steps from here differently from the machine the run started on."""
    changes = []
    if saved is None or dtype_setting != "auto":
        dtype, why = pick_dtype(dtype_setting, device, stop)
    elif native_precision(saved["dtype"], device):
        dtype, why = saved["dtype"], "as the run started"
    else:
        dtype, why = pick_dtype("auto", device, stop)
        changes.append(f"precision {saved['dtype']} -> {dtype} ({saved['dtype']} is only emulated here; "
                       f"--dtype={saved['dtype']} --allow_changes keeps it, emulated)")
    if saved is None or attention_setting != "auto":
        attention, why_attention = pick_attention(attention_setting, device, dtype, shape, stop, shaped)
    elif saved["device"] == device_name(device) and dtype == saved["dtype"]:
        attention, why_attention = saved["attention"], "as the run started"
    else:
        attention, why_attention = pick_attention("auto", device, dtype, shape, stop, shaped)
        if attention != saved["attention"]:
            changes.append(f"attention {saved['attention']} -> {attention} ({why_attention})")
    resumed = None if not changes else (
        f"resuming on {device_name(device)} a run that started on {saved['device']}: {'; '.join(changes)}. The run "
        f"continues exactly from its checkpoint, but its steps from here round differently from that machine's")
    return dtype, why, attention, why_attention, resumed


# ---------------------------------------------------------------------------------------------------
# the matmul peak, for MFU


def measure_matmul_flops(device, dtype, n=None, rounds=5, seconds=0.2, stop=None):
    """This machine's dense matmul rate in dtype, in FLOP/s: the peak that MFU is taken against.
    The best of several timed rounds after a warm-up: a busy neighbour, or a GPU still raising its
    clock, can only make a round slower, never faster. The matrices grow from 256 x 256 up to n x n (large
    enough to reach the peak) while the next size, 8 times the work, still fits in a round: a precision the
    hardware only emulates, ten or a hundred times slower, is measured small, and the whole measurement takes
    about rounds x seconds in any precision. It stops early, after a round, once a stop is asked for."""
    n_max = n or (8192 if device.startswith("cuda") else 2048)
    n = min(256, n_max)
    while True:
        a, b = (torch.randn(n, n, device=device, dtype=getattr(torch, dtype)) for _ in range(2))
        a @ b  # warm up
        synchronize(device)
        t0 = time.perf_counter()
        a @ b
        synchronize(device)
        if n >= n_max or 8 * (time.perf_counter() - t0) > seconds or stopped(stop):
            break
        n = min(2 * n, n_max)
    best = 0.0
    for _ in range(rounds):
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            a @ b
            count += 1
            synchronize(device)
        best = max(best, 2 * n**3 * count / (time.perf_counter() - start))
        if stopped(stop):
            break
    if device.startswith("cuda"):  # the matrices were not the run's: free them, forget their peak memory
        del a, b
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    return best


# Dense 16-bit tensor-core peaks (bfloat16 or float16 with float32 accumulation, no sparsity), TFLOP/s, from
# NVIDIA's data sheets, by the words of torch.cuda.get_device_name() ("Tesla T4", "NVIDIA H100 80GB HBM3",
# "NVIDIA A100-SXM4-80GB", "NVIDIA L40S"). A GPU not listed gets no data sheet figure (None) rather than a guess.
DATASHEET_TFLOPS = {
    "H100": 989,  # H100 Tensor Core GPU data sheet: H100 SXM, 1,979 with sparsity (its name says HBM3, not SXM)
    "H100 PCIe": 756,  # the same data sheet: H100 PCIe, 1,513 with sparsity
    "H100 NVL": 835,  # the same data sheet: H100 NVL, 1,671 with sparsity
    "H200": 989,  # H200 Tensor Core GPU data sheet: H200 SXM, 1,979 with sparsity
    "H200 NVL": 835,  # the same data sheet: H200 NVL, 1,671 with sparsity
    "A100": 312,  # A100 Tensor Core GPU data sheet: SXM and PCIe, 40 and 80 GB alike, 624 with sparsity
    "A10": 125,  # A10 Tensor Core GPU data sheet: 250 with sparsity
    "L4": 121,  # L4 Tensor Core GPU data sheet: 242 with sparsity
    "L40": 181,  # L40 GPU data sheet: 362 with sparsity
    "L40S": 362,  # L40S GPU data sheet: 733 with sparsity
    "T4": 65,  # T4 Tensor Core GPU data sheet: mixed precision (FP16/FP32)
    "V100 SXM2": 125,  # V100 Tensor Core GPU data sheet: tensor performance, SXM2
    "V100 PCIe": 112,  # the same data sheet: PCIe
    "RTX 4090": 165.2,  # Ada Lovelace architecture whitepaper: FP16/BF16 tensor, FP32 accumulate (330.3 sparse)
}


def datasheet_flops(device, dtype):
    """The data sheet's peak FLOP/s for this GPU and a 16-bit dtype, or None where we do not know it (or where the
    GPU only emulates bfloat16: no tensor core peak applies). The GPU's name is matched against every key as whole
    words (so "L40S" is not the "L4", nor "RTX A1000" the "A100"), and the longest key that matches wins (so
    "H100 NVL" is not the "H100")."""
    if not device.startswith("cuda") or dtype not in ("bfloat16", "float16") or not native_precision(dtype, device):
        return None
    name = torch.cuda.get_device_name(device)
    matching = [key for key in DATASHEET_TFLOPS if re.search(
        r"(?<![A-Za-z0-9])" + r"[\s-]+".join(map(re.escape, key.split())) + r"(?![A-Za-z0-9])", name, re.IGNORECASE)]
    return DATASHEET_TFLOPS[max(matching, key=len)] * 1e12 if matching else None
