"""
Exercise 13, solved: depth, which blocks put 72 layers to use. The task and the hint are in
exercises/tasks/depth.py.

What `python -m exercises.solutions.depth` prints, from results/depth/compare.json (made by
    python compare.py config/depth.py --out_dir=results/depth/{block} --report=results/depth --plot=assets/depth.png
on a 2-core AMD EPYC; width 64, 1,000 steps, seeds 1337 and 1):

    block                  18 layers         72 layers                  change  beyond the seeds
    pre_ln               4.916 4.943       5.028 5.011     +1.8% (+2.3% +1.4%)              True
    no_attn_skip         5.794 5.760       6.559 6.559  +13.5% (+13.2% +13.9%)              True
    sas                  4.967 4.950       4.895 4.902     -1.2% (-1.4% -1.0%)              True
    sas_p                4.952 4.987       4.904 4.910     -1.2% (-1.0% -1.5%)              True

Answers (what to look for)
-------
a. Depth helped sas and sas_p (-1.2% each) and hurt no_attn_skip (+13.5%), as in the paper
   (v1 Fig. 6, Sec. 5), where V-SkipInit trains slower per update at 72 blocks than at 18 and
   falls further behind. It did not help pre_ln here (+1.8%), where in the paper it does: at this
   width and budget the deep pre_ln model has not yet put its extra blocks to use.
b. All four changes are beyond the two seeds. With two seeds the spread is the
   distance between two numbers: a third seed can only widen it, so a True can turn False if
   the third lands across the other depth's range, never the other way round. A change inside
   the spread says "not shown", not "no change".
c. The lower learning rate is part of what the paper had to do to train V-SkipInit at depth, so
   no_attn_skip's change with depth mixes two effects: the depth, and a learning rate three
   times lower at 72 layers than at 18 (1e-4 against 3e-4, against 1e-3 for the other blocks
   at both depths). It can fall behind because its learning rate falls, not only because of its
   depth; and at a lower rate it may still be learning when the run ends.
d. From the curves (assets/depth.png): at 1,000 steps and width 64 the models are small and far
   from trained. The skipless blocks with shaped attention keep pace at 72 blocks with their
   18-block runs and pull ahead in the second half; pre_ln's deep model is behind its shallow one
   from step 400 on. The question signal propagation answers, whether a deep skipless block trains at all and
   how fast per step, does show; whether a deep model's extra capacity pays off needs longer runs.
   One seed pair and one size: bet only on changes beyond the seeds.
e. Near the paper's ratio (results/depth_ratio: 6 and 24 blocks of width 128, 300 steps) every block
   loses from depth, beyond the seeds: pre_ln +8.4%, no_attn_skip +11.6%, sas +13.5%, sas_p +11.7%.
   The curves show why: the deep skipless models sit at the unigram loss for most of the run under
   the paper's 5% warmup, and 300 steps measure how soon a block leaves it, not what depth buys a
   trained model. So a's answers change for sas and sas_p, and b's do not. For c: at the others'
   learning rate (results/depth_ratio_equal_lr) no_attn_skip is the fastest block at both depths and
   loses only 2.5% to depth, so in short runs its lowered rates, not its depth, make it slow.
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
    return {
        "pre_ln": "gains",  # the skips keep every block near the identity, so more blocks are more capacity
        "no_attn_skip": "loses",  # the paper's V-SkipInit baseline trained slower per update at 72 than at 18
        "sas": "gains",  # shaped attention and downweighted MLPs keep signal propagation at depth
        "sas_p": "gains",
    }


def change_with_depth(report):
    """{block: {"by_seed": [deep / shallow - 1 for each seed], "mean": their mean}} for every block trained at
    both depths, the smallest and the largest n_layer in the report."""
    losses = by_block_and_depth(report)
    changes = {}
    for block, by_depth in losses.items():
        shallow, deep = by_depth[min(by_depth)], by_depth[max(by_depth)]
        by_seed = [d / s - 1 for s, d in zip(shallow, deep)]  # the same seed: the same batches at both depths
        changes[block] = {"by_seed": by_seed, "mean": sum(by_seed) / len(by_seed)}
    return changes


def beyond_the_seeds(report):
    """{block: True if every seed of one depth ended below every seed of the other} for every block trained at
    both depths."""
    beyond = {}
    for block, by_depth in by_block_and_depth(report).items():
        shallow, deep = by_depth[min(by_depth)], by_depth[max(by_depth)]
        beyond[block] = max(deep) < min(shallow) or max(shallow) < min(deep)
    return beyond


def by_block_and_depth(report):
    """{block: {n_layer: [final val loss of each seed]}} for the blocks trained at the smallest and the largest
    n_layer of the report."""
    depths = [entry["swept"]["n_layer"] for entry in report["results"]]
    losses = {}
    for entry in report["results"]:
        losses.setdefault(entry["block"], {})[entry["swept"]["n_layer"]] = entry["val_loss_by_seed"]
    return {block: {depth: by_depth[depth] for depth in (min(depths), max(depths))}
            for block, by_depth in losses.items() if min(depths) in by_depth and max(depths) in by_depth}


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
