"""
Exercise 12 · the whole ladder · read the plot: per step, per second

Task
----
compare.py trained every block with the same data, seed and steps, and wrote
results/ladder/compare.json (and the plot assets/ladder.png). Its "results"
hold one entry per block, baseline first:

    {"block": "sas_p", "params": ..., "non_embedding_params": ...,
     "train_loss": ..., "val_loss": ..., "peak_memory": ...,
     "curve": [[step, time_seconds, val_loss], ...], ...}

where curve has one point per evaluation. The paper's question is not only
"which block reaches the lowest loss?" but "which block gets to a given loss
soonest, per step and per second?" (per second its Fig. 5; per step v1 Fig. 23 /
v2 Fig. 26). Answer it from the numbers.

Per step, the curves say. Per second, they do not: the ladder's runs shared
their machines with other work, and not all ran on one machine or in one
precision (tutorial.md's appendix), so their times compare machines as much as
blocks. bench.py timed a training step of every block at the ladder's shape, in
turns with pre_ln on one machine: results/bench/throughput/bench.json.
load_speeds() below reads its "vs pre_ln" column, each block's steps per second
over pre_ln's. A block at speed 0.5 takes as long for one step as pre_ln takes
for two: measure time in pre_ln's step times.

"Reaching" a loss means an evaluation at or below it.

1. step_reaching(result, loss): the first step whose validation loss reaches
   loss, or None if no evaluation does.
2. time_reaching(result, loss, speed): the time that block takes to reach loss,
   in pre_ln's step times, at speed times pre_ln's steps per second; None if no
   evaluation reaches it.
3. race(results, speeds, baseline="pre_ln"): every block that has a speed in
   speeds, with the time it takes to reach the baseline's final validation
   loss, fastest first, as a list of (block, time); blocks that never reach it
   come last, with None.
4. Check:  python -m pytest exercises -k read_the_plot
   (it builds a small compare.json and bench.json of its own).
5. Read the ladder:  python -m exercises.tasks.read_the_plot [path] [loss]
   prints a table from results/ladder/compare.json (or the compare.json you
   give, e.g. out/compare/compare.json after your own python compare.py) and
   the benchmark's speeds, with the step at which each block reaches loss
   (default 4.0). Answer the questions.

Hint
----
Each result's curve is a list of [step, time, val_loss] (JSON has no tuples):
for step, _, val_loss in result["curve"]. The baseline reaches its own final
loss at its last evaluation, so it is in the race too. sorted() with a key that
puts None last: key=lambda pair: (pair[1] is None, pair[1] or 0).

Questions
---------
a. Per step: at which step does each block first reach 4.0? Which is first?
b. Per second: which block reaches pre_ln's final loss first, and how much
   sooner than pre_ln, in percent? Is the fastest per step also the fastest per
   second? Why can they differ?
c. The curve has a point every eval_interval steps (compare.json's "runs" hold
   the settings). How precise are your answers to a and b? What would
   interpolating between evaluations assume?
d. compare.json holds each run's own steps_per_sec too. Why read speed from
   bench.py instead? Which of your answers would another machine change, and
   which not?
e. results/ladder/<block>/log.jsonl has the training loss every log_interval
   steps: run_folder.read_log(path) gives its rows. At which step does each block
   first get its training loss below 6, leaving the unigram plateau? Which
   blocks are slow to leave it, and does that explain part of a and b?
f. One seed, one size: which conclusion would you bet on, and which not?
"""

import json
import sys
from pathlib import Path

DEFAULT = Path("results/ladder/compare.json")
BENCH = Path("results/bench/throughput/bench.json")
SHAPE = "12x128x4"  # the ladder's shape in bench.py's report: 12 layers of width 128, 4 heads


def load(path=DEFAULT):
    """{block: result} from a compare.json, in the file's order (the baseline first)."""
    return {result["block"]: result for result in json.loads(Path(path).read_text())["results"]}


def load_speeds(path=BENCH, shape=SHAPE):
    """{block: its steps per second over pre_ln's}, the "vs pre_ln" column of a bench.py report at shape."""
    blocks = json.loads(Path(path).read_text())["results"]["throughput"]["shapes"][shape]["blocks"]
    return {block: timing["vs_pre_ln"] for block, timing in blocks.items()}


def step_reaching(result, loss):
    """The first step whose validation loss is at or below loss; None if none is."""
    raise NotImplementedError("exercise 12: find the first evaluation that reaches the loss")


def time_reaching(result, loss, speed):
    """The time to reach loss, in pre_ln's step times, for a block that runs at speed times pre_ln's steps per
    second; None if no evaluation reaches it."""
    raise NotImplementedError("exercise 12: the time to reach the loss, from the step and the speed")


def race(results, speeds, baseline="pre_ln"):
    """[(block, time to reach the baseline's final val loss, in pre_ln's step times), ...] for every block with a
    speed in speeds, fastest first, None last."""
    raise NotImplementedError("exercise 12: race every block to the baseline's final loss")


def report(results, speeds, loss=4.0, baseline="pre_ln"):
    """The table that main prints: the blocks with a speed in the order of the race, then the others."""
    target = results[baseline]["val_loss"]
    times = dict(race(results, speeds, baseline))
    lines = [f"{'block':24}{'final val':>10}{f'step to {loss}':>13}{f'step to {target:.3f}':>15}{'speed':>8}"
             f"{'time to ' + f'{target:.3f}':>15}{'vs ' + baseline:>12}"]
    for block in [*times, *(block for block in results if block not in times)]:
        r, time = results[block], times.get(block)
        speed = f"{speeds[block]:.2f}x" if block in speeds else "-"
        shown = "-" if block not in times else "never" if time is None else f"{time:.0f}"
        vs = "" if time is None else f"{time / times[baseline]:.2f}x"
        lines.append(f"{block:24}{r['val_loss']:>10.3f}{str(step_reaching(r, loss)):>13}"
                     f"{str(step_reaching(r, target)):>15}{speed:>8}{shown:>15}{vs:>12}")
    return "\n".join(lines)


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    for needed, how in ((path, "train the ladder with python compare.py config/ladder.py, then pass "
                                "out/compare/compare.json"),
                        (BENCH, "time the blocks with python bench.py --parts=throughput --shapes=default,12x128x4 "
                                "--report=results/bench/throughput")):
        if not needed.exists():
            sys.exit(f"error: no {needed}: {how}")
    print(report(load(path), load_speeds(), loss=float(sys.argv[2]) if len(sys.argv) > 2 else 4.0))
