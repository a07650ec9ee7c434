"""Checks for exercise 10: the sweep's runs and its return value, on a tiny model for a few steps."""

import json
import math

from run_folder import read_log
from exercises.checks import assert_none, tiny_run_flags, under_test

exercise = under_test("sweep")


def problems_with_rows(rows, setting, values, out_dir):
    """What is wrong with what sweep returned, against the runs it left in out_dir."""
    if not isinstance(rows, list) or len(rows) != len(values):
        return [f"sweep should return a list with one dict per value ({len(values)}), got {rows!r:.200}"]
    problems = []
    for value, row in zip(values, rows):
        where = f"{setting}={value}"
        if not isinstance(row, dict) or set(row) != {"value", "val_loss", "curve"}:
            problems.append(f"{where}: each row is a dict with exactly the keys value, val_loss and curve, got "
                            f"{row!r:.200}")
            continue
        if row["value"] != value:
            problems.append(f"{where}: row['value'] is {row['value']!r}: the rows follow the order of values")
        run = out_dir / where
        if not (run / "config.json").exists():
            problems.append(f"{where}: no run in {run}: train each value into out_dir/<setting>=<value> "
                            f"(--out_dir=...)")
            continue
        used = json.loads((run / "config.json").read_text())[setting]
        if used != value:
            problems.append(f"{where}: that run trained with {setting}={used}: pass --{setting}={value} after the "
                            f"other flags (the last one wins)")
        evaluations = [(r["step"], r["val_loss"]) for r in read_log(run / "log.jsonl") if "val_loss" in r]
        if [tuple(point) for point in row["curve"]] != evaluations:
            problems.append(f"{where}: curve should be the (step, val_loss) of every row of its log.jsonl that has "
                            f"a val_loss, {evaluations}, got {row['curve']!r:.200}")
        elif math.isfinite(row["val_loss"]) and evaluations and row["val_loss"] != evaluations[-1][1]:
            problems.append(f"{where}: val_loss {row['val_loss']} is not the run's final validation loss, "
                            f"{evaluations[-1][1]}")
    return problems


def test_sweep_trains_one_run_per_value(tmp_path, tiny_dataset, quick_training):
    values = [0.5, 0.05]  # not sorted: the rows must keep this order
    flags = tiny_run_flags(tiny_dataset, tmp_path / "unused")
    rows = exercise.sweep("mlp_gain", values, flags, tmp_path / "sweep")
    problems = problems_with_rows(rows, "mlp_gain", values, tmp_path / "sweep")
    if not problems and rows[0]["val_loss"] == rows[1]["val_loss"]:
        problems.append("both values gave the same validation loss: did each run get its own --mlp_gain?")
    assert_none(problems)


def test_a_diverged_run_counts_as_infinite(tmp_path, tiny_dataset, quick_training):
    values = [1e6, 3e-3]  # a learning rate of a million: the loss is NaN within two steps
    flags = tiny_run_flags(tiny_dataset, tmp_path / "unused")
    rows = exercise.sweep("learning_rate", values, flags, tmp_path / "sweep")
    problems = problems_with_rows(rows, "learning_rate", values, tmp_path / "sweep")
    if not problems:
        if rows[0]["val_loss"] != float("inf"):
            problems.append(f"learning_rate=1000000.0 diverged, so its val_loss should be float('inf'), got "
                            f"{rows[0]['val_loss']!r}: catch train()'s FloatingPointError")
        if not math.isfinite(rows[1]["val_loss"]):
            problems.append("the run after a diverged one should still train: catch the error and go on")
    assert_none(problems)


def test_best_is_the_lowest_loss():
    rows = [{"value": 0.01, "val_loss": 5.2, "curve": []}, {"value": 0.1, "val_loss": 4.9, "curve": []},
            {"value": 1.0, "val_loss": float("inf"), "curve": []}, {"value": 0.3, "val_loss": 5.0, "curve": []}]
    got = exercise.best(rows)
    assert_none([] if got == 0.1 else [f"best(rows) = {got!r}; the lowest val_loss, 4.9, is value 0.1's"])
