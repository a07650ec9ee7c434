"""
Exercise 12 · the whole ladder · read the plot: per step, per second

Task
----
compare.py trained every block with the same data, seed and steps, and wrote
results/ladder/compare.json (and the plot assets/ladder.png). Its
"results" hold one entry per block, baseline first:

    {"block": "sas_p", "params": ..., "non_embedding_params": ...,
     "train_loss": ..., "val_loss": ..., "steps_per_sec": ..., "tokens_per_sec": ...,
     "peak_memory": ..., "curve": [[step, time_seconds, val_loss], ...]}

where curve has one point per evaluation, time_seconds being the training time
up to that step (evaluations excluded). The paper's question is not only
"which block reaches the lowest loss?" but "which block gets to a given loss
soonest, per step and per second?" (per second its Fig. 5; per step v1 Fig. 23 /
v2 Fig. 26). Answer it from the numbers.

"Reaching" a loss means an evaluation at or below it.

1. step_reaching(result, loss): the first step whose validation loss reaches
   loss, or None if no evaluation does.
2. seconds_reaching(result, loss): the training time at that evaluation, or None.
3. race(results, baseline="pre_ln"): every block with the seconds it took to reach
   the baseline's final validation loss, fastest first, as a list of
   (block, seconds); blocks that never reach it come last, with None.
4. Check:  python -m pytest exercises -k read_the_plot
   (it builds a small compare.json of its own).
5. Read the ladder:  python -m exercises.tasks.read_the_plot [path] [loss]
   prints a table from results/ladder/compare.json (or the compare.json you
   give, e.g. out/compare/compare.json after your own python compare.py), with
   the step at which each block reaches loss (default 4.0). Answer the questions.

Hint
----
Each result's curve is a list of [step, time, val_loss] (JSON has no tuples):
for step, seconds, val_loss in result["curve"]. The baseline reaches its own
final loss at its last evaluation, so it is in the race too. sorted() with a
key that puts None last: key=lambda pair: (pair[1] is None, pair[1] or 0).

Questions
---------
a. Per step: at which step does each block first reach 4.0? Which is first?
b. Per second: which block reaches pre_ln's final loss first, and how much
   sooner than pre_ln, in percent? Is the fastest per step also the fastest per
   second? Why can they differ (steps_per_sec)?
c. The curve has a point every eval_interval steps (compare.json's "runs" hold
   the settings). How precise are your answers to a and b? What would
   interpolating between evaluations assume?
d. Why does compare.py time training without the evaluations? On a machine
   shared with other jobs, which of your answers would you trust least?
e. results/ladder/<block>/log.jsonl has the training loss every log_interval
   steps: run_folder.read_log(path) gives its rows. At which step does each block
   first get its training loss below 6, leaving the unigram plateau? Which
   blocks are slow to leave it, and does that explain part of b?
f. One seed, one size: which conclusion would you bet on, and which not?
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
    raise NotImplementedError("exercise 12: find the first evaluation that reaches the loss")


def seconds_reaching(result, loss):
    """The training seconds at the first evaluation at or below loss; None if none is."""
    raise NotImplementedError("exercise 12: the time of the first evaluation that reaches the loss")


def race(results, baseline="pre_ln"):
    """[(block, seconds to reach the baseline's final val loss), ...], fastest first, None last."""
    raise NotImplementedError("exercise 12: race every block to the baseline's final loss")


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
