"""Says, above the results, which files the exercise checks are grading."""

from exercises.checks import graded_folder


def pytest_report_header(config):
    return f"exercises: grading exercises/{graded_folder()}/ (NANOSAS_SOLUTIONS=1 grades the solutions)"
