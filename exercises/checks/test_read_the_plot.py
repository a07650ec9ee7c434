"""Checks for exercise 12: reading a compare.json with a benchmark's speeds, on small ones the check writes itself."""

import json

import pytest

from exercises.checks import assert_none, under_test

exercise = under_test("read_the_plot")
# [step, training seconds, val_loss] every 100 steps; the seconds are a shared machine's, which the race must not use
CURVES = {
    "pre_ln": [[100, 40.0, 6.0], [200, 80.0, 5.0], [300, 120.0, 4.5]],
    "sas": [[100, 50.0, 5.5], [200, 100.0, 4.6], [300, 150.0, 4.4]],
    "sas_p": [[100, 30.0, 5.8], [200, 60.0, 4.8], [300, 90.0, 4.5]],  # exactly pre_ln's final
    "parallel": [[100, 35.0, 5.6], [200, 70.0, 4.49], [300, 105.0, 4.3]],  # first per step, last per second
    "sas_vp": [[100, 45.0, 5.0], [200, 90.0, 4.4], [300, 135.0, 4.2]],  # not benchmarked: not in the race
    "no_attn_skip_unshaped": [[100, 38.0, 6.6], [200, 76.0, 6.6], [300, 114.0, 6.6]],
}
SPEEDS = {"pre_ln": 1.0, "sas": 0.8, "sas_p": 1.25, "parallel": 0.5, "no_attn_skip_unshaped": 1.0}  # vs pre_ln
RACE = [("sas_p", 240.0), ("pre_ln", 300.0), ("sas", 375.0), ("parallel", 400.0), ("no_attn_skip_unshaped", None)]


@pytest.fixture
def results(tmp_path):
    """A compare.json in compare.py's format, read back with the task's load()."""
    entries = [{"block": block, "params": 1000, "non_embedding_params": 800, "train_loss": curve[-1][2] - 0.1,
                "val_loss": curve[-1][2], "steps_per_sec": 300 / curve[-1][1], "tokens_per_sec": 1e4,
                "peak_memory": 2**20, "curve": curve} for block, curve in CURVES.items()]
    path = tmp_path / "compare.json"
    path.write_text(json.dumps({"runs": [{"eval_interval": 100}] * len(entries), "results": entries}))
    return exercise.load(path)


@pytest.fixture
def speeds(tmp_path):
    """A bench.json in bench.py's format at the ladder's shape, read back with the task's load_speeds()."""
    blocks = {block: {"seconds": 0.1 / speed, "vs_pre_ln": speed} for block, speed in SPEEDS.items()}
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"results": {"throughput": {"shapes": {"12x128x4": {"blocks": blocks}}}}}))
    return exercise.load_speeds(path)


def problems_with_reaching(step_reaching, time_reaching, results):
    cases = [("pre_ln", 5.5, 1.0, 200, 200.0, "the first evaluation at or below the loss"),
             ("pre_ln", 7.0, 1.0, 100, 100.0, "a loss above every evaluation is reached at the first one"),
             ("pre_ln", 4.5, 1.0, 300, 300.0, "at or below: pre_ln reaches its own final loss at its last evaluation"),
             ("sas", 4.5, 0.8, 300, 375.0, "the first evaluation at or below the loss, not the closest one"),
             ("parallel", 5.0, 0.5, 200, 400.0, "the first evaluation at or below the loss"),
             ("no_attn_skip_unshaped", 6.0, 1.0, None, None, "never reached: None")]
    problems = []
    for block, loss, speed, step, time, why in cases:
        got_step = step_reaching(results[block], loss)
        got_time = time_reaching(results[block], loss, speed)
        if got_step != step:
            problems.append(f"step_reaching({block}, {loss}) = {got_step!r}, expected {step!r}: {why}")
        if got_time != (None if time is None else pytest.approx(time)):
            seconds = next((sec for at, sec, _ in CURVES[block] if at == step), None)
            hint = ("multiplied by the speed: a block at speed 0.5 takes two of pre_ln's step times per step"
                    if step is not None and got_time == pytest.approx(step * speed) else
                    "that is the ladder run's own seconds, which compare machines: use the speed"
                    if seconds is not None and got_time == pytest.approx(seconds) else why)
            problems.append(f"time_reaching({block}, {loss}, speed {speed}) = {got_time!r}, expected {time!r}: "
                            f"{hint}")
    return problems


def problems_with_race(race, results, speeds):
    try:
        got = [tuple(pair) for pair in race(results, speeds)]
    except KeyError as e:
        return [f"race looked up the speed of {e}, which speeds has not: leave the blocks without one out of the race"]
    problems = []
    if "sas_vp" in dict(got):
        problems.append("sas_vp has no speed in speeds: leave the blocks without one out of the race")
    if sorted(block for block, _ in got if block != "sas_vp") != sorted(SPEEDS):
        problems.append(f"race should list every block with a speed once, got {[block for block, _ in got]}")
    else:
        times = dict(got)
        for block, time in RACE:
            if times[block] != (None if time is None else pytest.approx(time)):
                hint = ("it never reaches 4.5: None" if time is None else
                        "that is the step: divide it by the block's speed"
                        if times[block] == pytest.approx(time * SPEEDS[block]) else
                        "the race is to the baseline's final val_loss, pre_ln's 4.5, reached at or below it, in "
                        "pre_ln's step times")
                problems.append(f"{block}: {times[block]!r}, expected {time!r}: {hint}")
        if not problems and got != RACE:
            problems.append(f"the order should be fastest first and the blocks that never arrive last: {RACE}, "
                            f"got {got}")
    return problems


def test_step_and_time_reaching_a_loss(results):
    assert_none(problems_with_reaching(exercise.step_reaching, exercise.time_reaching, results))


def test_race_to_the_baselines_final_loss(results, speeds):
    assert_none(problems_with_race(exercise.race, results, speeds))


def test_race_with_another_baseline(results, speeds):
    got = [tuple(pair) for pair in exercise.race(results, speeds, baseline="sas")]  # sas ends at 4.4
    expected = [("sas", 375.0), ("parallel", 600.0), ("pre_ln", None), ("sas_p", None),
                ("no_attn_skip_unshaped", None)]
    ranked, never = [pair for pair in got if pair[1] is not None], {pair[0] for pair in got if pair[1] is None}
    problems = []
    if ranked != expected[:2] or never != {block for block, _ in expected[2:]}:
        problems.append(f"race(results, speeds, baseline='sas'): the target is sas's final loss, 4.4; expected "
                        f"{expected[:2]} and then pre_ln, sas_p and no_attn_skip_unshaped with None, got {got}")
    assert_none(problems)
