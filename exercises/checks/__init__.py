"""
The automatic checks, one file per exercise.

A check grades the student's file, exercises/tasks/<name>.py; with NANOSAS_SOLUTIONS=1 in the
environment it grades exercises/solutions/<name>.py instead, so one set of checks serves both
(tests/test_exercises.py runs them both ways).
"""

import importlib
import os

import torch


def graded_folder():
    return "solutions" if os.environ.get("NANOSAS_SOLUTIONS") == "1" else "tasks"


def under_test(name):
    """The module a check grades: exercises/tasks/<name>.py, or its solution when NANOSAS_SOLUTIONS=1."""
    return importlib.import_module(f"exercises.{graded_folder()}.{name}")


def randomise(module):
    """Trained-looking weights: at initialisation W_Q = 0 and the gains are 1, which would hide mistakes."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0.0, 0.3)
    return module
