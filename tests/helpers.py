"""Helpers the test files share."""

import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from hardware import pick_dtype
from processes import Processes, stop_signals

CODE = '''import os


def greet(name, greeting="Hello"):
    """Return a friendly greeting for `name`."""
    if not name:
        raise ValueError("name must not be empty")
    return f"{greeting}, {name}!"


class Counter:
    def __init__(self, start=0):
        self.value = start

    def increment(self, step=1):
        self.value += step
        return self.value
'''
NON_ASCII = "# café, naïve, Straße, 日本語, emoji 🎉 — ✓\nprint('ünïcödé', \"Ωμέγα\")\n"


def write_corpus(root, n_files=12):
    """A tiny package tree of Python files; every fourth one has non-ASCII text. Returns root."""
    for i in range(n_files):
        path = root / f"pkg{i % 3}" / f"mod{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        text = f"# module {i}\n" + CODE.replace("greet", f"greet{i}") * (1 + i % 3)
        path.write_text(text + (NON_ASCII if i % 4 == 0 else ""), encoding="utf-8")
    return root


ROOT = Path(__file__).parent.parent


def run_script(*args, timeout=120, env=None):
    """Run one of the repo's scripts (python SCRIPT ARGS...) from the repo root; capture its output."""
    return subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


def assert_one_line_error(result, *hints, status=None):
    """The script refused its input as every script must: a non-zero exit status (the given one, if given),
    exactly one line on stderr starting with "error: ", no traceback, and each hint in that line."""
    assert result.returncode != 0 if status is None else result.returncode == status, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for hint in hints:
        assert hint in lines[0], lines[0]


def assert_error(capfd, status, code, *hints):
    """One line on stderr, error: ..., on a line of its own (not glued to a progress bar), holding the hints."""
    err = capfd.readouterr().err
    assert code == status, err
    last = err.rstrip("\n").rpartition("\n")[2]
    assert last.startswith("error: ") and "Traceback" not in err, err
    for hint in hints:
        assert hint in last, last
    return last


def snapshot(*folders):
    """Every file under the folders, with its bytes: equal snapshots mean nothing was written."""
    return {path: path.read_bytes() for folder in folders for path in sorted(Path(folder).rglob("*"))
            if path.is_file()}


# a model and a run of train.py that take about a second
TINY_MODEL = dict(n_layer=2, n_head=2, n_embd=32, block_size=32)
TINY_RUN = dict(batch_size=4, max_steps=12, eval_interval=6, eval_windows=8, log_interval=1, checkpoint_interval=6,
                learning_rate=3e-3, device="cpu", dtype="float32", attention="fused")


def as_flags(settings):
    """--key=value flags of a dict of settings."""
    return [f"--{key}={value}" for key, value in settings.items()]


def tiny_flags(dataset, out_dir, **overrides):
    """train.py flags for a run that takes about a second."""
    return as_flags(dict(dataset=dataset, out_dir=out_dir, block="sas_p", **TINY_MODEL, **TINY_RUN) | overrides)


MAINS = {"train.py": "train", "sample.py": "sample", "compare.py": "compare", "bench.py": "bench", "probe.py": "probe",
         "prepare.py": "data.prepare", "gpu_check.py": "gpu_check", "plot_sweep.py": "plot_sweep"}


def exit_status(script, argv):
    """Run a script's main in this process, as its command line runs it (through run_main, or prepare.py's own
    argparse main): the exit status it ends with."""
    import importlib

    from common import run_main

    module = importlib.import_module(MAINS[script])
    try:
        if script == "prepare.py":
            module.main(argv)  # returns when done
            return 0
        run_main(module.main, argv)
    except SystemExit as ended:
        return ended.code
    raise AssertionError(f"{script} {argv} returned without an exit status")


def trains_in_this_process(monkeypatch, script):
    """Make a script that runs train.py as its child (compare.py, gpu_check.py) train in this process instead,
    through train.py's main: the same code, without a fresh interpreter's seconds per run (tests/test_bench_compare.py
    keeps one real child)."""
    monkeypatch.setattr(script, "run_child", lambda argv, **popen: exit_status("train.py", argv[2:]))


class PretendProcesses(Processes):
    """This one process, playing rank `rank` of `world_size` processes: what the loop asks of the processes it does
    alone, with no exchange (no DDP, no collectives), but it agrees to stop only where torchrun's processes would,
    at log and checkpoint steps; agreed_at lists the steps it agreed at. With signal_in_step, the process receives
    signum (a real signal, through train.py's handlers) while it trains that step, counted from 0."""

    def __init__(self, device="cpu", rank=0, world_size=1, signal_in_step=None, signum=signal.SIGINT):
        super().__init__(device)
        self.rank, self.world_size, self.signal_in_step, self.signum = rank, world_size, signal_in_step, signum
        self.steps_done, self.agreed_at = -1, []  # the loop asks once as the run starts, then after every step

    def agree_to_stop(self, stop, waiting_anyway):
        if self.steps_done == self.signal_in_step:
            signal.raise_signal(self.signum)
        self.steps_done += 1
        if self.world_size == 1:
            return super().agree_to_stop(stop, waiting_anyway)
        if waiting_anyway:
            self.agreed_at.append(self.steps_done)
        return waiting_anyway and stop.requested is not None


def use_processes(monkeypatch, procs):
    """Make train.py's main train in procs (a PretendProcesses) instead of joining torchrun's processes."""
    import train

    @contextmanager
    def joined(device, timeout):
        yield procs

    monkeypatch.setattr(train, "joined_processes", joined)


def signal_at(monkeypatch, step, signum=signal.SIGINT):
    """Make train.py's main receive a signal while it trains this step (counted from 0)."""
    use_processes(monkeypatch, PretendProcesses(signal_in_step=step, signum=signum))


def train_signalled(cfg, ckpt, step, signum=signal.SIGINT, **pretend):
    """train.train, as main runs it (its signal handlers installed), receiving a signal while it trains this step."""
    import train

    with stop_signals() as stop:
        return train.train(cfg, ckpt, PretendProcesses(signal_in_step=step, signum=signum, **pretend), stop)


def wait_for(condition, timeout=60):
    """Poll condition() until it holds; fail the test after timeout seconds."""
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.02)


def recording_compile(monkeypatch):
    """torch.compile with a backend that records each graph dynamo hands it and runs it as it is (no code
    generation: fast). Returns the list of graphs."""
    graphs, compile = [], torch.compile

    def recording_backend(graph, example_inputs):
        graphs.append(graph)
        return graph.forward

    torch._dynamo.reset()
    monkeypatch.setattr(torch, "compile", lambda model, **kwargs: compile(model, backend=recording_backend, **kwargs))
    return graphs


def cuda_training_dtype():
    """The precision --dtype=auto trains in on this CUDA GPU: bfloat16 from compute capability 8.0, else float16 (a
    T4, a V100: their bfloat16 is emulated, and --dtype=auto never uses it). The CUDA tests train in it."""
    return pick_dtype("auto", "cuda")[0]
