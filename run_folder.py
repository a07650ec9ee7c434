"""
A run folder and its files, written and read in one place: ckpt.pt (the checkpoint), log.jsonl and gains.jsonl
(the logs) and config.json (a record of the settings). train.py writes them, as the folder's one writer
(hold_run_folder), through start_run_folder, RunLog and save_checkpoint, and a diverged run writes nothing
(Interval.check); sample.py, probe.py and compare.py read them and need no lock: every file is replaced
atomically, and a log only grows by whole rows (a kill can tear the last one, which readers skip).
"""

import errno
import json
import math
import os
import shutil
import string
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from tqdm import tqdm

from common import remedy
from data import dataset_dir
from data.dataset import Dataset
from errors import CheckpointError, ConfigError
from hardware import peak_memory
from model import GPT, GPTConfig
from processes import first_process

try:
    import fcntl  # file locks, on Linux, macOS and the other POSIX systems
except ImportError:  # Windows: no lock (hold_run_folder says what that means)
    fcntl = None


def run_dir(out_dir, block):
    """The run folder an --out_dir setting names for a block: its {block} placeholder filled in, as it is (no
    {block.upper}, {block[0]} or {block!r}); {{ and }} are braces."""
    try:
        placeholders = {field[1:] for field in string.Formatter().parse(out_dir) if field[1] is not None}
    except ValueError:  # a lone { or }
        placeholders = None
    if placeholders not in ({("block", "", None)}, set()):
        raise ConfigError(f"--out_dir={out_dir}: the only placeholder it may hold is {{block}}")
    return Path(out_dir.format(block=block))


# -----------------------------------------------------------------------------
# one writer per run folder


@contextmanager
def hold_run_folder(folder):
    """Create the run folder and hold it as its one writer until the with-block ends: a second train.py on it
    (to resume, to overwrite or to start a run) is refused while this one trains. The lock is the operating
    system's (flock on the folder itself): it goes with the process, so a killed run never leaves a stale one.
    Without fcntl (Windows), or on a filesystem without locks (a warning says so), there is no lock, and
    keeping one writer per folder is up to the user."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create --out_dir {folder}: {e.strerror}; {remedy(e, 'pick another --out_dir')}") \
            from None
    if fcntl is None:
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        for _ in range(20):  # another process's refuse_if_training holds it for a moment: try again, for a second
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                time.sleep(0.05)
            except OSError as e:  # a filesystem without locks (some network ones)
                print(f"warning: {folder} cannot be locked here ({e.strerror}); keep one train.py on it yourself",
                      file=sys.stderr)
                break
        else:
            raise CheckpointError(in_use(folder))
        yield
    finally:
        os.close(fd)  # lets go of the lock


def refuse_if_training(folder):
    """Refuse a run folder that a training run holds (train.py and compare.py ask before they start)."""
    if fcntl is None or not Path(folder).is_dir():
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # shared: readers' checks never refuse each other
    except BlockingIOError:
        raise CheckpointError(in_use(folder)) from None
    except OSError:  # a filesystem without locks: no writer can hold one either
        pass
    finally:
        os.close(fd)


def in_use(folder):
    pid = lock_holder(folder)
    process, stop = (f"process {pid}", f"kill {pid}") if pid else ("its process id is unknown here", "kill")
    return (f"{folder} is in use: a run is training there ({process}); wait for it to finish, or stop it first "
            f"(Ctrl-C in its terminal, or {stop}: both save a checkpoint)")


def lock_holder(folder):
    """The id of the process that holds a lock on folder, where the system tells (Linux's /proc/locks), else None."""
    st = os.stat(folder)
    lock_id = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks") as locks:
            for line in locks:  # 1: FLOCK  ADVISORY  WRITE 4711 fe:00:2147427 0 EOF
                fields = line.replace("->", "").split()
                if fields[1] == "FLOCK" and fields[3] == "WRITE" and fields[5] == lock_id:
                    return int(fields[4])
    except (OSError, IndexError, ValueError):
        pass
    return None


# -----------------------------------------------------------------------------
# writing


def replace_atomically(path, write):
    """Write a file with write(f) into path.tmp, fsync it, then rename it over path: a kill at any moment
    leaves either the old or the new file, never a torn one, and the temporary file goes on every way out
    (a failed write, a second Ctrl-C)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        # torch's writer reports a full disk as a RuntimeError ("unexpected pos ..."): asked before the partial file
        # goes, the disk says whether that was it
        full = isinstance(e, RuntimeError) and disk_is_full(path.parent)
        tmp.unlink(missing_ok=True)
        if full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp)) from e
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def disk_is_full(folder):
    """Whether the disk that holds folder has no room left (less than a mebibyte)."""
    try:
        return shutil.disk_usage(folder).free < 2**20
    except OSError:
        return False


RUN_FILES = ("ckpt.pt", "log.jsonl", "gains.jsonl", "config.json")


def remove_leftovers(folder):
    """Delete the temporary files that a killed writer left in its run folder: they are never a checkpoint."""
    for name in RUN_FILES:
        try:
            (folder / (name + ".tmp")).unlink(missing_ok=True)
        except OSError as e:
            raise CheckpointError(unwritable(folder / (name + ".tmp"), e)) from None


def save_checkpoint(path, state):
    """Write the checkpoint atomically. A failed write (a full disk) keeps the old checkpoint and stops with one
    line that says what to do about its cause."""
    kept = path.exists()
    try:
        replace_atomically(path, lambda f: torch.save(state, f))
    except (OSError, RuntimeError) as e:  # torch's writer reports a failed write as a RuntimeError
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e).splitlines()[0]
        then = "the previous checkpoint is kept: {}, then continue with --resume" if kept else "{}, then start again"
        raise CheckpointError(f"could not write a checkpoint to {path} ({reason}); "
                              + then.format(remedy(e, "move the run folder somewhere writable"))) from None


def write_file(path, text):
    """Replace a run folder's text file (a log, config.json) atomically; a failed write stops with one line."""
    try:
        replace_atomically(path, lambda f: f.write(text.encode("utf-8")))
    except OSError as e:
        raise CheckpointError(unwritable(path, e)) from None


def append_log(path, row):
    """Add a row to a log. A write that fails part way leaves a torn last line, which readers skip and a
    resumed run removes."""
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(log_line(row))
    except OSError as e:
        raise CheckpointError(unwritable(path, e)) from None


def log_line(row):
    """A log's row as a line of JSON, which has no NaN or infinity: a number that is not finite is written as null
    (read_log reads it back as nan), so that every tool reads the log, not Python's alone."""
    return json.dumps(each_number(row, lambda x: None if isinstance(x, float) and not math.isfinite(x) else x),
                      allow_nan=False) + "\n"


def each_number(value, change):
    """value (a row: dicts and lists of numbers) with change applied to every number (or null) in it."""
    if isinstance(value, dict):
        return {key: each_number(item, change) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [each_number(item, change) for item in value]
    return change(value)


def unwritable(path, e):
    return (f"could not write {path} ({e.strerror}); the last checkpoint is kept: "
            f"{remedy(e, 'move the run folder somewhere writable')}, then continue with --resume")


def start_run_folder(folder, checkpoint, settings, changes):
    """Make the run folder, which this process holds, hold this run alone. A new run's checkpoint (at step 0) goes
    first, atomically: whatever the folder held before, a kill at any later moment leaves a checkpoint that resume
    trusts, and the logs keep only their rows up to the checkpoint's step. config.json records the settings;
    changes ({setting: (saved, now)}, allowed by --allow_changes) are printed and logged."""
    remove_leftovers(folder)  # the temporary files of a killed writer
    if checkpoint["step"] == 0:
        save_checkpoint(folder / "ckpt.pt", checkpoint)  # a new run replaces any old one right away
    for name in ("log.jsonl", "gains.jsonl"):
        path = folder / name
        kept = [row for row in read_log(path) if row["step"] <= checkpoint["step"]]
        if path.exists() or name == "log.jsonl":  # gains.jsonl only for blocks that have gains
            write_file(path, "".join(log_line(row) for row in kept))
    write_file(folder / "config.json", json.dumps(settings, indent=2) + "\n")
    if changes:
        print("continuing with changed settings: " + ", ".join(f"{key} {old} -> {new}"
                                                                 for key, (old, new) in changes.items()))
        append_log(folder / "log.jsonl", {"step": checkpoint["step"], "changed": changes})


class Interval:
    """The steps of a run since its last log row, which RunLog writes about: their losses, how many were skipped,
    how long they took; and since the last checkpoint (carried over from the previous interval): the step it was
    saved at, and how many steps were skipped. What a diverged run would write, it refuses (check)."""

    def __init__(self, first_step, previous=None):
        self.first_step, self.skipped, self.seconds = first_step, 0, 0.0
        self.losses, self.pending = [], []  # read back to the host / still on the device
        self.saved_at, self.skipped_unsaved = (previous.saved_at, previous.skipped_unsaved) if previous \
            else (first_step, 0)

    def add(self, loss):
        """A step's loss: a tensor on the device, or None for a skipped step."""
        if loss is None:
            self.skipped += 1
            self.skipped_unsaved += 1
            step = self.first_step + len(self.losses) + len(self.pending) + self.skipped - 1
            if first_process():
                tqdm.write(f"step {step}: the loss is not finite; skipped this batch", file=sys.stderr)
        else:
            self.pending.append(loss)

    def read_back(self, cfg):
        """Bring the losses to the host, where a non-finite one stops the run (--on_nonfinite=stop) before
        anything is logged or saved: the last checkpoint stays the last good one."""
        for loss in torch.stack(self.pending).tolist() if self.pending else []:
            if not math.isfinite(loss):
                raise diverged(cfg, f"loss is {loss} at step {self.first_step + len(self.losses)}",
                               "try a lower --learning_rate, or --on_nonfinite=skip")
            self.losses.append(loss)
        self.pending = []

    def check(self, cfg, state, val_loss, saving):
        """Stop a run that diverged before anything is logged or saved, so that the log holds finite losses and the
        last checkpoint stays the last good one: its validation loss is not finite, or, where a checkpoint is due,
        most of the steps since the last one were skipped (--on_nonfinite=skip), or the weights are not finite (a
        step with a finite loss can still blow them up, and the next loss would tell too late)."""
        step = state.step
        if val_loss is not None and not math.isfinite(val_loss):
            raise diverged(cfg, f"the validation loss is {val_loss} at step {step}", "try a lower --learning_rate")
        if saving and 2 * self.skipped_unsaved > step - self.saved_at:
            raise diverged(cfg, f"{self.skipped_unsaved} of the {step - self.saved_at} steps since the last "
                                f"checkpoint had a non-finite loss and were skipped", "try a lower --learning_rate")
        if saving and not finite_weights(state.model):
            raise diverged(cfg, f"the weights are not finite at step {step}", "try a lower --learning_rate")
        if saving:
            self.saved_at, self.skipped_unsaved = step, 0


def finite_weights(model):
    """Whether every weight of model is finite (one wait for the device, not one per tensor)."""
    return bool(torch.stack([p.isfinite().all() for p in model.parameters()]).all())


def diverged(cfg, what, advice):
    """The error that stops a diverged run: what went wrong, that the last checkpoint is kept, and advice."""
    return FloatingPointError(f"{cfg.block}: {what}; stopped, and the last good checkpoint in {cfg.run_dir} is kept "
                              f"({advice})")


class RunLog:
    """log.jsonl: a row every log_interval steps, and what the progress bar shows; gains.jsonl: the model's gains
    at the same steps (probe.py draws them over training). MFU is taken against each peak FLOP/s in peaks (the
    measured one, and the data sheet's where known)."""

    def __init__(self, folder, tokens_per_step, flops_per_token, peaks, device):
        self.path, self.gains_path, self.last_row = folder / "log.jsonl", folder / "gains.jsonl", {}
        self.tokens_per_step, self.flops_per_token, self.peaks, self.device = \
            tokens_per_step, flops_per_token, peaks, device

    def write(self, state, interval, val_loss, bar):
        """A row for the steps of interval, which ended at state.step."""
        steps = len(interval.losses) + interval.skipped
        row = {"step": state.step, "lr": state.optimizer.param_groups[0]["lr"], "time": state.train_time,
               "tokens_per_sec": steps * self.tokens_per_step / interval.seconds}
        if interval.losses:  # a train loss only if some step had a finite one
            row["train_loss"] = sum(interval.losses) / len(interval.losses)
        if interval.skipped:
            row["skipped"] = interval.skipped
        if val_loss is not None:
            row["val_loss"] = val_loss
        row |= {key: self.flops_per_token * row["tokens_per_sec"] / peak for key, peak in self.peaks.items()
                if peak is not None}
        row["peak_memory"] = peak_memory(self.device)
        append_log(self.path, row)
        if gains := state.model.gains():
            append_log(self.gains_path, {"step": state.step, **gains})
        self.last_row = row
        if val_loss is not None:
            train_loss = f"train loss {row['train_loss']:.4f}" if "train_loss" in row else "no finite train loss"
            tqdm.write(f"step {row['step']}: {train_loss}, val loss {val_loss:.4f}")
        bar.set_postfix(loss=f"{row.get('train_loss', float('nan')):.3f}", tok_s=f"{row['tokens_per_sec']:,.0f}",
                        mfu=f"{row['mfu']:.0%}", refresh=False)


# -----------------------------------------------------------------------------
# reading

# what a checkpoint of train.py holds, and what a reader of the trained model needs of it
CHECKPOINT_KEYS = ("model", "optimizer", "scaler", "step", "train_time", "config", "model_config",
                   "dataset_fingerprint", "device", "dtype", "attention", "data_rng", "torch_rng")
MODEL_KEYS = ("model", "model_config", "config", "dataset_fingerprint")
# what checkpoints saved by an earlier train.py lack, and what those runs had
EARLIER_KEYS = {"attention": "fused"}  # the attention kernel: before it was chosen, every run used SDPA's fused ones


def load_checkpoint(path, needs=CHECKPOINT_KEYS):
    """The checkpoint at path, with the keys a reader needs (refused in one line if it lacks one; a key that a
    checkpoint from an earlier train.py lacks gets the value those runs had)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; train one first (python train.py) or check --out_dir")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, corrupt or not a checkpoint at all: torch raises many kinds
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(e).__name__}); "
                              f"it may be truncated or corrupt: restore it or start afresh with --overwrite") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("config"), dict):
        raise CheckpointError(f"{path} is a torch file, but not a checkpoint that train.py wrote (it holds no "
                              f"settings); point at a run folder that train.py wrote")
    ckpt = EARLIER_KEYS | ckpt
    missing = [key for key in needs if key not in ckpt]
    if missing:
        raise CheckpointError(f"{path} is not a checkpoint of this train.py: it lacks {', '.join(missing)}; point "
                              f"at a run folder that train.py wrote, or train afresh (--overwrite)")
    return ckpt


def load_trained_model(run_dir):
    """The GPT saved in run_dir/ckpt.pt, and the Dataset it was trained on, which must be the very
    build the model was trained on (not one rebuilt differently since)."""
    ckpt = load_checkpoint(Path(run_dir) / "ckpt.pt", needs=MODEL_KEYS)
    model = GPT(GPTConfig(**ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
    if not finite_weights(model):  # saved by a diverged run of an earlier train.py, which did not check
        raise CheckpointError(f"the model in {run_dir} has weights that are not finite: its run diverged; train it "
                              f"again with a lower --learning_rate")
    dataset = Dataset(dataset_dir(ckpt["config"]["dataset"]))
    if dataset.fingerprint != ckpt["dataset_fingerprint"]:
        raise CheckpointError(f"{dataset.data_dir} is not the build the model in {run_dir} was trained on "
                              f"(fingerprint {dataset.fingerprint}, not {ckpt['dataset_fingerprint']}): "
                              f"the dataset was rebuilt since; rebuild it as it was")
    return model, dataset


def read_log(path):
    """The rows of a log (log.jsonl, gains.jsonl). A last line without its newline is a row torn by a kill,
    and skipped; any other line that is not a row means the log was damaged, and is refused in one line."""
    path = Path(path)
    if not path.exists():
        return []
    *lines, _ = path.read_bytes().split(b"\n")  # after the last newline: nothing, or a torn row
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):  # not UTF-8, not JSON
            row = None
        if not isinstance(row, dict) or "step" not in row:
            raise CheckpointError(f"{path}, line {number} is not a row of train.py's log ({line[:40]!r}); "
                                  f"delete that line (or the whole log) and try again")
        rows.append(each_number(row, lambda x: math.nan if x is None else x))  # (log_line's null)
    return rows
