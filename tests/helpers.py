"""Helpers the test files share."""

import signal
import subprocess
import sys
import time
from pathlib import Path

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


def snapshot(*folders):
    """Every file under the folders, with its bytes: equal snapshots mean nothing was written."""
    return {path: path.read_bytes() for folder in folders for path in sorted(Path(folder).rglob("*"))
            if path.is_file()}


def tiny_flags(dataset, out_dir, **overrides):
    """train.py flags for a run that takes about a second."""
    flags = dict(dataset=dataset, out_dir=out_dir, block="sas_p", n_layer=2, n_head=2, n_embd=32, block_size=32,
                 batch_size=4, max_steps=12, eval_interval=6, eval_windows=8, log_interval=1,
                 checkpoint_interval=6, learning_rate=3e-3, device="cpu", dtype="float32", attention="fused")
    return [f"--{key}={value}" for key, value in {**flags, **overrides}.items()]


def signal_at(monkeypatch, step, signum=signal.SIGINT):
    """Make train.py's run receive a signal while it trains this step."""
    import train

    schedule = train.learning_rate_at

    def learning_rate_at(at, cfg):
        if at == step:
            signal.raise_signal(signum)
        return schedule(at, cfg)

    monkeypatch.setattr(train, "learning_rate_at", learning_rate_at)


def wait_for(condition, timeout=60):
    """Poll condition() until it holds; fail the test after timeout seconds."""
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.02)
