"""
Exercise 10, solved: a sweep. The task and the hint are in exercises/tasks/sweep.py.

What we saw, on a 2-core CPU with one thread (about 25 s a run at 6 layers, 40 s at 12;
validation loss every 50 steps; sas_p, 6 layers of width 128, 300 steps of 8 x 64 tokens, seed
1337, learning rate 1e-3, 5% warmup unless swept):

python -m exercises.solutions.sweep

      mlp_gain      50     100     150     200     250     300   final
          0.01   6.801   6.493   6.230   6.048   5.956   5.924   5.924
           0.1   6.798   6.494   6.214   6.031   5.938   5.905   5.905
           0.3   6.792   6.727   6.710   6.531   6.372   6.319   6.319
           1.0   6.771   6.723   6.709   6.685   6.674   6.673   6.673

python -m exercises.solutions.sweep --values=0.1 --seed=1

           0.1   6.800   6.589   6.305   6.095   5.997   5.960   5.960

python -m exercises.solutions.sweep --setting=warmup_frac --values=0.05,0.25 --n_layer=12

   warmup_frac      50     100     150     200     250     300   final
          0.05   6.789   6.730   6.713   6.559   6.403   6.350   6.350
          0.25   7.136   6.734   6.697   6.424   6.251   6.188   6.188

Answers (open-ended: what to look for, not the only right ones)
-------
a. 0.1, the paper's value, at 5.905; 0.01 is as good (5.924: another seed moves 0.1 by 0.055,
   to 5.960, so the two cannot be told apart here). 0.3 and 1 are clearly worse, 6.319 and
   6.673, far beyond the seed's spread.
b. At initialisation MLP(H) is small (weights N(0, 0.02): exercise 9 measured an output RMS
   of about 0.07 for an input of RMS 1), so even gain 1 starts close to the identity. The
   difference comes with training: Adam moves the MLP's weights at the same rate whatever
   the gain, so beta_FF sets how fast the MLP's share of the stream grows. At 1 it soon
   swamps the identity path that shaped attention provides, the block behaves like a skipless
   MLP stack, and the run sits on the unigram plateau (6.7) for the whole run; at 0.3 it
   leaves the plateau only after step 150. At 0.01 and 0.1 the curves are the same from the
   start: a small gain is trainable (and not weight-decayed), and grows where it needs to.
   The checkpoints' blocks.<i>.beta_ff after 300 steps (torch.load(".../ckpt.pt")["model"]):
   0.021 to 0.063 from 0.01, 0.103 to 0.134 from 0.1, and 1.01 from 1.
c. Each block adds a branch whose variance is about beta_FF^2 times its input's, and with
   depth these add up: about n_layer * beta_FF^2 of the stream is the MLPs' after n_layer
   blocks. Keeping that O(1) as the model deepens means beta_FF ~ 1/sqrt(n_layer), as in
   SkipInit and Stable ResNets (De & Smith 2020; Hayou et al. 2021); the paper's 0.1 at 18
   layers is 0.42 / sqrt(18).
d. At 12 layers both runs sit near the plateau (6.7) until step 150; the 25% warmup leaves it
   faster and ends 0.16 lower (6.188 against 6.350). 5% of 300 steps is 15 steps of warmup,
   where the paper's 5% of 40,000 is 2,000: a short run makes the same fraction a much
   steeper start at the full learning rate. The effect here is smaller than in tutorial.md's
   section 5, where 12 layers of width 128 ended at 6.350 with a 5% warmup and at 5.400 with
   20%, after 400 steps of 16 x 128 tokens (results/warmup/compare.json). This run is shorter,
   with smaller batches, and neither has left the plateau for long.
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
    rows = []
    for value in values:
        run = Path(out_dir) / f"{setting}={value}"
        val_loss = None
        try:
            cfg, ckpt = run_settings([*flags, f"--{setting}={value}", f"--out_dir={run}", "--overwrite"])
            val_loss = train.train(cfg, ckpt)["val_loss"]
        except FloatingPointError as e:  # diverged: train.py stopped the run
            print(f"{setting}={value}: {e}", file=sys.stderr)
        curve = [(row["step"], row["val_loss"]) for row in read_log(run / "log.jsonl") if "val_loss" in row]
        rows.append({"value": value, "val_loss": float("inf") if val_loss is None else val_loss, "curve": curve})
    return rows


def best(rows):
    """The value whose run has the lowest val_loss."""
    return min(rows, key=lambda row: row["val_loss"])["value"]


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
