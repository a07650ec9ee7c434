"""
Exercise 10 · ladder step 3, sas -> sas_p · a sweep: beta_FF's starting value, then the warmup

Task
----
With no skip left, sas_p's block at initialisation is out = H + beta_FF MLP(H),
and the paper starts beta_FF at 0.1 (§4.1; --mlp_gain in train.py), a value the
official code's config says to scale as "O(1/sqrt(depth))". How much does that
choice matter? Write a small sweep: train the same
model once per value of one setting, everything else fixed, and compare.

1. sweep(setting, values, flags, out_dir): for each value, in order, train with
   train.py's settings() and train() on flags plus --<setting>=<value>, into the
   folder out_dir/<setting>=<value>. Return one dict per value, in the order of
   values:
       {"value": value, "val_loss": the final validation loss,
        "curve": [(step, val_loss), ...] from the run's log.jsonl}
   A run that diverges makes train() raise FloatingPointError: record its
   val_loss as float("inf") and its curve as far as the log got, and go on.
2. best(rows): the value with the lowest val_loss.
3. Check:  python -m pytest exercises -k sweep
   (it runs your sweep on a tiny model for a few steps).
4. Run the sweep, about 2 minutes on a laptop CPU:
       python -m exercises.tasks.sweep
   sweeps --mlp_gain over 0.01, 0.1, 0.3 and 1 for sas_p (FLAGS below), and prints
   a table of the validation loss every 50 steps. Then answer the questions.
   Another setting: python -m exercises.tasks.sweep --setting=warmup_frac --values=0.05,0.25 --n_layer=12

Hint
----
settings.run_settings(argv) takes a list of "--name=value" strings and returns
(cfg, ckpt); train.train(cfg, ckpt) returns a dict with "val_loss". Add
"--overwrite" to the flags, so that running the sweep again replaces the old
runs. run_folder.read_log(path) reads a log.jsonl into a list of dicts: the rows
with a "val_loss" key are the evaluations.

Questions
---------
a. Which mlp_gain gives the lowest validation loss after 300 steps? How large are
   the differences, next to what another --seed gives (python -m
   exercises.tasks.sweep --values=0.1 --seed=1)?
b. At mlp_gain = 1 the block starts as out = H + MLP(H): is that still "close to
   the identity"? What does a large gain do early in training, what does a tiny
   one (0.01) do? Look at the curves, not only the last number.
c. The paper scales beta_FF like 1/sqrt(depth). Why would a deeper model want a
   smaller gain? (Think of the sum of n_layer branches at initialisation.)
d. The warmup (tutorial.md, section 5, has the story): with --n_layer=12, sweep
   --warmup_frac over 0.05 and 0.25. What happens to sas_p with the short warmup?
   Why does a short run (300 steps) make "5% warmup" different from the paper's?
"""

import sys
from pathlib import Path

import train
from run_folder import read_log
from settings import run_settings

FLAGS = ["--block=sas_p", "--n_layer=6", "--n_embd=128", "--n_head=4", "--block_size=64", "--batch_size=8",
         "--max_steps=300", "--eval_interval=50", "--eval_windows=100"]
VALUES = [0.01, 0.1, 0.3, 1.0]


def sweep(setting, values, flags, out_dir):
    """Train once per value of setting; [{"value", "val_loss", "curve": [(step, val_loss), ...]}, ...]."""
    raise NotImplementedError("exercise 10: train once per value and collect the results")


def best(rows):
    """The value whose run has the lowest val_loss."""
    raise NotImplementedError("exercise 10: pick the best value")


def table(rows, setting):
    """The validation loss of every run, every evaluation, as text."""
    steps = sorted({step for row in rows for step, _ in row["curve"]})
    lines = [f"{setting:>14}" + "".join(f"{step:>8}" for step in steps) + "   final"]
    for row in rows:
        losses = dict(row["curve"])
        cells = "".join(f"{losses[step]:8.3f}" if step in losses else " " * 8 for step in steps)
        lines.append(f"{row['value']:>14}" + cells + f"   {row['val_loss']:.3f}")
    return "\n".join(lines)


def number(text):
    return int(text) if text.lstrip("-").isdigit() else float(text)


def main(argv):
    """python -m exercises.tasks.sweep [--setting=mlp_gain] [--values=0.01,0.1,...] [--sweep_dir=out/sweep]
    [train.py flags...]"""
    setting, values, flags, out_dir = "mlp_gain", VALUES, list(FLAGS), "out/sweep"
    for arg in argv:
        name, _, text = arg.partition("=")
        if name == "--setting":
            setting = text
        elif name == "--values":
            values = [number(value) for value in text.split(",")]
        elif name == "--sweep_dir":
            out_dir = text
        else:
            flags.append(arg)  # later flags win: --n_layer=12 replaces FLAGS' --n_layer=6
    rows = sweep(setting, values, flags, Path(out_dir))
    print(table(rows, setting))
    print(f"best {setting}: {best(rows)}")


if __name__ == "__main__":
    main(sys.argv[1:])
