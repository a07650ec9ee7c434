"""
Read a dataset folder made by data/prepare.py: training batches, fixed validation windows, and
the tokenizer's encode/decode. Shared by train.py and sample.py.
"""
from pathlib import Path

import numpy as np
import torch

from data.bpe import DataError, load_tokenizer
from data.prepare import SPLITS, load_manifest


class Dataset:
    """Token streams on disk (train.bin / val.bin, uint16) plus the tokenizer that made them."""

    def __init__(self, data_dir):
        self.data_dir = Path(data_dir)
        self.manifest = load_manifest(self.data_dir)  # raises, saying what to run, if incomplete
        self.tokenizer = load_tokenizer(self.data_dir)  # built offline from the folder's rank file
        self.vocab_size = self.tokenizer.vocab_size  # <|endoftext|> included, e.g. 4097
        self.eot_token = self.tokenizer.eot_token
        self.encode, self.decode = self.tokenizer.encode, self.tokenizer.decode
        self.fingerprint = self.manifest["fingerprint"]  # a checkpoint can store it and refuse other data

    def num_tokens(self, split):
        return self.manifest["tokens"][self._check_split(split)]

    def get_batch(self, split, batch_size, block_size, generator, device="cpu"):
        """A random batch of training windows: x, y int64 (batch_size, block_size), y = x shifted by one.

        Window starts come only from torch.randint(generator=generator), so saving and restoring the
        generator's state replays exactly the same batches.
        """
        data = self._tokens(split, block_size)
        starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator).tolist()
        x = torch.stack([torch.from_numpy(data[i : i + block_size].astype(np.int64)) for i in starts])
        y = torch.stack([torch.from_numpy(data[i + 1 : i + 1 + block_size].astype(np.int64)) for i in starts])
        if torch.device(device).type == "cuda":
            # pinned host memory lets the copy to the GPU run asynchronously
            return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
        return x.to(device), y.to(device)

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
        x = torch.from_numpy(np.stack([data[i : i + block_size] for i in starts]).astype(np.int64))
        y = torch.from_numpy(np.stack([data[i + 1 : i + 1 + block_size] for i in starts]).astype(np.int64))
        return x, y

    def _check_split(self, split):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return split

    def _tokens(self, split, block_size):
        """The split's tokens as a fresh np.memmap, checked to hold at least one window plus its target."""
        # a new memmap on every call: nanoGPT's workaround for memmaps that keep growing in memory,
        # https://stackoverflow.com/questions/45132940/numpy-memmap-memory-usage-want-to-iterate-once/61472122#61472122
        split = self._check_split(split)
        data = np.memmap(self.data_dir / f"{split}.bin", dtype=np.uint16, mode="r")
        if len(data) < block_size + 1:
            raise DataError(f"the {split} split of {self.data_dir} has {len(data)} tokens, fewer than "
                             f"block_size + 1 = {block_size + 1}; use a smaller --block_size or more data")
        return data
