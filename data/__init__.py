"""
The data side of nanoSAS: `python data/prepare.py` builds a dataset folder, data.dataset.Dataset reads it.

    from data import load_dataset
    ds = load_dataset("stdlib")  # data/stdlib, built from this Python's standard library on first use
    x, y = ds.get_batch("train", batch_size=8, block_size=128, generator=torch.Generator().manual_seed(0))
    print(ds.tokenizer.decode(x[0].tolist()))
"""

from pathlib import Path

from configurator import is_name
from errors import ConfigError

DATA_DIR = Path(__file__).resolve().parent
DEFAULT_DATASET = "stdlib"


def dataset_dir(name):
    """Where a --dataset setting points, by the one rule every script follows: a name is a folder under data/
    (stdlib -> data/stdlib), anything else a path, relative to the current folder (./mine, ~/datasets/mine, ..).
    Empty, or data/ itself, it names no dataset (prepare.py's --name is a name: configurator.is_name)."""
    if not name:
        raise ConfigError("--dataset is empty; name a dataset: a folder in data/ (--dataset=stdlib) or a path "
                          "(--dataset=./mine)")
    path = DATA_DIR / name if is_name(name) else Path(name).expanduser().resolve()
    if path == DATA_DIR:
        raise ConfigError(f"--dataset={name} is data/, the folder that holds the datasets, not one of them; name "
                          f"one, e.g. --dataset={DEFAULT_DATASET}")
    return path


def dataset_setting(name):
    """A --dataset setting as a run records it: a name as it is, a path made absolute, so that a process started
    in another folder (gpu_check.py's train.py, a resumed run) finds the same data. Refuses what names none."""
    path = dataset_dir(name)
    return name if is_name(name) else str(path)


def load_dataset(name):
    """The Dataset a --dataset setting names; the default one is built on first use."""
    # imported here, not at the top: data/dataset.py and data/prepare.py import DATA_DIR from this
    # package, so a top-level import would be circular, and `python data/prepare.py` (run as __main__)
    # would load prepare.py a second time, as data.prepare
    import tempfile

    from data.dataset import Dataset
    from data.prepare import prepare
    from errors import DataError

    path = dataset_dir(name)
    if name == DEFAULT_DATASET and not path.exists():
        print("first run: building the default dataset from this Python's standard library")
        try:
            tempfile.TemporaryFile(dir=path.parent).close()  # a folder it cannot write is refused before the work
            prepare(path)
        except OSError as e:
            raise DataError(f"cannot build the default dataset in {path.parent} ({e.strerror}); build it where you "
                            f"can write with `python data/prepare.py --out=DIR`, and pass --dataset=DIR") from None
    return Dataset(path)
