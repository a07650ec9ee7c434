"""
Exercise 12, solved: read the plot. The task and the hint are in exercises/tasks/read_the_plot.py.

What we saw: the numbers below are from the committed ladder run, results/ladder/compare.json
(python compare.py config/ladder.py on a 2-core CPU: 12 layers of width 128, 2,000 steps, an
evaluation every 100 steps; parallel and the unshaped control were not part of that run, their
numbers are from the previous one, tutorial.md, section 7). Run
python -m exercises.solutions.read_the_plot  for the table.

Answers (what to look for; the numbers are that run's)
-------
a. Read the "step to 4.0" column. Per step the SAS blocks lead in that run: sas_vp, sas and
   sas_p reach 4.0 at step 1,200, sas_p_nonorm at 1,300, pre_ln at 1,500, and they end below
   pre_ln (3.710, 3.722, 3.736 and 3.796 against 3.813). no_attn_skip ends above 4.0 (4.074)
   and never reaches it; the unshaped control (6.615 in the previous run, the unigram plateau)
   is far above it.
b. sas reached pre_ln's final 3.813 at step 1,600 and after 549 s, where pre_ln needed 2,000
   steps and 696 s: 0.79x the time, at about the same steps per second (2.91 against 2.87).
   sas_vp reached it at the same step but runs 0.85x pre_ln's steps per second: 657 s, 0.94x.
   The fastest per step need not be the fastest per second: seconds to a loss = steps to it /
   steps per second, and the blocks differ in both factors.
c. Only to the evaluation interval: "1,600 steps" means somewhere in (1,500, 1,600], and the
   seconds likewise to one interval's time (about 35 s here, 5% of the run). Interpolating
   assumes the loss falls smoothly and steadily between two evaluations; a noisy curve
   (200 validation windows) can cross a level and come back, so also check that the curve
   stays below.
d. Evaluation costs the same for every block and is not training: counting it would dilute
   the differences. On a shared machine the clock includes whatever else ran: the seconds
   (b) move with the neighbours, the steps (a) do not. Trust a less than b, and compare
   steps_per_sec only between runs made side by side on an idle machine (this machine's
   speed changed by up to 2x within one run).
e. Read with read_log("results/ladder/<block>/log.jsonl"): the first row whose train_loss is
   below 6. What to look for: the skipless blocks (sas_p, sas_p_nonorm) sit on the unigram
   plateau longer early on, which is why the ladder preset warms up for a fifth of the run
   (tutorial.md, section 4; exercise 10, question d); a late start costs them seconds in b,
   and the control never leaves the plateau.
f. One seed and one small size: bet on the large gaps (the unshaped control's failure,
   no_attn_skip lagging) and on sas and sas_p keeping up with pre_ln per step; not on the
   percentages of b, nor on the order of blocks a few tenths of a percent apart. Three seeds
   of the class preset (tutorial.md, section 7) move the gaps by about two percentage points,
   and after 500 steps the SAS blocks are 3-4% behind pre_ln, not 2% ahead.
"""

import json
import sys
from pathlib import Path

DEFAULT = Path("results/ladder/compare.json")


def load(path=DEFAULT):
    """{block: result} from a compare.json, in the file's order (the baseline first)."""
    return {result["block"]: result for result in json.loads(Path(path).read_text())["results"]}


def step_reaching(result, loss):
    """The first step whose validation loss is at or below loss; None if none is."""
    return next((step for step, _, val_loss in result["curve"] if val_loss <= loss), None)


def seconds_reaching(result, loss):
    """The training seconds at the first evaluation at or below loss; None if none is."""
    return next((seconds for _, seconds, val_loss in result["curve"] if val_loss <= loss), None)


def race(results, baseline="pre_ln"):
    """[(block, seconds to reach the baseline's final val loss), ...], fastest first, None last."""
    target = results[baseline]["val_loss"]
    times = [(block, seconds_reaching(result, target)) for block, result in results.items()]
    return sorted(times, key=lambda pair: (pair[1] is None, pair[1] or 0))  # never reached: last


def report(results, loss=4.0, baseline="pre_ln"):
    """The table that main prints."""
    target = results[baseline]["val_loss"]
    base_seconds = seconds_reaching(results[baseline], target)
    lines = [f"{'block':24}{'final val':>10}{'steps/s':>9}{f'step to {loss}':>13}"
             f"{f'seconds to {target:.3f}':>18}{'vs ' + baseline:>12}"]
    for block, seconds in race(results, baseline):
        r = results[block]
        step = step_reaching(r, loss)
        vs = "" if seconds is None else f"{seconds / base_seconds:.2f}x"
        lines.append(f"{block:24}{r['val_loss']:>10.3f}{r['steps_per_sec']:>9.2f}{str(step):>13}"
                     f"{'never' if seconds is None else f'{seconds:.0f}':>18}{vs:>12}")
    return "\n".join(lines)


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    if not path.exists():
        sys.exit(f"error: no {path}: train the ladder with python compare.py config/ladder.py, then pass "
                 f"out/compare/compare.json")
    print(report(load(path), loss=float(sys.argv[2]) if len(sys.argv) > 2 else 4.0))
