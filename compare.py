"""
The ladder experiment: train every block with the same data, seed, batches and step budget,
then compare losses, parameters, speed and memory.

    python compare.py config/ladder.py                      # the CPU preset the README's results come from
    python compare.py config/ladder.py --blocks=pre_ln,sas_p --seeds=1337,1,2     # mean and spread of 3 seeds
    python compare.py config/class.py --blocks=sas_p --sweep=mlp_gain=0.05,0.1,0.2  # one curve per value
    python compare.py config/paper.py                       # the paper's recipe, on a GPU

Every setting but compare.py's own (blocks, seeds, sweep, report, plot) goes to train.py. Every run trains
in its own train.py process, into out_dir (out/compare/{block} by default), so its peak memory is its own.
A run trained with another seed or sweep value than the settings' own goes to a folder named after it
(out/compare/sas_p-seed1, out/compare/sas_p-mlp_gain0.05). A run that already finished with the same
settings is reused, an interrupted one is resumed, so running the command again only redraws the table
(compare.md), the numbers (compare.json) and the plot (compare.png) from the logs.
"""

import itertools
import json
import math
import statistics
import sys
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch

from common import figure_file, pyplot, run_child, run_main, writable_folder
from configurator import unknown
from data import load_dataset
from errors import CheckpointError, ConfigError
from hardware import device_name, pick_device
from model import GPT
from processes import STOP_SIGNALS
from run_folder import load_checkpoint, read_log, refuse_if_training
from settings import (ExperimentSettings, TrainConfig, changed_settings, parse_experiment_settings, parse_sweep,
                      parse_train_settings, saved_settings)


@dataclass
class Run:
    """One train.py run of the comparison: which row of the table it belongs to, and its settings."""
    group: str  # the row: the block, with the swept settings' values if there are any
    seed: int
    swept: dict  # {setting: value} of the swept settings
    train: TrainConfig


def parse(argv):
    """compare.py's own settings, and every run's train.py settings from the rest of argv: config files
    are read once per run, so a preset can choose a learning rate by block (or by a swept setting)."""
    own = [f.name for f in fields(ExperimentSettings)]
    known = own + [f.name for f in fields(TrainConfig) if f.name != "block"]  # --blocks sets each run's block
    for arg in argv:
        if arg.startswith("--") and arg != "--help" and arg[2:].partition("=")[0] not in known:
            raise unknown(arg[2:].partition("=")[0], known, arg)
    flags = [arg for arg in argv if arg.startswith("--") and arg[2:].partition("=")[0] in own]
    rest = [arg for arg in argv if arg not in flags]  # config files and train.py's flags
    files = [arg for arg in rest if not arg.startswith("--")]
    cfg = parse_experiment_settings([*files, *flags, *(arg for arg in argv if arg in ("-h", "--help"))])
    sweeps = parse_sweep(cfg.sweep)
    runs = []
    for block in cfg.block_list:
        base = train_settings(rest, block)
        for values in itertools.product(*(values for _, values in sweeps)):
            swept = {name: value for (name, _), value in zip(sweeps, values)}
            for seed in cfg.seed_list:
                seeded = [f"--seed={seed}"] if seed is not None else []
                run = train_settings(rest, block, *(f"--{name}={value}" for name, value in swept.items()), *seeded)
                group = " ".join([block, *(f"{name}={value}" for name, value in swept.items())])
                runs.append(Run(group, run.seed, swept, own_folder(run, base, swept)))
    if len({run.train.run_dir for run in runs}) < len(runs):
        raise ConfigError("out_dir must contain {block}, so that every block gets its own run folder")
    return cfg, runs


def train_settings(rest, block, *extra):
    """One run's train.py settings: compare.py's arguments but its own flags, then the run's block and extra
    flags. A config file may set out_dir; else the runs go to out/compare/."""
    return parse_train_settings([*rest, f"--block={block}", *extra], defaults={"out_dir": "out/compare/{block}"})


def own_folder(run, base, swept):
    """The run's settings, with a folder of its own where its seed or a swept value is not the settings' own:
    out/compare/sas_p-seed1 beside out/compare/sas_p. A run with the settings' own seed and values keeps the
    plain folder, so that a comparison of several seeds reuses the run of one."""
    label = run.block
    for name in swept:
        if getattr(run, name) != getattr(base, name):
            label += f"-{name}{getattr(run, name)}"
    if run.seed != base.seed:
        label += f"-seed{run.seed}"
    return run if label == run.block else replace(run, out_dir=run.out_dir.replace("{block}", label))


def train_block(run):
    """Train one run in its own process, reusing or resuming what is already on disk. A finished run is reused
    from its checkpoint or, where it has none (results/ holds the runs' logs, not their checkpoints), from its
    config.json and its log."""
    refuse_if_training(run.run_dir)  # another train.py is writing it: nothing there can be reused or resumed now
    ckpt_path = run.run_dir / "ckpt.pt"
    if ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)
        if changed_settings(saved_settings(ckpt["config"], ckpt_path), run):
            raise CheckpointError(f"{run.run_dir} holds a run with other settings; pick another --out_dir "
                                  f"(or delete that folder)")
        here = device_name(pick_device(run.device))  # (a changed --dtype is a changed setting, refused above)
        if ckpt["device"] != here:
            raise CheckpointError(f"{run.run_dir} holds a run made on {ckpt['device']} in {ckpt['dtype']}, and the "
                                  f"others would run on {here}: their speed and memory would not compare; pick "
                                  f"another --out_dir (or delete that folder)")
        if ckpt["step"] >= run.max_steps:
            print(f"{run.block}: reusing the finished run in {run.run_dir}")
            return
        print(f"{run.block}: resuming the run in {run.run_dir} at step {ckpt['step']}")
        run.resume = True
    elif finished_without_checkpoint(run):
        print(f"{run.block}: reusing the finished run in {run.run_dir} (from its log: it has no checkpoint)")
        return
    flags = [f"--{key}={value}" for key, value in asdict(run).items()]
    status = run_child([sys.executable, str(Path(__file__).parent / "train.py"), *flags])
    if status - 128 in STOP_SIGNALS:  # train.py saved a checkpoint; this command resumes it
        print(f"compare.py stopped while {run.block} trained; run the same command again to resume it",
              file=sys.stderr)
    if status != 0:
        sys.exit(status)  # train.py has said why


def finished_without_checkpoint(run):
    """Whether run.run_dir holds, without a checkpoint, the config.json and the finished log of a run with
    these settings. Refuses a folder whose config.json has other settings."""
    config = run.run_dir / "config.json"
    if not config.exists():
        return False
    try:
        saved = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:  # unreadable, not UTF-8, not JSON
        saved = e
    if not isinstance(saved, dict):
        raise CheckpointError(f"{config} is damaged (not the settings train.py writes), and {run.run_dir} holds no "
                              f"checkpoint to read them from; delete that folder to train the run again")
    if changed_settings(saved_settings(saved, config), run):
        raise CheckpointError(f"{run.run_dir} holds a run with other settings; pick another --out_dir "
                              f"(or delete that folder)")
    rows = read_log(run.run_dir / "log.jsonl")
    return any(row["step"] >= run.max_steps and "val_loss" in row for row in rows)


def summarise(run):
    """What one run's log says: its size, losses, speed, memory and validation curve."""
    rows = read_log(run.run_dir / "log.jsonl")
    if latest(rows, "val_loss") is None:
        raise CheckpointError(f"{run.run_dir / 'log.jsonl'} is missing or holds no validation loss, so {run.block} "
                              f"cannot be compared; delete {run.run_dir} and run compare.py again to retrain it")
    if not math.isfinite(latest(rows, "val_loss")):  # logged by an earlier train.py, which let a run diverge
        raise CheckpointError(f"the run in {run.run_dir} diverged (its last validation loss is "
                              f"{latest(rows, 'val_loss')}), so {run.block} cannot be compared; delete {run.run_dir} "
                              f"and run compare.py again with a lower --learning_rate")
    with torch.device("meta"):  # only the shapes, to count parameters
        model = GPT(run.model_config(load_dataset(run.dataset).vocab_size))
    # Each log row times its own interval of steps. A busy machine slows some intervals down and never
    # speeds one up, so the run's speed is the 90th percentile of the intervals' rates; the whole run's
    # average, which every slow-down lowers, is kept beside it.
    rates = sorted(r["tokens_per_sec"] for r in rows if "tokens_per_sec" in r)
    tokens_per_sec = rates[int(0.9 * (len(rates) - 1))]
    last = next(row for row in reversed(rows) if "time" in row)
    return {
        "params": model.num_params(),
        "non_embedding_params": model.num_params(non_embedding=True),
        "train_loss": latest(rows, "train_loss"),
        "val_loss": latest(rows, "val_loss"),
        "steps_per_sec": tokens_per_sec / run.tokens_per_step,
        "tokens_per_sec": tokens_per_sec,
        "average_tokens_per_sec": last["step"] * run.tokens_per_step / last["time"],
        "peak_memory": max(r["peak_memory"] for r in rows if "peak_memory" in r),
        # (step, seconds at the run's speed, val loss): time from the same robust speed, so that a busy
        # neighbour during one run does not move its curve
        "curve": [(r["step"], r["step"] * run.tokens_per_step / tokens_per_sec, r["val_loss"]) for r in rows
                  if "val_loss" in r],
    }


def latest(rows, key):
    """The last value of key in the log's rows; None if no row has one (every step skipped as non-finite)."""
    return next((row[key] for row in reversed(rows) if key in row), None)


def mean(values):
    """The mean of the values that are not None; None if all are."""
    values = [value for value in values if value is not None]
    return statistics.fmean(values) if values else None


def group_results(runs, summaries):
    """One result per row of the table (a block, or a block and a sweep value): the mean over its seeds of
    every number, the lowest and highest validation loss, its mean curve, and each seed's own."""
    groups = {}
    for run, summary in zip(runs, summaries):
        groups.setdefault(run.group, []).append((run, summary))
    results = []
    for group, members in groups.items():
        seeds, per_seed = [run.seed for run, _ in members], [summary for _, summary in members]
        result = {"block": members[0][0].train.block, "group": group, "swept": members[0][0].swept, "seeds": seeds}
        for key in ("params", "non_embedding_params", "train_loss", "val_loss", "steps_per_sec", "tokens_per_sec",
                    "average_tokens_per_sec", "peak_memory"):
            result[key] = mean(summary[key] for summary in per_seed)
        result["val_loss_by_seed"] = [summary["val_loss"] for summary in per_seed]
        curves = [summary["curve"] for summary in per_seed]
        result["curve"] = [(points[0][0], statistics.fmean(p[1] for p in points), statistics.fmean(p[2] for p in points))
                           for points in zip(*curves)]  # steps every seed evaluated at
        result["curves_by_seed"] = curves
        results.append(result)
    return results


def format_loss(value):
    return "n/a" if value is None else f"{value:.3f}"


def spread(values, fmt):
    """' [lowest, highest]' of several values; nothing for one."""
    return f" [{fmt.format(min(values))}, {fmt.format(max(values))}]" if len(values) > 1 else ""


def table(results, speed=True):
    """The markdown table of every row. With several seeds, a loss is their mean [lowest, highest], and the
    difference to the baseline (the first row) is taken seed by seed (the same seed gives every block the same
    batches). Without speed, no speed columns (the runs shared the machine)."""
    base = results[0]
    speed_columns = ["steps/s", f"speed vs {base['group']}"] if speed else []
    header = ["block", "params", "non-emb. params", "train loss", "val loss" + over_seeds(results),
              f"val vs {base['group']}", *speed_columns, "peak memory"]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for r in results:
        differences = [v / b - 1 for v, b in zip(r["val_loss_by_seed"], base["val_loss_by_seed"])]
        if r is base:
            differences = [0.0]  # no spread to show
        speeds = [f"{r['steps_per_sec']:.2f}", f"{r['steps_per_sec'] / base['steps_per_sec']:.2f}x"] if speed else []
        cells = [r["group"], f"{r['params'] / 1e6:.2f}M", f"{r['non_embedding_params'] / 1e6:.2f}M",
                 format_loss(r["train_loss"]), f"{r['val_loss']:.3f}{spread(r['val_loss_by_seed'], '{:.3f}')}",
                 f"{mean(differences):+.1%}{spread(differences, '{:+.1%}')}", *speeds,
                 f"{r['peak_memory'] / 2**20:.0f} MiB"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sweep_table(results):
    """The sweep's table: the final validation loss for each value of the first swept setting (a column each),
    one row per block (and value of a second swept setting), and the change from the first value to the last,
    seed by seed."""
    name = next(iter(results[0]["swept"]))
    values = list(dict.fromkeys(r["swept"][name] for r in results))
    rows = {}
    for r in results:
        rows.setdefault(series(r, name), {})[r["swept"][name]] = r
    header = [" ".join(["block", *(other for other in results[0]["swept"] if other != name)]) + over_seeds(results),
              *(f"{name}={value}" for value in values), f"{name}={values[-1]} vs {values[0]}"]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for label, cells in rows.items():
        losses = [f"{c['val_loss']:.3f}{spread(c['val_loss_by_seed'], '{:.3f}')}" if (c := cells.get(value)) else ""
                  for value in values]
        first, last = cells.get(values[0]), cells.get(values[-1])
        changes = [l / f - 1 for l, f in zip(last["val_loss_by_seed"], first["val_loss_by_seed"])] if first and last \
            else []
        change = f"{mean(changes):+.1%}{spread(changes, '{:+.1%}')}" if changes else ""
        lines.append("| " + " | ".join([label, *losses, change]) + " |")
    return "\n".join(lines)


def over_seeds(results):
    """What a loss is over several seeds, for a table's header; nothing for one seed."""
    seeds = results[0]["seeds"]
    return f" (seeds {', '.join(map(str, seeds))}: mean [lowest, highest])" if len(seeds) > 1 else ""


def series(result, name):
    """A row's block, with its values of the swept settings other than name: what one line of a sweep shows."""
    return " ".join([result["block"], *(f"{other}={value}" for other, value in result["swept"].items()
                                        if other != name)])


def markdown(report):
    """compare.md, from compare.json's contents alone: the table of every run and, with a sweep, the sweep's
    table. The tables in README.md and tutorial.md are copies of it (tests/test_docs.py)."""
    results, settings = report["results"], report["settings"]
    parts = [table(results, settings["speed"])]
    if settings["sweep"]:
        parts.append(sweep_table(results))
    return "\n\n".join(parts) + "\n"


LINESTYLES = ["-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1))]


def plot(results, settings, path):
    """Validation loss per step, per minute of training (with speed), and, with a sweep, the final loss against
    the first swept setting's value: one line per row of the table (the mean over seeds), and a band from the
    lowest to the highest seed where there are several. With a sweep, a colour per block (and value of a second
    swept setting) and a line style per value of the first; a single block's sweep gives every value a colour."""
    plt = pyplot()
    name = next(iter(results[0]["swept"]), None)
    panels = 1 + settings["speed"] + (name is not None)
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 4.5), squeeze=False)
    by_step, *others = axes[0]
    by_time = others.pop(0) if settings["speed"] else None
    by_value = others.pop(0) if name is not None else None
    lines = list(dict.fromkeys(series(r, name) for r in results)) if name else []
    values = list(dict.fromkeys(r["swept"][name] for r in results)) if name else []
    colours = plt.get_cmap("tab10")
    for i, r in enumerate(results):
        style = {"color": colours(i % 10)}
        if len(lines) > 1:
            style = {"color": colours(lines.index(series(r, name)) % 10),
                     "linestyle": LINESTYLES[values.index(r["swept"][name]) % len(LINESTYLES)]}
        steps, times, losses = zip(*r["curve"])
        label = f"{r['group']} (final {losses[-1]:.3f})"  # names a row even when its curve is off the chart
        by_step.plot(steps, losses, label=label, **style)
        if by_time:
            by_time.plot([t / 60 for t in times], losses, label=label, **style)
        if len(r["seeds"]) > 1:
            by_seed = [[point[2] for point in curve[:len(steps)]] for curve in r["curves_by_seed"]]
            low, high = (list(map(f, zip(*by_seed))) for f in (min, max))
            for ax, x in ((by_step, steps), (by_time, [t / 60 for t in times])):
                if ax:
                    ax.fill_between(x, low, high, color=style["color"], alpha=0.2, linewidth=0)
    seeds = results[0]["seeds"]
    bands = f", mean and range of {len(seeds)} seeds" if len(seeds) > 1 else ""
    by_step.set(xlabel="step", ylabel="validation loss", title="per step" + bands)
    # from the highest first evaluation (the early lag shows) down to the best loss
    best = min(min(r["curve"], key=lambda c: c[2])[2] for r in results)
    first = max(r["curve"][0][2] for r in results)
    by_step.set_ylim(best - 0.1, min(first + 0.1, best + 4))
    by_step.legend(fontsize="small")
    if by_time:
        by_time.set(xlabel="minutes of training, at the run's measured speed", title="per wall-clock time",
                    ylim=by_step.get_ylim())
    if by_value:
        for label in lines or [results[0]["block"]]:
            members = [r for r in results if series(r, name) == label]
            colour = colours(lines.index(label) % 10) if len(lines) > 1 else "black"
            by_value.plot([r["swept"][name] for r in members], [r["val_loss"] for r in members], marker="o",
                          color=colour, label=label)
            for r in members:
                if len(r["seeds"]) > 1:
                    by_value.vlines(r["swept"][name], min(r["val_loss_by_seed"]), max(r["val_loss_by_seed"]),
                                    color=colour, alpha=0.5)
        if all(isinstance(value, (int, float)) for value in values):
            if min(values) > 0 and max(values) >= 4 * min(values):  # values spread over a range of scales
                by_value.set_xscale("log")
                by_value.minorticks_off()
            by_value.set_xticks(values, [f"{value:g}" for value in values])
        by_value.set(xlabel=name, ylabel="final validation loss", title=f"after {results[0]['curve'][-1][0]} steps" +
                     (f", mean and range of {len(seeds)} seeds" if len(seeds) > 1 else ""))
        by_value.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")


def compare(cfg, runs):
    folder = Path(cfg.report)
    writable_folder(folder, "--report")  # before any training, as is the plot's file
    figure_file(cfg.plot or folder / "compare.png", "--plot")
    for run in runs:
        train_block(run.train)
    results = group_results(runs, [summarise(run.train) for run in runs])
    report = {"settings": asdict(cfg), "runs": [asdict(run.train) for run in runs], "results": results}
    text = markdown(report)
    print("\n" + text)
    (folder / "compare.md").write_text(text)
    (folder / "compare.json").write_text(json.dumps(report, indent=1) + "\n")
    plot(results, report["settings"], Path(cfg.plot or folder / "compare.png"))
    return results


def main(argv):
    compare(*parse(argv))
    return 0


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
