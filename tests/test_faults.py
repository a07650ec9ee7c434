"""Faults a class or an overnight run meets, tried as a user would: two terminals on one run folder, a dataset
rebuilt or deleted under a live run, a closed terminal, a second Ctrl-C while saving, a torchrun process that
stops answering, a moved run folder, an older or a foreign checkpoint, a disk that is read-only or full, output
into `head` or an ASCII terminal. Each ends in one `error:` line or a note, with nothing lost: the run resumes."""

import errno
import fcntl
import json
import os
import pty
import select
import shlex
import shutil
import signal
import subprocess
import sys
import termios
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

import data
import run_folder
import train
from common import run_child
from data.prepare import prepare
from errors import CheckpointError, DataError
from helpers import (ROOT, PretendProcesses, assert_error, exit_status, run_script, signal_at,
                     snapshot, tiny_flags, trains_in_this_process, use_processes, wait_for, write_corpus)
from model import GPT
from run_folder import hold_run_folder, load_checkpoint, read_log
from settings import run_settings


def run(argv):
    """train.py's main as its command line runs it: the exit status."""
    return exit_status("train.py", argv)


def steps(run_dir):
    """The steps of the log's rows (not those that record changed settings)."""
    return [row["step"] for row in read_log(run_dir / "log.jsonl") if "changed" not in row]


@contextmanager
def training(args, **popen):
    """train.py in a process of its own, for as long as the with-block runs; killed if still running after it."""
    process = subprocess.Popen([sys.executable, "train.py", *args], cwd=ROOT, **popen)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=60)


# -----------------------------------------------------------------------------
# one writer per run folder; a closed terminal


def test_a_live_run_folder_has_one_writer_and_a_closed_terminal_stops_it_with_a_checkpoint(tiny_dataset, tmp_path,
                                                                                              capfd):
    """A run trains in a terminal of its own (a pseudo-terminal); a second train.py on its folder, with --resume,
    --overwrite or neither, and compare.py on that block are refused, naming its process. Then the terminal
    closes (SIGHUP, as when an ssh session drops): the run saves a checkpoint and exits 129."""
    folder = tmp_path / "sas_p"
    args = tiny_flags(tiny_dataset, tmp_path / "{block}", max_steps=100_000, checkpoint_interval=1000)
    terminal, its_end = pty.openpty()
    with training(args, stdin=its_end, stdout=its_end, stderr=its_end, start_new_session=True,
                  preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0)) as live:  # its controlling terminal
        os.close(its_end)
        shown, hang_up = [], threading.Event()
        reader = threading.Thread(target=show, args=(terminal, shown, hang_up))
        reader.start()
        wait_for(lambda: len(read_log(folder / "log.jsonl")) >= 3)
        for extra in ([], ["--resume"], ["--overwrite"]):
            assert_error(capfd, 1, run(args + extra), f"{folder} is in use: a run is training there "
                                                      f"(process {live.pid})")
        compare_flags = [arg for arg in args if not arg.startswith("--block=")] + ["--blocks=sas_p",
                                                                                   f"--report={tmp_path}"]
        assert_error(capfd, 1, exit_status("compare.py", compare_flags), f"{folder} is in use", f"process {live.pid}")
        hang_up.set()  # the terminal closes
        reader.join(timeout=10)
        assert live.wait(timeout=60) == 128 + signal.SIGHUP
    rows = steps(folder)
    assert rows == list(range(1, len(rows) + 1))  # one writer: every step once, in order
    assert load_checkpoint(folder / "ckpt.pt")["step"] == rows[-1]  # saved at the step it stopped
    assert "Traceback" not in b"".join(shown).decode(errors="replace")


def show(terminal, shown, hang_up):
    """The terminal: what the run writes is read (or the run would wait once the terminal is full) until it
    hangs up, as a closed window or a dropped ssh session does."""
    while not hang_up.is_set():
        if select.select([terminal], [], [], 0.1)[0]:
            shown.append(os.read(terminal, 65536))
    os.close(terminal)


def test_the_lock_is_held_while_the_run_trains_and_missing_without_fcntl(tiny_dataset, tmp_path, monkeypatch):
    """Past train.py's first check (two runs starting at once), the lock itself refuses the second writer,
    before it writes anything; where the system has no fcntl (Windows) nothing is locked or refused."""
    cfg, _ = run_settings(tiny_flags(tiny_dataset, tmp_path))
    with hold_run_folder(tmp_path):
        with pytest.raises(CheckpointError, match=f"is in use: a run is training there \\(process {os.getpid()}\\)"):
            train.train(cfg)
        with pytest.raises(CheckpointError, match="is in use"):
            run_folder.refuse_if_training(tmp_path)
        monkeypatch.setattr(run_folder, "fcntl", None)
        run_folder.refuse_if_training(tmp_path)  # no lock to see
        assert train.train(cfg)["step"] == 12
    assert not any(tmp_path.glob("*.tmp"))


def test_a_filesystem_without_locks_trains_unlocked_with_a_warning(tiny_dataset, tmp_path, monkeypatch, capfd):
    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(run_folder.fcntl, "flock", no_locks)
    assert run(tiny_flags(tiny_dataset, tmp_path, max_steps=2)) == 0
    assert f"warning: {tmp_path} cannot be locked here (No locks available)" in capfd.readouterr().err


# -----------------------------------------------------------------------------
# the data a run trains on cannot change under it


def test_a_dataset_rebuilt_then_deleted_under_a_live_run_does_not_reach_it(tiny_dataset, tmp_path):
    """The run is paused (SIGSTOP) while its dataset is rebuilt from other files (prepare.py renames the new
    build into place and deletes the old one), and again while it is deleted: it trains on the build it opened
    to the end, step for step as a run that nothing happened to."""
    data_dir = tmp_path / "data"
    shutil.copytree(tiny_dataset, data_dir)
    flags = tiny_flags(str(data_dir), tmp_path / "run", max_steps=150, eval_interval=50, log_interval=10,
                       checkpoint_interval=50)
    with training(flags, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as live:
        for change in (lambda: prepare(data_dir, source=write_corpus(tmp_path / "other", n_files=30), vocab_size=320,
                                       val_fraction=0.3, force=True),
                       lambda: shutil.rmtree(data_dir)):
            logged = len(steps(tmp_path / "run"))
            wait_for(lambda: len(steps(tmp_path / "run")) > logged)
            live.send_signal(signal.SIGSTOP)
            assert live.poll() is None  # paused mid-run
            change()
            live.send_signal(signal.SIGCONT)
        assert live.wait(timeout=120) == 0, live.stderr.read()
    train.train(*run_settings(flags + [f"--dataset={tiny_dataset}", f"--out_dir={tmp_path / 'undisturbed'}"]))
    disturbed, undisturbed = (read_log(tmp_path / name / "log.jsonl") for name in ("run", "undisturbed"))
    assert [row["step"] for row in disturbed] == [row["step"] for row in undisturbed] == list(range(10, 151, 10))
    for key in ("train_loss", "val_loss"):
        assert [row[key] for row in disturbed if key in row] == \
            pytest.approx([row[key] for row in undisturbed if key in row], rel=1e-4)


# -----------------------------------------------------------------------------
# stops at odd moments


def test_a_second_ctrl_c_while_the_checkpoint_is_written_leaves_no_temporary_file(tiny_dataset, tmp_path,
                                                                                   monkeypatch, capfd):
    save = torch.save

    def interrupted_save(state, f):
        save(state, f)
        if state["step"] > 0:  # the checkpoint after the first Ctrl-C: a second one lands while it is written
            signal.raise_signal(signal.SIGINT)

    signal_at(monkeypatch, 1)
    monkeypatch.setattr(run_folder.torch, "save", interrupted_save)
    assert_error(capfd, 130, run(tiny_flags(tiny_dataset, tmp_path)), "interrupted by Ctrl-C")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt", "config.json", "gains.jsonl", "log.jsonl"]
    assert load_checkpoint(tmp_path / "ckpt.pt")["step"] == 0  # the last one written whole
    monkeypatch.undo()
    assert train.train(*run_settings(tiny_flags(tiny_dataset, tmp_path, resume=True)))["step"] == 12


def test_a_killed_writers_temporary_files_are_removed_and_never_taken_for_a_run(tiny_dataset, tmp_path):
    (tmp_path / "ckpt.pt.tmp").write_bytes(b"half a checkpoint")  # killed while writing its first checkpoint
    cfg, ckpt = run_settings(tiny_flags(tiny_dataset, tmp_path, max_steps=2))  # not "already holds a run"
    train.train(cfg, ckpt)
    for name in ("ckpt.pt.tmp", "log.jsonl.tmp", "config.json.tmp"):
        (tmp_path / name).write_bytes(b"torn")
    train.train(*run_settings(tiny_flags(tiny_dataset, tmp_path, max_steps=4, resume=True, allow_changes=True)))
    assert not any(tmp_path.glob("*.tmp")) and steps(tmp_path) == [1, 2, 3, 4]


# -----------------------------------------------------------------------------
# torchrun


def children(parent):
    """{process id: its environment's lines} of the processes that parent started (Linux's /proc)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rpartition(")")[2].split()[1]) == parent:
                found[int(stat.parent.name)] = (stat.parent / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):  # gone meanwhile
            continue
    return found


def torchrun_workers(launcher):
    """{rank: process id} of the training processes a torchrun process started."""
    return {int(ranks[0]): pid for pid, env in children(launcher).items()
            if (ranks := [line[5:] for line in env if line.startswith(b"RANK=")])}


def test_torchrun_stops_on_a_signal_as_one_process_does_and_names_a_process_that_stopped_answering(tiny_dataset,
                                                                                                    tmp_path):
    """Two gloo processes. SIGTERM to one: both stop at the same step with a checkpoint, exit 143, and rank 0
    alone says so (torchrun itself exits 1, as it does whenever a process fails). Resumed, and one process
    stopped with SIGSTOP: the other waits --process_timeout seconds, not for ever, and names it in one line.
    (Only the second run waits so briefly: rank 0 alone writes checkpoints, and on a busy machine their fsync
    alone may take seconds.)"""
    run_dir = tmp_path / "run"
    flags = tiny_flags(tiny_dataset, run_dir, grad_accum=2, max_steps=100_000, eval_interval=1000,
                       checkpoint_interval=1000)
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "train.py", *flags]
    for resume, signum in (([], signal.SIGTERM), (["--resume", "--process_timeout=6"], signal.SIGSTOP)):
        logged = len(read_log(run_dir / "log.jsonl"))
        err = tmp_path / f"stderr_{signum.name}"
        with open(err, "w") as errors:
            launcher = subprocess.Popen(launch + resume, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=errors)
        try:
            wait_for(lambda: len(read_log(run_dir / "log.jsonl")) > logged, timeout=120)
            rank1 = torchrun_workers(launcher.pid)[1]
            os.kill(rank1, signum)
            if signum == signal.SIGSTOP:
                wait_for(lambda: "error: " in err.read_text(), timeout=60)
                os.kill(rank1, signal.SIGKILL)  # (torchrun would, 30 s after rank 0 ended)
            assert launcher.wait(timeout=60) == 1  # torchrun's own status for a run whose processes failed
        finally:
            if launcher.poll() is None:
                launcher.kill()
        lines = err.read_text().replace("\r", "\n").splitlines()
        if signum == signal.SIGTERM:
            assert sum(line.startswith("stopped at step") for line in lines) == 1, lines
            # torchrun's report of the processes' statuses: both 143, neither killed by torchrun's SIGTERM to the
            # process still leaving (-15) nor aborted at exit (-6), which a loaded machine used to show
            assert [line.split()[2] for line in lines if line.strip().startswith("exitcode  :")] == ["143", "143"]
            stopped = int(next(line for line in lines if line.startswith("stopped at step")).split()[3].rstrip(";"))
            assert load_checkpoint(run_dir / "ckpt.pt")["step"] == stopped == steps(run_dir)[-1]
        else:
            errors = [line for line in lines if line.startswith("error: ")]
            assert len(errors) == 1 and errors[0].startswith("error: rank 1 stopped answering ("), lines
            assert "Traceback" not in "".join(lines[:lines.index(errors[0])])  # (torchrun's own follows)
            assert load_checkpoint(run_dir / "ckpt.pt")["step"] == stopped  # the last checkpoint is kept


def test_a_grad_accum_that_torchrun_cannot_share_says_what_to_pass_and_rank_0_alone_says_it(tiny_dataset, tmp_path,
                                                                                             monkeypatch, capfd):
    """Two processes (their process group mocked: what is tested is the check before any exchange)."""

    use_processes(monkeypatch, PretendProcesses(rank=1, world_size=2))
    monkeypatch.setenv("RANK", "1")
    assert run(tiny_flags(tiny_dataset, tmp_path)) == 2 and capfd.readouterr().err == ""  # every process meets it
    use_processes(monkeypatch, PretendProcesses(rank=0, world_size=2))
    monkeypatch.setenv("RANK", "0")
    assert_error(capfd, 2, run(tiny_flags(tiny_dataset, tmp_path)), "--grad_accum=1 must be a multiple of the 2 "
                 "processes: pass --grad_accum=2 for one micro-batch of batch_size per process and step")


# -----------------------------------------------------------------------------
# compare.py's train.py


def test_a_signal_to_compare_py_reaches_its_train_py_which_saves_and_the_rerun_resumes(tiny_dataset, tmp_path):
    """compare.py as a process, its one run training slowly in its own train.py. Ctrl-C at compare.py's terminal
    (SIGINT to its process group: the child is in a session of its own), then, once the same command has resumed
    the run, SIGTERM to compare.py alone: each time, train.py gets the signal, saves its checkpoint at the step it
    stopped, and compare.py waits for it and exits 128 + the signal, saying how to go on; no train.py outlives it."""
    run_dir = tmp_path / "sas_p"
    flags = tiny_flags(tiny_dataset, tmp_path / "{block}", max_steps=100_000, eval_interval=1000,
                       checkpoint_interval=1000)
    command = [sys.executable, "compare.py", *(f for f in flags if not f.startswith("--block=")), "--blocks=sas_p",
               f"--report={tmp_path}"]
    stopped = None  # the step the run stopped at the time before
    for signum, send in ((signal.SIGINT, os.killpg), (signal.SIGTERM, os.kill)):
        logged = len(read_log(run_dir / "log.jsonl"))
        with open(tmp_path / "out", "w") as out, open(tmp_path / "err", "w") as err:  # (a pipe would fill up)
            compare = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=err, start_new_session=True)
        try:
            wait_for(lambda: len(read_log(run_dir / "log.jsonl")) > logged + 2, timeout=120)
            child, = children(compare.pid)
            send(compare.pid, signum)
            assert compare.wait(timeout=60) == 128 + signum, (tmp_path / "err").read_text()
        finally:
            os.killpg(compare.pid, signal.SIGKILL) if compare.poll() is None else None
        assert not Path(f"/proc/{child}").exists()  # waited for: no orphan trains on
        out, err = ((tmp_path / name).read_text() for name in ("out", "err"))
        if signum == signal.SIGTERM:
            assert f"sas_p: resuming the run in {run_dir} at step {stopped}" in out
        stopped = load_checkpoint(run_dir / "ckpt.pt")["step"]
        assert stopped == steps(run_dir)[-1] > logged
        assert f"stopped at step {stopped}; checkpoint saved" in err
        assert err.rstrip().endswith("compare.py stopped while sas_p trained; run the same command again to resume "
                                     "it"), err[-500:]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_where_no_run_trains_ends_a_script_in_one_line_with_128_plus_it(tiny_dataset, tmp_path, monkeypatch,
                                                                                 capfd, signum):
    """compare.py between its runs (drawing its report): SIGTERM and SIGHUP end it as Ctrl-C does, in one line."""
    import compare

    monkeypatch.setattr(compare, "summarise", lambda run: signal.raise_signal(signum))
    flags = [f for f in tiny_flags(tiny_dataset, tmp_path / "{block}", max_steps=2) if not f.startswith("--block=")]
    trains_in_this_process(monkeypatch, compare)
    before = signal.getsignal(signum)  # SIG_DFL, or SIG_IGN under nohup: whatever the script was started with
    assert_error(capfd, 128 + signum, exit_status("compare.py", [*flags, "--blocks=sas_p", f"--report={tmp_path}"]),
                 f"error: stopped by {signum.name}; what was saved before is kept")
    assert signal.getsignal(signum) is before  # the script's handler goes with it


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_child_is_stopped_with_its_parent_even_if_it_finishes_all_the_same(signum):
    """A signal to the parent is passed on; the child ignores it and finishes with 0: the parent was asked to stop,
    and says so (128 + the signal)."""
    child = [sys.executable, "-c", f"import signal, time; signal.signal({signum}, signal.SIG_IGN); time.sleep(1)"]
    threading.Timer(0.5, os.kill, (os.getpid(), signum)).start()
    assert run_child(child) == 128 + signum


# -----------------------------------------------------------------------------
# memory

CPU_OOM = RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                       "you tried to allocate 4294967296 bytes. Error code 12 (Cannot allocate memory)")


def out_of_memory(error):
    def raises(*args, **kwargs):
        raise error
    return raises


def test_a_model_too_large_for_memory_is_one_line_saying_what_to_lower(tiny_dataset, tmp_path, monkeypatch, capfd):
    monkeypatch.setattr(train, "GPT", out_of_memory(CPU_OOM))  # (no real one: the machine would swap first)
    assert_error(capfd, 1, run(tiny_flags(tiny_dataset, tmp_path)), "error: out of memory (it asked for 4.0 GiB "
                 f"more); the last checkpoint in {tmp_path} is kept; lower --batch_size (and raise --grad_accum to "
                 "keep the batch), --block_size, or the model (--n_layer, --n_embd)")


def test_too_many_samples_for_memory_is_one_line_saying_what_to_lower(tiny_dataset, tmp_path, monkeypatch, capfd):
    train.train(*run_settings(tiny_flags(tiny_dataset, tmp_path, max_steps=2)))
    monkeypatch.setattr(GPT, "generate", out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate "
                                                                               "20.00 GiB. GPU 0 has ...")))
    assert_error(capfd, 1, exit_status("sample.py", [f"--out_dir={tmp_path}", "--num_samples=100000", "--device=cpu"]),
                 "error: out of memory (it asked for 20.00 GiB more); lower --num_samples=100000 (or --max_new_tokens)")


def test_bench_stops_at_the_first_length_that_does_not_fit_saying_what_to_lower(monkeypatch, capfd):
    import bench

    def attention_at(T, device, dtype):
        if T > 128:
            raise CPU_OOM
        return {"plain": "fused", "shaped": "fused"}, {("fused", form): {"seconds": 1.0, "memory": 1}
                                                       for form in ("plain", "shaped")}

    monkeypatch.setattr(bench, "attention_at", attention_at)
    assert_error(capfd, 1, exit_status("bench.py", ["--parts=attention", "--max_T=512", "--device=cpu",
                                                    "--dtype=float32"]),
                 "error: out of memory (it asked for 4.0 GiB more); attention at T=256 does not fit on cpu; the "
                 "shorter ones are above: lower --max_T to 128")
    monkeypatch.setattr(bench, "attention_at", out_of_memory(MemoryError()))
    assert_error(capfd, 1, exit_status("bench.py", ["--parts=attention", "--device=cpu", "--dtype=float32"]),
                 "error: out of memory; attention at T=128 does not fit on cpu")


# -----------------------------------------------------------------------------
# files and paths as users have them


def test_resume_takes_the_run_folder_however_it_is_written_and_wherever_it_moved(tiny_dataset, tmp_path,
                                                                                 monkeypatch, capsys):
    train.train(*run_settings(tiny_flags(tiny_dataset, tmp_path / "a", max_steps=4)))
    monkeypatch.chdir(tmp_path)
    for spelling in ("a/", "./a", str(tmp_path / "a")):  # the same folder: no setting changed, nothing moved
        cfg, ckpt = run_settings(tiny_flags(tiny_dataset, spelling, resume=True, max_steps=4))
        assert cfg.run_dir.resolve() == tmp_path / "a" and ckpt["step"] == 4
    assert "moved" not in capsys.readouterr().out
    (tmp_path / "a").rename(tmp_path / "moved here")
    final = train.train(*run_settings(tiny_flags(tiny_dataset, "moved here", resume=True, max_steps=6,
                                                   allow_changes=True)))
    assert final["step"] == 6 and steps(tmp_path / "moved here") == list(range(1, 7))
    assert f"its folder moved, and it continues where it is now, in {tmp_path / 'moved here'}" in capsys.readouterr().out
    assert not (tmp_path / "a").exists()


def test_the_continue_hint_is_quoted_for_the_shell(tiny_dataset, tmp_path, monkeypatch, capfd):
    run_dir = tmp_path / "my runs" / "it's here"
    signal_at(monkeypatch, 2)
    assert run(tiny_flags(tiny_dataset, run_dir)) == 130
    hint = capfd.readouterr().err.rstrip().rpartition("Continue with: ")[2]
    monkeypatch.undo()
    assert shlex.split(hint) == ["python", "train.py", "--block=sas_p", f"--out_dir={run_dir}", "--resume"]
    assert run(shlex.split(hint)[2:]) == 0 and steps(run_dir)[-1] == 12


def test_a_checkpoint_of_an_earlier_train_py(tiny_dataset, tmp_path, capfd):
    """A setting newer than the checkpoint gets the meaning it had then, with a note; what has no known
    meaning is named in one line, and nothing changes."""
    train.train(*run_settings(tiny_flags(tiny_dataset, tmp_path, max_steps=4)))
    saved = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    del saved["attention"], saved["config"]["attention"], saved["run_dir"]  # saved before these existed
    torch.save(saved, tmp_path / "ckpt.pt")
    capfd.readouterr()
    assert run([f"--out_dir={tmp_path}", "--resume", "--max_steps=6", "--allow_changes"]) == 0
    out = capfd.readouterr().out
    assert "note: the checkpoint was saved before the attention setting existed; it continues with " \
           "attention=fused" in out and "fused attention" in out
    assert load_checkpoint(tmp_path / "ckpt.pt")["attention"] == "fused"
    for lacking, named in ((lambda ckpt: ckpt.pop("dtype"), "it lacks dtype"),
                           (lambda ckpt: ckpt["config"].pop("warmup_frac"), "without the settings warmup_frac")):
        older = torch.load(tmp_path / "ckpt.pt", weights_only=True)
        lacking(older)
        (tmp_path / "older").mkdir(exist_ok=True)
        torch.save(older, tmp_path / "older" / "ckpt.pt")
        before = snapshot(tmp_path)
        assert_error(capfd, 1, run([f"--out_dir={tmp_path / 'older'}", "--resume"]), named)
        assert snapshot(tmp_path) == before


def test_resume_says_that_config_json_is_a_record_and_when_eval_windows_is_capped(tiny_dataset, tmp_path, capsys):
    train.train(*run_settings(tiny_flags(tiny_dataset, tmp_path, max_steps=2, eval_windows=1000)))
    assert capsys.readouterr().out.count("note: the validation split holds 45 windows of 32 tokens, fewer than "
                                         "eval_windows=1000") == 1
    record = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(record | {"learning_rate": 0.1}))
    train.train(*run_settings([f"--out_dir={tmp_path}", "--resume"]))
    assert "note: config.json differs from the checkpoint's settings (learning_rate); it is a record" in \
        capsys.readouterr().out
    assert json.loads((tmp_path / "config.json").read_text())["learning_rate"] == record["learning_rate"]


def failing_writes(monkeypatch, refused=lambda path, mode: True, code=errno.EROFS):
    """Writes into run folders that refused(path, mode) picks fail with the errno code: at open (a read-only
    filesystem, a permission), or part way through what they write (a full disk). The tests run as root
    here, which chmod cannot stop, so the OSError that the system would raise is raised in its place."""
    real_open = open

    class FullDisk:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            self.f.flush()
            raise OSError(code, os.strerror(code))

    def checked_open(path, mode="r", *args, **kwargs):
        if not any(c in mode for c in "wax") or not refused(Path(path), mode):
            return real_open(path, mode, *args, **kwargs)
        if code == errno.ENOSPC:
            return FullDisk(real_open(path, mode, *args, **kwargs))
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(run_folder, "open", checked_open, raising=False)  # every run folder write goes through it


@pytest.mark.parametrize("resume", [False, True])
def test_a_run_folder_on_a_read_only_filesystem_is_refused_in_one_line(tiny_dataset, tmp_path, monkeypatch, capfd,
                                                                       resume):
    train.train(*run_settings(tiny_flags(tiny_dataset, tmp_path / "run", max_steps=2)))
    run_dir = tmp_path / "run" if resume else tmp_path / "new"
    run_dir.mkdir(exist_ok=True)
    before = snapshot(tmp_path)
    failing_writes(monkeypatch)
    extra = dict(resume=True, max_steps=4, allow_changes=True) if resume else {}
    assert_error(capfd, 1, run(tiny_flags(tiny_dataset, run_dir, **extra)), "Read-only file system",
                 "its filesystem is read-only: remount it writable, or move the run folder somewhere writable")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("code, advice", [(errno.ENOSPC, "make room on that disk"),
                                          (errno.EACCES, "this user may not write there: fix its permissions")])
def test_a_full_disk_or_a_refusal_while_logging_or_saving_stops_in_one_line_and_the_run_resumes(
        tiny_dataset, tmp_path, monkeypatch, capfd, code, advice):
    """The log's append (disk full) or the checkpoint at step 6 (permission denied) fails: one line with advice
    that fits the cause; the run resumes from its last checkpoint, every step logged once."""
    appended = []

    def refused(path, mode):
        appended.append(path.name)
        return (mode == "a" and appended.count("log.jsonl") > 8) if code == errno.ENOSPC else \
            path.name == "ckpt.pt.tmp" and appended.count("ckpt.pt.tmp") == 2

    failing_writes(monkeypatch, refused, code)
    assert_error(capfd, 1, run(tiny_flags(tiny_dataset, tmp_path)), os.strerror(code), advice,
                 "continue with --resume")
    monkeypatch.undo()
    kept = load_checkpoint(tmp_path / "ckpt.pt")["step"]
    assert kept == (6 if code == errno.ENOSPC else 0)
    assert train.train(*run_settings(tiny_flags(tiny_dataset, tmp_path, resume=True)))["step"] == 12
    assert steps(tmp_path) == list(range(1, 13))


@pytest.mark.parametrize("free, advice", [(0, "(No space left on device); the previous checkpoint is kept: make "
                                                 "room on that disk, then continue with --resume"),
                                            (2**40, "unexpected pos 1536 vs 1472); the previous checkpoint is kept: "
                                                    "check that its disk is healthy and writable")])
def test_torchs_failed_write_on_a_full_disk_is_told_as_a_full_disk(tiny_dataset, tmp_path, monkeypatch, capfd,
                                                                     free, advice):
    """torch reports a write that failed for want of room as a RuntimeError: the disk itself says whether it is
    full (a 5 MB tmpfs was; here its free space is told), and the advice follows."""
    train.train(*run_settings(tiny_flags(tiny_dataset, tmp_path, max_steps=2)))
    checkpoint = (tmp_path / "ckpt.pt").read_bytes()

    def cut_short(state, f):
        f.write(b"part of a checkpoint")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 1536 vs 1472")

    monkeypatch.setattr(run_folder.torch, "save", cut_short)
    monkeypatch.setattr(run_folder.shutil, "disk_usage", lambda folder: shutil._ntuple_diskusage(2**40, 2**40, free))
    assert_error(capfd, 1, run(tiny_flags(tiny_dataset, tmp_path, resume=True, max_steps=4, allow_changes=True,
                                          checkpoint_interval=1)), "could not write a checkpoint to", advice)
    assert (tmp_path / "ckpt.pt").read_bytes() == checkpoint and not any(tmp_path.glob("*.tmp"))


def test_a_file_rewritten_as_a_run_resumes_is_replaced_whole_or_not_at_all(tiny_dataset, tmp_path, monkeypatch,
                                                                          capfd):
    train.train(*run_settings(tiny_flags(tiny_dataset, tmp_path, max_steps=2)))
    before = snapshot(tmp_path)
    failing_writes(monkeypatch, lambda path, mode: path.name == "log.jsonl.tmp", errno.ENOSPC)  # cut back to step 2
    assert_error(capfd, 1, run(tiny_flags(tiny_dataset, tmp_path, resume=True, max_steps=4, allow_changes=True)),
                 "could not write", "log.jsonl (No space left on device)", "make room on that disk")
    assert snapshot(tmp_path) == before  # the log as it was, and no temporary file


def test_the_first_use_build_into_a_folder_it_cannot_write_is_refused_before_the_work(tmp_path, monkeypatch, capfd):
    (tmp_path / "a_file").write_text("not a folder")
    monkeypatch.setattr(data, "DATA_DIR", tmp_path / "a_file" / "data")  # no folder can be made there
    assert_error(capfd, 1, run(["--dataset=stdlib", f"--out_dir={tmp_path / 'run'}"]),
                 "cannot build the default dataset in", "python data/prepare.py --out=DIR")
    with pytest.raises(DataError):
        data.load_dataset("stdlib")


def test_output_into_head_ends_in_one_line_and_an_ascii_terminal_gets_escapes(tiny_dataset, tmp_path):
    train.train(*run_settings(tiny_flags(tiny_dataset, tmp_path, max_steps=2)))
    (tmp_path / "long_prompt.py").write_text("x = 1\n" * 20_000)  # more than a pipe holds: sample.py must wait
    sample = [sys.executable, "sample.py", f"--out_dir={tmp_path}", f"--prompt=FILE:{tmp_path / 'long_prompt.py'}",
              "--num_samples=1", "--max_new_tokens=1", "--device=cpu"]
    head = subprocess.Popen(sample, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert head.stdout.readline() == "x = 1\n"  # python sample.py ... | head -n 1
    head.stdout.close()
    assert head.wait(timeout=120) == 1
    assert head.stderr.read().splitlines() == ["error: the output's reader closed it early (e.g. | head); stopped "
                                               "there (a run resumes from its last checkpoint)"]
    ascii_terminal = run_script("sample.py", f"--out_dir={tmp_path}", "--prompt=café", "--num_samples=2",
                                "--device=cpu", env=os.environ | {"PYTHONIOENCODING": "ascii"})
    assert ascii_terminal.returncode == 0, ascii_terminal.stderr  # the samples, with what ASCII lacks escaped
    assert ascii_terminal.stdout.startswith("caf\\xe9") and ascii_terminal.stdout.count("-" * 40) == 2
    assert "note: this terminal's encoding (ascii) cannot show every character of the samples: those characters " \
           "are written as backslash escapes (PYTHONIOENCODING=utf-8 shows them)" in ascii_terminal.stderr.splitlines()
    assert "error" not in ascii_terminal.stderr
