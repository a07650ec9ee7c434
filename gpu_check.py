"""
Check everything that only a CUDA GPU can show, in one command of a few minutes, and print a summary:

    python gpu_check.py

1. the test suite's CUDA tests (python -m pytest -m cuda): fused shaped attention against the explicit
   matrix in float32, bfloat16 and float16, float32 gain gradients, 50 float16 steps with the grad
   scaler, resume, a GPU checkpoint sampled on the CPU, torchrun with NCCL;
2. train.py for 300 steps of pre_ln and sas_p at the default size: the validation loss must fall;
3. bench.py at the paper's shape (18 x 768, T=128): pre_ln, sas and sas_p tokens/s, eager and compiled,
   with MFU; and shaped attention's time against plain causal SDPA from T=128 to 4096.
Exits 1 if a test or a run failed; the speed figures are reported against the targets, not asserted.
"""

import subprocess
import sys
import tempfile
from pathlib import Path

import torch

import bench
from checkpoint import read_log

ROOT = Path(__file__).parent


def run(*args):
    """Run a command in the repository, show its output as it comes; True if it succeeded."""
    print(f"\n$ {' '.join(args)}", flush=True)
    return subprocess.run([sys.executable, *args], cwd=ROOT).returncode == 0


def check_training(out):
    """300 steps of pre_ln and sas_p; {block: (val losses, ok)}."""
    runs = {}
    for block in ("pre_ln", "sas_p"):
        ok = run("train.py", f"--block={block}", "--max_steps=300", "--eval_interval=100", f"--out_dir={out}/{block}")
        val = [row["val_loss"] for row in read_log(Path(out) / block / "log.jsonl") if "val_loss" in row]
        runs[block] = (val, ok and len(val) == 3 and val[0] > val[1] > val[2])
    return runs


def main():
    if not torch.cuda.is_available():
        sys.exit("error: no CUDA GPU here (torch.cuda.is_available() is False); see README's GPU section")
    tests_ok = run("-m", "pytest", "-q", "-m", "cuda", "tests")
    with tempfile.TemporaryDirectory() as out:
        training = check_training(out)
    speed = {compiled: bench.bench(bench.BenchConfig(parts="throughput", shapes="paper", blocks="pre_ln,sas,sas_p",
                                                     steps=4 if compiled else 6, compile=compiled))["throughput"]
             for compiled in (False, True)}
    attention = bench.bench(bench.BenchConfig(parts="attention"))["attention"]

    print(f"\nGPU check: {torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    print(f"  CUDA tests: {'passed' if tests_ok else 'FAILED'}")
    for block, (val, ok) in training.items():
        print(f"  train.py {block}, 300 steps: val loss {' -> '.join(f'{v:.3f}' for v in val)} "
              f"{'(falling)' if ok else 'FAILED'}")
    for compiled, result in speed.items():
        rows = result["shapes"]["paper"]["blocks"]
        sheet = rows["pre_ln"]["mfu_datasheet"]
        print(f"  paper shape, {'compiled' if compiled else 'eager'}: sas {rows['sas']['vs_pre_ln']:.2f}x "
              f"(target 1.10x), sas_p {rows['sas_p']['vs_pre_ln']:.2f}x (target 1.18x) pre_ln's tokens/s; "
              f"pre_ln MFU {rows['pre_ln']['mfu']:.0%} of the measured peak" +
              (f", {sheet:.0%} of the data sheet's" if sheet else "") + " (target 40%)")
    for dtype, by_T in attention.items():
        ratios = []
        for T, measured in by_T.items():  # on the kernel training uses at this T
            shaped, plain = (measured["forms"][f"{measured['auto']}, {form}"]["seconds"] for form in ("shaped", "plain"))
            ratios.append(f"T={T} {shaped / plain:.2f}x")
        print(f"  shaped attention vs plain, {dtype}, forward + backward time: {', '.join(ratios)} (target <= 1.2x)")
    return 0 if tests_ok and all(ok for _, ok in training.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
