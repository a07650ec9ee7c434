"""Faults a class or an overnight run meets, tried as a user would: two runs on one run folder, a writer killed
part way, a disk that is read-only or full. Each ends in one `error:` line, with nothing lost: the run resumes."""

import errno
import os
from pathlib import Path

import pytest

import checkpoint
import train
from checkpoint import CheckpointError, hold_run_folder, load_checkpoint, read_log
from common import run_main
from helpers import snapshot, tiny_flags


@pytest.fixture(autouse=True)
def no_mfu_probe(monkeypatch):
    """The runs in this process skip the start-up measurement of the matmul peak, which these tests are not about
    (it only sets MFU's denominator)."""
    monkeypatch.setattr(train, "measure_matmul_flops", lambda *args, **kwargs: 1e12)


def run(argv, main=train.main):
    """A script's main as its command line runs it: the exit status."""
    with pytest.raises(SystemExit) as ended:
        run_main(main, argv)
    return ended.value.code


def assert_error(capfd, status, code, *hints):
    """One line on stderr, error: ..., on a line of its own (not glued to a progress bar), holding the hints."""
    err = capfd.readouterr().err
    assert code == status, err
    last = err.rstrip("\n").rpartition("\n")[2]
    assert last.startswith("error: ") and "Traceback" not in err, err
    for hint in hints:
        assert hint in last, last
    return last


def steps(run_dir):
    """The steps of the log's rows (not those that record changed settings)."""
    return [row["step"] for row in read_log(run_dir / "log.jsonl") if "changed" not in row]


# -----------------------------------------------------------------------------
# one writer per run folder


def test_the_lock_is_held_while_the_run_trains_and_missing_without_fcntl(tiny_dataset, tmp_path, monkeypatch):
    """Past train.py's first check (two runs starting at once), the lock itself refuses the second writer,
    before it writes anything; where the system has no fcntl (Windows) nothing is locked or refused."""
    cfg, _ = train.settings(tiny_flags(tiny_dataset, tmp_path))
    with hold_run_folder(tmp_path):
        with pytest.raises(CheckpointError, match=f"is in use: a run is training there \\(process {os.getpid()}\\)"):
            train.train(cfg)
        with pytest.raises(CheckpointError, match="is in use"):
            checkpoint.refuse_if_training(tmp_path)
        monkeypatch.setattr(checkpoint, "fcntl", None)
        checkpoint.refuse_if_training(tmp_path)  # no lock to see
        assert train.train(cfg)["step"] == 12
    assert not any(tmp_path.glob("*.tmp"))


def test_a_filesystem_without_locks_trains_unlocked_with_a_warning(tiny_dataset, tmp_path, monkeypatch, capfd):
    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(checkpoint.fcntl, "flock", no_locks)
    assert run(tiny_flags(tiny_dataset, tmp_path, max_steps=2)) == 0
    assert f"warning: {tmp_path} cannot be locked here (No locks available)" in capfd.readouterr().err


# -----------------------------------------------------------------------------
# stops at odd moments


def test_a_killed_writers_temporary_files_are_removed_and_never_taken_for_a_run(tiny_dataset, tmp_path):
    (tmp_path / "ckpt.pt.tmp").write_bytes(b"half a checkpoint")  # killed while writing its first checkpoint
    cfg, ckpt = train.settings(tiny_flags(tiny_dataset, tmp_path, max_steps=2))  # not "already holds a run"
    train.train(cfg, ckpt)
    for name in ("ckpt.pt.tmp", "log.jsonl.tmp", "config.json.tmp"):
        (tmp_path / name).write_bytes(b"torn")
    train.train(*train.settings(tiny_flags(tiny_dataset, tmp_path, max_steps=4, resume=True, allow_changes=True)))
    assert not any(tmp_path.glob("*.tmp")) and steps(tmp_path) == [1, 2, 3, 4]


# -----------------------------------------------------------------------------
# files and paths as users have them


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

    monkeypatch.setattr(checkpoint, "open", checked_open, raising=False)  # every run folder write goes through it


@pytest.mark.parametrize("resume", [False, True])
def test_a_run_folder_on_a_read_only_filesystem_is_refused_in_one_line(tiny_dataset, tmp_path, monkeypatch, capfd,
                                                                       resume):
    train.train(*train.settings(tiny_flags(tiny_dataset, tmp_path / "run", max_steps=2)))
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
    assert train.train(*train.settings(tiny_flags(tiny_dataset, tmp_path, resume=True)))["step"] == 12
    assert steps(tmp_path) == list(range(1, 13))


def test_a_file_rewritten_as_a_run_resumes_is_replaced_whole_or_not_at_all(tiny_dataset, tmp_path, monkeypatch,
                                                                          capfd):
    train.train(*train.settings(tiny_flags(tiny_dataset, tmp_path, max_steps=2)))
    before = snapshot(tmp_path)
    failing_writes(monkeypatch, lambda path, mode: path.name == "log.jsonl.tmp", errno.ENOSPC)  # cut back to step 2
    assert_error(capfd, 1, run(tiny_flags(tiny_dataset, tmp_path, resume=True, max_steps=4, allow_changes=True)),
                 "could not write", "log.jsonl (No space left on device)", "make room on that disk")
    assert snapshot(tmp_path) == before  # the log as it was, and no temporary file
