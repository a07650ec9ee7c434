"""
The settings of a training run (TrainConfig, train.py's) and of an experiment (ExperimentSettings, compare.py's
own), and the one policy that decides whether a saved run goes on with the settings given now: train.py follows
it to resume a run, compare.py to reuse or resume the runs of an experiment.

A config file may hold both scripts' settings (config/class.py is the class's experiment): each script reads its
own and skips the other's.
"""

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from blocks import BLOCKS
from configurator import (Settings, above, at_least, fraction, parse_config, parse_value, positive, seed_range,
                          setting, unknown)
from data import dataset_setting
from errors import CheckpointError, ConfigError
from hardware import ATTENTION_KERNELS
from model import GPTConfig, ModelSettings
from processes import first_process
from run_folder import load_checkpoint, refuse_if_training, run_dir


@dataclass
class TrainConfig(ModelSettings):  # the model's shape settings (n_layer, n_embd, ...) come from ModelSettings
    # data and model
    dataset: str = setting("stdlib", "dataset: a folder name under data/ (stdlib is built on first use), or a path "
                                     "with a slash (./mine); python data/prepare.py builds one")
    block: str = setting("pre_ln", "the transformer block every layer uses", choices=BLOCKS)
    # optimisation
    max_steps: int = setting(1500, "optimizer steps in the whole run", check=positive)
    batch_size: int = setting(16, "sequences per micro-batch on each process", check=positive)
    grad_accum: int = setting(1, "micro-batches per optimizer step, summed over all processes "
                                 "(global batch = batch_size * grad_accum)", check=positive)
    learning_rate: float = setting(1e-3, "peak learning rate (the paper: 1e-3)", check=above(0))
    warmup_frac: float = setting(0.05, "fraction of max_steps spent warming up linearly; then linear decay to 0",
                                 check=fraction)
    weight_decay: float = setting(0.1, "AdamW weight decay on matrices and embeddings (never on gains, norms, biases)",
                                  check=at_least(0))
    beta1: float = setting(0.9, "AdamW beta1", check=fraction)
    beta2: float = setting(0.999, "AdamW beta2", check=fraction)
    eps: float = setting(1e-8, "AdamW epsilon", check=above(0))
    grad_clip: float = setting(1.0, "clip the global gradient norm to this (0 to disable)",
                               check=at_least(0, ">= 0 (0 disables clipping)"))
    # evaluation, logging, checkpoints
    eval_interval: int = setting(250, "evaluate on the validation windows every this many steps", check=positive)
    eval_windows: int = setting(200, "number of fixed validation windows of block_size tokens", check=positive)
    log_interval: int = setting(25, "write a log row every this many steps", check=positive)
    checkpoint_interval: int = setting(250, "save a checkpoint every this many steps (and at the end and on Ctrl-C)",
                                       check=positive)
    out_dir: str = setting("out/{block}", "the run folder for checkpoint, log and settings; {block} becomes the block",
                           path=True)
    resume: bool = setting(False, "continue the run in out_dir from its checkpoint, with the settings it was started "
                                  "with")
    allow_changes: bool = setting(False, "with --resume: continue with the settings given now where they differ "
                                         "(e.g. a larger max_steps); what changed is printed and logged")
    overwrite: bool = setting(False, "start afresh even if out_dir already holds a run (it is replaced)")
    on_nonfinite: str = setting("stop", "on a NaN/inf loss: stop (keeping the last good checkpoint) or skip the batch",
                                choices=["stop", "skip"])
    # system
    device: str = setting("auto", "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    dtype: str = setting("auto", "auto: bfloat16 where the hardware has it (GPUs from compute capability 8.0, CPUs "
                                 "with bfloat16 instructions, where faster), float16 + grad scaler on older GPUs, else "
                                 "float32; a precision set by name runs even where it is only emulated, with a warning",
                         choices=["auto", "float32", "bfloat16", "float16"])
    attention: str = setting("auto", "the kernel softmax attention runs on, in every block alike: fused (never "
                                     "builds the T x T matrix), explicit (builds it), or auto: fused on a GPU, the "
                                     "faster one on a CPU, measured", choices=["auto", *ATTENTION_KERNELS])
    compile: bool = setting(False, "torch.compile the model")
    process_timeout: int = setting(300, "with torchrun: seconds a process waits for the others (at a step, an "
                                        "evaluation, a checkpoint) before it stops, naming the one that stopped "
                                        "answering", check=positive)
    seed: int = setting(1337, "seeds the initialisation and the batches: the same seed gives every block the same data",
                        check=seed_range)

    def __post_init__(self):
        super().__post_init__()  # every setting's own check, and the model's
        run_dir(self.out_dir, self.block)  # refuses a placeholder other than {block}
        self.dataset = dataset_setting(self.dataset)  # a path made absolute: resumed elsewhere, the same data

    @property
    def run_dir(self):
        return run_dir(self.out_dir, self.block)

    @property
    def tokens_per_step(self):
        return self.batch_size * self.grad_accum * self.block_size

    def model_config(self, vocab_size):
        return GPTConfig.of(self, self.block, vocab_size)


@dataclass
class ExperimentSettings(Settings):
    """What an experiment adds to one run's settings: compare.py's own. A config file may set them beside
    train.py's, so that `python compare.py config/class.py` is the whole experiment."""
    blocks: str = setting("", "blocks to train and compare, the first being the baseline; every other setting and "
                              "config file goes to train.py for each block (python train.py --help); empty: all",
                          choices=BLOCKS, each=True)
    seeds: str = setting("", "comma-separated seeds, e.g. 1337,1,2: every block is trained once per seed, and the "
                             "table and plot show the mean and the spread (lowest to highest) over them; empty: "
                             "train.py's seed setting alone")
    sweep: str = setting("", "NAME=V1,V2,...: every block is trained once per value of one train.py setting, e.g. "
                             "mlp_gain=0.05,0.1,0.2, and each value gets its own row and curve; two settings, "
                             "separated by a space, give every pair of values")
    report: str = setting("out/compare", "folder for compare.md, compare.json and compare.png", path=True)
    plot: str = setting("", "where to draw the plot; empty: compare.png in --report", path=True)
    speed: bool = setting(True, "show speed (steps/s and the loss per minute); false where the runs shared the "
                                "machine with other work, which makes their speeds meaningless")

    def __post_init__(self):
        super().__post_init__()
        for block in self.block_list:
            if self.block_list.count(block) > 1:
                raise ConfigError(f"--blocks names {block} twice; name each block once")
        seeds = self.seeds.split(",") if self.seeds else []
        if not all(seed.strip().lstrip("-").isdigit() for seed in seeds) or len({int(s) for s in seeds}) < len(seeds):
            raise ConfigError(f"--seeds={self.seeds}: give different whole numbers separated by commas, "
                              f"e.g. --seeds=1337,1,2")
        parse_sweep(self.sweep)  # refuses a setting train.py does not have, or a value of the wrong type

    @property
    def block_list(self):
        return self.blocks.split(",") if self.blocks else list(BLOCKS)

    @property
    def seed_list(self):
        return [int(seed) for seed in self.seeds.split(",")] if self.seeds else [None]


# what compare.py sets itself for each run, and so no sweep may: what to give instead
NOT_SWEPT = {"block": "the blocks are compare.py's own setting: --blocks={values}",
             "seed": "the seeds are compare.py's own setting: --seeds={values}",
             **dict.fromkeys(["out_dir", "resume", "allow_changes", "overwrite"],
                             "compare.py sets {name} itself for each run (each gets a folder of its own)")}


def parse_sweep(sweep):
    """The settings a --sweep names, each with its values typed: [(NAME, [V1, V2, ...])], one or two of them
    (--sweep="NAME=V1,V2 NAME2=W1,W2" trains every pair); [] without a sweep."""
    swept = {f.name: f for f in fields(TrainConfig) if f.name not in NOT_SWEPT}
    settings = []
    for part in sweep.split():
        name, _, values = part.partition("=")
        if name in NOT_SWEPT:
            raise ConfigError(f"--sweep={sweep}: {NOT_SWEPT[name].format(name=name, values=values or 'V1,V2')}")
        if name not in swept:
            raise unknown(name, swept, f"--sweep={sweep}")
        if not values:
            raise ConfigError(f"--sweep={sweep}: give the values after the name, e.g. --sweep={name}=V1,V2")
        values = [parse_value(swept[name], value) for value in values.split(",")]
        if len(set(values)) < len(values):
            raise ConfigError(f"--sweep={sweep} names a value twice; name each value of {name} once")
        settings.append((name, values))
    if len(settings) > 2 or len({name for name, _ in settings}) < len(settings):
        raise ConfigError(f"--sweep={sweep}: sweep one setting, or two different ones separated by a space")
    return settings


def parse_train_settings(argv, defaults=None):
    """train.py's settings from argv (config files and --key=value flags), starting from defaults (a dict)."""
    return parse_config(TrainConfig, argv, "train.py", defaults, others=(ExperimentSettings, "compare.py"))


def parse_experiment_settings(argv):
    """compare.py's own settings from argv (config files and --key=value flags)."""
    return parse_config(ExperimentSettings, argv, "compare.py", others=(TrainConfig, "train.py"))


# -----------------------------------------------------------------------------
# the resume policy

# settings that change nothing a run computes: a saved run goes on with them changed (out_dir: the run is where its
# folder is now, whatever it was called when the run started)
BOOKKEEPING = {"resume", "allow_changes", "overwrite", "eval_interval", "log_interval", "checkpoint_interval", "device",
               "compile", "out_dir", "process_timeout"}
# settings a checkpoint cannot be continued without: the model's shape and its data
FIXED = {"dataset", "block"} | {f.name for f in fields(ModelSettings)}
# settings that runs saved by an earlier train.py lack, and what those runs computed without them
EARLIER = {"attention": "fused",  # before the attention setting, every run used SDPA's fused kernels
           "vp_fixed_gains": False,  # sas_vp's gains trained (Fig. 4's model)
           "attn_matrix": "shaped"}  # the shaped blocks had Eq. 5's matrix


def saved_settings(saved, source):
    """A saved run's settings (a checkpoint's, or a config.json's, from source) as train.py has them now. A setting
    added since the run was saved is given the value every run had then (EARLIER), or its default if it
    changes nothing a run computes (BOOKKEEPING); a run saved without any other setting is refused: what it meant
    then is not known."""
    known_without = BOOKKEEPING | EARLIER.keys()
    missing = [f.name for f in fields(TrainConfig) if f.name not in saved and f.name not in known_without]
    if missing:
        raise CheckpointError(f"{source} was saved by an earlier train.py, without the settings {', '.join(missing)}, "
                              f"whose meaning then is not known: start afresh (--overwrite)")
    values = {f.name: f.default for f in fields(TrainConfig)} | EARLIER | saved
    try:
        TrainConfig(**values)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{source} was not written by this train.py ({e})") from None
    return values


def changed_settings(saved, cfg):
    """{setting: (saved value, value now)} for every setting that changes what the run computes."""
    return {key: (saved[key], value) for key, value in asdict(cfg).items()
            if key not in BOOKKEEPING and saved[key] != value}


def run_settings(argv):
    """A run's settings from argv, and the checkpoint it continues (None for a new run), refused where another
    train.py holds the run folder, and as the resume policy says (checkpoint_to_continue)."""
    cfg = parse_train_settings(argv)
    if first_process():  # a run folder has one writer (torchrun's other processes would see rank 0's own lock)
        refuse_if_training(cfg.run_dir)
    return checkpoint_to_continue(cfg, argv)


def checkpoint_to_continue(cfg, argv):
    """The run's settings and the checkpoint it continues: (cfg, None) for a new run, refused where out_dir holds a
    run it would replace without --overwrite. With --resume, the saved settings with argv on top, refused where
    argv changes the model or its data, or changes anything else without --allow_changes; the checkpoint's
    "changes" are those allowed: {setting: (saved value, value now)}."""
    if not cfg.resume:
        if (cfg.run_dir / "ckpt.pt").exists() and not cfg.overwrite:
            raise ConfigError(f"{cfg.run_dir} already holds a run; continue it with --resume, replace it with "
                              f"--overwrite, or pick another --out_dir")
        return cfg, None
    ckpt = load_checkpoint(cfg.run_dir / "ckpt.pt")
    saved = saved_settings(ckpt["config"], cfg.run_dir / "ckpt.pt")
    # argv on top of the saved settings, but for the requests that hold for one command (--allow_changes); the
    # run folder is the one the checkpoint was read from
    kept = {key: value for key, value in saved.items() if key not in ("resume", "allow_changes", "overwrite")}
    cfg = parse_train_settings(argv, defaults=kept | {"out_dir": str(cfg.run_dir)})
    changes = changed_settings(saved, cfg)
    described = ", ".join(f"{key}={new!r} (saved: {old!r})" for key, (old, new) in changes.items())
    if changes.keys() & FIXED:
        raise CheckpointError(f"the run in {cfg.run_dir} cannot continue with another model or dataset: {described}; "
                              f"drop those flags, or use another --out_dir")
    if changes and not cfg.allow_changes:
        raise ConfigError(f"--resume continues the run in {cfg.run_dir} exactly, but {described}; drop those flags, "
                          f"or add --allow_changes to continue with them")
    if cfg.max_steps < ckpt["step"]:  # it would train nothing, yet record a max_steps the run is past
        raise ConfigError(f"--max_steps={cfg.max_steps} is below step {ckpt['step']}, where the run in {cfg.run_dir} "
                          f"is: give a larger --max_steps to train on (its checkpoint is the model at step "
                          f"{ckpt['step']})")
    ckpt["changes"] = changes  # allowed: the run logs them
    return cfg, ckpt


def notes_on_resuming(cfg, ckpt):
    """The lines a resumed run owes its user: the settings an earlier train.py's checkpoint lacked, where the run
    folder moved, and that config.json (a record) was not read."""
    notes = [f"note: the checkpoint was saved before the {key} setting existed; it continues with {key}={value}, "
             f"what every run did then" for key, value in EARLIER.items() if key not in ckpt["config"]]
    saved_in, here = ckpt.get("run_dir"), cfg.run_dir.resolve()
    if saved_in and Path(saved_in) != here:
        notes.append(f"note: the run was saved in {saved_in}; its folder moved, and it continues where it is now, "
                     f"in {here}")
    try:
        record = json.loads((cfg.run_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        record = {}
    edited = sorted(key for key, value in ckpt["config"].items()
                    if key not in BOOKKEEPING and record.get(key, value) != value)
    if edited:
        notes.append(f"note: config.json differs from the checkpoint's settings ({', '.join(edited)}); it is a record "
                     f"of them, not an input: the run continues with the checkpoint's settings (change one with "
                     f"--NAME=VALUE --allow_changes), and config.json is written again")
    return notes
