"""
A run folder's files, written and read in one place: ckpt.pt (the checkpoint) and log.jsonl (the log).
train.py writes them; sample.py, probe.py and compare.py read them.
"""

import json
import os
from pathlib import Path

import torch

from configurator import ConfigError
from data import dataset_dir
from data.dataset import Dataset
from model import GPT, GPTConfig


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or does not fit the run."""


def run_dir(out_dir, block):
    """The run folder an --out_dir setting names for a block: its {block} placeholder filled in."""
    try:
        return Path(out_dir.format(block=block))
    except (KeyError, IndexError, ValueError):
        raise ConfigError(f"--out_dir={out_dir}: the only placeholder it may hold is {{block}}") from None


def save_checkpoint(path, state):
    """Write to a temporary file, fsync, then rename over the old checkpoint: a kill at any
    moment leaves either the old or the new checkpoint, never a torn one. A failed write (a full
    disk) removes the temporary file and keeps the old checkpoint."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # torch's writer reports a failed write as a RuntimeError
        tmp.unlink(missing_ok=True)
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e).splitlines()[0]
        raise CheckpointError(f"could not write a checkpoint to {path} ({reason}); the previous checkpoint is kept: "
                              f"make room and continue with --resume") from None
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_checkpoint(path):
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; train one first (python train.py) or check --out_dir")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, corrupt or not a checkpoint at all: torch raises many kinds
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(e).__name__}); "
                              f"it may be truncated or corrupt: restore it or start afresh with --overwrite") from None


def load_trained_model(run_dir):
    """The GPT saved in run_dir/ckpt.pt, and the Dataset it was trained on, which must be the very
    build the model was trained on (not one rebuilt differently since)."""
    ckpt = load_checkpoint(Path(run_dir) / "ckpt.pt")
    model = GPT(GPTConfig(**ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
    dataset = Dataset(dataset_dir(ckpt["config"]["dataset"]))
    if dataset.fingerprint != ckpt["dataset_fingerprint"]:
        raise CheckpointError(f"{dataset.data_dir} is not the build the model in {run_dir} was trained on "
                              f"(fingerprint {dataset.fingerprint}, not {ckpt['dataset_fingerprint']}): "
                              f"the dataset was rebuilt since; rebuild it as it was")
    return model, dataset


def read_log(path):
    """The rows of a log.jsonl, ignoring a torn last line left by a kill."""
    rows = []
    if Path(path).exists():
        for line in Path(path).read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def append_log(path, row):
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")
