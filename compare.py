"""
The ladder experiment: train every block with the same data, seed, batches and step budget,
then compare losses, parameters, speed and memory.

    python compare.py config/ladder.py         # the CPU preset the README's results come from
    python compare.py config/paper.py          # the paper's recipe, on a GPU
    python compare.py --blocks=pre_ln,sas_p --max_steps=200

Every setting but --blocks and --report goes to train.py. Every block trains in its own
train.py process, into out_dir (out/compare/{block} by default), so its peak memory is its own.
A block whose run already finished with the same settings is reused, an interrupted one is
resumed, so running the command again only redraws the table (compare.md) and the plot
(compare.png) from the logs.
"""

import json
import subprocess
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from blocks import BLOCKS, LADDER
from checkpoint import CheckpointError, load_checkpoint, read_log
from common import device_name, pick_device, pyplot, run_main
from configurator import ConfigError, parse_config, setting, unknown
from model import GPT, GPTConfig
from train import TrainConfig, changed_settings  # compare.py runs train.py: it speaks train.py's settings


@dataclass
class CompareConfig:
    blocks: str = setting(",".join(LADDER + ["parallel", "no_attn_skip_unshaped"]),
                          "blocks to train and compare, the first being the baseline; every other setting "
                          "and config file goes to train.py for each block (python train.py --help)")
    report: str = setting("out/compare", "folder for compare.md, compare.json and compare.png")

    def __post_init__(self):
        blocks = self.blocks.split(",")
        for block in blocks:
            if block not in BLOCKS:
                raise ConfigError(f"unknown block {block!r}; valid blocks: {', '.join(BLOCKS)}")
            if blocks.count(block) > 1:
                raise ConfigError(f"--blocks names {block} twice; name each block once")


def parse(argv):
    """compare.py's own settings, and each block's train.py settings from the rest of argv: config
    files are read once per block, so a preset can choose a learning rate by block."""
    own = [f.name for f in fields(CompareConfig)]
    known = own + [f.name for f in fields(TrainConfig) if f.name != "block"]  # --blocks sets each run's block
    for arg in argv:
        if arg.startswith("--") and arg != "--help" and arg[2:].partition("=")[0] not in known:
            raise unknown(arg[2:].partition("=")[0], known, arg)
    mine = [arg for arg in argv
            if arg in ("-h", "--help") or (arg.startswith("--") and arg[2:].partition("=")[0] in own)]
    cfg = parse_config(CompareConfig, mine, "compare.py")
    rest = ["--out_dir=out/compare/{block}"] + [arg for arg in argv if arg not in mine]
    runs = [parse_config(TrainConfig, rest + [f"--block={block}"], "train.py") for block in cfg.blocks.split(",")]
    if len({run.run_dir for run in runs}) < len(runs):
        raise ConfigError("out_dir must contain {block}, so that every block gets its own run folder")
    return cfg, runs


def train_block(run):
    """Train one block in its own process, reusing or resuming what is already on disk."""
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
    """One row of the table, from the run's checkpoint and log."""
    ckpt = load_checkpoint(run.run_dir / "ckpt.pt")
    rows = read_log(run.run_dir / "log.jsonl")
    if latest(rows, "val_loss") is None:
        raise CheckpointError(f"{run.run_dir / 'log.jsonl'} is missing or holds no validation loss, so {run.block} "
                              f"cannot be compared; delete {run.run_dir} and run compare.py again to retrain it")
    with torch.device("meta"):  # only the shapes, to count parameters
        model = GPT(GPTConfig(**ckpt["model_config"]))
    # Each log row times its own interval of steps. A busy machine slows some intervals down and never
    # speeds one up, so the block's speed is the 90th percentile of the intervals' rates; the whole run's
    # average, which every slow-down lowers, is kept beside it.
    rates = sorted(r["tokens_per_sec"] for r in rows if "tokens_per_sec" in r)
    tokens_per_sec = rates[int(0.9 * (len(rates) - 1))]
    return {
        "block": run.block,
        "params": model.num_params(),
        "non_embedding_params": model.num_params(non_embedding=True),
        "train_loss": latest(rows, "train_loss"),
        "val_loss": latest(rows, "val_loss"),
        "steps_per_sec": tokens_per_sec / run.tokens_per_step,
        "tokens_per_sec": tokens_per_sec,
        "average_tokens_per_sec": ckpt["step"] * run.tokens_per_step / ckpt["train_time"],
        "peak_memory": max(r["peak_memory"] for r in rows),
        # (step, seconds at the block's speed, val loss): time from the same robust speed, so that a busy
        # neighbour during one block's run does not move its curve
        "curve": [(r["step"], r["step"] * run.tokens_per_step / tokens_per_sec, r["val_loss"]) for r in rows
                  if "val_loss" in r],
    }


def latest(rows, key):
    """The last value of key in the log's rows; None if no row has one (every step skipped as non-finite)."""
    return next((row[key] for row in reversed(rows) if key in row), None)


def format_loss(value):
    return "n/a" if value is None else f"{value:.3f}"


def table(results):
    base = results[0]
    lines = ["| block | params | non-emb. params | train loss | val loss | val vs " + base["block"] +
             " | steps/s | speed vs " + base["block"] + " | peak memory |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['block']} | {r['params'] / 1e6:.2f}M | {r['non_embedding_params'] / 1e6:.2f}M | "
                     f"{format_loss(r['train_loss'])} | {r['val_loss']:.3f} | {r['val_loss'] / base['val_loss'] - 1:+.1%} | "
                     f"{r['steps_per_sec']:.2f} | {r['steps_per_sec'] / base['steps_per_sec']:.2f}x | "
                     f"{r['peak_memory'] / 2**20:.0f} MiB |")
    return "\n".join(lines)


def plot(results, path):
    plt = pyplot()
    fig, (by_step, by_time) = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for r in results:
        steps, times, losses = zip(*r["curve"])
        label = f"{r['block']} (final {losses[-1]:.3f})"  # names a block even when its curve is off the chart
        by_step.plot(steps, losses, label=label)
        by_time.plot([t / 60 for t in times], losses, label=label)
    by_step.set(xlabel="step", ylabel="validation loss", title="per step")
    by_time.set(xlabel="minutes of training, at the block's measured speed", title="per wall-clock time")
    best = min(min(r["curve"], key=lambda c: c[2])[2] for r in results)
    by_step.set_ylim(best - 0.1, best + 1.5)  # the interesting part: where the blocks part ways
    by_step.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path}")


def compare(cfg, runs):
    for run in runs:
        train_block(run)
    results = [summarise(run) for run in runs]
    report = Path(cfg.report)
    report.mkdir(parents=True, exist_ok=True)
    text = table(results)
    print("\n" + text)
    (report / "compare.md").write_text(text + "\n")
    (report / "compare.json").write_text(json.dumps({"runs": [asdict(run) for run in runs], "results": results},
                                                    indent=1) + "\n")
    plot(results, report / "compare.png")
    return results


def main(argv):
    compare(*parse(argv))
    return 0


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
