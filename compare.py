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

import json
import statistics
import subprocess
import sys
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch

from blocks import BLOCKS
from checkpoint import CheckpointError, load_checkpoint, read_log
from common import device_name, pick_device, pyplot, run_main
from configurator import ConfigError, parse_config, parse_value, setting, unknown
from model import GPT, GPTConfig
from train import TrainConfig, changed_settings  # compare.py runs train.py: it speaks train.py's settings

NOT_SWEPT = {"block", "seed", "out_dir", "resume", "allow_changes", "overwrite"}  # compare.py sets these itself


@dataclass
class CompareConfig:
    blocks: str = setting(",".join(BLOCKS), "blocks to train and compare, the first being the baseline; every other "
                                            "setting and config file goes to train.py for each block "
                                            "(python train.py --help)")
    seeds: str = setting("", "comma-separated seeds, e.g. 1337,1,2: every block is trained once per seed, and the "
                             "table and plot show the mean and the spread (lowest to highest) over them; empty: "
                             "train.py's seed setting alone")
    sweep: str = setting("", "NAME=V1,V2,...: every block is trained once per value of one train.py setting, e.g. "
                             "mlp_gain=0.05,0.1,0.2, and each value gets its own row and curve")
    report: str = setting("out/compare", "folder for compare.md, compare.json and compare.png")
    plot: str = setting("", "where to draw the plot; empty: compare.png in --report")

    def __post_init__(self):
        blocks = self.blocks.split(",")
        for block in blocks:
            if block not in BLOCKS:
                raise ConfigError(f"unknown block {block!r}; valid blocks: {', '.join(BLOCKS)}")
            if blocks.count(block) > 1:
                raise ConfigError(f"--blocks names {block} twice; name each block once")
        seeds = self.seeds.split(",") if self.seeds else []
        if not all(seed.strip().lstrip("-").isdigit() for seed in seeds) or len(set(seeds)) < len(seeds):
            raise ConfigError(f"--seeds={self.seeds}: give different whole numbers separated by commas, "
                              f"e.g. --seeds=1337,1,2")
        parse_sweep(self.sweep)  # refuses a setting train.py does not have, or a value of the wrong type

    @property
    def seed_list(self):
        return [int(seed) for seed in self.seeds.split(",")] if self.seeds else [None]


def parse_sweep(sweep):
    """The setting a --sweep=NAME=V1,V2,... names and its values, typed; (None, [None]) without a sweep."""
    if not sweep:
        return None, [None]
    name, _, values = sweep.partition("=")
    swept = {f.name: f for f in fields(TrainConfig) if f.name not in NOT_SWEPT}
    if name not in swept:
        raise unknown(name, swept, f"--sweep={sweep}")
    if not values:
        raise ConfigError(f"--sweep={sweep}: give the values after the name, e.g. --sweep={name}=V1,V2")
    values = [parse_value(swept[name], value) for value in values.split(",")]
    if len(set(values)) < len(values):
        raise ConfigError(f"--sweep={sweep} names a value twice; name each value once")
    return name, values


@dataclass
class Run:
    """One train.py run of the comparison: which row of the table it belongs to, and its settings."""
    group: str  # the row: the block, with the sweep's value if there is one
    seed: int
    train: TrainConfig


def parse(argv):
    """compare.py's own settings, and every run's train.py settings from the rest of argv: config files
    are read once per run, so a preset can choose a learning rate by block."""
    own = [f.name for f in fields(CompareConfig)]
    known = own + [f.name for f in fields(TrainConfig) if f.name != "block"]  # --blocks sets each run's block
    for arg in argv:
        if arg.startswith("--") and arg != "--help" and arg[2:].partition("=")[0] not in known:
            raise unknown(arg[2:].partition("=")[0], known, arg)
    mine = [arg for arg in argv
            if arg in ("-h", "--help") or (arg.startswith("--") and arg[2:].partition("=")[0] in own)]
    cfg = parse_config(CompareConfig, mine, "compare.py")
    rest = ["--out_dir=out/compare/{block}"] + [arg for arg in argv if arg not in mine]
    name, values = parse_sweep(cfg.sweep)
    runs = []
    for block in cfg.blocks.split(","):
        base = parse_config(TrainConfig, rest + [f"--block={block}"], "train.py")
        for value in values:
            swept = [f"--{name}={value}"] if name else []
            for seed in cfg.seed_list:
                seeded = [f"--seed={seed}"] if seed is not None else []
                run = parse_config(TrainConfig, rest + [f"--block={block}"] + swept + seeded, "train.py")
                runs.append(Run(f"{block} {name}={value}" if name else block, run.seed, own_folder(run, base, name)))
    if len({run.train.run_dir for run in runs}) < len(runs):
        raise ConfigError("out_dir must contain {block}, so that every block gets its own run folder")
    return cfg, runs


def own_folder(run, base, swept):
    """The run's settings, with a folder of its own where its seed or swept value is not the settings' own:
    out/compare/sas_p-seed1 beside out/compare/sas_p. A run with the settings' own seed and value keeps the
    plain folder, so that a comparison of several seeds reuses the run of one."""
    label = run.block
    if swept and getattr(run, swept) != getattr(base, swept):
        label += f"-{swept}{getattr(run, swept)}"
    if run.seed != base.seed:
        label += f"-seed{run.seed}"
    return run if label == run.block else replace(run, out_dir=run.out_dir.replace("{block}", label))


def train_block(run):
    """Train one run in its own process, reusing or resuming what is already on disk."""
    ckpt_path = run.run_dir / "ckpt.pt"
    if ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)
        if changed_settings(ckpt["config"], run):
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
    flags = [f"--{key}={value}" for key, value in asdict(run).items()]
    result = subprocess.run([sys.executable, str(Path(__file__).parent / "train.py"), *flags])
    if result.returncode != 0:
        sys.exit(result.returncode)  # train.py has said why


def summarise(run):
    """What one run's checkpoint and log say: its size, losses, speed, memory and validation curve."""
    ckpt = load_checkpoint(run.run_dir / "ckpt.pt")
    rows = read_log(run.run_dir / "log.jsonl")
    if latest(rows, "val_loss") is None:
        raise CheckpointError(f"{run.run_dir / 'log.jsonl'} is missing or holds no validation loss, so {run.block} "
                              f"cannot be compared; delete {run.run_dir} and run compare.py again to retrain it")
    with torch.device("meta"):  # only the shapes, to count parameters
        model = GPT(GPTConfig(**ckpt["model_config"]))
    # Each log row times its own interval of steps. A busy machine slows some intervals down and never
    # speeds one up, so the run's speed is the 90th percentile of the intervals' rates; the whole run's
    # average, which every slow-down lowers, is kept beside it.
    rates = sorted(r["tokens_per_sec"] for r in rows if "tokens_per_sec" in r)
    tokens_per_sec = rates[int(0.9 * (len(rates) - 1))]
    return {
        "params": model.num_params(),
        "non_embedding_params": model.num_params(non_embedding=True),
        "train_loss": latest(rows, "train_loss"),
        "val_loss": latest(rows, "val_loss"),
        "steps_per_sec": tokens_per_sec / run.tokens_per_step,
        "tokens_per_sec": tokens_per_sec,
        "average_tokens_per_sec": ckpt["step"] * run.tokens_per_step / ckpt["train_time"],
        "peak_memory": max(r["peak_memory"] for r in rows),
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
        result = {"block": members[0][0].train.block, "group": group, "seeds": seeds}
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


def table(results):
    """The markdown table. With several seeds, a loss is their mean [lowest, highest], and the difference to
    the baseline is taken seed by seed (the same seed gives every block the same batches)."""
    base = results[0]
    lines = ["| block | params | non-emb. params | train loss | val loss | val vs " + base["group"] +
             " | steps/s | speed vs " + base["group"] + " | peak memory |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        differences = [v / b - 1 for v, b in zip(r["val_loss_by_seed"], base["val_loss_by_seed"])]
        if r is base:
            differences = [0.0]  # no spread to show
        lines.append(f"| {r['group']} | {r['params'] / 1e6:.2f}M | {r['non_embedding_params'] / 1e6:.2f}M | "
                     f"{format_loss(r['train_loss'])} | {r['val_loss']:.3f}{spread(r['val_loss_by_seed'], '{:.3f}')} | "
                     f"{mean(differences):+.1%}{spread(differences, '{:+.1%}')} | "
                     f"{r['steps_per_sec']:.2f} | {r['steps_per_sec'] / base['steps_per_sec']:.2f}x | "
                     f"{r['peak_memory'] / 2**20:.0f} MiB |")
    seeds = results[0]["seeds"]
    if len(seeds) > 1:
        lines.append(f"\n{len(seeds)} seeds ({', '.join(map(str, seeds))}): mean [lowest, highest]")
    return "\n".join(lines)


def plot(results, path):
    """Validation loss per step and per minute of training: one line per row of the table (the mean over
    seeds), and a band from the lowest to the highest seed where there are several."""
    plt = pyplot()
    fig, (by_step, by_time) = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for r in results:
        steps, times, losses = zip(*r["curve"])
        label = f"{r['group']} (final {losses[-1]:.3f})"  # names a row even when its curve is off the chart
        line, = by_step.plot(steps, losses, label=label)
        by_time.plot([t / 60 for t in times], losses, label=label, color=line.get_color())
        if len(r["seeds"]) > 1:
            by_seed = [[point[2] for point in curve[:len(steps)]] for curve in r["curves_by_seed"]]
            low, high = (list(map(f, zip(*by_seed))) for f in (min, max))
            by_step.fill_between(steps, low, high, color=line.get_color(), alpha=0.25, linewidth=0)
            by_time.fill_between([t / 60 for t in times], low, high, color=line.get_color(), alpha=0.25, linewidth=0)
    seeds = results[0]["seeds"]
    bands = f", mean and range of {len(seeds)} seeds" if len(seeds) > 1 else ""
    by_step.set(xlabel="step", ylabel="validation loss", title="per step" + bands)
    by_time.set(xlabel="minutes of training, at the run's measured speed", title="per wall-clock time")
    # the interesting part: where the runs part ways, down to the best, and up to the worst one's end
    best = min(min(r["curve"], key=lambda c: c[2])[2] for r in results)
    worst_end = max(r["curve"][-1][2] for r in results)
    by_step.set_ylim(best - 0.1, max(best + 1.5, worst_end + 0.25))
    by_step.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")


def compare(cfg, runs):
    for run in runs:
        train_block(run.train)
    results = group_results(runs, [summarise(run.train) for run in runs])
    report = Path(cfg.report)
    report.mkdir(parents=True, exist_ok=True)
    text = table(results)
    print("\n" + text)
    (report / "compare.md").write_text(text + "\n")
    (report / "compare.json").write_text(json.dumps({"runs": [asdict(run.train) for run in runs],
                                                     "results": results}, indent=1) + "\n")
    plot(results, Path(cfg.plot) if cfg.plot else report / "compare.png")
    return results


def main(argv):
    compare(*parse(argv))
    return 0


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
