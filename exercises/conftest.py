"""Says, above the results, which files the exercise checks are grading, and below them what the checks noted
(predictions next to measurements); runs every check within a time limit, in plain words; and the checks' shared
fixtures."""

import shutil
from pathlib import Path

import pytest
import torch

import blocks
from exercises.checks import CHECK_SECONDS, NOTES, graded_folder, in_plain_words, time_limit

# The checks' models are tiny: one thread is faster than several, and much faster on a busy machine,
# where threads wait for each other (on 2 shared cores the checks took 30 times longer with two).
torch.set_num_threads(1)


def pytest_report_header(config):
    return f"exercises: grading exercises/{graded_folder()}/ (NANOSAS_SOLUTIONS=1 grades the solutions)"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Every check runs within a time limit, and fails in words the student can act on where torch's own would
    puzzle (exercises.checks.in_plain_words)."""
    with time_limit(CHECK_SECONDS):
        try:
            return (yield)
        except (RuntimeError, TypeError, AttributeError) as e:
            if meaning := in_plain_words(e):
                raise AssertionError(meaning) from e
            raise


def pytest_terminal_summary(terminalreporter):
    """After the results: what the checks noted for the student (exercises.checks.note), e.g. a prediction
    next to the measurement."""
    for heading, lines in NOTES.items():
        terminalreporter.write_sep("-", heading)
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """A dataset of a few thousand tokens, built in a fraction of a second: this repo's block files."""
    from data.prepare import prepare

    root = tmp_path_factory.mktemp("tiny_dataset")
    for copy in range(4):  # enough text for both splits
        shutil.copytree(Path(blocks.__file__).parent, root / "corpus" / str(copy),
                        ignore=shutil.ignore_patterns("__pycache__"))
    return prepare(root / "data", source=root / "corpus", vocab_size=300, val_fraction=0.3)


@pytest.fixture
def quick_training(monkeypatch):
    """train.train without its measurement of the machine's matmul speed (seconds, for the MFU column,
    which no check reads)."""
    import train

    monkeypatch.setattr(train, "measure_matmul_flops", lambda *args, **kwargs: 1e12)
