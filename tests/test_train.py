"""train.py and sample.py at tiny sizes: the default code path, resume, kills, NaNs, bad input, DDP."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import sample
import train
from configurator import ConfigError, parse_config
from data.prepare import prepare
from helpers import write_corpus
from train import CheckpointError, TrainConfig, load_checkpoint, read_log

ROOT = Path(__file__).parent.parent


def tiny_flags(dataset, out_dir, **overrides):
    """Command-line flags for a run that takes about a second."""
    flags = dict(dataset=dataset, out_dir=out_dir, block="sas_p", n_layer=2, n_head=2, n_embd=32, block_size=32,
                 batch_size=4, max_steps=12, eval_interval=6, eval_windows=8, log_interval=1,
                 checkpoint_interval=6, learning_rate=3e-3, device="cpu", dtype="float32")
    return [f"--{key}={value}" for key, value in {**flags, **overrides}.items()]


def tiny_config(dataset, out_dir, **overrides):
    return parse_config(TrainConfig, tiny_flags(dataset, out_dir, **overrides), "train.py")


def run_script(*args, timeout=120):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(result, *hints):
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for hint in hints:
        assert hint in lines[0]


def test_training_writes_checkpoint_and_log_and_loss_falls(tiny_dataset, tmp_path):
    final = train.train(*tiny_config(tiny_dataset, tmp_path, max_steps=60, eval_interval=20))
    rows = read_log(tmp_path / "log.jsonl")
    assert [row["step"] for row in rows] == list(range(1, 61))
    assert {"step", "lr", "train_loss", "tokens_per_sec", "mfu", "time"} <= set(rows[0])
    val = [row["val_loss"] for row in rows if "val_loss" in row]
    assert len(val) == 3 and val[0] > val[1] > val[2] and val[2] < val[0] - 0.5
    assert rows[-1]["train_loss"] < rows[0]["train_loss"] - 1.0
    assert final["val_loss"] == val[-1]
    ckpt = load_checkpoint(tmp_path / "ckpt.pt")
    assert ckpt["step"] == 60 and ckpt["config"]["block"] == "sas_p"


def test_learning_rate_schedule():
    cfg = TrainConfig(learning_rate=1e-3, max_steps=100, warmup_frac=0.05)
    lrs = [train.learning_rate_at(step, cfg) for step in range(100)]
    assert 0 < lrs[0] < lrs[4] < 1e-3  # warmup, not zero at step 0
    assert lrs[5] == pytest.approx(1e-3)  # peak
    assert all(a > b for a, b in zip(lrs[5:], lrs[6:]))  # linear decay
    assert lrs[-1] == pytest.approx(1e-3 / 95)  # towards 0


def stop_at(monkeypatch, stop_step):
    """Make the run receive a Ctrl-C (SIGINT) while it trains step stop_step."""
    schedule = train.learning_rate_at

    def learning_rate_at(step, cfg):
        if step == stop_step:
            os.kill(os.getpid(), signal.SIGINT)
        return schedule(step, cfg)

    monkeypatch.setattr(train, "learning_rate_at", learning_rate_at)


def test_resume_equals_uninterrupted_training(tiny_dataset, tmp_path, monkeypatch):
    """12 steps straight, against 12 steps stopped by Ctrl-C after step 5 and resumed: bit-exact on CPU."""
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    train.train(*tiny_config(tiny_dataset, straight, dtype="bfloat16"))

    with monkeypatch.context() as patch:
        stop_at(patch, 4)
        with pytest.raises(SystemExit) as stopped:
            train.train(*tiny_config(tiny_dataset, interrupted, dtype="bfloat16"))
    assert stopped.value.code == 130
    assert load_checkpoint(interrupted / "ckpt.pt")["step"] == 5  # Ctrl-C finishes the step, then saves
    train.train(*tiny_config(tiny_dataset, interrupted, dtype="bfloat16", resume=True))

    def without_timings(rows):
        return [{k: v for k, v in row.items() if k not in ("time", "tokens_per_sec", "mfu")} for row in rows]

    assert without_timings(read_log(straight / "log.jsonl")) == without_timings(read_log(interrupted / "log.jsonl"))
    a, b = (load_checkpoint(d / "ckpt.pt") for d in (straight, interrupted))
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name


def test_sigkill_leaves_a_loadable_checkpoint(tiny_dataset, tmp_path):
    args = ["train.py", *tiny_flags(tiny_dataset, tmp_path, max_steps=100_000, checkpoint_interval=1)]
    for kill_after in (0.5, 1.3):  # twice: the second kill lands on a run resumed from the first
        process = subprocess.Popen([sys.executable, *args] + (["--resume"] if kill_after > 1 else []),
                                   cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while not (tmp_path / "ckpt.pt").exists() and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(kill_after)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert load_checkpoint(tmp_path / "ckpt.pt")["step"] >= 1
    resumed = run_script(*args[:-1], "--max_steps=" + str(load_checkpoint(tmp_path / "ckpt.pt")["step"] + 2),
                         "--resume", "--checkpoint_interval=1")
    assert resumed.returncode == 0, resumed.stderr


def test_nonfinite_loss_stops_and_keeps_the_last_good_checkpoint(tiny_dataset, tmp_path, monkeypatch):
    forward = train.GPT.forward
    calls = {"n": 0}

    def poisoned_forward(self, idx, targets=None):
        logits, loss = forward(self, idx, targets)
        calls["n"] += 1
        if self.training and calls["n"] == 9:  # the 9th training step
            loss = loss * float("nan")
        return logits, loss

    monkeypatch.setattr(train.GPT, "forward", poisoned_forward)
    with pytest.raises(FloatingPointError, match="sas_p: loss is nan at step 8"):
        train.train(*tiny_config(tiny_dataset, tmp_path, eval_interval=100))
    assert load_checkpoint(tmp_path / "ckpt.pt")["step"] == 6

    calls["n"] = 0
    final = train.train(*tiny_config(tiny_dataset, tmp_path / "skip", eval_interval=100, on_nonfinite="skip"))
    assert final["step"] == 12 and all(row["train_loss"] == row["train_loss"] for row in read_log(
        tmp_path / "skip" / "log.jsonl"))


@pytest.mark.parametrize("args, hints", [
    (["--blok=sas"], ["unknown setting 'blok'", "did you mean --block?"]),
    (["--block=sasp"], ["block='sasp' is not valid", "pre_ln", "sas_p_nonorm"]),
    (["--max_steps=ten"], ["--max_steps=ten: expected an integer"]),
    (["--dtype=fp8"], ["dtype='fp8' is not valid", "bfloat16"]),
    (["--device=gpu"], ["--device=gpu is not a device"]),
    (["config/nonexistent.py"], ["cannot read config file"]),
    (["--n_embd=30", "--n_head=4"], ["n_embd=30 must be divisible by n_head=4"]),
    (["--batch_size=0"], ["batch_size must be a positive integer"]),
])
def test_bad_flags_are_refused_in_one_line(args, hints, tmp_path):
    assert_one_line_error(run_script("train.py", *args, f"--out_dir={tmp_path}"), *hints)
    assert not any(tmp_path.iterdir())


def test_help_lists_every_setting():
    result = run_script("train.py", "--help")
    assert result.returncode == 0
    for field in TrainConfig.__dataclass_fields__:
        assert f"--{field}=" in result.stdout


def test_config_file_sees_and_loses_to_flags(tmp_path):
    config_file = tmp_path / "preset.py"
    config_file.write_text("n_layer = 9\nlearning_rate = 3e-4 if block == 'sas' else 1e-3\n")
    cfg, explicit = parse_config(TrainConfig, [str(config_file), "--block=sas", "--n_layer=4"], "train.py")
    assert (cfg.n_layer, cfg.learning_rate, cfg.block) == (4, 3e-4, "sas")
    assert explicit == {"n_layer", "learning_rate", "block"}
    config_file.write_text("n_layers = 9\n")
    with pytest.raises(ConfigError, match="unknown setting 'n_layers'"):
        parse_config(TrainConfig, [str(config_file)], "train.py")


def test_paper_config_loads():
    cfg, _ = parse_config(TrainConfig, ["config/paper.py", "--block=no_attn_skip"], "train.py")
    assert (cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.batch_size * cfg.grad_accum) == (18, 768, 12, 128)
    assert cfg.learning_rate == 3e-4
    assert parse_config(TrainConfig, ["config/paper.py", "--block=sas_p"], "train.py")[0].learning_rate == 1e-3


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def finished_run(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("finished")
    train.train(*tiny_config(tiny_dataset, out))
    return out


@pytest.mark.parametrize("args, hints", [
    (["--n_layer=3", "--resume"], ["trained with n_layer=2", "not 3"]),
    ([], ["already holds a checkpoint", "--resume", "--overwrite"]),
])
def test_refusals_leave_the_run_untouched(tiny_dataset, finished_run, args, hints):
    before = snapshot(finished_run)
    result = run_script("train.py", *tiny_flags(tiny_dataset, finished_run), *args)
    assert_one_line_error(result, *hints)
    assert snapshot(finished_run) == before


def test_resume_on_a_rebuilt_dataset_is_refused(tmp_path):
    """Same dataset name, different data (say, another Python's stdlib): the checkpoint refuses it."""
    data = tmp_path / "data"
    prepare(data, source=write_corpus(tmp_path / "corpus", n_files=24), vocab_size=300, val_fraction=0.3)
    train.train(*tiny_config(str(data), tmp_path / "run", max_steps=2))
    prepare(data, source=write_corpus(tmp_path / "other", n_files=30), vocab_size=300, val_fraction=0.3, force=True)
    before = snapshot(tmp_path / "run")
    with pytest.raises(CheckpointError, match="different build"):
        train.train(*tiny_config(str(data), tmp_path / "run", max_steps=4, resume=True))
    assert snapshot(tmp_path / "run") == before


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_checkpoint_is_refused(tiny_dataset, finished_run, tmp_path, damage):
    run = tmp_path / "run"
    run.mkdir()
    data = (finished_run / "ckpt.pt").read_bytes()
    (run / "ckpt.pt").write_bytes(data[: len(data) // 2] if damage == "truncate" else b"not a checkpoint" * 100)
    before = snapshot(run)
    result = run_script("train.py", *tiny_flags(tiny_dataset, run), "--resume")
    assert_one_line_error(result, "not a readable checkpoint")
    assert snapshot(run) == before


def test_resume_without_a_checkpoint_is_refused(tiny_dataset, tmp_path):
    assert_one_line_error(run_script("train.py", *tiny_flags(tiny_dataset, tmp_path), "--resume"), "no checkpoint at")


def test_sample_generates_text(finished_run):
    cfg = sample.SampleConfig(out_dir=str(finished_run), prompt="def ", num_samples=2, max_new_tokens=10,
                              device="cpu")
    samples = sample.sample(cfg)
    assert len(samples) == 2 and all(isinstance(s, str) and s for s in samples)
    assert sample.sample(cfg) == samples  # seeded


def test_sample_cli_reads_a_prompt_file(finished_run, tmp_path):
    prompt = tmp_path / "prompt.py"
    prompt.write_text("import os\n")
    result = run_script("sample.py", f"--out_dir={finished_run}", f"--prompt=FILE:{prompt}", "--num_samples=1",
                        "--max_new_tokens=5", "--device=cpu")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("import os\n")
    missing = run_script("sample.py", f"--out_dir={finished_run}", "--prompt=FILE:/nonexistent/prompt.txt")
    assert_one_line_error(missing, "cannot read the prompt file")


def test_ddp_two_processes_match_one(tiny_dataset, tmp_path):
    """2 gloo processes x 1 micro-batch each = 1 process x 2 accumulated micro-batches."""
    flags = tiny_flags(tiny_dataset, tmp_path, grad_accum=2, max_steps=6, eval_interval=3)
    one = run_script("train.py", *flags, f"--out_dir={tmp_path / 'one'}")
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "train.py", *flags, f"--out_dir={tmp_path / 'two'}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr
    rows_one, rows_two = read_log(tmp_path / "one" / "log.jsonl"), read_log(tmp_path / "two" / "log.jsonl")
    assert len(rows_one) == len(rows_two) == 6
    for a, b in zip(rows_one, rows_two):
        assert b["train_loss"] == pytest.approx(a["train_loss"], abs=1e-4)
        if "val_loss" in a:
            assert b["val_loss"] == pytest.approx(a["val_loss"], abs=1e-4)
