"""
A sweep's final losses in the paper's form: the final validation loss against the swept value, one line per series,
and a horizontal line for every row of another report, the references.

    python plot_sweep.py --sweep=results/fig3 --references=results/fig3_references --out=assets/fig3.png

The paper's Fig. 3 is drawn so: the loss against beta, a line for the identity base and one for the orthogonal
base, and reference lines for Pre-LN and V-SkipInit. compare.py trains both reports and draws each one's own plot;
this script only reads their compare.json.
"""

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from common import pyplot, run_main
from configurator import Settings, parse_config, setting
from errors import CheckpointError, ConfigError


@dataclass
class PlotConfig(Settings):
    sweep: str = setting("", "a compare.py report folder whose runs swept one or two settings (the first is the x "
                             "axis)")
    references: str = setting("", "report folders, separated by commas, whose rows become horizontal lines")
    out: str = setting("out/sweep.png", "where to draw the figure")

    def __post_init__(self):
        super().__post_init__()
        if not self.sweep:
            raise ConfigError("--sweep: give the report folder of a sweep, e.g. --sweep=results/fig3")


def report(folder):
    """The results of compare.py's report in folder."""
    path = Path(folder) / "compare.json"
    try:
        return json.loads(path.read_text())["results"]
    except OSError:
        raise CheckpointError(f"no report at {path}; run compare.py with --report={folder} first") from None


def seed_range(result):
    """' [lowest, highest]' of a row's seeds, or nothing for one seed."""
    losses = result["val_loss_by_seed"]
    return f" [{min(losses):.3f}, {max(losses):.3f}]" if len(losses) > 1 else ""


def plot(cfg):
    swept = report(cfg.sweep)
    if not swept[0]["swept"]:
        raise ConfigError(f"--sweep={cfg.sweep}: that report swept no setting; give a sweep's report folder")
    name, *others = swept[0]["swept"]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.8))
    series = {}  # one line per block and value of the other swept setting
    for r in swept:
        label = " ".join([r["block"], *(f"{other}={r['swept'][other]}" for other in others)])
        series.setdefault(label, []).append(r)
    for label, rows in series.items():
        line, = ax.plot([r["swept"][name] for r in rows], [r["val_loss"] for r in rows], marker="o", label=label)
        for r in rows:
            if len(r["val_loss_by_seed"]) > 1:
                ax.vlines(r["swept"][name], min(r["val_loss_by_seed"]), max(r["val_loss_by_seed"]),
                          color=line.get_color(), alpha=0.5)
    styles = ["--", ":", "-.", (0, (5, 1, 1, 1, 1, 1))]
    references = [r for folder in cfg.references.split(",") if folder for r in report(folder)]
    for i, r in enumerate(references):
        ax.axhline(r["val_loss"], color="black", linewidth=1, linestyle=styles[i % len(styles)],
                   label=f"{r['group']} ({r['val_loss']:.3f}{seed_range(r)})")
    seeds = swept[0]["seeds"]
    over = f", mean of seeds {', '.join(map(str, seeds))}" if len(seeds) > 1 else ""
    ax.set(xlabel=name, ylabel="final validation loss", title=f"after {swept[0]['curve'][-1][0]} steps{over}")
    values = list(dict.fromkeys(r["swept"][name] for r in swept))
    if all(isinstance(value, (int, float)) for value in values):
        ax.set_xticks(values, [f"{value:g}" for value in values])
    ax.legend(fontsize="small")
    fig.tight_layout()
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    print(f"wrote {out}")


def main(argv):
    plot(parse_config(PlotConfig, argv, "plot_sweep.py"))
    return 0


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
