"""
Read a dataset folder made by data/prepare.py: its manifest, training batches, fixed validation
windows, and its tokenizer (ds.tokenizer.encode / decode / eot_token). Used by train.py, sample.py
and probe.py; prepare.py reads an existing dataset's manifest through this module too.
"""
import json
from pathlib import Path

import numpy as np
# no `import torch` here: the two functions that make tensors import it, since prepare.py imports this
# module for its manifest, makes no tensors, and would start 1-2 s slower

from data import DATA_DIR, DEFAULT_DATASET
from data.bpe import load_tokenizer
from errors import DataError

FORMAT = "nanosas-dataset-1"
MANIFEST = "manifest.json"
SPLITS = ("train", "val")
REBUILD = "rebuild it with `python data/prepare.py --force` and the options it was built with"


def build_advice(data_dir):
    """How to build a missing dataset folder: the default one needs no options, a folder in data/ is
    named with --name, any other with --out."""
    data_dir = Path(data_dir).resolve()
    if data_dir == DATA_DIR / DEFAULT_DATASET:
        return "build it with `python data/prepare.py`"
    where = f"--name={data_dir.name}" if data_dir.parent == DATA_DIR else f"--out={data_dir}"
    return f"build it from a folder of your files with `python data/prepare.py --source=DIR {where}`"


def load_manifest(data_dir):
    """Read a dataset's manifest and check that its token files are all there, at full length."""
    path = Path(data_dir) / MANIFEST
    if Path(data_dir).is_file():
        raise DataError(f"{data_dir} is a file, not a dataset folder; point --dataset at a folder that "
                        f"data/prepare.py built")
    if not path.is_file():
        raise DataError(f"no dataset in {data_dir}; {build_advice(data_dir)}")
    try:
        manifest = json.loads(path.read_text())
    except ValueError:  # truncated, not JSON, not UTF-8
        manifest = None
    if not well_formed(manifest):
        raise DataError(f"{path} is not a nanoSAS dataset manifest; {REBUILD}")
    for split in SPLITS:
        bin_path = Path(data_dir) / f"{split}.bin"
        if not bin_path.is_file() or bin_path.stat().st_size != 2 * manifest["tokens"][split]:  # uint16: 2 bytes
            raise DataError(f"{bin_path} is missing or truncated; {REBUILD}")
    return manifest


def well_formed(manifest):
    """Whether a manifest has what its readers take from it, each of the right kind: the format, the token counts
    (Dataset), the fingerprint (checkpoints), the settings and the corpus's hash (a rebuild compares them)."""
    return (isinstance(manifest, dict) and manifest.get("format") == FORMAT
            and isinstance(manifest.get("tokens"), dict)
            and all(type(manifest["tokens"].get(split)) is int for split in SPLITS)
            and isinstance(manifest.get("fingerprint"), str) and isinstance(manifest.get("settings"), dict)
            and isinstance(manifest.get("corpus_sha256"), str))


class Dataset:
    """Token streams on disk (train.bin / val.bin, uint16) plus the tokenizer that made them.

    The token files are opened once and held open for the Dataset's lifetime, so the data cannot change
    under a run: a dataset rebuilt meanwhile (prepare.py renames the new build into place) or deleted does
    not reach it, and it trains on the build it opened to the end (a deleted build's disk space comes back
    when the run ends)."""

    def __init__(self, data_dir):
        self.data_dir = Path(data_dir)
        self.manifest = load_manifest(self.data_dir)  # raises, saying what to run, if incomplete
        self.tokenizer = load_tokenizer(self.data_dir)  # built offline from the folder's rank file
        self.vocab_size = self.tokenizer.vocab_size  # <|endoftext|> included, e.g. 4097
        self.fingerprint = self.manifest["fingerprint"]  # a checkpoint can store it and refuse other data
        try:
            self.files = {split: open(self.data_dir / f"{split}.bin", "rb") for split in SPLITS}
            rebuilt = load_manifest(self.data_dir)["fingerprint"] != self.fingerprint  # then the files may be its
        except (OSError, DataError):
            rebuilt = True
        if rebuilt:
            raise DataError(f"{self.data_dir} was rebuilt or removed while it was being opened; try again")
        for split in SPLITS:
            # an id the model has no embedding for would crash training far from its cause; one pass
            # over the file takes about a millisecond for the standard library's 5 MB
            largest = int(self._memmap(split).max(initial=0))
            if largest >= self.vocab_size:
                raise DataError(f"{split}.bin in {self.data_dir} holds token id {largest}, but its tokenizer has "
                                f"{self.vocab_size} ids: the dataset does not match its tokenizer; {REBUILD}")

    def num_tokens(self, split):
        return self.manifest["tokens"][self._check_split(split)]

    def get_batch(self, split, batch_size, block_size, generator):
        """A random batch of training windows: x, y int64 (batch_size, block_size) on the CPU,
        y = x shifted by one.

        Window starts come only from torch.randint(generator=generator), so saving and restoring the
        generator's state replays exactly the same batches.
        """
        import torch

        data = self._tokens(split, block_size)
        starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator).tolist()
        return windows(data, starts, block_size)

    def val_windows(self, block_size, max_windows):
        """The fixed validation set: x, y int64 (N, block_size) on the CPU, N <= max_windows.

        Windows are evenly spaced over the val split and never overlap; they depend on nothing but
        the data and the arguments, so every model is evaluated on exactly the same tokens.
        """
        if max_windows < 1:
            raise ValueError(f"max_windows must be at least 1, got {max_windows}")
        data = self._tokens("val", block_size)
        n = min(max_windows, (len(data) - 1) // block_size)  # more would overlap
        starts = np.linspace(0, len(data) - block_size - 1, num=n).astype(np.int64).tolist()
        return windows(data, starts, block_size)

    def _check_split(self, split):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return split

    def _memmap(self, split):
        # a new memmap on every call: nanoGPT's workaround for memmaps that keep growing in memory,
        # https://stackoverflow.com/questions/45132940/numpy-memmap-memory-usage-want-to-iterate-once/61472122#61472122
        # made from the file held open, not from its path, which may name another build by now
        return np.memmap(self.files[self._check_split(split)], dtype=np.uint16, mode="r")

    def _tokens(self, split, block_size):
        """The split's tokens, checked to hold at least one window plus its target."""
        data = self._memmap(split)
        if len(data) < block_size + 1:
            raise DataError(f"the {split} split of {self.data_dir} has {len(data)} tokens, fewer than "
                            f"block_size + 1 = {block_size + 1}; use a smaller --block_size or more data")
        return data


def windows(data, starts, block_size):
    """x, y int64 tensors (len(starts), block_size): the windows of data at starts, and the same shifted by one."""
    import torch

    x = np.stack([data[i : i + block_size] for i in starts]).astype(np.int64)
    y = np.stack([data[i + 1 : i + 1 + block_size] for i in starts]).astype(np.int64)
    return torch.from_numpy(x), torch.from_numpy(y)
