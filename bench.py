"""
Measure what the simplifications buy, side by side in one process, as ratios.

    python bench.py                          # everything, on the device train.py would pick
    python bench.py --parts=throughput --shapes=paper --blocks=pre_ln,sas,sas_p
    python bench.py --parts=attention        # shaped attention's forms against plain SDPA

Two parts:
  throughput  training steps/s of every block (forward, backward, clip, AdamW), relative to pre_ln,
              and model-FLOPs utilisation against this machine's measured dense matmul rate
              (each block is timed in rounds, best of rounds kept, so a busy neighbour hurts less);
  attention   shaped attention (alpha I + beta A - gamma C) v as the model computes it (SDPA plus a
              running mean, blocks.parts.shaped_attention) and as the explicit T x T matrix, against
              plain causal SDPA: forward and backward, time and peak memory, T = 128 ... max_T, in
              float32 and in the training dtype.
Nothing here asserts a target: it prints what it measured, and bench() returns it.
"""

import json
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from blocks import BLOCKS
from blocks.parts import shaped_attention, shaped_attention_matrix
from common import (autocast, datasheet_flops, device_name, measure_matmul_flops, pick_device, pick_dtype, run_main,
                    synchronize)
from configurator import ConfigError, parse_config, setting
from model import GPT, GPTConfig

TRAIN_T = 128  # the sequence length the paper trains at: the throughput part's, the attention part's shortest
SHAPES = {  # n_layer, n_embd, n_head
    "default": (4, 256, 4),  # train.py's default model
    "paper": (18, 768, 12),  # the paper's CodeParrot model
}
PARTS = ("throughput", "attention")


@dataclass
class BenchConfig:
    parts: str = setting(",".join(PARTS), f"which measurements: {', '.join(PARTS)}, or both")
    shapes: str = setting("default,paper", f"model shapes to time: {', '.join(SHAPES)}, or n_layer x n_embd x n_head "
                                           "such as 12x128x4")
    blocks: str = setting(",".join(BLOCKS), "blocks to time (pre_ln is always included: the ratios are to it)")
    batch_size: int = setting(16, "sequences per step in the throughput part")
    vocab_size: int = setting(4097, "vocabulary (4097: our stdlib BPE; the paper's tokenizer has ~50K)")
    steps: int = setting(5, "timed training steps per block and round")
    rounds: int = setting(2, "rounds over all blocks; each block keeps its best round")
    compile: bool = setting(False, "torch.compile every model first")
    max_T: int = setting(4096, f"longest sequence in the attention part: a power of two, at least {TRAIN_T}")
    device: str = setting("auto", "auto, cpu, cuda, cuda:N or mps")
    dtype: str = setting("auto", "as in train.py: auto picks bfloat16 where supported",
                         choices=["auto", "float32", "bfloat16", "float16"])

    def __post_init__(self):
        for name in ("batch_size", "vocab_size", "steps", "rounds"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name}={getattr(self, name)}: must be at least 1")
        if self.max_T < TRAIN_T or self.max_T & (self.max_T - 1):  # a power of two has a single bit set
            raise ConfigError(f"--max_T={self.max_T}: must be a power of two, at least {TRAIN_T}")
        for part in self.parts.split(","):
            if part not in PARTS:
                raise ConfigError(f"unknown part {part!r}; valid parts: {', '.join(PARTS)}")
        for block in self.blocks.split(","):
            if block not in BLOCKS:
                raise ConfigError(f"unknown block {block!r}; valid blocks: {', '.join(BLOCKS)}")
        for shape in self.shapes.split(","):
            parse_shape(shape)


def parse_shape(name):
    """(n_layer, n_embd, n_head) of a named shape or of one written as 12x128x4."""
    if name in SHAPES:
        return SHAPES[name]
    parts = name.split("x")
    if len(parts) != 3 or not all(part.isdigit() for part in parts):
        raise ConfigError(f"unknown shape {name!r}; use {', '.join(SHAPES)} or n_layer x n_embd x n_head, "
                          "e.g. 12x128x4")
    n_layer, n_embd, n_head = map(int, parts)
    try:
        GPTConfig(n_layer=n_layer, n_embd=n_embd, n_head=n_head)
    except ValueError as e:
        raise ConfigError(f"shape {name!r}: {e}") from None
    return n_layer, n_embd, n_head


def best_seconds(fn, device, repeats, warmup=0):
    """The fastest of `repeats` timed calls of fn(), after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return min(times)


# -----------------------------------------------------------------------------
# throughput of every block


def time_training(block, shape, cfg, device, dtype):
    """Seconds per training step (best of cfg.steps), and the model, for one block."""
    n_layer, n_embd, n_head = parse_shape(shape)
    torch.manual_seed(0)
    model = GPT(GPTConfig(block=block, vocab_size=cfg.vocab_size, block_size=TRAIN_T, n_layer=n_layer,
                          n_head=n_head, n_embd=n_embd)).to(device)
    optimizer = model.configure_optimizers(0.1, 1e-3, device_type=torch.device(device).type)
    if cfg.compile:
        # every model its own fresh compile: dynamo compiles a function again for each new model, but
        # after 8 times (its recompile limit) it silently runs the rest eager
        torch._dynamo.reset()
    runner = torch.compile(model) if cfg.compile else model
    x = torch.randint(0, cfg.vocab_size, (cfg.batch_size, TRAIN_T), device=device)
    ctx = autocast(torch.device(device).type, dtype)

    def step():
        with ctx:
            _, loss = runner(x, x)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return best_seconds(step, device, cfg.steps, warmup=2), model


def throughput(cfg, device, dtype):
    """Per shape, per block: params, best seconds per step, tokens/s, speed relative to pre_ln and MFU.
    Prints each shape's table as it is done."""
    peak, sheet = measure_matmul_flops(device, dtype), datasheet_flops(device, dtype)
    print(f"\nthroughput: {device_name(device)} {dtype}, batch {cfg.batch_size} x T={TRAIN_T}, vocab {cfg.vocab_size}; "
          f"measured dense matmul peak {peak / 1e12:.2f} TFLOP/s" +
          (f", data sheet {sheet / 1e12:.0f} TFLOP/s" if sheet else "") + (", compiled" if cfg.compile else ""))
    blocks = ["pre_ln"] + [b for b in cfg.blocks.split(",") if b != "pre_ln"]
    results = {"matmul_flops": peak, "datasheet_flops": sheet, "shapes": {}}
    for shape in cfg.shapes.split(","):
        best, info = {}, {}
        for _ in range(cfg.rounds):
            for block in blocks:
                seconds, model = time_training(block, shape, cfg, device, dtype)
                best[block] = min(best.get(block, float("inf")), seconds)
                info[block] = (model.num_params(), model.flops_per_token())
                del model
        rows = results["shapes"][shape] = {}
        for block in blocks:
            tokens_per_s = cfg.batch_size * TRAIN_T / best[block]
            params, flops_per_token = info[block]
            rows[block] = {"params": params, "seconds": best[block], "tokens_per_s": tokens_per_s,
                           "vs_pre_ln": best["pre_ln"] / best[block],
                           # the speed-up if time were only the FLOPs: what removing matmuls can buy at most
                           "ceiling": info["pre_ln"][1] / flops_per_token,
                           "mfu": flops_per_token * tokens_per_s / peak,
                           "mfu_datasheet": flops_per_token * tokens_per_s / sheet if sheet else None}
        print(f"\n{shape} shape {parse_shape(shape)} (n_layer, n_embd, n_head):")
        print(f"  {'block':22s} {'params':>9s} {'ms/step':>8s} {'tokens/s':>9s} {'vs pre_ln':>9s} {'ceiling':>8s} "
              f"{'MFU':>6s}" + (f" {'sheet':>6s}" if sheet else ""))
        for block, r in rows.items():
            print(f"  {block:22s} {r['params'] / 1e6:8.2f}M {r['seconds'] * 1e3:8.0f} {r['tokens_per_s']:9,.0f} "
                  f"{r['vs_pre_ln']:8.2f}x {r['ceiling']:7.2f}x {r['mfu']:6.1%}" +
                  (f" {r['mfu_datasheet']:6.1%}" if sheet else ""))
    return results


# -----------------------------------------------------------------------------
# shaped attention's forms against plain SDPA


def explicit_shaped_attention(q, k, v, alpha, beta, gamma):
    return shaped_attention_matrix(q, k, alpha, beta, gamma).to(v.dtype) @ v


def plain_sdpa(q, k, v, alpha, beta, gamma):
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


ATTENTION = {"plain SDPA": plain_sdpa, "shaped, fused": shaped_attention, "shaped, explicit": explicit_shaped_attention}


def attention_inputs(T, device, dtype):
    B, H, D = max(1, 4096 // T), 12, 64
    g = torch.Generator(device=device).manual_seed(0)
    q, k, v = (torch.randn(B, H, T, D, device=device, dtype=getattr(torch, dtype), generator=g).requires_grad_()
               for _ in range(3))
    alpha, beta, gamma = (torch.ones(H, device=device, requires_grad=True) for _ in range(3))
    return q, k, v, alpha, beta, gamma


@contextmanager
def quiet_stderr():
    """Silence file descriptor 2: the profiler's C++ side logs a line there every time it starts and stops."""
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def peak_memory_of(fn, device):
    """Peak bytes that fn() allocates above what was allocated before it: from the CUDA allocator's
    statistics on a GPU, elsewhere from the profiler's record of every allocation and free."""
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        return torch.cuda.max_memory_allocated(device) - before
    with quiet_stderr(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                                profile_memory=True) as prof:
        fn()
    with tempfile.NamedTemporaryFile(suffix=".json") as trace:
        prof.export_chrome_trace(trace.name)
        events = json.load(open(trace.name))["traceEvents"]
    memory = sorted((e for e in events if e.get("name") == "[memory]"), key=lambda e: e["ts"])
    before = memory[0]["args"]["Total Allocated"] - memory[0]["args"]["Bytes"]
    return max(e["args"]["Total Allocated"] for e in memory) - before


def run_attention(name, T, device, dtype, repeats=3):
    """Best seconds for forward + backward and peak bytes above the inputs, of one attention form."""
    q, k, v, alpha, beta, gamma = inputs = attention_inputs(T, device, dtype)
    grad_out = torch.randn_like(q)
    fn = ATTENTION[name]

    def forward_backward():
        fn(*inputs).backward(grad_out)
        for t in inputs:
            t.grad = None

    forward_backward()  # warm up
    memory = peak_memory_of(forward_backward, device)
    return {"seconds": best_seconds(forward_backward, device, repeats), "memory": memory}


def attention(cfg, device, dtype):
    """Per dtype (float32 and the training dtype), per T, per form: seconds and peak bytes.
    Prints each dtype's table as it is done."""
    results = {}
    for precision in dict.fromkeys(["float32", dtype]):  # both, once each
        print(f"\nshaped attention, forward + backward, {device} {precision}, batch 4096 // T, 12 heads of 64; "
              "best time and peak memory above the inputs")
        print(f"  {'T':>5s}  {'form':24s} {'ms':>9s} {'MiB':>7s} {'time vs SDPA':>13s} {'mem vs SDPA':>12s}")
        results[precision] = {}
        T = TRAIN_T
        while T <= cfg.max_T:
            row = results[precision][T] = {name: run_attention(name, T, device, precision) for name in ATTENTION}
            plain = row["plain SDPA"]
            for name, r in row.items():
                print(f"  {T:5d}  {name:24s} {r['seconds'] * 1e3:9.1f} {r['memory'] / 2**20:7.1f} "
                      f"{r['seconds'] / plain['seconds']:12.2f}x {r['memory'] / plain['memory']:11.2f}x", flush=True)
            T *= 2
    return results


def bench(cfg):
    """Run the parts cfg asks for; returns what they measured, by part."""
    device = pick_device(cfg.device)
    dtype, why = pick_dtype(cfg.dtype, device)
    print(f"{device}, training dtype {dtype}: {why}")
    parts = cfg.parts.split(",")
    runs = {"throughput": throughput, "attention": attention}  # in PARTS's order
    return {part: run(cfg, device, dtype) for part, run in runs.items() if part in parts}


def main(argv):
    bench(parse_config(BenchConfig, argv, "bench.py"))


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
