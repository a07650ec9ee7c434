"""Shared fixtures: a tiny dataset, built once per test session from a corpus written on the spot."""

import pytest

from data.prepare import prepare
from helpers import write_corpus


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """The path of a small dataset (vocab 320) built from a synthetic Python corpus."""
    root = tmp_path_factory.mktemp("tiny_dataset")
    return str(prepare(root / "data", source=write_corpus(root / "corpus", n_files=24), vocab_size=320,
                       val_fraction=0.3))

