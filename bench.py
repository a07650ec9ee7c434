"""
Measure what the simplifications buy, side by side in one process, as ratios.

    python bench.py                          # everything, on the device train.py would pick
    python bench.py --parts=throughput --shapes=paper --blocks=pre_ln,sas,sas_p
    python bench.py --parts=attention        # shaped attention against plain attention, on both kernels
    python bench.py --parts=profile --shapes=12x128x4 --blocks=pre_ln,sas_p   # where a step's time goes

Three parts (the first two by default):
  throughput  training steps/s of every block (train.py's own step: forward, backward, clip, AdamW), relative
              to pre_ln, the speed-up its matmul FLOPs allow, and model-FLOPs utilisation against this
              machine's measured dense matmul rate; every block is timed in turns with pre_ln, step by step,
              so that a machine whose speed drifts slows both alike, each on the attention kernel train.py
              would pick for it;
  attention   shaped attention (alpha I + beta A - gamma C) v as the model computes it
              (blocks.parts.shaped_attention: SDPA plus a running mean on the fused kernel, the official
              code's T x T matrix on the explicit one) against plain causal attention, on both kernels
              (hardware.pick_attention): forward and backward, time and peak memory, T = 128 ... max_T, in
              float32 and in the training dtype;
  profile     where one training step of each block spends its time: torch.profiler's operators by
              time spent in them, grouped (matmuls, attention, the shaped sum, norms, cross-entropy, ...);
              on a CUDA GPU the time their kernels ran on the device, elsewhere the CPU's.
Nothing here asserts a target: it prints what it measured, and bench() returns it.
"""

import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from blocks import BLOCKS
from blocks.parts import causal_attention, shaped_attention
from common import lower_if_out_of_memory, run_main
from configurator import Settings, parse_config, positive, setting
from errors import ConfigError
from hardware import (ATTENTION_KERNELS, EXPLICIT_MEMORY, autocast, datasheet_flops, device_name, measure_matmul_flops,
                      pick_attention, pick_device, pick_dtype, set_up_device, synchronize)
from model import GPTConfig, has_shaped_attention
from processes import Processes
from settings import TrainConfig
from train import start_or_resume, train_step  # the step training runs, timed as it is

TRAIN_T = 128  # the sequence length the paper trains at: the throughput part's, the attention part's shortest
SHAPES = {  # n_layer, n_embd, n_head
    "default": (4, 256, 4),  # train.py's default model
    "paper": (18, 768, 12),  # the paper's CodeParrot model
}
PARTS = ("throughput", "attention", "profile")


@dataclass
class BenchConfig(Settings):
    parts: str = setting("throughput,attention", f"which measurements, comma-separated: {', '.join(PARTS)}",
                         choices=PARTS, each=True)
    shapes: str = setting("default,paper", f"model shapes to time: {', '.join(SHAPES)}, or n_layer x n_embd x n_head "
                                           "such as 12x128x4")
    blocks: str = setting(",".join(BLOCKS), "blocks to time (pre_ln is always included: the ratios are to it)",
                          choices=BLOCKS, each=True)
    batch_size: int = setting(16, "sequences per step in the throughput part", check=positive)
    vocab_size: int = setting(4097, "vocabulary (4097: our stdlib BPE; the paper's tokenizer has ~50K)", check=positive)
    steps: int = setting(6, "timed training steps per block, each in turn with one of pre_ln", check=positive)
    attention: str = setting("auto", "the attention kernel of the throughput part, as in train.py",
                             choices=["auto", *ATTENTION_KERNELS])
    compile: bool = setting(False, "torch.compile every model first")
    max_T: int = setting(4096, f"longest sequence in the attention part: a power of two, at least {TRAIN_T}")
    device: str = setting("auto", "auto, cpu, cuda, cuda:N or mps")
    dtype: str = setting("auto", "as in train.py: auto picks bfloat16 where supported",
                         choices=["auto", "float32", "bfloat16", "float16"])
    report: str = setting("", "a folder to keep the run in: bench.txt (what it printed) and bench.json (the numbers); "
                              "empty: print only")

    def __post_init__(self):
        super().__post_init__()
        if self.max_T < TRAIN_T or self.max_T & (self.max_T - 1):  # a power of two has a single bit set
            raise ConfigError(f"--max_T={self.max_T}: must be a power of two, at least {TRAIN_T}")
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


def training_step(block, shape, cfg, device, dtype):
    """A function that runs one of train.py's training steps (train.train_step: forward, backward, clip, AdamW, and
    in float16 the grad scaler) on a fresh model of this block, with the attention kernel train.py would pick for
    it, and the model."""
    n_layer, n_embd, n_head = parse_shape(shape)
    settings = TrainConfig(block=block, n_layer=n_layer, n_embd=n_embd, n_head=n_head, block_size=TRAIN_T,
                           batch_size=cfg.batch_size)
    kernel, _ = pick_attention(cfg.attention, device, dtype, (cfg.batch_size, n_head, TRAIN_T, n_embd // n_head,
                                                              n_layer), shaped=has_shaped_attention(block))
    state = start_or_resume(settings, None, cfg.vocab_size, device, dtype, kernel)
    if cfg.compile:
        # every model its own fresh compile: dynamo compiles a function again for each new model, but
        # after 8 times (its recompile limit) it silently runs the rest eager
        torch._dynamo.reset()
    model = torch.compile(state.model) if cfg.compile else state.model
    x = torch.randint(0, cfg.vocab_size, (cfg.batch_size, TRAIN_T), device=device)
    ctx, procs = autocast(torch.device(device).type, dtype), Processes(device)
    return (lambda: train_step(model, state, [(x, x)], settings, ctx, procs)), state


def time_in_turns(steps, device, turns):
    """Seconds of every call of each step function, timed in turns: one call of each, `turns` times, the order
    reversed every turn, after two untimed calls each. A machine whose speed drifts (a busy neighbour, a
    clock) then slows every function alike, and each turn compares calls made side by side."""
    for step in steps:
        step(), step()
    times = [[] for _ in steps]
    for turn in range(turns):
        for i in (range(len(steps)) if turn % 2 == 0 else reversed(range(len(steps)))):
            times[i].append(best_seconds(steps[i], device, repeats=1))
    return times


def throughput(cfg, device, dtype):
    """Per shape, per block: params, seconds per step, tokens/s, speed relative to pre_ln, the speed-up its
    FLOPs allow, and MFU. Each block is timed in turns with one pre_ln model (time_in_turns): its speed
    relative to pre_ln is the median of the turns' ratios. Prints each shape's table as it is done."""
    peak, sheet = measure_matmul_flops(device, dtype), datasheet_flops(device, dtype)
    print(f"\nthroughput: {device_name(device)} {dtype}, batch {cfg.batch_size} x T={TRAIN_T}, vocab {cfg.vocab_size}; "
          f"measured dense matmul peak {peak / 1e12:.2f} TFLOP/s" +
          (f", data sheet {sheet / 1e12:.0f} TFLOP/s" if sheet else "") + (", compiled" if cfg.compile else ""))
    others = [b for b in cfg.blocks.split(",") if b != "pre_ln"]
    results = {"matmul_flops": peak, "datasheet_flops": sheet, "shapes": {}}
    for shape in cfg.shapes.split(","):
        sizes, first, seconds, ratios = time_in_turns_with_pre_ln(shape, others, cfg, device, dtype)
        rows = {}
        for block in ["pre_ln", *others]:
            step_seconds = statistics.median(seconds[block])
            tokens_per_s = cfg.batch_size * TRAIN_T / step_seconds
            params, flops_per_token, kernel = sizes[block]
            rows[block] = {"params": params, "attention": kernel, "seconds": step_seconds, "tokens_per_s": tokens_per_s,
                           "vs_pre_ln": statistics.median(ratios[block]),
                           # the speed-up if time were only the FLOPs: what removing matmuls can buy at most
                           "ceiling": sizes["pre_ln"][1] / flops_per_token,
                           "mfu": flops_per_token * tokens_per_s / peak,
                           "mfu_datasheet": flops_per_token * tokens_per_s / sheet if sheet else None,
                           "first_step_seconds": first[block]}
        results["shapes"][shape] = {"blocks": rows}
        print(f"\n{shape} shape {parse_shape(shape)} (n_layer, n_embd, n_head), each block on the attention kernel "
              f"train.py would pick for it:")
        print(f"  {'block':22s} {'params':>9s} {'kernel':>9s} {'ms/step':>8s} {'tokens/s':>9s} {'vs pre_ln':>9s} "
              f"{'ceiling':>8s} {'MFU':>6s}" + (f" {'sheet':>6s}" if sheet else "") +
              (f" {'compile s':>9s}" if cfg.compile else ""))
        for block, r in rows.items():
            print(f"  {block:22s} {r['params'] / 1e6:8.2f}M {r['attention']:>9s} {r['seconds'] * 1e3:8.0f} "
                  f"{r['tokens_per_s']:9,.0f} "
                  f"{r['vs_pre_ln']:8.2f}x {r['ceiling']:7.2f}x {r['mfu']:6.1%}" +
                  (f" {r['mfu_datasheet']:6.1%}" if sheet else "") +
                  (f" {r['first_step_seconds']:9.1f}" if cfg.compile else ""))  # the first step compiles
    print("\nms/step and tokens/s: a block's median step. vs pre_ln: the median over turns of pre_ln's step time\n"
          "over the block's in the same turn, which a machine whose speed drifts slows alike: the comparison to read")
    return results


def time_in_turns_with_pre_ln(shape, others, cfg, device, dtype):
    """Each block's (params, FLOPs per token, attention kernel), its first step's seconds (with --compile:
    compiling, mostly), its seconds per step timed in turns with one pre_ln model, and each turn's ratio of
    pre_ln's time to the block's."""
    base_step, base = training_step("pre_ln", shape, cfg, device, dtype)
    sizes = {"pre_ln": (base.model.num_params(), base.model.flops_per_token(), base.attention)}
    first = {"pre_ln": best_seconds(base_step, device, repeats=1)}
    seconds, ratios = {"pre_ln": []}, {"pre_ln": [1.0]}
    if not others:
        seconds["pre_ln"] = time_in_turns([base_step], device, cfg.steps)[0]
    for block in others:
        step, state = training_step(block, shape, cfg, device, dtype)
        sizes[block] = (state.model.num_params(), state.model.flops_per_token(), state.attention)
        first[block] = best_seconds(step, device, repeats=1)
        base_times, seconds[block] = time_in_turns([base_step, step], device, cfg.steps)
        seconds["pre_ln"] += base_times
        ratios[block] = [base / other for base, other in zip(base_times, seconds[block])]
        del step, state
    return sizes, first, seconds, ratios


# -----------------------------------------------------------------------------
# shaped attention against plain attention, on both kernels


def plain_attention(q, k, v, alpha, beta, gamma, kernel):
    return causal_attention(q, k, v, kernel)


FORMS = {"plain": plain_attention, "shaped": shaped_attention}  # as the blocks compute them, on either kernel
HEADS, HEAD_SIZE = 12, 64  # the paper's attention


def attention_inputs(T, device, dtype):
    B = max(1, 4096 // T)
    g = torch.Generator(device=device).manual_seed(0)
    q, k, v = (torch.randn(B, HEADS, T, HEAD_SIZE, device=device, dtype=getattr(torch, dtype), generator=g)
               .requires_grad_() for _ in range(3))
    alpha, beta, gamma = (torch.ones(HEADS, device=device, requires_grad=True) for _ in range(3))
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


def forward_backward(form, kernel, inputs, grad_out):
    """A function that runs one forward and backward pass of an attention form on a kernel."""
    def run():
        form(*inputs, kernel=kernel).backward(grad_out)
        for t in inputs:
            t.grad = None
    return run


def attention_at(T, device, dtype, turns=3):
    """Forward + backward of plain and shaped attention on each kernel: median seconds of calls timed in turns,
    and peak bytes above the inputs. The explicit kernel only where one layer's T x T matrices fit in
    pick_attention's limit. Also which kernel --attention=auto would pick for each form, in a model of the
    paper's depth."""
    inputs = attention_inputs(T, device, dtype)
    grad_out = torch.randn_like(inputs[0])
    batch = inputs[0].size(0)
    kernels = [kernel for kernel in ATTENTION_KERNELS
               if kernel == "fused" or batch * HEADS * T * T * 4 <= EXPLICIT_MEMORY]
    runs = {(kernel, name): forward_backward(form, kernel, inputs, grad_out) for kernel in kernels
            for name, form in FORMS.items()}
    times = time_in_turns(list(runs.values()), device, turns)
    rows = {key: {"seconds": statistics.median(t), "memory": peak_memory_of(run, device)}
            for (key, run), t in zip(runs.items(), times)}
    shape = (batch, HEADS, T, HEAD_SIZE, SHAPES["paper"][0])
    auto = {form: pick_attention("auto", device, dtype, shape, shaped=form == "shaped")[0] for form in FORMS}
    return auto, rows


def attention(cfg, device, dtype):
    """Per dtype (float32 and the training dtype), per T: attention_at's measurements, with each form's time and
    memory relative to plain attention on the kernel training would pick for it. Prints each dtype's table."""
    results = {}
    for precision in dict.fromkeys(["float32", dtype]):  # both, once each
        print(f"\nattention, forward + backward, {device} {precision}, batch 4096 // T, {HEADS} heads of {HEAD_SIZE}; "
              "median time, peak memory above the inputs; * = the kernel training picks for the form (auto, 18 "
              "layers), and vs plain: against plain attention on its own pick")
        print(f"  {'T':>5s}  {'kernel':9s} {'form':7s} {'ms':>9s} {'MiB':>7s} {'time vs plain':>14s} "
              f"{'mem vs plain':>13s}")
        results[precision] = {}
        T = TRAIN_T
        while T <= cfg.max_T:
            with lower_if_out_of_memory(f"attention at T={T} does not fit on {device}" + (
                    f"; the shorter ones are above: lower --max_T to {T // 2}" if T > TRAIN_T else "")):
                auto, rows = attention_at(T, device, precision)
            forms = {f"{kernel}, {form}": r for (kernel, form), r in rows.items()}
            results[precision][T] = {"auto": auto, "forms": forms}
            plain = rows[(auto["plain"], "plain")]
            for (kernel, form), r in rows.items():
                print(f"  {T:5d}  {kernel + ('*' if kernel == auto[form] else ''):9s} {form:7s} "
                      f"{r['seconds'] * 1e3:9.1f} {r['memory'] / 2**20:7.1f} {r['seconds'] / plain['seconds']:13.2f}x "
                      f"{r['memory'] / plain['memory']:12.2f}x", flush=True)
            T *= 2
    return results


# -----------------------------------------------------------------------------
# where a training step's time goes

OPERATOR_GROUPS = [  # (group, words in torch's operator names), the first that matches wins
    ("matmul", ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul")),
    ("attention (SDPA)", ("scaled_dot_product", "_softmax", "safe_softmax")),
    ("cross-entropy", ("log_softmax", "nll_loss")),
    ("running mean (cumsum, flip)", ("cumsum", "flip")),
    ("optimizer", ("adam",)),
    ("elementwise and reductions", ("mul", "add", "sub", "div", "pow", "sqrt", "neg", "sum", "mean", "clamp",
                                    "threshold", "relu", "norm", "copy", "fill", "cat", "zero")),
]


def operator_group(name):
    return next((group for group, words in OPERATOR_GROUPS if any(word in name for word in words)), "other")


def profiler_activities(device):
    """What torch.profiler records: the operators on the CPU, and on a CUDA GPU the kernels they launch."""
    return [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA]
                                                    if device.startswith("cuda") else [])


def self_time(event, device):
    """An operator's own time, in microseconds: on a CUDA GPU the time the kernels it launched ran on the device
    (its CPU time is only the launch), elsewhere its CPU time."""
    return event.self_device_time_total if device.startswith("cuda") else event.self_cpu_time_total


def profile(cfg, device, dtype):
    """Per shape, per block: milliseconds per training step in each group of operators (self time, so that a
    call is counted once: device time on a GPU), from torch.profiler over cfg.steps steps after two untimed
    ones. Prints a table."""
    results = {}
    for shape in cfg.shapes.split(","):
        results[shape] = {block: profile_block(block, shape, cfg, device, dtype)
                          for block in ["pre_ln"] + [b for b in cfg.blocks.split(",") if b != "pre_ln"]}
        groups = next(iter(results[shape].values()))
        print(f"\nprofile, {shape} shape {parse_shape(shape)}, {device} {dtype}, each block on the attention kernel "
              f"train.py would pick for it: ms per training step by operator group (self "
              f"{'device' if device.startswith('cuda') else 'CPU'} time, under the profiler)")
        print(f"  {'group':30s}" + "".join(f"{block:>14s}" for block in results[shape]))
        for group in groups:
            print(f"  {group:30s}" + "".join(f"{r[group]:14.1f}" for r in results[shape].values()))
        print(f"  {'total':30s}" + "".join(f"{sum(r.values()):14.1f}" for r in results[shape].values()))
    return results


def profile_block(block, shape, cfg, device, dtype):
    """Milliseconds per training step of one block in each group of operators."""
    step, _ = training_step(block, shape, cfg, device, dtype)
    step(), step()
    for _ in range(2):  # the first profile of a process also times the profiler's own start: drop it
        with quiet_stderr(), torch.profiler.profile(activities=profiler_activities(device)) as prof:
            for _ in range(cfg.steps):
                step()
    groups = dict.fromkeys([group for group, _ in OPERATOR_GROUPS] + ["other"], 0.0)
    for event in prof.key_averages():
        if event.device_type == torch.autograd.DeviceType.CPU:  # operators; their kernels count in them
            groups[operator_group(event.key)] += self_time(event, device) / 1e3 / cfg.steps
    return groups


def bench(cfg):
    """Run the parts cfg asks for; returns what they measured, by part."""
    device = pick_device(cfg.device)
    set_up_device(device)
    dtype, why = pick_dtype(cfg.dtype, device)
    print(f"{device}, training dtype {dtype}: {why}")
    parts = cfg.parts.split(",")
    runs = {"throughput": throughput, "attention": attention, "profile": profile}  # in PARTS's order
    return {part: run(cfg, device, dtype) for part, run in runs.items() if part in parts}


class Tee(io.StringIO):
    """Writes to out, and keeps a copy of what it wrote."""

    def __init__(self, out):
        super().__init__()
        self.out = out

    def write(self, text):
        self.out.write(text)
        return super().write(text)


def main(argv):
    cfg = parse_config(BenchConfig, argv, "bench.py")
    if not cfg.report:
        bench(cfg)
        return 0
    folder = Path(cfg.report)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create --report={folder}: {e.strerror}") from None
    with contextlib.redirect_stdout(Tee(sys.stdout)) as printed:
        results = bench(cfg)
    (folder / "bench.txt").write_text(printed.getvalue().lstrip("\n"))
    (folder / "bench.json").write_text(json.dumps({"settings": asdict(cfg), "results": results}, indent=1) + "\n")
    print(f"wrote {folder / 'bench.txt'} and {folder / 'bench.json'}")
    return 0


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
