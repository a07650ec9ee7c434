"""Checks for exercise 13: the change with depth and the seed spread, on small compare.json files the check writes
itself; the prediction is recorded and reported next to results/depth/compare.json if that is there, not graded."""

import json
from pathlib import Path

import pytest

from exercises.checks import assert_none, how_far_off, note, problems_with_prediction, under_test

exercise = under_test("depth")
BLOCKS = ["pre_ln", "no_attn_skip", "sas", "sas_p"]
WORDS = ("gains", "about the same", "loses")  # in order: a prediction is as far off as the steps between two words
COMMITTED = Path(__file__).parents[2] / "results" / "depth" / "compare.json"
# {(block, n_layer): final val loss of seeds 1337 and 1}, made so that the usual mistakes give other numbers:
# no_attn_skip is listed deep first, sas's mean change is not the change of its mean losses, parallel has one depth
LOSSES = {("pre_ln", 18): [4.00, 4.10], ("pre_ln", 72): [3.80, 3.85],
          ("no_attn_skip", 72): [4.70, 4.80], ("no_attn_skip", 18): [4.50, 4.40],
          ("sas", 18): [4.00, 4.40], ("sas", 72): [3.80, 4.50],
          ("sas_p", 18): [4.05, 4.00], ("sas_p", 72): [3.98, 4.02],
          ("parallel", 18): [4.10, 4.20]}
BEYOND = {"pre_ln": True, "no_attn_skip": True, "sas": False, "sas_p": False}


def compare_json(folder, losses, seeds=(1337, 1)):
    """A compare.json in compare.py's format, with a sweep over n_layer and the final losses given."""
    results = [{"block": block, "group": f"{block} n_layer={depth}", "swept": {"n_layer": depth},
                "seeds": list(seeds), "val_loss": sum(by_seed) / len(by_seed), "val_loss_by_seed": by_seed,
                "curve": [[1000, 100.0, sum(by_seed) / len(by_seed)]],
                "curves_by_seed": [[[1000, 100.0, loss]] for loss in by_seed]}
               for (block, depth), by_seed in losses.items()]
    settings = {"blocks": ",".join(dict.fromkeys(block for block, _ in losses)), "seeds": ",".join(map(str, seeds)),
                "sweep": "n_layer=" + ",".join(map(str, sorted({depth for _, depth in losses}))), "speed": False}
    path = folder / "compare.json"
    path.write_text(json.dumps({"settings": settings, "runs": [], "results": results}))
    return path


def expected_changes(losses):
    """The check's own change_with_depth, from the dict of losses."""
    depths = sorted({depth for _, depth in losses})
    shallow, deep = depths[0], depths[-1]
    changes = {}
    for block in dict.fromkeys(block for block, _ in losses):
        if (block, shallow) in losses and (block, deep) in losses:
            by_seed = [d / s - 1 for s, d in zip(losses[block, shallow], losses[block, deep])]
            changes[block] = {"by_seed": by_seed, "mean": sum(by_seed) / len(by_seed)}
    return changes


def rounded(changes):
    return "[" + ", ".join(f"{c:+.4f}" if isinstance(c, (int, float)) else repr(c) for c in changes) + "]"


def problems_with_changes(change_with_depth, folder):
    report = json.loads(compare_json(folder, LOSSES).read_text())
    got, expected = change_with_depth(report), expected_changes(LOSSES)
    if not isinstance(got, dict):
        return [f"change_with_depth returned {got!r}: a dict {{block: {{'by_seed': [...], 'mean': ...}}}}"]
    problems = []
    if "parallel" in got:
        problems.append("parallel was trained at 18 layers only: a block with one depth has no change, leave it out")
    for block, want in expected.items():
        have = got.get(block)
        if not isinstance(have, dict) or not isinstance(have.get("by_seed"), list) or "mean" not in have:
            problems.append(f"{block}: {have!r}, expected {{'by_seed': [...], 'mean': ...}}")
            continue
        shallow, deep = LOSSES[block, 18], LOSSES[block, 72]
        if have["by_seed"] != pytest.approx(want["by_seed"], rel=1e-9):
            in_order = isinstance(got.get("pre_ln"), dict) and \
                got["pre_ln"].get("by_seed") == pytest.approx(expected["pre_ln"]["by_seed"], rel=1e-9)
            inverted = ("the depth is entry['swept']['n_layer'], not the entry's place in the file: here the 72-layer "
                        "entry comes first" if in_order else "the change from the shallow model to the deep one is "
                        "deep / shallow - 1, negative when depth helped")
            mistakes = {inverted: [s / d - 1 for s, d in zip(shallow, deep)],
                        "relative: divide the difference by the shallow model's loss": [d - s for s, d in
                                                                                        zip(shallow, deep)],
                        "a fraction, not a percentage: -0.02, not -2": [100 * c for c in want["by_seed"]],
                        "each seed's own change: the deep model's seed against the shallow model's same seed, "
                        "from val_loss_by_seed": [sum(deep) / sum(shallow) - 1] * len(deep)}
            hint = next((hint for hint, wrong in mistakes.items() if have["by_seed"] == pytest.approx(wrong, rel=1e-9)),
                        "deep / shallow - 1 for each seed, the depth from entry['swept']['n_layer'], not from the "
                        "entry's place in the file")
            problems.append(f"{block}: by_seed {rounded(have['by_seed'])}, expected {rounded(want['by_seed'])}: {hint}")
        elif have["mean"] != pytest.approx(want["mean"], rel=1e-9):
            of_means = sum(deep) / sum(shallow) - 1
            hint = ("the mean of the seeds' changes (compare.md's last column), not the change of the mean losses"
                    if have["mean"] == pytest.approx(of_means, rel=1e-9) else "the mean of by_seed")
            problems.append(f"{block}: mean {have['mean']:.4f}, expected {want['mean']:.4f}: {hint}")
    return problems


def test_change_with_depth(tmp_path):
    assert_none(problems_with_changes(exercise.change_with_depth, tmp_path))


def test_change_with_other_depths(tmp_path):
    """The shallow and deep models are the report's smallest and largest n_layer, whatever they are."""
    losses = {("pre_ln", 4): [5.0], ("pre_ln", 16): [4.5], ("sas_p", 16): [4.4], ("sas_p", 4): [5.5]}
    got = exercise.change_with_depth(json.loads(compare_json(tmp_path, losses, seeds=(1337,)).read_text()))
    expected = expected_changes(losses)
    same = isinstance(got, dict) and set(got) == set(expected) and all(
        isinstance(got[block], dict) and got[block].get("by_seed") == pytest.approx(want["by_seed"])
        and got[block].get("mean") == pytest.approx(want["mean"]) for block, want in expected.items())
    assert_none([] if same else [f"a report of 4 and 16 layers, one seed: {got}, expected {expected}: the shallow and "
                                 f"deep models are the smallest and largest n_layer in the report, not 18 and 72"])


def problems_with_beyond(beyond_the_seeds, folder):
    got = beyond_the_seeds(json.loads(compare_json(folder, LOSSES).read_text()))
    if not isinstance(got, dict):
        return [f"beyond_the_seeds returned {got!r}: a dict {{block: True or False}}"]
    problems = []
    if "parallel" in got:
        problems.append("parallel was trained at 18 layers only: leave it out")
    for block, want in BEYOND.items():
        if got.get(block) is None or bool(got[block]) != want:
            shallow, deep = LOSSES[block, 18], LOSSES[block, 72]
            problems.append(f"{block}: {got.get(block)!r}, expected {want}: the seeds ended at {shallow} with 18 "
                            f"layers and {deep} with 72; True only if every seed of one depth ended below every seed "
                            f"of the other")
    return problems


def test_beyond_the_seeds(tmp_path):
    assert_none(problems_with_beyond(exercise.beyond_the_seeds, tmp_path))


def measured(report):
    """{block: (mean change, what depth did to it in WORDS)}, with the check's own reading of a report."""
    losses = {(entry["block"], entry["swept"]["n_layer"]): entry["val_loss_by_seed"] for entry in report["results"]}
    depths = sorted({depth for _, depth in losses})
    readings = {}
    for block, change in expected_changes(losses).items():
        shallow, deep = losses[block, depths[0]], losses[block, depths[-1]]
        beyond = max(deep) < min(shallow) or max(shallow) < min(deep)
        readings[block] = change["mean"], "about the same" if not beyond else "gains" if change["mean"] < 0 else "loses"
    return readings


def test_prediction_is_recorded():
    """Any honest guess passes: the prediction is reported next to the committed results, when they are there."""
    predicted = exercise.predict()
    problems = problems_with_prediction(predicted, BLOCKS, WORDS)
    heading = "exercise 13, depth: your prediction next to results/depth/compare.json (not graded)"
    if not problems and not COMMITTED.exists():
        note(heading, "results/depth/compare.json is not there yet: keep your prediction, and read it next to the "
                      "results when they are")
    elif not problems:
        readings = measured(json.loads(COMMITTED.read_text()))
        for block in (block for block in BLOCKS if block in readings):
            change, word = readings[block]
            verdict = how_far_off(predicted[block], word, WORDS)
            why = "" if verdict == "as predicted" else ": questions a and b"
            note(heading, f"{block:14} predicted {predicted[block]!r:17} measured {change:+.1%} ({word}): "
                          f"{verdict}{why}")
    assert_none(problems)
