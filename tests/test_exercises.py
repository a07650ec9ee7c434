"""The classroom exercises in exercises/: every check fails on the unsolved tasks and passes on the solutions.

The checks run in two fresh `python -m pytest exercises` processes, one grading exercises/tasks/ and
one grading exercises/solutions/ (NANOSAS_SOLUTIONS=1), side by side; the outcome of every check
comes back through pytest's JUnit XML report.
"""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
EXERCISES = sorted(p.stem for p in (ROOT / "exercises" / "tasks").glob("*.py") if p.stem != "__init__")


def start_checks(folder, graded):
    """Start grading graded ("tasks" or "solutions"); the report and log go into folder."""
    env = {key: value for key, value in os.environ.items() if key != "NANOSAS_SOLUTIONS"}
    if graded == "solutions":
        env["NANOSAS_SOLUTIONS"] = "1"
    # one thread each: the checks use tiny models, where threads cost more than they give
    env["OMP_NUM_THREADS"] = "1"
    command = [sys.executable, "-m", "pytest", "exercises", "-q", "-p", "no:cacheprovider",
               f"--junit-xml={folder / 'report.xml'}"]
    with open(folder / "log.txt", "w") as log:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def outcomes(folder):
    """{exercise: {check: (outcome, report text)}}, outcome one of passed, failure, error, skipped."""
    report = folder / "report.xml"
    assert report.exists(), (folder / "log.txt").read_text()[-3000:]
    results = defaultdict(dict)
    for case in ET.parse(report).iter("testcase"):
        exercise = case.get("classname").split(".")[-1].removeprefix("test_")
        found = next((child for child in case if child.tag in ("failure", "error", "skipped")), None)
        text = "" if found is None else f"{found.get('message', '')}\n{found.text or ''}"
        results[exercise][case.get("name")] = ("passed" if found is None else found.tag, text)
    return results


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """{"tasks": outcomes, "solutions": outcomes}, from two runs going at once."""
    folders = {name: tmp_path_factory.mktemp(name) for name in ("tasks", "solutions")}
    processes = {name: start_checks(folder, name) for name, folder in folders.items()}
    try:
        for process in processes.values():
            process.wait(timeout=600)
    finally:
        for process in processes.values():
            process.kill()  # only one still running after a timeout
    return {name: outcomes(folder) for name, folder in folders.items()}


def test_every_check_fails_on_the_unsolved_tasks(graded):
    results = graded["tasks"]
    assert sorted(results) == EXERCISES, "every exercise in exercises/tasks/ has a check file, and no other"
    for exercise, checks in results.items():
        assert len(checks) >= 3, exercise
        for check, (outcome, text) in checks.items():
            # failing, and because of the stubs, not because the check itself is broken
            assert outcome in ("failure", "error") and "NotImplementedError" in text, \
                f"{exercise}: {check} should fail on the stub's NotImplementedError, got {outcome}: {text[:300]}"


def test_every_check_passes_on_the_solutions(graded):
    results = graded["solutions"]
    assert sorted(results) == EXERCISES
    for exercise, checks in results.items():
        not_passed = {check: text[:300] for check, (outcome, text) in checks.items() if outcome != "passed"}
        assert not not_passed, f"{exercise}: {not_passed}"
