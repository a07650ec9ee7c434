"""train.py and sample.py at tiny sizes: the default code path, resume, kills, NaNs, bad input, DDP."""

import errno
import json
import math
import re
import signal
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

import run_folder
import sample
import train
from blocks import BLOCKS
from data.prepare import prepare
from errors import CheckpointError, ConfigError
from helpers import (ROOT, PretendProcesses, assert_error, assert_one_line_error, exit_status, recording_compile,
                     run_script, signal_at, snapshot, tiny_flags, train_signalled, wait_for, write_corpus)
from model import GPT, GPTConfig
from run_folder import load_checkpoint, read_log
from settings import TrainConfig, parse_train_settings, run_settings


def tiny_config(dataset, out_dir, **overrides):
    """(settings, checkpoint to resume) of a tiny run, as train.py's main gets them."""
    return run_settings(tiny_flags(dataset, out_dir, **overrides))


def test_training_writes_checkpoint_and_log_and_loss_falls(tiny_dataset, tmp_path):
    final = train.train(*tiny_config(tiny_dataset, tmp_path, max_steps=60, eval_interval=20))
    rows = read_log(tmp_path / "log.jsonl")
    assert [row["step"] for row in rows] == list(range(1, 61))
    assert {"step", "lr", "train_loss", "tokens_per_sec", "mfu", "time", "peak_memory"} <= set(rows[0])
    val = [row["val_loss"] for row in rows if "val_loss" in row]
    assert len(val) == 3 and val[0] > val[1] > val[2] and val[2] < val[0] - 0.5
    assert rows[-1]["train_loss"] < rows[0]["train_loss"] - 1.0
    assert final["val_loss"] == val[-1] and final["train_loss"] == rows[-1]["train_loss"]
    ckpt = load_checkpoint(tmp_path / "ckpt.pt")
    assert ckpt["step"] == 60 and ckpt["config"]["block"] == "sas_p"
    assert json.loads((tmp_path / "config.json").read_text()) == ckpt["config"]


def test_learning_rate_schedule():
    cfg = TrainConfig(learning_rate=1e-3, max_steps=100, warmup_frac=0.05)
    lrs = [train.learning_rate_at(step, cfg) for step in range(100)]
    assert 0 < lrs[0] < lrs[4] < 1e-3  # warmup, not zero at step 0
    assert lrs[5] == pytest.approx(1e-3)  # peak
    assert all(a > b for a, b in zip(lrs[5:], lrs[6:]))  # linear decay
    assert lrs[-1] == pytest.approx(1e-3 / 95)  # towards 0


def without_timings(rows):
    return [{k: v for k, v in row.items() if k not in ("time", "tokens_per_sec", "mfu", "peak_memory")} for row in rows]


def test_resume_equals_uninterrupted_training(tiny_dataset, tmp_path, monkeypatch, cpu_bf16):
    """12 steps straight, against 12 steps stopped by Ctrl-C after step 5 and resumed: bit-exact on CPU, in
    bfloat16 whether the CPU has bfloat16 instructions or emulates them."""
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    train.train(*tiny_config(tiny_dataset, straight, dtype="bfloat16"))

    final = train_signalled(*tiny_config(tiny_dataset, interrupted, dtype="bfloat16"), step=4)
    assert final["stopped_by"] == signal.SIGINT and final["step"] == 5
    assert load_checkpoint(interrupted / "ckpt.pt")["step"] == 5  # Ctrl-C finishes the step, then saves
    train.train(*tiny_config(tiny_dataset, interrupted, dtype="bfloat16", resume=True))

    assert without_timings(read_log(straight / "log.jsonl")) == without_timings(read_log(interrupted / "log.jsonl"))
    gains = read_log(straight / "gains.jsonl")
    assert [row["step"] for row in gains] == list(range(1, 13)) and gains == read_log(interrupted / "gains.jsonl")
    a, b = (load_checkpoint(d / "ckpt.pt") for d in (straight, interrupted))
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name


def test_signals_exit_with_128_plus_their_number(tiny_dataset, tmp_path, monkeypatch):
    for signum in (signal.SIGINT, signal.SIGTERM):
        with monkeypatch.context() as patch:
            signal_at(patch, 2, signum)
            status = exit_status("train.py", tiny_flags(tiny_dataset, tmp_path / signum.name))
        assert status == 128 + signum  # 130 and 143, as shells report them
        assert load_checkpoint(tmp_path / signum.name / "ckpt.pt")["step"] == 3


def checkpointed_step(run):
    path = run / "ckpt.pt"
    return load_checkpoint(path)["step"] if path.exists() else -1


def test_sigkill_leaves_a_loadable_checkpoint(tiny_dataset, tmp_path):
    """Kill -9 twice while checkpoints are written every step; each time the checkpoint loads, and the
    second kill lands on a run resumed from the first."""
    args = ["train.py", *tiny_flags(tiny_dataset, tmp_path, max_steps=100_000, checkpoint_interval=1)]
    reached = 0
    for resume in ([], ["--resume"]):
        process = subprocess.Popen([sys.executable, *args, *resume], cwd=ROOT, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        wait_for(lambda: len(read_log(tmp_path / "log.jsonl")) >= reached + 3)  # training, writing checkpoints
        process.send_signal(signal.SIGKILL)
        process.wait()
        reached = checkpointed_step(tmp_path)
        assert reached >= 1
    resumed = run_script(*args, f"--max_steps={reached + 2}", "--resume", "--allow_changes")
    assert resumed.returncode == 0, resumed.stderr
    assert checkpointed_step(tmp_path) == reached + 2


def poison_step(monkeypatch, bad_steps):
    """Make the loss NaN on the given training steps (counted from 0 within this call)."""
    forward, calls = train.GPT.forward, {"n": 0}

    def poisoned_forward(self, idx, targets=None):
        logits, loss = forward(self, idx, targets)
        if self.training:
            if calls["n"] in bad_steps:
                loss = loss * float("nan")
            calls["n"] += 1
        return logits, loss

    monkeypatch.setattr(train.GPT, "forward", poisoned_forward)


def test_nonfinite_loss_stops_and_keeps_the_last_good_checkpoint(tiny_dataset, tmp_path, monkeypatch):
    poison_step(monkeypatch, {8})
    with pytest.raises(FloatingPointError, match="sas_p: loss is nan at step 8"):
        train.train(*tiny_config(tiny_dataset, tmp_path, eval_interval=100))
    assert load_checkpoint(tmp_path / "ckpt.pt")["step"] == 6


def test_skipped_steps_are_logged_as_skipped_not_as_a_loss(tiny_dataset, tmp_path, monkeypatch):
    poison_step(monkeypatch, {2, 3, 4})  # 3 of the 6 steps up to the first checkpoint: not most of them
    final = train.train(*tiny_config(tiny_dataset, tmp_path, log_interval=2, on_nonfinite="skip"))
    rows = read_log(tmp_path / "log.jsonl")
    assert [(row["step"], row.get("skipped"), "train_loss" in row) for row in rows[:4]] == \
        [(2, None, True), (4, 2, False), (6, 1, True), (8, None, True)]
    assert final["step"] == 12 and final["train_loss"] == rows[-1]["train_loss"]


def test_a_diverging_run_stops_before_it_logs_or_saves_what_is_not_finite(tiny_dataset, tmp_path, monkeypatch,
                                                                          capfd):
    """Most of the steps since the last checkpoint skipped (--on_nonfinite=skip), or a validation loss that is not
    finite: the run stops where it would log or save, in one line, exit 1, and the last good checkpoint is kept.
    The log is JSON to every tool: no NaN in it."""
    with monkeypatch.context() as poisoned:
        poison_step(poisoned, {6, 7, 8, 9})  # steps 7 to 10: 4 of the 6 after the checkpoint at step 6
        assert_error(capfd, 1, exit_status("train.py", tiny_flags(tiny_dataset, tmp_path, on_nonfinite="skip")),
                     "sas_p: 4 of the 6 steps since the last checkpoint had a non-finite loss and were skipped; "
                     f"stopped, and the last good checkpoint in {tmp_path} is kept (try a lower --learning_rate)")
    assert load_checkpoint(tmp_path / "ckpt.pt")["step"] == 6
    monkeypatch.setattr(train, "evaluate", lambda *args: float("nan"))
    assert_error(capfd, 1, exit_status("train.py", tiny_flags(tiny_dataset, tmp_path, resume=True)),
                 "sas_p: the validation loss is nan at step 12; stopped, and the last good checkpoint")
    assert load_checkpoint(tmp_path / "ckpt.pt")["step"] == 6
    for line in (tmp_path / "log.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=lambda name: pytest.fail(f"{name} in the log: {line}"))
    assert "val_loss" not in read_log(tmp_path / "log.jsonl")[-1]


def test_weights_blown_up_by_a_step_with_a_finite_loss_are_never_saved(tiny_dataset, tmp_path, monkeypatch, capfd):
    """An update whose loss was finite can still make the weights NaN (inf gradients): the checkpoint due at that
    step is not written, and the last good one stays."""
    step = train.train_step

    def blowing_up(model, state, *args):
        loss = step(model, state, *args)
        if state.step == 7:  # the 8th step's update
            with torch.no_grad():
                next(state.model.parameters()).fill_(float("nan"))
        return loss

    monkeypatch.setattr(train, "train_step", blowing_up)
    assert_error(capfd, 1, exit_status("train.py", tiny_flags(tiny_dataset, tmp_path, checkpoint_interval=8,
                                                              eval_interval=100)),
                 "sas_p: the weights are not finite at step 8; stopped, and the last good checkpoint")
    assert load_checkpoint(tmp_path / "ckpt.pt")["step"] == 0


def test_a_log_row_holds_null_for_a_number_that_is_not_finite_and_is_read_back_as_nan(tmp_path):
    run_folder.append_log(tmp_path / "gains.jsonl", {"step": 1, "alpha": [1.0, float("nan")], "beta": float("-inf")})
    line = (tmp_path / "gains.jsonl").read_text()
    assert json.loads(line, parse_constant=pytest.fail) == {"step": 1, "alpha": [1.0, None], "beta": None}
    row, = read_log(tmp_path / "gains.jsonl")
    assert row["alpha"][0] == 1.0 and math.isnan(row["alpha"][1]) and math.isnan(row["beta"])


def test_overwrite_then_an_early_failure_never_mixes_two_runs(tiny_dataset, tmp_path, monkeypatch):
    """The issue's repro: a finished run, then --overwrite with a run that dies before its first checkpoint."""
    train.train(*tiny_config(tiny_dataset, tmp_path, max_steps=5))
    poison_step(monkeypatch, {0})
    with pytest.raises(FloatingPointError, match="at step 0"):
        train.train(*tiny_config(tiny_dataset, tmp_path, overwrite=True, max_steps=20, learning_rate=1e-2))
    ckpt = load_checkpoint(tmp_path / "ckpt.pt")  # the new run's, at step 0: the old one is gone
    assert ckpt["step"] == 0 and ckpt["config"]["learning_rate"] == 1e-2 and ckpt["config"]["max_steps"] == 20
    assert json.loads((tmp_path / "config.json").read_text()) == ckpt["config"]
    assert read_log(tmp_path / "log.jsonl") == []
    monkeypatch.undo()
    final = train.train(*run_settings([f"--out_dir={tmp_path}", "--resume"]))
    assert final["step"] == 20 and [row["step"] for row in read_log(tmp_path / "log.jsonl")][0] == 1


def test_resume_refuses_changed_settings_unless_allowed(tiny_dataset, tmp_path, capsys):
    train.train(*tiny_config(tiny_dataset, tmp_path, max_steps=6))
    before = snapshot(tmp_path)
    with pytest.raises(ConfigError, match=r"max_steps=10 \(saved: 6\), batch_size=3 \(saved: 4\).*--allow_changes"):
        tiny_config(tiny_dataset, tmp_path, resume=True, max_steps=10, batch_size=3)
    tiny_config(tiny_dataset, tmp_path, resume=True, max_steps=6, log_interval=3, checkpoint_interval=2)  # bookkeeping
    assert snapshot(tmp_path) == before
    final = train.train(*tiny_config(tiny_dataset, tmp_path, resume=True, max_steps=10, allow_changes=True))
    assert final["step"] == 10
    assert "continuing with changed settings: max_steps 6 -> 10" in capsys.readouterr().out
    changed = [row for row in read_log(tmp_path / "log.jsonl") if "changed" in row]
    assert changed == [{"step": 6, "changed": {"max_steps": [6, 10]}}]
    assert json.loads((tmp_path / "config.json").read_text())["max_steps"] == 10


def test_resuming_a_finished_run_says_that_nothing_was_trained(finished_run, capsys):
    assert exit_status("train.py", [f"--out_dir={finished_run}", "--resume"]) == 0
    assert f"done: the run in {finished_run} had reached --max_steps=12 already, so nothing was trained" in \
        capsys.readouterr().out


def test_a_failed_checkpoint_write_keeps_the_previous_one(tiny_dataset, tmp_path, monkeypatch):
    """A full disk: the temporary file goes, the last checkpoint stays, the run stops with one line."""
    train.train(*tiny_config(tiny_dataset, tmp_path, max_steps=6))
    before = (tmp_path / "ckpt.pt").read_bytes()

    def disk_full(state, f):
        f.write(b"x" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(run_folder.torch, "save", disk_full)
    with pytest.raises(CheckpointError, match="No space left on device.*previous checkpoint is kept"):
        train.train(*tiny_config(tiny_dataset, tmp_path, max_steps=12, resume=True, allow_changes=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt", "config.json", "gains.jsonl", "log.jsonl"]
    assert (tmp_path / "ckpt.pt").read_bytes() == before


def test_a_bad_flag_is_refused_in_one_line_by_the_command_line(tmp_path):
    """One real process: the interpreter, run_main and the exit status together (tests/test_bad_input.py runs
    every script's bad input in this process, through the same run_main)."""
    result = run_script("train.py", f"--out_dir={tmp_path}", "--blok=sas")
    assert_one_line_error(result, "unknown setting 'blok'", "did you mean --block?", status=2)
    assert not any(tmp_path.iterdir())


def test_help_lists_every_setting(capsys):
    assert exit_status("train.py", ["--help"]) == 0
    out = capsys.readouterr().out
    for field in TrainConfig.__dataclass_fields__:
        assert f"--{field}=" in out


def test_config_file_sees_and_loses_to_flags(tmp_path):
    config_file = tmp_path / "preset.py"
    config_file.write_text("n_layer = 9\nlearning_rate = 3e-4 if block == 'sas' else 1e-3\n")
    cfg = parse_train_settings([str(config_file), "--block=sas", "--n_layer=4"])
    assert (cfg.n_layer, cfg.learning_rate, cfg.block) == (4, 3e-4, "sas")
    config_file.write_text("n_layers = 9\n")
    with pytest.raises(ConfigError, match="unknown setting 'n_layers'"):
        parse_train_settings([str(config_file)])


def test_paper_config_loads():
    cfg = parse_train_settings(["config/paper.py", "--block=no_attn_skip"])
    assert (cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.batch_size * cfg.grad_accum) == (18, 768, 12, 128)
    assert cfg.learning_rate == 3e-4
    assert parse_train_settings(["config/paper.py", "--block=sas_p"]).learning_rate == 1e-3


def test_a_relative_dataset_path_is_taken_from_the_current_folder(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path.parent)
    cfg = parse_train_settings([f"--dataset=./{tmp_path.name}"])
    assert cfg.dataset == str(tmp_path)
    assert parse_train_settings(["--dataset=stdlib"]).dataset == "stdlib"  # a name under data/


@pytest.fixture(scope="module")
def finished_run(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("finished")
    train.train(*tiny_config(tiny_dataset, out))
    return out


def rebuild_differently(data, tmp_path):
    """The same dataset folder, rebuilt from other files at the same vocabulary size."""
    prepare(data, source=write_corpus(tmp_path / "other", n_files=30), vocab_size=300, val_fraction=0.3, force=True)


def test_resume_and_sample_refuse_a_rebuilt_dataset(tmp_path, capfd):
    """Same dataset name, different data (say, another Python's stdlib): the checkpoint refuses it."""
    data = tmp_path / "data"
    prepare(data, source=write_corpus(tmp_path / "corpus", n_files=24), vocab_size=300, val_fraction=0.3)
    train.train(*tiny_config(str(data), tmp_path / "run", max_steps=2))
    rebuild_differently(data, tmp_path)
    before = snapshot(tmp_path / "run")
    with pytest.raises(CheckpointError, match="different build"):
        train.train(*tiny_config(str(data), tmp_path / "run", max_steps=2, resume=True))
    capfd.readouterr()
    assert_error(capfd, 1, exit_status("sample.py", [f"--out_dir={tmp_path / 'run'}"]), "was rebuilt since")
    assert snapshot(tmp_path / "run") == before


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_checkpoint_is_refused(tiny_dataset, finished_run, tmp_path, damage, capfd):
    run = tmp_path / "run"
    run.mkdir()
    data = (finished_run / "ckpt.pt").read_bytes()
    (run / "ckpt.pt").write_bytes(data[: len(data) // 2] if damage == "truncate" else b"not a checkpoint" * 100)
    before = snapshot(run)
    capfd.readouterr()
    assert_error(capfd, 1, exit_status("train.py", [*tiny_flags(tiny_dataset, run), "--resume"]),
                 "not a readable checkpoint")
    assert snapshot(run) == before


def test_sample_generates_text(finished_run):
    cfg = sample.SampleConfig(out_dir=str(finished_run), prompt="def ", num_samples=2, max_new_tokens=10,
                              device="cpu")
    samples = sample.sample(cfg)
    assert len(samples) == 2 and all(isinstance(s, str) and s for s in samples)
    assert sample.sample(cfg) == samples  # seeded


def test_sample_says_how_fast_it_generated_and_the_cache_changes_no_greedy_token(finished_run, capfd):
    outputs = {}
    for kv_cache in ("true", "false"):
        assert exit_status("sample.py", [f"--out_dir={finished_run}", "--num_samples=2", "--max_new_tokens=40",
                                         "--top_k=1", f"--kv_cache={kv_cache}", "--device=cpu"]) == 0
        out, err = capfd.readouterr()
        outputs[kv_cache] = out
        assert re.fullmatch(r"generated 80 tokens in [\d.]+ s: [\d,]+ tokens/s \((with|without) a KV cache\)\n", err)
    assert outputs["true"] == outputs["false"]  # past block_size (32): the window moved, with and without the cache


def test_a_path_setting_takes_the_home_folder_as_a_shell_would(finished_run, tmp_path, monkeypatch, capsys):
    """--out_dir=~/runs: the shell leaves a ~ after = as it is; the setting expands it, as it does a prompt file's."""
    monkeypatch.setenv("HOME", str(tmp_path))
    assert parse_train_settings(["--out_dir=~/runs/{block}"]).run_dir == tmp_path / "runs" / "pre_ln"
    (tmp_path / "prompt.py").write_text("import os\n")
    cfg = sample.SampleConfig(out_dir=str(finished_run), prompt="FILE:~/prompt.py", num_samples=1, max_new_tokens=2,
                              device="cpu")
    sample.sample(cfg)
    assert capsys.readouterr().out.startswith("import os\n")


def test_a_prompt_of_bytes_that_are_not_utf8_is_shown_escaped(finished_run, capsys):
    """A prompt from a terminal in another encoding reaches Python as lone surrogates: they are shown as escapes."""
    sample.sample(sample.SampleConfig(out_dir=str(finished_run), prompt="caf\udce9", num_samples=1, max_new_tokens=2,
                                      device="cpu"))
    out, err = capsys.readouterr()
    assert out.startswith("caf\\udce9") and err.startswith("note: the prompt holds bytes that are not UTF-8 text: "
                                                            "those characters are written as backslash escapes\n")


def test_sample_at_a_temperature_too_low_to_divide_by_picks_the_likeliest_token(finished_run):
    """logits / 1e-300 would be inf, and its softmax nan: sampling that cold is greedy (as top_k=1 is)."""
    cfg = sample.SampleConfig(out_dir=str(finished_run), num_samples=2, max_new_tokens=10, temperature=1e-300,
                              device="cpu")
    assert sample.sample(cfg) == sample.sample(replace(cfg, temperature=1.0, top_k=1))


def test_sample_cli_reads_a_prompt_file(finished_run, tmp_path):
    prompt = tmp_path / "prompt.py"
    prompt.write_text("import os\n")
    result = run_script("sample.py", f"--out_dir={finished_run}", f"--prompt=FILE:{prompt}", "--num_samples=1",
                        "--max_new_tokens=5", "--device=cpu")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("import os\n")


def test_ddp_two_processes_match_one(tiny_dataset, tmp_path):
    """2 gloo processes x 1 micro-batch each = 1 process x 2 accumulated micro-batches."""
    flags = tiny_flags(tiny_dataset, tmp_path, grad_accum=2, max_steps=6, eval_interval=3)
    one = run_script("train.py", *flags, f"--out_dir={tmp_path / 'one'}")
    assert one.returncode == 0, one.stderr
    two = run_script("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "train.py", *flags,
                     f"--out_dir={tmp_path / 'two'}", timeout=300)
    assert two.returncode == 0, two.stderr
    rows_one, rows_two = read_log(tmp_path / "one" / "log.jsonl"), read_log(tmp_path / "two" / "log.jsonl")
    assert len(rows_one) == len(rows_two) == 6
    for a, b in zip(rows_one, rows_two):
        assert b["train_loss"] == pytest.approx(a["train_loss"], abs=1e-4)
        if "val_loss" in a:
            assert b["val_loss"] == pytest.approx(a["val_loss"], abs=1e-4)


def test_processes_agree_to_stop_only_where_they_log_or_save(tiny_dataset, tmp_path):
    """Agreeing reads a flag back from the device: under DDP the processes do it only at log and checkpoint
    steps, where the loop waits for the device anyway. A Ctrl-C in step 2 stops them all at step 4."""
    flags = dict(grad_accum=2, log_interval=4, checkpoint_interval=6, eval_interval=12)
    two = PretendProcesses(world_size=2)
    assert train.train(*tiny_config(tiny_dataset, tmp_path / "whole", **flags), two)["step"] == 12
    assert two.agreed_at == [4, 6, 8, 12]

    final = train_signalled(*tiny_config(tiny_dataset, tmp_path / "stopped", **flags), step=1, world_size=2)
    assert (final["step"], final["stopped_by"]) == (4, signal.SIGINT)
    assert load_checkpoint(tmp_path / "stopped" / "ckpt.pt")["step"] == 4


def test_compile_compiles_every_graph_before_the_first_step(tiny_dataset, tmp_path, monkeypatch):
    """train.py --compile: the training pass and evaluation's (eval mode, no gradients, a last batch of 2 of the
    6 windows) are compiled by the warm-up; no step or evaluation compiles again."""
    graphs, before_training = recording_compile(monkeypatch), []

    class Recording(PretendProcesses):  # the loop asks the processes to agree once before its first step
        def agree_to_stop(self, stop, waiting_anyway):
            before_training.append(len(graphs))
            return super().agree_to_stop(stop, waiting_anyway)

    final = train.train(*tiny_config(tiny_dataset, tmp_path, compile=True, eval_windows=6, max_steps=6,
                                     eval_interval=3), Recording())
    assert final["step"] == 6 and final["val_loss"] is not None
    assert 0 < before_training[0] == len(graphs)


@pytest.mark.parametrize("block", BLOCKS)
def test_every_block_compiles_into_one_graph_forward_and_backward(block):
    """fullgraph=True: a graph break anywhere in the forward pass raises; aot_eager traces the backward too."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = GPT(GPTConfig(block=block, vocab_size=64, block_size=16, n_layer=2, n_head=2, n_embd=32))
    x = torch.randint(0, 64, (2, 16))
    _, loss = torch.compile(model, fullgraph=True, backend="aot_eager")(x, x)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
