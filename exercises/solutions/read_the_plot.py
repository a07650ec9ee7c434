"""
Exercise 12, solved: read the plot. The task and the hint are in exercises/tasks/read_the_plot.py.

What `python -m exercises.solutions.read_the_plot` prints. The steps are from the committed ladder
run, results/ladder/compare.json (python compare.py config/ladder.py: 12 layers of width 128,
2,000 steps, an evaluation every 100 steps). The speeds are the step times bench.py measured at
that shape on a 2-core AMD EPYC, results/bench/throughput/bench.json; time is in pre_ln's step
times:

    block                    final val  step to 4.0  step to 3.813   speed  time to 3.813   vs pre_ln
    parallel                     3.740         1300           1700   1.08x           1571       0.79x
    sas_p                        3.736         1200           1600   0.97x           1649       0.82x
    sas                          3.722         1200           1600   0.88x           1816       0.91x
    sas_p_nonorm                 3.796         1300           1900   0.99x           1924       0.96x
    pre_ln                       3.813         1500           2000   1.00x           2000       1.00x
    no_attn_skip                 4.074         None           None       -              -
    v_skipinit                   4.166         None           None       -              -
    sas_vp                       3.710         1200           1600       -              -
    no_attn_skip_unshaped        6.615         None           None       -              -

Answers (what to look for; the numbers are these runs')
-------
a. Read the "step to 4.0" column. Per step the SAS blocks lead: sas_vp, sas and sas_p reach 4.0
   at step 1,200, sas_p_nonorm and parallel at 1,300, pre_ln at 1,500, and all five end below
   pre_ln's 3.813. no_attn_skip (4.074) and v_skipinit (4.166) never reach 4.0; the unshaped
   control (6.615, the unigram plateau) is far above it.
b. parallel reaches pre_ln's final 3.813 first. It needs 1,700 steps, but it runs 1.08x pre_ln's
   steps per second: 1,571 of pre_ln's step times, 0.79x pre_ln's 2,000. sas_p follows at 0.82x
   (1,600 steps at 0.97x). sas needs as many steps as sas_p, at 0.88x the speed: 0.91x. So the
   fastest per step need not be the fastest per second: the time to a loss is the steps to it
   over the steps per second, and the blocks differ in both. sas_vp is not in the benchmark, so
   it is not in the race.
c. Only to the evaluation interval: "1,600 steps" means somewhere in (1,500, 1,600], 6% of the
   steps, about as large as the gap between parallel and sas_p in b. Interpolating assumes the loss
   falls smoothly between two evaluations; a noisy curve (200 validation windows) can cross a
   level and come back, so also check that the curve stays below. The speeds depend on the
   shape: at the default shape (4 layers of width 256) the same benchmark put sas at 0.99x.
d. The ladder's runs were made on two machines in two precisions, beside other work (tutorial.md's
   appendix): four of them on an AMD EPYC in bfloat16, the other five on an Intel Xeon in float32.
   Their steps_per_sec compare the machines as much as the blocks. bench.py times each block in
   turns with pre_ln on one machine, in the training precision, and takes the median of the
   ratios, so that a machine that slows down slows both. The steps of a carry over to another
   machine; the speeds of b do not, and neither do the times: the paper's speed-ups per second
   were measured on GPUs (Fig. 5).
e. read_log("results/ladder/<block>/log.jsonl"): the first row whose train_loss is below 6.
   pre_ln, no_attn_skip, v_skipinit and parallel leave the plateau at step 225, sas_vp at 250,
   sas and sas_p at 275, sas_p_nonorm at 325: the blocks with identity values start later, which
   is why the ladder preset warms up for a fifth of the run (tutorial.md, section 5; exercise 10,
   question d). The late start costs them steps in a and time in b. The control never leaves the
   plateau.
f. One seed and one small size: bet on the large gaps (the unshaped control's failure,
   no_attn_skip lagging) and on sas and sas_p keeping up with pre_ln per step; not on the
   percentages of b, nor on the order of blocks a few tenths of a percent apart. Three seeds
   of the class preset (tutorial.md, section 8) move the gaps by about two percentage points,
   and after 500 steps the SAS blocks are 3-4% behind pre_ln, not 2% ahead.
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
    return next((step for step, _, val_loss in result["curve"] if val_loss <= loss), None)


def time_reaching(result, loss, speed):
    """The time to reach loss, in pre_ln's step times, for a block that runs at speed times pre_ln's steps per
    second; None if no evaluation reaches it."""
    step = step_reaching(result, loss)
    return None if step is None else step / speed  # one step of the block is 1 / speed of pre_ln's


def race(results, speeds, baseline="pre_ln"):
    """[(block, time to reach the baseline's final val loss, in pre_ln's step times), ...] for every block with a
    speed in speeds, fastest first, None last."""
    target = results[baseline]["val_loss"]
    times = [(block, time_reaching(result, target, speeds[block])) for block, result in results.items()
             if block in speeds]
    return sorted(times, key=lambda pair: (pair[1] is None, pair[1] or 0))  # never reached: last


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
