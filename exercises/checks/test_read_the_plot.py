"""Checks for exercise 12: reading a compare.json, on a small one the check writes itself."""

import json

import pytest

from exercises.checks import assert_none, under_test

exercise = under_test("read_the_plot")
# [step, training seconds, val_loss] every 100 steps, made so that per step and per second disagree
CURVES = {
    "pre_ln": [[100, 40.0, 6.0], [200, 80.0, 5.0], [300, 120.0, 4.5]],
    "sas": [[100, 50.0, 5.5], [200, 100.0, 4.6], [300, 150.0, 4.4]],  # best per step, slow per second
    "sas_p": [[100, 30.0, 5.8], [200, 60.0, 4.8], [300, 90.0, 4.5]],  # exactly pre_ln's final, at 90 s
    "parallel": [[100, 35.0, 5.6], [200, 70.0, 4.49], [300, 105.0, 4.3]],
    "no_attn_skip_unshaped": [[100, 38.0, 6.6], [200, 76.0, 6.6], [300, 114.0, 6.6]],
}
RACE = [("parallel", 70.0), ("sas_p", 90.0), ("pre_ln", 120.0), ("sas", 150.0), ("no_attn_skip_unshaped", None)]


@pytest.fixture
def results(tmp_path):
    """A compare.json in compare.py's format, read back with the task's load()."""
    entries = [{"block": block, "params": 1000, "non_embedding_params": 800, "train_loss": curve[-1][2] - 0.1,
                "val_loss": curve[-1][2], "steps_per_sec": 300 / curve[-1][1], "tokens_per_sec": 1e4,
                "peak_memory": 2**20, "curve": curve} for block, curve in CURVES.items()]
    path = tmp_path / "compare.json"
    path.write_text(json.dumps({"runs": [{"eval_interval": 100}] * len(entries), "results": entries}))
    return exercise.load(path)


def problems_with_reaching(step_reaching, seconds_reaching, results):
    cases = [("pre_ln", 5.5, 200, 80.0, "the first evaluation at or below the loss"),
             ("pre_ln", 7.0, 100, 40.0, "a loss above every evaluation is reached at the first one"),
             ("pre_ln", 4.5, 300, 120.0, "at or below: pre_ln reaches its own final loss at its last evaluation"),
             ("sas", 4.5, 300, 150.0, "the first evaluation at or below the loss, not the closest one"),
             ("no_attn_skip_unshaped", 6.0, None, None, "never reached: None")]
    problems = []
    for block, loss, step, seconds, why in cases:
        got_step = step_reaching(results[block], loss)
        got_seconds = seconds_reaching(results[block], loss)
        if got_step != step:
            problems.append(f"step_reaching({block}, {loss}) = {got_step!r}, expected {step!r}: {why}")
        if got_seconds != seconds:
            hint = ("that is the step: each curve point is [step, seconds, val_loss]" if got_seconds == step
                    and step is not None else why)
            problems.append(f"seconds_reaching({block}, {loss}) = {got_seconds!r}, expected {seconds!r}: {hint}")
    return problems


def problems_with_race(race, results):
    got = [tuple(pair) for pair in race(results)]
    problems = []
    if sorted(block for block, _ in got) != sorted(CURVES):
        problems.append(f"race should list every block once, got {[block for block, _ in got]}")
    else:
        times = dict(got)
        for block, seconds in RACE:
            if times[block] != seconds:
                hint = ("the race is to the baseline's final val_loss, pre_ln's 4.5, reached at or below it"
                        if seconds is not None else "it never reaches 4.5: None")
                problems.append(f"{block}: {times[block]!r} seconds, expected {seconds!r}: {hint}")
        if not problems and got != RACE:
            problems.append(f"the order should be fastest first and the blocks that never arrive last: {RACE}, "
                            f"got {got}")
    return problems


def test_step_and_seconds_reaching_a_loss(results):
    assert_none(problems_with_reaching(exercise.step_reaching, exercise.seconds_reaching, results))


def test_race_to_the_baselines_final_loss(results):
    assert_none(problems_with_race(exercise.race, results))


def test_race_with_another_baseline(results):
    got = [tuple(pair) for pair in exercise.race(results, baseline="sas")]  # sas ends at 4.4
    expected = [("parallel", 105.0), ("sas", 150.0), ("pre_ln", None), ("sas_p", None),
                ("no_attn_skip_unshaped", None)]
    ranked, never = [pair for pair in got if pair[1] is not None], {pair[0] for pair in got if pair[1] is None}
    problems = []
    if ranked != expected[:2] or never != {block for block, _ in expected[2:]}:
        problems.append(f"race(results, baseline='sas'): the target is sas's final loss, 4.4; expected "
                        f"{expected[:2]} and then pre_ln, sas_p and no_attn_skip_unshaped with None, got {got}")
    assert_none(problems)
