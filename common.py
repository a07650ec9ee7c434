"""
What every script shares: the exit status convention, and device, precision and timing helpers.
"""

import ctypes
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
    """The device to run on: auto picks cuda, then mps, then cpu. On a GPU, float32 matmuls run in TF32
    from here on, for every script alike; on a CPU, freed memory is kept for reuse (keep_freed_memory)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    try:
        kind = torch.device(name).type
    except RuntimeError:
        raise ConfigError(f"--device={name} is not a device; use auto, cpu, cuda, cuda:N or mps") from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available.get(kind, False):
        raise ConfigError(f"--device={name} is not available on this machine; use --device=auto")
    if kind == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if kind == "cpu":
        keep_freed_memory()
    return name


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


def pick_dtype(name, device):
    """The autocast precision for a --dtype setting on this device, and why, in a few words.

    auto: on a GPU, bfloat16 where it is native (compute capability 8.0 and later: A100, H100, L4,
    RTX 30xx/40xx), else float16 with a grad scaler (T4, V100: torch.cuda.is_bf16_supported() says yes
    there too, but it counts emulation, several times slower). On a CPU, whichever of float32 and
    bfloat16 multiplies matrices faster here, measured: CPUs differ (4x faster in bfloat16 on one,
    1.7x slower on another)."""
    kind = torch.device(device).type
    if kind == "cuda":
        capability = "{}.{}".format(*torch.cuda.get_device_capability(device))
        native_bf16 = float(capability) >= 8.0
        if name == "auto":
            return ("bfloat16", "native on this GPU") if native_bf16 else \
                ("float16", f"no native bfloat16 below compute capability 8.0 (this GPU: {capability})")
        if name == "bfloat16" and not native_bf16:
            raise ConfigError(f"--dtype=bfloat16 is only emulated on this GPU (compute capability {capability}), "
                              f"several times slower; use --dtype=float16")
        return name, "as set"
    if name == "float16":
        raise ConfigError(f"--dtype=float16 is for CUDA GPUs; use --dtype=bfloat16 or float32 on {kind}")
    cpu_bf16 = kind == "cpu" and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    if name == "bfloat16" and not cpu_bf16:
        raise ConfigError(f"--dtype=bfloat16 is not supported on {kind} here; use --dtype=float32")
    if name != "auto":
        return name, "as set"
    if not cpu_bf16:
        return "float32", f"no bfloat16 on {kind} here"
    speedup = matmul_seconds(device, "float32") / matmul_seconds(device, "bfloat16")
    return ("bfloat16" if speedup > 1.1 else "float32"), f"bfloat16 matmuls {speedup:.1f}x float32's speed here"


def matmul_seconds(device, dtype, n=1024, repeats=3):
    """The best time of a few n x n matmuls in dtype: a fraction of a second in all."""
    a, b = (torch.randn(n, n, device=device, dtype=getattr(torch, dtype)) for _ in range(2))
    a @ b  # warm up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return min(times)


# ---------------------------------------------------------------------------------------------------
# the attention kernel: one policy for plain and shaped attention alike

ATTENTION_KERNELS = ("fused", "explicit")
EXPLICIT_MEMORY = 2**30  # bytes of T x T matrices the explicit kernel may keep for the backward pass, at most


def use_attention_kernel(kernel):
    """From here on torch's scaled_dot_product_attention (SDPA) runs on this kernel, for every block alike:
    plain and shaped attention both compute their softmax part A v with it (blocks/parts.py).
      fused     SDPA's own pick among its kernels that never build the T x T matrix (on a CPU flash
                attention; on a GPU flash, memory-efficient or cuDNN attention): O(T) memory
      explicit  SDPA's math backend: the T x T matrix softmax(q k^T / sqrt(hs) + M), then times v: O(T^2)"""
    fused = kernel == "fused"
    # these switches are named cuda, but SDPA on a CPU obeys them too
    torch.backends.cuda.enable_flash_sdp(fused)
    torch.backends.cuda.enable_mem_efficient_sdp(fused)
    torch.backends.cuda.enable_cudnn_sdp(fused)
    torch.backends.cuda.enable_math_sdp(True)  # the fallback where no fused kernel takes the inputs


def pick_attention(name, device, dtype, shape):
    """The attention kernel for an --attention setting on this device, and why, in a few words.
    shape: (batch, heads, T, head size, layers) of the run's attention.

    auto: on a GPU, fused. On a CPU, whichever runs attention's forward and backward pass at this shape
    faster here, timed in a fraction of a second: CPUs and precisions differ (README, Benchmarks: on one
    CPU the explicit kernel wins in bfloat16 at short T and loses in float32). Explicit only where it wins
    by more than 10%, so that a close call does not flip between runs, and only where the T x T matrices
    it keeps for the backward pass of every layer take at most 1 GiB."""
    if name != "auto":
        return name, "as set"
    if not device.startswith("cpu"):
        return "fused", "on a GPU"
    batch, heads, T, _, layers = shape
    matrices = layers * batch * heads * T * T * 4  # float32 attention probabilities, one matrix per head
    if matrices > EXPLICIT_MEMORY:
        return "fused", f"explicit would keep {matrices / 2**30:.1f} GiB of T x T matrices"
    speedup = attention_seconds("fused", device, dtype, shape) / attention_seconds("explicit", device, dtype, shape)
    return ("explicit" if speedup > 1.1 else "fused"), f"explicit {speedup:.1f}x fused's speed here at T={T}"


def attention_seconds(kernel, device, dtype, shape, repeats=3):
    """The best time of a few forward and backward passes of causal SDPA on one layer's q, k, v, on kernel."""
    batch, heads, T, head_size, _ = shape
    q, k, v = (torch.randn(batch, heads, T, head_size, device=device, dtype=getattr(torch, dtype),
                           requires_grad=True) for _ in range(3))
    use_attention_kernel(kernel)
    times = []
    for _ in range(repeats + 1):  # the first is a warm-up
        t0 = time.perf_counter()
        torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True).sum().backward()
        synchronize(device)
        times.append(time.perf_counter() - t0)
    use_attention_kernel("fused")
    return min(times[1:])


def autocast(device_type, dtype):
    """Mixed precision: parameters and the residual stream stay float32, matmuls run in dtype."""
    if dtype == "float32":
        return nullcontext()
    return torch.autocast(device_type, dtype=getattr(torch, dtype))


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


def measure_matmul_flops(device, dtype, n=None, rounds=5, seconds=0.2):
    """This machine's dense matmul rate in dtype, in FLOP/s: the peak that MFU is taken against.
    The best of several timed rounds after a warm-up: a busy neighbour, or a GPU still raising its
    clock, can only make a round slower, never faster."""
    n = n or (8192 if device.startswith("cuda") else 2048)  # large enough to reach the peak
    a, b = (torch.randn(n, n, device=device, dtype=getattr(torch, dtype)) for _ in range(2))
    for _ in range(3):
        a @ b
    synchronize(device)
    best = 0.0
    for _ in range(rounds):
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            a @ b
            count += 1
            synchronize(device)
        best = max(best, 2 * n**3 * count / (time.perf_counter() - start))
    if device.startswith("cuda"):  # the matrices were not the run's: free them, forget their peak memory
        del a, b
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    return best


# Dense 16-bit tensor-core peaks (bfloat16 or float16 with float32 accumulation, no sparsity), TFLOP/s,
# from NVIDIA's data sheets; matched against torch.cuda.get_device_name(), most specific name first.
DATASHEET_TFLOPS = [
    ("H100 PCIe", 756),  # H100 Tensor Core GPU data sheet (PCIe)
    ("H100", 989),  # H100 data sheet (SXM: 1,979 with sparsity)
    ("H200", 989),  # H200 Tensor Core GPU data sheet (SXM)
    ("A100", 312),  # A100 Tensor Core GPU data sheet
    ("L4", 121),  # L4 Tensor Core GPU data sheet (242 with sparsity)
    ("T4", 65),  # T4 data sheet: mixed precision FP16/FP32
    ("RTX 4090", 165.2),  # Ada Lovelace architecture whitepaper, FP16/BF16 with FP32 accumulate
]


def datasheet_flops(device, dtype):
    """The data sheet's peak FLOP/s for this GPU and a 16-bit dtype, or None where we do not know it."""
    if not device.startswith("cuda") or dtype not in ("bfloat16", "float16"):
        return None
    name = torch.cuda.get_device_name(device)
    return next((tflops * 1e12 for key, tflops in DATASHEET_TFLOPS if key in name), None)
