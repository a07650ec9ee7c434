"""
Check everything that only a CUDA GPU can show, in one command, print a summary, and write it to
results/gpu/<the GPU's name>.json and .md, small files meant to be committed:

    python gpu_check.py

1. cuda tests: the test suite's CUDA tests (python -m pytest -m cuda): fused shaped attention against the
   explicit matrix in every precision the GPU has, float32 gain gradients, 50 float16 steps with the grad
   scaler, resume, a GPU checkpoint sampled on the CPU, torchrun with NCCL;
2. training: train.py for 300 steps of pre_ln and sas_p at the default size: the validation loss must fall;
3. throughput, eager and compiled: bench.py at the paper's shape (18 x 768, T=128), pre_ln, sas and sas_p
   tokens/s and MFU, at a batch sized to the GPU's memory (bench_batch): at batch 16 an H100 waits on kernel
   launches, not on the blocks;
4. attention: shaped attention's time against plain causal SDPA, T = 128 to 4096.
Each part runs on its own: one that fails (an out-of-memory error, a compile error) is reported in the summary
with its error, and the others still run. Exits 1 if a part failed; the speed figures are reported against
the targets, not asserted. With --tiny every part runs at a tiny size on any device (the test suite runs it on
the CPU, where the CUDA tests are skipped).

Expected time, not measured here (no GPU was at hand): about 5 to 7 minutes on an H100, most of it compiling
three 18-layer models; on a T4 (Colab's free GPU, with 2 CPU cores to compile on) about 15 to 25 minutes.
"""

import json
import re
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch

import bench
from common import remedy, run_child, run_main, writable_folder
from configurator import Settings, parse_config, setting
from data import dataset_setting
from errors import CheckpointError
from hardware import device_name, pick_device
from processes import STOP_SIGNALS
from run_folder import read_log

ROOT = Path(__file__).parent


@dataclass
class CheckConfig(Settings):
    tiny: bool = setting(False, "every part at a tiny size, on any device: a check of the check itself")
    device: str = setting("auto", "auto, cuda or cuda:N; with --tiny also cpu")
    dataset: str = setting("stdlib", "the training part's dataset, as train.py takes it")
    out: str = setting("results/gpu", "the folder the results go to, as <the GPU's name>.json and .md", path=True)

    def __post_init__(self):
        super().__post_init__()
        self.dataset = dataset_setting(self.dataset)  # train.py runs in the repository's folder, not this one


# the sizes of each part: the real check, and --tiny's
TRAIN_FLAGS = {False: dict(max_steps=300, eval_interval=100),
               True: dict(max_steps=30, eval_interval=10, n_layer=2, n_head=2, n_embd=32, block_size=32,
                          batch_size=4, eval_windows=8, learning_rate=3e-3)}
BENCH = {False: dict(shapes="paper", steps=6), True: dict(shapes="2x32x2", steps=2, vocab_size=64)}
MAX_T = {False: 4096, True: 128}


def bench_batch(device):
    """Sequences per step in the throughput part: the paper's 128 (its 32 x 4 accumulated) where the GPU's
    memory holds it, else 64 or 32. An estimate, not measured here: 18 x 768 at T=128 keeps roughly 0.1 GB of
    activations per sequence in 16-bit, ~14 GB at 128."""
    if not device.startswith("cuda"):
        return 2
    memory = torch.cuda.get_device_properties(device).total_memory / 2**30
    return 128 if memory >= 40 else 64 if memory >= 20 else 32


def cuda_tests(cfg, device):
    if not device.startswith("cuda"):
        return {"status": "skipped", "summary": "needs a CUDA GPU"}
    with tempfile.TemporaryFile("w+") as output:  # kept, for the summary's last line
        status = run_child([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "tests"], cwd=ROOT, stdout=output,
                           stderr=subprocess.STDOUT)
        output.seek(0)
        printed = output.read()
    if status - 128 in STOP_SIGNALS:  # stopped by a signal: so is the check
        sys.exit(status)
    print(printed[-3000:], flush=True)
    last = printed.strip().splitlines()[-1] if printed.strip() else "no output"
    return {"status": "passed" if status == 0 else "failed", "summary": last}


def training(cfg, device, out):
    """train.py for a few hundred steps of pre_ln and sas_p: the validation loss must fall at every evaluation."""
    runs, lines = {}, []
    for block in ("pre_ln", "sas_p"):
        flags = {"block": block, "device": device, "dataset": cfg.dataset, "out_dir": f"{out}/{block}",
                 "overwrite": True, **TRAIN_FLAGS[cfg.tiny]}
        args = [sys.executable, "train.py", *(f"--{key}={value}" for key, value in flags.items())]
        print(f"\n$ {' '.join(args[1:])}", flush=True)
        status = run_child(args, cwd=ROOT)
        if status - 128 in STOP_SIGNALS:  # stopped by a signal: so is the check
            sys.exit(status)
        val = [row["val_loss"] for row in read_log(Path(out) / block / "log.jsonl") if "val_loss" in row]
        falling = status == 0 and len(val) == 3 and val[0] > val[1] > val[2]
        runs[block] = {"val_loss": val, "falling": falling}
        lines.append(f"{block} val loss {' -> '.join(f'{v:.3f}' for v in val) or '-'}" +
                     ("" if falling else f" (exit status {status}, not falling)"))
    return {"status": "passed" if all(r["falling"] for r in runs.values()) else "failed", "summary": "; ".join(lines),
            "runs": runs}


def throughput(cfg, device, compiled):
    measured = bench.bench(bench.BenchConfig(parts="throughput", blocks="pre_ln,sas,sas_p", device=device,
                                             batch_size=bench_batch(device), compile=compiled,
                                             **BENCH[cfg.tiny]))["throughput"]
    shape, = measured["shapes"].values()
    rows = shape["blocks"]
    sheet = rows["pre_ln"]["mfu_datasheet"]
    summary = (f"batch {bench_batch(device)}: sas {rows['sas']['vs_pre_ln']:.2f}x (target 1.10x), sas_p "
               f"{rows['sas_p']['vs_pre_ln']:.2f}x (target 1.18x) pre_ln's tokens/s; pre_ln MFU "
               f"{rows['pre_ln']['mfu']:.0%} of the measured peak" +
               (f", {sheet:.0%} of the data sheet's" if sheet else "") + " (target 40%)")
    return {"status": "passed", "summary": summary, "measured": measured}


def attention(cfg, device):
    measured = bench.bench(bench.BenchConfig(parts="attention", device=device, max_T=MAX_T[cfg.tiny]))["attention"]
    lines = []
    for dtype, by_T in measured.items():
        ratios = []
        for T, result in by_T.items():  # each form on the kernel training picks for it at this T
            shaped, plain = (result["forms"][f"{result['auto'][form]}, {form}"]["seconds"] for form in ("shaped", "plain"))
            ratios.append(f"T={T} {shaped / plain:.2f}x")
        lines.append(f"{dtype}: {', '.join(ratios)}")
    return {"status": "passed", "summary": "shaped vs plain, forward + backward time (target <= 1.2x): " +
            "; ".join(lines), "measured": measured}


def run_part(name, part, *args):
    """One part, timed; a part that raises is reported as failed with its error, and the check goes on."""
    print(f"\n== {name}", flush=True)
    start = time.perf_counter()
    try:
        result = part(*args)
    except Exception as e:  # an out-of-memory error, a compile error, a bug: reported, and the next part runs
        traceback.print_exc()
        result = {"status": "failed", "summary": f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}"}
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return {**result, "seconds": round(time.perf_counter() - start, 1)}


def results_path(out, name):
    """results/gpu/<the device's name, in lower case, with dashes>: nvidia-h100-80gb-hbm3."""
    return Path(out) / re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def write_results(path, report):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    lines = [f"# GPU check: {report['device']}", "",
             f"torch {report['torch']}, CUDA {report['cuda']}; `python gpu_check.py{' --tiny' if report['tiny'] else ''}`"
             f", {report['seconds'] / 60:.1f} minutes", "", "| part | status | result | seconds |", "|---|---|---|---:|"]
    lines += [f"| {name} | {r['status']} | {r['summary']} | {r['seconds']:.0f} |" for name, r in report["parts"].items()]
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main(argv):
    cfg = parse_config(CheckConfig, argv, "gpu_check.py")
    if not cfg.tiny and not torch.cuda.is_available():
        sys.exit("error: no CUDA GPU here (torch.cuda.is_available() is False); see README's GPU section "
                 "(python gpu_check.py --tiny checks the check itself on any device)")
    device = pick_device(cfg.device)
    writable_folder(cfg.out, "--out")  # before the work, not after it
    start = time.perf_counter()
    parts = {}
    parts["cuda tests"] = run_part("cuda tests", cuda_tests, cfg, device)
    with tempfile.TemporaryDirectory() as out:
        parts["training"] = run_part("training", training, cfg, device, out)
    parts["throughput, eager"] = run_part("throughput, eager", throughput, cfg, device, False)
    parts["throughput, compiled"] = run_part("throughput, compiled", throughput, cfg, device, True)
    parts["attention"] = run_part("attention", attention, cfg, device)
    name = device_name(device)
    report = {"device": name, "torch": torch.__version__, "cuda": torch.version.cuda, "tiny": cfg.tiny,
              "seconds": round(time.perf_counter() - start, 1), "parts": parts}
    path = results_path(cfg.out, name)
    print(f"\nGPU check: {name}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"{report['seconds'] / 60:.1f} minutes")
    for part, result in parts.items():  # the summary first: a failed write below cannot hide it
        status = "FAILED" if result["status"] == "failed" else result["status"]
        print(f"  {part}: {status}: {result['summary']}")
    try:
        write_results(path, report)
    except OSError as e:  # (the folder was writable when the check started)
        raise CheckpointError(f"could not write the results to {path}.json and .md ({e.strerror}); the summary above "
                              f"is what they hold: {remedy(e, 'pick another --out')}") from None
    print(f"written to {path}.json and .md")
    return 1 if any(result["status"] == "failed" for result in parts.values()) else 0


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
