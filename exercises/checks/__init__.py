"""
The automatic checks, one file per exercise.

A check grades the student's file, exercises/tasks/<name>.py; with NANOSAS_SOLUTIONS=1 in the
environment it grades exercises/solutions/<name>.py instead, so one set of checks serves both
(tests/test_exercises.py runs them both ways).

A check collects every problem it finds in a list and fails once, with all of them, each saying
what is wrong and where the mistake most likely is: assert_none(problems). A prediction is not
graded: its check only makes sure it has the right form, and note() reports it next to the
measurement at the end of the run. A check also fails on the shortcut its task forbids: names_used
reads the student's source for what it may not import, and Operations records what a function
computed, whatever name it reached torch by. The functions that collect problems (problems_*) take
the student's code as an argument, so tests/test_exercises.py can feed them known mistakes and
shortcuts and make sure the messages name them.

Whatever the student's file does, a check ends in a line that says what: a file that does not import
fails its own exercise's checks only (the module is imported when a check first uses it), a
function that never returns fails after CHECK_SECONDS (time_limit), and torch's own words for a
tensor of the wrong dtype or device, or for None, become what the student's code did (in_plain_words).
"""

import ast
import importlib
import inspect
import os
import signal
import threading
from contextlib import contextmanager

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


def graded_folder():
    return "solutions" if os.environ.get("NANOSAS_SOLUTIONS") == "1" else "tasks"


def under_test(name):
    """The module a check grades: exercises/tasks/<name>.py, or its solution when NANOSAS_SOLUTIONS=1, imported
    when a check first uses it."""
    return Graded(f"exercises.{graded_folder()}.{name}")


class Graded:
    """A module imported on first use: a task file with a syntax error (or one that fails as it is imported) fails
    the checks of its own exercise, each in one line, and every other exercise is checked, with -k too."""

    def __init__(self, module_name):
        self._module_name = module_name

    def __getattr__(self, name):
        if name.startswith("_"):  # what pytest asks of every module-level name as it collects: not the student's
            raise AttributeError(name)
        return getattr(self._module(), name)

    def _module(self):
        """The student's module itself, e.g. for names_used."""
        try:
            return importlib.import_module(self._module_name)
        except Exception as e:  # a SyntaxError, or any error at the top level of the student's file
            where = self._module_name.replace(".", "/") + ".py"
            line = f", line {e.lineno}" if isinstance(e, SyntaxError) else ""
            pytest.fail(f"{where}{line} cannot be imported: {type(e).__name__}: {e}", pytrace=False)


CHECK_SECONDS = 30  # the longest check takes about 3 s on a busy 2-core CPU


class TookTooLong(BaseException):
    """A check that ran out of time. Not an Exception: a student's `except Exception` in the loop cannot keep it."""


@contextmanager
def time_limit(seconds):
    """Fail the with-block if it has not ended within seconds: a function of the student's that never returns
    (a loop whose condition never changes) ends its check, not the whole run. It takes SIGALRM, which POSIX
    systems have: elsewhere (Windows) there is no limit, and Ctrl-C stops a check that hangs."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise TookTooLong(f"your function did not return within {seconds} s: look for a loop that never ends")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


TORCH_WORDS = [  # (what torch's message says, what the student's code did and what to do)
    (("did not match", "expected scalar type", "same dtype", "of scalar type"),
     "tensors of two dtypes (float32, float64) met in one operation: make each new tensor with the dtype of the "
     "inputs, e.g. torch.eye(T, dtype=x.dtype)"),
    (("expected device", "same device"),
     "tensors on two devices met in one operation: make each new tensor on the inputs' device, e.g. "
     "torch.eye(T, device=x.device)"),
    (("NoneType",),
     "a value is None where a tensor or a number should be: does each of your functions end in `return ...`?"),
]


def in_plain_words(error):
    """What the student's code did, where torch (or Python) says it in its own words; None for another error."""
    if isinstance(error, (RuntimeError, TypeError, AttributeError)):
        for words, meaning in TORCH_WORDS:
            if any(word in str(error) for word in words):
                return f"{meaning} ({type(error).__name__}: {(str(error).splitlines() or [''])[0]})"
    return None


def names_used(module, names):
    """[(line number, the code there)] for every line of the module's source that names one of names: in an import
    (`from blocks.parts import causal_softmax`, `import blocks.sas_p`), an attribute (`F.scaled_dot_product_attention`)
    or a string of dotted names (`BLOCKS["sas_p"]`). Read from the source, not the running module: patching a module
    attribute cannot see a function the student's file imported by name when it was loaded."""
    source = inspect.getsource(module)
    lines = source.splitlines()
    found = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            named = [*(node.module or "").split("."), *(alias.name for alias in node.names)]
        elif isinstance(node, ast.Import):
            named = [part for alias in node.names for part in alias.name.split(".")]
        elif isinstance(node, ast.Attribute):
            named = [node.attr]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            named = node.value.split(".")
            if not all(part.isidentifier() for part in named):  # text, such as a docstring: not a name
                continue
        else:
            continue
        if set(named) & set(names):
            found.setdefault(node.lineno, lines[node.lineno - 1].strip())
    return sorted(found.items())


class Operations(TorchDispatchMode):
    """Records every torch operation run inside it, as (name, the shapes of its tensor inputs, the shapes of its
    tensor outputs), forward and backward, whatever name the code reached torch by: what a student's function
    computed, to fail the shortcut its task forbids (taking powers of C, building a T x T matrix)."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs, outputs = ([tuple(x.shape) for x in tree_leaves(tree) if isinstance(x, torch.Tensor)]
                           for tree in ((args, kwargs), out))
        self.seen.append((func.overloadpacket.__name__, inputs, outputs))
        return out


NOTES = {}  # {heading: [line, ...]}: what the checks tell the student besides pass or fail; conftest.py prints it


def note(heading, line):
    """Tell the student something at the end of the run, under heading, whether the checks pass or fail: a
    prediction next to the measurement, which is reported, never graded (a graded prediction teaches
    students to rewrite it after measuring)."""
    NOTES.setdefault(heading, []).append(line)


def problems_with_prediction(predicted, keys, words, where="predict()"):
    """[] if predicted, what where returned, is a prediction of the right form, one of words for every key;
    whether it is right is not graded."""
    if not isinstance(predicted, dict):
        return [f"{where} is {predicted!r}; it must be a dict with one of {words} for each of {keys}"]
    return [f"{where}[{key!r}] is {predicted.get(key)!r}; it must be one of {words}" for key in keys
            if predicted.get(key) not in words]


def problems_with_predictions(predicted, entries, keys, words, where="predict()"):
    """The same for a prediction per entry, {entry: {key: one of words}}: [] if every entry has the right form."""
    if not isinstance(predicted, dict):
        return [f"{where} is {predicted!r}; it must be a dict with an entry for each of {entries}"]
    return [problem for entry in entries
            for problem in problems_with_prediction(predicted.get(entry), keys, words, f"{where}[{entry!r}]")]


def how_far_off(predicted, measured, words):
    """How far a prediction was from the measurement, words being in order: "as predicted", "one step off", ..."""
    steps = abs(words.index(predicted) - words.index(measured))
    return ["as predicted", "one step off", "two steps off"][steps]


def assert_none(problems):
    """Fail with every problem found, or pass if there is none.

    A problem is a line of text, or a pair (where, what is wrong): pairs that say the same thing
    in several places become one line that lists the places.
    """
    lines, places = [], {}
    for problem in problems:
        if isinstance(problem, tuple):
            where, what = problem
            if what not in places:
                places[what] = []
                lines.append(what)
            places[what].append(where)
        else:
            lines.append(problem)
    lines = [f"{line} ({'; '.join(places[line])})" if line in places else line for line in lines]
    if lines:
        count = "1 problem" if len(lines) == 1 else f"{len(lines)} problems"
        raise AssertionError(f"{count}:\n" + "\n".join(f"  - {line}" for line in lines))


def close(a, b, atol=1e-5, rtol=1e-5):
    """torch.allclose that is False, rather than an error, when a is not a tensor like b (unlike)."""
    return unlike(a, b) is None and torch.allclose(a, b, atol=atol, rtol=rtol)


def unlike(got, expected):
    """What makes got unlike the tensor expected before any value is compared: not a tensor, or another dtype,
    device or shape; None if nothing does."""
    if not isinstance(got, torch.Tensor):
        return f"returned {got!r:.40}, expected a tensor" + (": is a `return` missing?" if got is None else "")
    for what, mine, theirs in (("", got.dtype, expected.dtype), ("a tensor on ", got.device, expected.device)):
        if mine != theirs:
            return f"returned {what}{str(mine).removeprefix('torch.')}, expected {str(theirs).removeprefix('torch.')}"
    if got.shape != expected.shape:
        return f"shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
    return None


def diagnose(got, expected, mistakes, where, atol=1e-5):
    """[] if got is expected; else [(where, what is wrong)], naming the mistake whose result got matches.

    mistakes: {what the mistake is and where to look: the result it would give}.
    """
    if close(got, expected, atol=atol, rtol=atol):
        return []
    if difference := unlike(got, expected):
        return [(where, difference)]
    for hint, result in mistakes.items():
        if close(got, result, atol=atol, rtol=atol):
            return [(where, hint)]
    worst = (got - expected).abs().max().item()
    usual = ", and not by one of the usual mistakes" if mistakes else ""
    return [(where, f"off by up to {worst:.3g}{usual}")]


def randomise(module):
    """Trained-looking weights: at initialisation W_Q = 0 and the gains are 1, which would hide mistakes."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0.0, 0.3)
    return module


def tiny_run_flags(dataset, out_dir, **changes):
    """train.py flags for a run of a few seconds on the checks' tiny dataset (the conftest's tiny_dataset)."""
    flags = dict(dataset=dataset, out_dir=out_dir, block="sas_p", n_layer=2, n_head=2, n_embd=32, block_size=32,
                 batch_size=4, max_steps=12, eval_interval=6, eval_windows=8, log_interval=3, learning_rate=3e-3,
                 device="cpu", dtype="float32") | changes
    return [f"--{key}={value}" for key, value in flags.items()]
