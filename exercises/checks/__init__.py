"""
The automatic checks, one file per exercise.

A check grades the student's file, exercises/tasks/<name>.py; with NANOSAS_SOLUTIONS=1 in the
environment it grades exercises/solutions/<name>.py instead, so one set of checks serves both
(tests/test_exercises.py runs them both ways).

A check collects every problem it finds in a list and fails once, with all of them, each saying
what is wrong and where the mistake most likely is: assert_none(problems). A prediction is not
graded: its check only makes sure it has the right form, and note() reports it next to the
measurement at the end of the run. The functions that
collect them (problems_*) take the student's code as an argument, so tests/test_exercises.py can
feed them known mistakes and make sure the messages name them.
"""

import importlib
import os

import torch


def graded_folder():
    return "solutions" if os.environ.get("NANOSAS_SOLUTIONS") == "1" else "tasks"


def under_test(name):
    """The module a check grades: exercises/tasks/<name>.py, or its solution when NANOSAS_SOLUTIONS=1."""
    return importlib.import_module(f"exercises.{graded_folder()}.{name}")


NOTES = {}  # {heading: [line, ...]}: what the checks tell the student besides pass or fail; conftest.py prints it


def note(heading, line):
    """Tell the student something at the end of the run, under heading, whether the checks pass or fail: a
    prediction next to the measurement, which is reported, never graded (a graded prediction teaches
    students to rewrite it after measuring)."""
    NOTES.setdefault(heading, []).append(line)


def problems_with_prediction(predicted, keys, words):
    """[] if predicted is a prediction of the right form, one of words for every key; whether it is right is
    not graded."""
    if not isinstance(predicted, dict):
        return [f"predict() returned {predicted!r}; it must be a dict with one of {words} for each of {keys}"]
    return [f"predict()[{key!r}] is {predicted.get(key)!r}; it must be one of {words}" for key in keys
            if predicted.get(key) not in words]


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
    """torch.allclose that is False, rather than an error, when the shapes differ."""
    return a.shape == b.shape and torch.allclose(a, b, atol=atol, rtol=rtol)


def diagnose(got, expected, mistakes, where, atol=1e-5):
    """[] if got is expected; else [(where, what is wrong)], naming the mistake whose result got matches.

    mistakes: {what the mistake is and where to look: the result it would give}.
    """
    if close(got, expected, atol=atol, rtol=atol):
        return []
    if got.shape != expected.shape:
        return [(where, f"shape {tuple(got.shape)}, expected {tuple(expected.shape)}")]
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
