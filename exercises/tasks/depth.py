"""
Exercise 13 · the whole ladder · depth: which blocks put 72 layers to use?

Task
----
Signal propagation theory is about depth: a block without skips has to stay
close to the identity however many of them are stacked. The paper trained its
blocks at 18 and at 72 layers (v1 Fig. 6) to see which of them turn the extra
depth into a lower loss. The depth experiment does the same at laptop scale:

    python compare.py config/depth.py --out_dir=results/depth/{block} --report=results/depth --plot=assets/depth.png

trains pre_ln, no_attn_skip (the paper's V-SkipInit baseline, as the official
code runs it), sas and sas_p, each at 18 and at 72 layers, with two seeds
(width 64, 1,000 steps; config/depth.py has the rest). Mind the shape: 72
blocks of width 64 are 12 times deeper for their width than the paper's 72 of
width 768; question e reads the same experiment near the paper's ratio (twice it). It wrote
results/depth/compare.json, in compare.py's format (exercise 12): its "results"
hold one entry per block and depth,

    {"block": "sas_p", "group": "sas_p n_layer=72", "swept": {"n_layer": 72},
     "seeds": [1337, 1], "val_loss": the mean over the seeds,
     "val_loss_by_seed": [the final validation loss of each seed, in the order of "seeds"],
     "curve": ..., "curves_by_seed": ..., ...}

1. Predict, before you open the results: in predict(), for each block, whether
   the deep model ends with a lower validation loss than the shallow one
   ("gains"), a higher one ("loses"), or not further from it than the seeds
   are from each other ("about the same"); add a comment with your one-line
   reason for each. The check records your prediction and shows it next to the
   results; it is not graded.
2. change_with_depth(report): for every block trained at both depths, the
   relative change of its final validation loss from the shallow model to the
   deep one, deep / shallow - 1 (negative: depth helped), seed by seed (a seed
   gives both depths the same batches), and the mean of those changes:
       {block: {"by_seed": [one change per seed, in the order of "seeds"],
                "mean": their mean}}
   The shallow and the deep model are the smallest and the largest n_layer in
   the report.
3. beyond_the_seeds(report): for every block trained at both depths, whether
   depth moved it further than the seeds do: True if every seed of one depth
   ended below every seed of the other.
4. Check:  python -m pytest exercises -k test_depth
   (it writes small compare.json files of its own).
5. Read the experiment:  python -m exercises.tasks.depth [path]
   prints your prediction next to a table from results/depth/compare.json (or
   the compare.json you give). Then answer the questions.

Hint
----
report is the file's JSON object (load() below). An entry's depth is
entry["swept"]["n_layer"]; group the entries by entry["block"], and leave out a
block that has only one depth. zip pairs two lists seed by seed. For 3, compare
the highest loss of one depth with the lowest of the other, both ways round.

Questions
---------
a. Which blocks gain from depth here, and which lose? Where was your prediction
   off, and why?
b. For which blocks is the change larger than the spread of the seeds? With two
   seeds, what would a third have to do to change that answer?
c. The paper lowered V-SkipInit's learning rate at depth (3e-4 at 18 layers,
   1e-4 at 72), and config/depth.py does the same for no_attn_skip. What does
   that do to a comparison of the change with depth across the blocks?
d. The paper trained for about 40,000 steps at width 768; these runs train for
   1,000 steps at width 64. Which of its findings would you expect to show at
   this scale, and which not? Look at the curves as well as the last numbers
   (the plot, or "curves_by_seed").
e. config/depth_ratio.py repeats the experiment near the paper's depth-to-width
   ratio: 6 and 24 blocks of width 128, with the paper's 5% warmup, for 300
   steps of 8 sequences of 128 tokens. Read it with
       python -m exercises.tasks.depth results/depth_ratio/compare.json
   Which of your answers to a and b change? results/depth_ratio_equal_lr
   trains no_attn_skip at the others' learning rate: what does it say to c?
"""

import json
import sys
from pathlib import Path

DEFAULT = Path("results/depth/compare.json")
BLOCKS = ["pre_ln", "no_attn_skip", "sas", "sas_p"]
WORDS = ("gains", "about the same", "loses")  # the deep model against the shallow one


def load(path=DEFAULT):
    """The compare.json report: {"settings", "runs", "results"}."""
    return json.loads(Path(path).read_text())


def predict():
    """Your prediction, written before reading the results: {block: "gains" | "about the same" | "loses"}."""
    raise NotImplementedError("exercise 13: write down your prediction first")


def change_with_depth(report):
    """{block: {"by_seed": [deep / shallow - 1 for each seed], "mean": their mean}} for every block trained at
    both depths, the smallest and the largest n_layer in the report."""
    raise NotImplementedError("exercise 13: the change of each block's final loss from the shallow to the deep model")


def beyond_the_seeds(report):
    """{block: True if every seed of one depth ended below every seed of the other} for every block trained at
    both depths."""
    raise NotImplementedError("exercise 13: is the change larger than the spread of the seeds?")


def table(report, predicted):
    """The table the file prints: each block's losses at both depths, the change, and the prediction."""
    depths = sorted({entry["swept"]["n_layer"] for entry in report["results"]})
    losses = {(entry["block"], entry["swept"]["n_layer"]): entry["val_loss_by_seed"] for entry in report["results"]}
    changes, beyond = change_with_depth(report), beyond_the_seeds(report)
    lines = [f"{'block':14}{f'{depths[0]} layers':>18}{f'{depths[-1]} layers':>18}{'change':>24}"
             f"{'beyond the seeds':>18}   predicted"]
    for block, change in changes.items():
        seeds = [" ".join(f"{loss:.3f}" for loss in losses[block, depth]) for depth in (depths[0], depths[-1])]
        mean_and_seeds = f"{change['mean']:+.1%} (" + " ".join(f"{c:+.1%}" for c in change["by_seed"]) + ")"
        lines.append(f"{block:14}{seeds[0]:>18}{seeds[1]:>18}{mean_and_seeds:>24}{str(beyond[block]):>18}   "
                     f"{predicted.get(block, '')}")
    return "\n".join(lines)


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    if not path.exists():
        sys.exit(f"error: no {path}: train the depth experiment with python compare.py config/depth.py, then "
                 f"pass its compare.json, out/depth/compare.json")
    print(table(load(path), predict()))
