"""
Train a GPT built from any block of the ladder.

    python train.py                        # the small default model on the stdlib corpus
    python train.py --block=sas_p          # any block from blocks/: python train.py --help lists them
    python train.py config/paper.py        # the paper's CodeParrot recipe on one GPU
    python train.py --block=sas_p --resume # continue out/sas_p/ from its last checkpoint
    torchrun --standalone --nproc_per_node=4 train.py config/paper.py

A run folder (out_dir) holds one run: ckpt.pt (model, optimizer, step, settings, data position and
every RNG state, written atomically, so a crash never leaves a broken one), log.jsonl (a row every
log_interval steps) and config.json. train() is the whole loop; the functions above it are its parts.
"""

import json
import math
import os
import shlex
import signal
import sys
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, fields
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from blocks import BLOCKS
from checkpoint import (CheckpointError, append_log, hold_run_folder, load_checkpoint, read_log, refuse_if_training,
                        remove_leftovers, run_dir, save_checkpoint, write_file)
from common import (ATTENTION_KERNELS, ProcessesError, autocast, datasheet_flops, device_name, emulation_warning,
                    first_process, measure_matmul_flops, native_precision, peak_memory, pick_attention, pick_device,
                    pick_dtype, run_main, use_attention_kernel)
from configurator import ConfigError, parse_config, setting
from data import dataset_dir, load_dataset
from model import GPT, GPTConfig, ModelSettings


@dataclass
class TrainConfig(ModelSettings):  # the model's shape settings (n_layer, n_embd, ...) come from ModelSettings
    # data and model
    dataset: str = setting("stdlib", "dataset: a folder name under data/ (stdlib is built on first use), or a path "
                                     "with a slash (./mine); python data/prepare.py builds one")
    block: str = setting("pre_ln", "the transformer block every layer uses", choices=BLOCKS)
    # optimisation
    max_steps: int = setting(1500, "optimizer steps in the whole run")
    batch_size: int = setting(16, "sequences per micro-batch on each process")
    grad_accum: int = setting(1, "micro-batches per optimizer step, summed over all processes "
                                 "(global batch = batch_size * grad_accum)")
    learning_rate: float = setting(1e-3, "peak learning rate (the paper: 1e-3)")
    warmup_frac: float = setting(0.05, "fraction of max_steps spent warming up linearly; then linear decay to 0")
    weight_decay: float = setting(0.1, "AdamW weight decay on matrices and embeddings (never on gains, norms, biases)")
    beta1: float = setting(0.9, "AdamW beta1")
    beta2: float = setting(0.999, "AdamW beta2")
    eps: float = setting(1e-8, "AdamW epsilon")
    grad_clip: float = setting(1.0, "clip the global gradient norm to this (0 to disable)")
    # evaluation, logging, checkpoints
    eval_interval: int = setting(250, "evaluate on the validation windows every this many steps")
    eval_windows: int = setting(200, "number of fixed validation windows of block_size tokens")
    log_interval: int = setting(25, "write a log row every this many steps")
    checkpoint_interval: int = setting(250, "save a checkpoint every this many steps (and at the end and on Ctrl-C)")
    out_dir: str = setting("out/{block}", "the run folder for checkpoint, log and settings; {block} becomes the block")
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
                                        "answering")
    seed: int = setting(1337, "seeds the initialisation and the batches: the same seed gives every block the same data")

    def __post_init__(self):
        super().__post_init__()  # the model's settings
        for name in ("max_steps", "batch_size", "grad_accum", "eval_interval", "eval_windows", "log_interval",
                     "checkpoint_interval", "process_timeout"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)}")
        limits = {"learning_rate": self.learning_rate > 0, "eps": self.eps > 0, "warmup_frac": 0 <= self.warmup_frac < 1,
                  "beta1": 0 <= self.beta1 < 1, "beta2": 0 <= self.beta2 < 1, "weight_decay": self.weight_decay >= 0,
                  "grad_clip": self.grad_clip >= 0}
        wanted = {"learning_rate": "> 0", "eps": "> 0", "warmup_frac": "in [0, 1)", "beta1": "in [0, 1)",
                  "beta2": "in [0, 1)", "weight_decay": ">= 0", "grad_clip": ">= 0 (0 disables clipping)"}
        for name, ok in limits.items():
            if not ok:
                raise ConfigError(f"{name} must be {wanted[name]}, got {getattr(self, name)}")
        run_dir(self.out_dir, self.block)  # refuses a placeholder other than {block}
        if "/" in self.dataset:  # a path: record where it is, so that resuming elsewhere finds the same data
            self.dataset = str(dataset_dir(self.dataset))

    @property
    def run_dir(self):
        return run_dir(self.out_dir, self.block)

    @property
    def tokens_per_step(self):
        return self.batch_size * self.grad_accum * self.block_size

    def model_config(self, vocab_size):
        return GPTConfig.of(self, self.block, vocab_size)


# settings that change nothing a run computes: a resumed run may change them freely (out_dir: the run is where its
# folder is now, whatever it was called when the run started)
BOOKKEEPING = {"resume", "allow_changes", "overwrite", "eval_interval", "log_interval", "checkpoint_interval", "device",
               "compile", "out_dir", "process_timeout"}
# settings a checkpoint cannot be continued without: the model's shape and its data
FIXED = {"dataset", "block"} | {f.name for f in fields(ModelSettings)}


# -----------------------------------------------------------------------------
# settings, processes, stop signals


def settings(argv):
    """The run's settings from argv, and the checkpoint to continue from (None for a new run)."""
    cfg = parse_config(TrainConfig, argv, "train.py")
    if first_process():  # (torchrun's other processes would see rank 0's lock)
        refuse_if_training(cfg.run_dir)
    if not cfg.resume:
        if (cfg.run_dir / "ckpt.pt").exists() and not cfg.overwrite:
            raise ConfigError(f"{cfg.run_dir} already holds a run; continue it with --resume, replace it with "
                              f"--overwrite, or pick another --out_dir")
        return cfg, None
    ckpt = load_checkpoint(cfg.run_dir / "ckpt.pt")
    try:
        TrainConfig(**ckpt["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{cfg.run_dir / 'ckpt.pt'} was not written by this train.py ({e})") from None
    missing = [f.name for f in fields(TrainConfig) if f.name not in ckpt["config"] and f.name not in BOOKKEEPING]
    if missing:
        raise CheckpointError(f"{cfg.run_dir / 'ckpt.pt'} was saved by an earlier train.py, without the settings "
                              f"{', '.join(missing)}, whose meaning then is not known: start afresh (--overwrite)")
    # argv on top of the saved settings; the run folder is the one the checkpoint was read from
    cfg = parse_config(TrainConfig, argv, "train.py", defaults=ckpt["config"] | {"out_dir": str(cfg.run_dir)})
    if first_process():
        say_how_the_run_continues(cfg, ckpt)
    changes = changed_settings(ckpt["config"], cfg)
    described = ", ".join(f"{key}={new!r} (saved: {old!r})" for key, (old, new) in changes.items())
    if changes.keys() & FIXED:
        raise CheckpointError(f"the run in {cfg.run_dir} cannot continue with another model or dataset: {described}; "
                              f"drop those flags, or use another --out_dir")
    if changes and not cfg.allow_changes:
        raise ConfigError(f"--resume continues the run in {cfg.run_dir} exactly, but {described}; drop those flags, "
                          f"or add --allow_changes to continue with them")
    return cfg, ckpt


def changed_settings(saved, cfg):
    """{setting: (saved value, value now)} for every setting that changes what the run computes."""
    return {key: (saved[key], value) for key, value in asdict(cfg).items()
            if key not in BOOKKEEPING and saved[key] != value}


def say_how_the_run_continues(cfg, ckpt):
    """The lines a resumed run owes its user: what an earlier train.py's checkpoint lacked, where the run folder
    moved, and that config.json (a record) was not read."""
    for key, value in ckpt["earlier"].items():
        print(f"note: the checkpoint was saved before the {key} setting existed; it continues with {key}={value}, "
              f"what every run did then")
    saved_in, here = ckpt.get("run_dir"), cfg.run_dir.resolve()
    if saved_in and Path(saved_in) != here:
        print(f"note: the run was saved in {saved_in}; its folder moved, and it continues where it is now, in {here}")
    try:
        record = json.loads((cfg.run_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        record = {}
    edited = sorted(key for key, value in ckpt["config"].items()
                    if key not in BOOKKEEPING and record.get(key, value) != value)
    if edited:
        print(f"note: config.json differs from the checkpoint's settings ({', '.join(edited)}); it is a record of "
              f"them, not an input: the run continues with the checkpoint's settings (change one with "
              f"--NAME=VALUE --allow_changes), and config.json is written again")


@dataclass
class Processes:
    """This process's place among torchrun's processes (rank 0 of 1 without torchrun), and its device."""
    rank: int
    world_size: int
    device: str
    store: object = None  # torchrun's key-value store
    timeout: int = 0  # seconds a process waits for the others

    @property
    def master(self):  # the process that logs, evaluates the summary and writes checkpoints
        return self.rank == 0

    def set_up_by_rank_0(self):
        """Rank 0 sets the run up alone (its folder, the first checkpoint, the matmul peak), which may take
        longer than a step: the others wait for it here, at torchrun's store, up to ten times the timeout, so
        that from then on no process waits long for another."""
        if self.world_size > 1 and self.master:
            self.store.set("set up", "yes")
        elif self.world_size > 1:
            self.store.wait(["set up"], timedelta(seconds=10 * self.timeout))


@contextmanager
def processes(device_setting, timeout):
    """Join torchrun's process group, if launched by torchrun, and leave it on every way out:
    a process that exits without destroy_process_group can die at exit (SIGABRT). Every wait for the
    other processes ends after timeout seconds (on a GPU, torch's NCCL watchdog then ends the process)."""
    device = pick_device(device_setting)
    if "RANK" not in os.environ:
        yield Processes(0, 1, device)
        return
    local_rank = int(os.environ["LOCAL_RANK"])
    if device.startswith("cuda"):
        # one GPU per process: the local rank's, or the only one a cluster that gives each process its own GPU
        # (CUDA_VISIBLE_DEVICES) lets it see
        gpus = torch.cuda.device_count()
        if gpus > 1 and local_rank >= gpus:
            raise ConfigError(f"process {local_rank} on this node has no GPU of its own: {gpus} are visible; "
                              f"start at most {gpus} processes per node")
        device = f"cuda:{local_rank if gpus > 1 else 0}"
        torch.cuda.set_device(device)
    cuda = device.startswith("cuda")
    store, rank, world_size = next(dist.rendezvous("env://", timeout=timedelta(seconds=timeout)))  # torchrun's
    dist.init_process_group(backend="nccl" if cuda else "gloo", store=store, rank=rank, world_size=world_size,
                            timeout=timedelta(seconds=timeout), device_id=torch.device(device) if cuda else None)
    heartbeat = Heartbeat(store, rank)
    try:
        yield Processes(rank, world_size, device, store, timeout)
        dist.barrier()  # nobody tears down while another process still talks
    except RuntimeError as e:
        if not isinstance(e, dist.DistError) and "gloo" not in str(e):
            raise  # not a failed exchange between the processes
        raise lost_contact(e, store, rank, world_size, timeout) from None
    finally:
        heartbeat.stop()
        dist.destroy_process_group()


class Heartbeat:
    """A thread that counts up in torchrun's key-value store once a second while this process runs: a process
    that stops answering (stopped with Ctrl-Z or SIGSTOP, or hung) stops counting, and so the others can name it."""

    def __init__(self, store, rank):
        self.store, self.key, self.stopped = store.clone(), f"heartbeat/{rank}", threading.Event()  # (a thread's own)
        store.add(self.key, 1)
        threading.Thread(target=self.beat, daemon=True).start()

    def beat(self):
        while not self.stopped.wait(1.0):
            try:
                self.store.add(self.key, 1)
            except RuntimeError:  # the store is gone: the run is ending
                return

    def stop(self):
        self.stopped.set()


def lost_contact(e, store, rank, world_size, timeout):
    """The error of a process whose exchange with the others failed: another one ended (the connection closed)
    or stopped answering (the wait timed out), and then its heartbeat has stopped: the first process whose
    heartbeat goes on names it."""
    if not any(words in str(e).lower() for words in ("timed out", "timeout")):
        return ProcessesError(f"rank {rank}: another process ended, so this one stops too (that one's own "
                              f"message, or torchrun's report, says why); the last checkpoint is kept")
    try:
        counts = [store.add(f"heartbeat/{r}", 0) for r in range(world_size)]
        time.sleep(2.5)  # two and a half beats
        silent = [r for r in range(world_size) if store.add(f"heartbeat/{r}", 0) == counts[r]]
    except RuntimeError:  # the store is gone too: torchrun has ended
        return ProcessesError(f"rank {rank}: the other processes and torchrun stopped answering; the last checkpoint "
                              f"is kept")
    if silent:
        message = (f"rank {', '.join(map(str, silent))} stopped answering (stopped, e.g. by Ctrl-Z or SIGSTOP, or "
                   f"hung), so the others stopped waiting; the last checkpoint is kept: continue with --resume")
    else:
        message = (f"the processes waited for each other longer than --process_timeout={timeout} s; raise it, and "
                   f"continue with --resume (the last checkpoint is kept)")
    first_answering = min(set(range(world_size)) - set(silent))
    return ProcessesError(message, report=rank == first_answering)


# the signals that stop a run after its current step, with a checkpoint: Ctrl-C, kill's default, a closed terminal
STOP_SIGNALS = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])


@contextmanager
def stop_signals():
    """Ctrl-C (SIGINT), SIGTERM or SIGHUP (a closed terminal or ssh session) asks the loop to stop after the
    current step, which then saves a checkpoint; a second Ctrl-C stops at once, keeping the last checkpoint.
    After SIGHUP, what was written to the terminal, which is gone, goes nowhere: writing there would fail
    before the checkpoint is saved. Yields a list that holds the signal's number once one came."""
    received = []
    terminals = [fd for fd in (1, 2) if os.isatty(fd)]

    def request_stop(signum, frame):
        received.append(signum)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if signum == getattr(signal, "SIGHUP", None):
            nowhere = os.open(os.devnull, os.O_WRONLY)
            for fd in terminals:
                os.dup2(nowhere, fd)
            os.close(nowhere)

    previous = {signum: signal.signal(signum, request_stop) for signum in STOP_SIGNALS}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# -----------------------------------------------------------------------------
# the parts of the loop


def learning_rate_at(step, cfg):
    """Linear warmup (not zero at step 0), then linear decay towards 0 (App. D.1: linear beat cosine)."""
    warmup = max(1, round(cfg.warmup_frac * cfg.max_steps))
    if step < warmup:
        return cfg.learning_rate * (step + 1) / (warmup + 1)
    return cfg.learning_rate * (cfg.max_steps - step) / max(1, cfg.max_steps - warmup)


@dataclass
class State:
    """Everything a checkpoint holds besides the settings: what it takes to continue a run exactly."""
    model: GPT
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    data_rng: torch.Generator  # draws the batches, apart from the model's RNG
    device: str
    dtype: str  # autocast's precision; saved, since --dtype=auto may pick another one elsewhere
    attention: str  # the attention kernel; saved for the same reason
    step: int = 0
    train_time: float = 0.0  # seconds spent in training steps, evaluation excluded


def start_or_resume(cfg, ckpt, vocab_size, device, dtype, attention):
    """The training state: fresh from the seed, or as the checkpoint left it."""
    torch.manual_seed(cfg.seed)  # the same initial weights for the same block and seed
    model = GPT(cfg.model_config(vocab_size)).to(device)
    optimizer = model.configure_optimizers(cfg.weight_decay, cfg.learning_rate, (cfg.beta1, cfg.beta2), cfg.eps,
                                           torch.device(device).type)
    scaler = torch.amp.GradScaler(torch.device(device).type, enabled=dtype == "float16")
    state = State(model, optimizer, scaler, torch.Generator().manual_seed(cfg.seed), device, dtype, attention)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt["scaler"]:  # empty when the run was not trained in float16
            scaler.load_state_dict(ckpt["scaler"])
        state.data_rng.set_state(ckpt["data_rng"])
        torch.set_rng_state(ckpt["torch_rng"])
        state.step, state.train_time = ckpt["step"], ckpt["train_time"]
    return state


def checkpoint(state, cfg, fingerprint):
    save_checkpoint(cfg.run_dir / "ckpt.pt", {
        "model": state.model.state_dict(), "optimizer": state.optimizer.state_dict(),
        "scaler": state.scaler.state_dict(), "step": state.step, "train_time": state.train_time,
        "config": asdict(cfg), "model_config": asdict(state.model.config), "dataset_fingerprint": fingerprint,
        "device": device_name(state.device), "dtype": state.dtype, "attention": state.attention,
        "data_rng": state.data_rng.get_state(), "torch_rng": torch.get_rng_state(),
        "run_dir": str(cfg.run_dir.resolve())})  # where it was saved: a resumed run says if its folder moved


def train_step(model, state, micro_batches, cfg, ctx, device, ddp=None):
    """One optimizer step over this process's micro-batches (model: what to call; ddp: the DDP module inside
    it, if several processes train). Returns the mean loss over all processes' micro-batches as a tensor on
    the device: reading it would make the host wait for the device, so the loop reads losses back only when
    it logs or saves. With --on_nonfinite=skip it must look at once: a non-finite loss then skips the
    update, and the step returns None."""
    lr = learning_rate_at(state.step, cfg)
    for group in state.optimizer.param_groups:
        group["lr"] = lr
    loss_sum = torch.zeros((), device=device)
    for i, (x, y) in enumerate(micro_batches):
        if ddp is not None:  # all-reduce the gradients only on the last micro-batch
            ddp.require_backward_grad_sync = i == len(micro_batches) - 1
        with ctx:
            _, loss = model(x, y)
        loss = loss / len(micro_batches)  # the gradient of the mean over micro-batches
        state.scaler.scale(loss).backward()
        loss_sum += loss.detach()
    if ddp is not None:  # a sum, then the mean: gloo averages only since torch 2.8
        dist.all_reduce(loss_sum)
        loss_sum /= dist.get_world_size()
    if cfg.on_nonfinite == "skip" and not torch.isfinite(loss_sum):
        state.optimizer.zero_grad(set_to_none=True)
        return None
    if cfg.grad_clip > 0:
        state.scaler.unscale_(state.optimizer)
        torch.nn.utils.clip_grad_norm_(state.model.parameters(), cfg.grad_clip)
    state.scaler.step(state.optimizer)
    state.scaler.update()
    state.optimizer.zero_grad(set_to_none=True)
    return loss_sum


def to_device(batch, device):
    """The micro-batches on the device. On a CUDA GPU the copy runs from pinned memory, asynchronously:
    the host goes on to queue the step while the copy is in flight."""
    if device.startswith("cuda"):
        return [tuple(t.pin_memory().to(device, non_blocking=True) for t in xy) for xy in batch]
    return [tuple(t.to(device) for t in xy) for xy in batch]


def validation_batches(windows, batch_size, procs):
    """This process's share of the fixed validation windows, in batches (the last one may be smaller)."""
    x_all, y_all = (t[procs.rank::procs.world_size] for t in windows)
    return list(zip(x_all.split(batch_size), y_all.split(batch_size)))


@torch.no_grad()
def evaluate(model, windows, batch_size, ctx, procs):
    """Mean loss over the fixed validation windows, shared out over the processes."""
    total, count = torch.zeros((), device=procs.device), torch.zeros((), device=procs.device)
    model.eval()
    for x, y in validation_batches(windows, batch_size, procs):
        with ctx:
            _, loss = model(x.to(procs.device), y.to(procs.device))
        total += loss.float() * len(x)
        count += len(x)
    model.train()
    if procs.world_size > 1:
        dist.all_reduce(total)
        dist.all_reduce(count)
    return (total / count).item()


def warm_up(model, windows, batch_size, ctx, procs):
    """Every pass the run will make, once, on validation windows, and dropped: a forward and backward pass at
    the training shape (batch_size windows, repeated if the split has fewer), and evaluation's forward passes
    in eval mode without gradients, at each batch size evaluate() uses (its last batch may be smaller). So
    torch.compile compiles every graph before the first step, not in the middle of the run; nothing the run
    depends on changes (no weights, no random numbers)."""
    x, y = (t[torch.arange(batch_size) % len(t)].to(procs.device) for t in windows)
    with ctx:
        _, loss = model(x, y)
    loss.backward()
    model.zero_grad(set_to_none=True)
    shapes = {len(x): (x, y) for x, y in validation_batches(windows, batch_size, procs)}
    model.eval()
    with torch.no_grad(), ctx:
        for x, y in shapes.values():
            model(x.to(procs.device), y.to(procs.device))
    model.train()


def open_dataset(cfg, ckpt, procs):
    """The run's dataset; the master builds the default one on first use while the others wait."""
    if not procs.master:
        dist.barrier()
    ds = load_dataset(cfg.dataset)
    if procs.master and procs.world_size > 1:
        dist.barrier()
    if ckpt is not None and ckpt["dataset_fingerprint"] != ds.fingerprint:
        raise CheckpointError(f"the checkpoint in {cfg.run_dir} was trained on a different build of "
                              f"{ds.data_dir}; resume with the same data or use another --out_dir")
    return ds


def open_run_folder(cfg, state, fingerprint, changes):
    """Make out_dir, which this process holds, hold this run alone, and return its log. The checkpoint goes
    first, atomically: whatever the folder held before, a kill at any later moment leaves a checkpoint that
    resume trusts, and resume keeps only the log rows up to that checkpoint's step."""
    remove_leftovers(cfg.run_dir)  # the temporary files of a killed writer
    if state.step == 0:
        checkpoint(state, cfg, fingerprint)  # a new run replaces any old one right away
    log = RunLog(cfg.run_dir)
    for path in (log.path, log.gains_path):
        kept = [row for row in read_log(path) if row["step"] <= state.step]
        if path.exists() or path == log.path:  # gains.jsonl only for blocks that have gains
            write_file(path, "".join(json.dumps(row) + "\n" for row in kept))
    write_file(cfg.run_dir / "config.json", json.dumps(asdict(cfg), indent=2) + "\n")
    if changes:
        print("continuing with changed settings: " + ", ".join(f"{key} {old} -> {new}"
                                                                 for key, (old, new) in changes.items()))
        append_log(log.path, {"step": state.step, "changed": changes})
    return log


def precision_and_kernel(cfg, ckpt, device, stop):
    """The run's autocast precision and attention kernel, each with why in a few words, and for a resumed run
    that changes them, one line saying how and why (else None).

    A new run, or a setting given by name, is picked as pick_dtype and pick_attention say. A resumed run with
    --dtype=auto keeps the precision it started with wherever this device computes it natively, and else
    switches to what auto picks here: a checkpoint from a bfloat16 machine never trains several times slower on
    one that only emulates bfloat16 (a CPU without bfloat16 instructions, a T4). With --attention=auto it keeps
    its kernel on the same kind of device in the same precision, and else picks again: the explicit T x T
    matrix a CPU run chose is the slow path on a GPU. Resume stays exact in what it continues (weights,
    optimizer, data position, random state), but a new precision or kernel rounds the steps from here
    differently from the machine the run started on."""
    shape = (cfg.batch_size, cfg.n_head, cfg.block_size, cfg.n_embd // cfg.n_head, cfg.n_layer)
    changes = []
    if ckpt is None or cfg.dtype != "auto":
        dtype, why = pick_dtype(cfg.dtype, device, stop)
    elif native_precision(ckpt["dtype"], device):
        dtype, why = ckpt["dtype"], "as the run started"
    else:
        dtype, why = pick_dtype("auto", device, stop)
        changes.append(f"precision {ckpt['dtype']} -> {dtype} ({ckpt['dtype']} is only emulated here; "
                       f"--dtype={ckpt['dtype']} --allow_changes keeps it, emulated)")
    saved_kernel = ckpt.get("attention", "fused") if ckpt else None  # runs saved before the kernel was chosen: fused
    if ckpt is None or cfg.attention != "auto":
        attention, why_attention = pick_attention(cfg.attention, device, dtype, shape, stop)
    elif ckpt["device"] == device_name(device) and dtype == ckpt["dtype"]:
        attention, why_attention = saved_kernel, "as the run started"
    else:
        attention, why_attention = pick_attention("auto", device, dtype, shape, stop)
        if attention != saved_kernel:
            changes.append(f"attention {saved_kernel} -> {attention} ({why_attention})")
    resumed = None if not changes else (
        f"resuming on {device_name(device)} a run that started on {ckpt['device']}: {'; '.join(changes)}. The run "
        f"continues exactly from its checkpoint, but its steps from here round differently from that machine's")
    return dtype, why, attention, why_attention, resumed


# -----------------------------------------------------------------------------
# the training loop


def train(cfg, ckpt=None):
    """Train as cfg says, continuing ckpt if given. Returns {"step", "time", "train_loss", "val_loss",
    "stopped_by"}: the signal's number if Ctrl-C, SIGTERM or SIGHUP stopped the run early, else None."""
    with processes(cfg.device, cfg.process_timeout) as procs, stop_signals() as stop, ExitStack() as held:
        if cfg.grad_accum % procs.world_size:
            raise ConfigError(f"--grad_accum={cfg.grad_accum} must be a multiple of the {procs.world_size} processes: "
                              f"pass --grad_accum={procs.world_size} for one micro-batch of batch_size per process and "
                              f"step (or a multiple of {procs.world_size})")
        if procs.master:  # the run folder's one writer, from now until the run ends
            held.enter_context(hold_run_folder(cfg.run_dir))
        device_type = torch.device(procs.device).type
        # the start-up measurements below are bounded in time and end early on Ctrl-C or SIGTERM
        dtype, why, attention, why_attention, resumed = precision_and_kernel(cfg, ckpt, procs.device, stop)
        if procs.world_size > 1:  # the processes must compute alike: rank 0's measurements decide
            dtype, why, attention, why_attention, resumed = same_on_every_process(
                (dtype, why, attention, why_attention, resumed))
        use_attention_kernel(attention)
        ds = open_dataset(cfg, ckpt, procs)
        val_windows = ds.val_windows(cfg.block_size, cfg.eval_windows)
        if procs.master and len(val_windows[0]) < cfg.eval_windows:
            print(f"note: the validation split holds {len(val_windows[0])} windows of {cfg.block_size} tokens, fewer "
                  f"than eval_windows={cfg.eval_windows}: the run evaluates on those {len(val_windows[0])}")
        state = start_or_resume(cfg, ckpt, ds.tokenizer.vocab_size, procs.device, dtype, attention)
        changes = changed_settings(ckpt["config"], cfg) if ckpt else {}  # allowed by --allow_changes
        ckpt = None  # free its memory
        ddp = DDP(state.model, device_ids=[procs.device] if device_type == "cuda" else None) \
            if procs.world_size > 1 else None
        # compiled around DDP, not inside it: dynamo then splits the graph at DDP's gradient buckets, so that each
        # bucket's all-reduce overlaps the rest of the backward pass (DDP around a compiled model cannot)
        model = torch.compile(ddp or state.model) if cfg.compile else ddp or state.model
        ctx = autocast(device_type, dtype)
        if cfg.compile and not stop:  # compile now, so that no training step's time includes it
            warm_up(model, val_windows, cfg.batch_size, ctx, procs)
        if procs.master:
            log = open_run_folder(cfg, state, ds.fingerprint, changes)
            if resumed:
                print(resumed)
            print(f"{cfg.block}: {state.model.num_params() / 1e6:.2f}M parameters, {cfg.tokens_per_step:,} tokens "
                  f"per step, {procs.device} {dtype} ({why}), {attention} attention ({why_attention})" +
                  (f", {procs.world_size} processes" if procs.world_size > 1 else ""))
            if warning := emulation_warning(dtype, procs.device, stop):
                print(f"warning: {warning}", file=sys.stderr)
            # a few tenths of a second, paid by every run, short test runs included; bench.py measures for longer
            log.peak_flops = {"mfu": measure_matmul_flops(procs.device, dtype, rounds=3, seconds=0.1, stop=stop),
                              "mfu_datasheet": datasheet_flops(procs.device, dtype)}
            log.flops_per_token = state.model.flops_per_token() / procs.world_size
        procs.set_up_by_rank_0()

        interval = Interval(state.step)
        # closed on every way out, so that an error's line starts on a line of its own
        bar = held.enter_context(tqdm(total=cfg.max_steps, initial=state.step, disable=not procs.master, unit="step",
                                      dynamic_ncols=True))
        stopping = bool(stop) and procs.world_size == 1
        while state.step < cfg.max_steps and not stopping:
            t0 = time.perf_counter()
            # every process draws the whole global batch (same generator, same windows) and keeps its share,
            # so the data seen does not depend on the number of processes
            x, y = ds.get_batch("train", cfg.batch_size * cfg.grad_accum, cfg.block_size, state.data_rng)
            micro_batches = list(zip(x.split(cfg.batch_size), y.split(cfg.batch_size)))[procs.rank::procs.world_size]
            interval.add(train_step(model, state, to_device(micro_batches, procs.device), cfg, ctx, procs.device, ddp))
            state.step += 1
            last = state.step == cfg.max_steps
            evaluating = state.step % cfg.eval_interval == 0 or last
            logging = evaluating or state.step % cfg.log_interval == 0
            checkpointing = state.step % cfg.checkpoint_interval == 0 or last
            if procs.world_size == 1:
                stopping = bool(stop)
            elif logging or checkpointing:
                # the processes must stop at the same step; they agree where the host waits for the device anyway
                # (asking every step would make it wait for the GPUs every step), so a stop waits for the next log
                # or checkpoint step
                stopping = agree_to_stop(stop, procs.device)
                if stopping and not stop:
                    stop.append(signal.SIGTERM)  # another process was asked to stop
            saving = checkpointing or stopping
            if logging or saving:
                interval.read_back(cfg)  # waits for the device; a non-finite loss stops the run here, unsaved
            dt = time.perf_counter() - t0
            state.train_time, interval.seconds = state.train_time + dt, interval.seconds + dt
            bar.update()

            val_loss = evaluate(model, val_windows, cfg.batch_size, ctx, procs) if evaluating else None
            if procs.master and logging:
                log.write(interval, state, cfg, val_loss, procs.device, bar)
            if logging:
                interval = Interval(state.step)
            if procs.master and saving:
                checkpoint(state, cfg, ds.fingerprint)
    final = log.last_row if procs.master else {}
    return {"step": state.step, "time": state.train_time, "train_loss": final.get("train_loss"),
            "val_loss": final.get("val_loss"), "stopped_by": stop[0] if stopping else None}


class Interval:
    """The steps since the last log row: their losses, how many were skipped, how long they took."""

    def __init__(self, first_step):
        self.first_step, self.skipped, self.seconds = first_step, 0, 0.0
        self.losses, self.pending = [], []  # read back to the host / still on the device

    def add(self, loss):
        """A step's loss: a tensor on the device, or None for a skipped step."""
        if loss is None:
            self.skipped += 1
            step = self.first_step + len(self.losses) + len(self.pending) + self.skipped - 1
            if first_process():
                tqdm.write(f"step {step}: the loss is not finite; skipped this batch", file=sys.stderr)
        else:
            self.pending.append(loss)

    def read_back(self, cfg):
        """Bring the losses to the host, where a non-finite one stops the run (--on_nonfinite=stop) before
        anything is logged or saved: the last checkpoint stays the last good one."""
        if not self.pending:
            return
        for i, loss in enumerate(torch.stack(self.pending).tolist()):
            if not math.isfinite(loss):
                raise FloatingPointError(f"{cfg.block}: loss is {loss} at step {self.first_step + len(self.losses)}; "
                                         f"stopped, and the last good checkpoint in {cfg.run_dir} is kept (try a "
                                         f"lower --learning_rate, or --on_nonfinite=skip)")
            self.losses.append(loss)
        self.pending = []


class RunLog:
    """log.jsonl: a row every log_interval steps, and what the progress bar shows; gains.jsonl: the
    model's gains at the same steps (probe.py draws them over training)."""

    def __init__(self, run_dir):
        self.path, self.gains_path, self.last_row = run_dir / "log.jsonl", run_dir / "gains.jsonl", {}
        self.peak_flops = self.flops_per_token = None  # set once measured: {"mfu": measured, "mfu_datasheet": ...}

    def write(self, interval, state, cfg, val_loss, device, bar):
        steps = len(interval.losses) + interval.skipped
        row = {"step": state.step, "lr": state.optimizer.param_groups[0]["lr"], "time": state.train_time,
               "tokens_per_sec": steps * cfg.tokens_per_step / interval.seconds}
        if interval.losses:  # a train loss only if some step had a finite one
            row["train_loss"] = sum(interval.losses) / len(interval.losses)
        if interval.skipped:
            row["skipped"] = interval.skipped
        if val_loss is not None:
            row["val_loss"] = val_loss
        row |= {key: self.flops_per_token * row["tokens_per_sec"] / peak for key, peak in self.peak_flops.items()
                if peak is not None}  # MFU against the measured peak, and the data sheet's where known
        row["peak_memory"] = peak_memory(device)
        append_log(self.path, row)
        if gains := state.model.gains():
            append_log(self.gains_path, {"step": state.step, **gains})
        self.last_row = row
        if val_loss is not None:
            train_loss = f"train loss {row['train_loss']:.4f}" if "train_loss" in row else "no finite train loss"
            tqdm.write(f"step {row['step']}: {train_loss}, val loss {val_loss:.4f}")
        bar.set_postfix(loss=f"{row.get('train_loss', float('nan')):.3f}", tok_s=f"{row['tokens_per_sec']:,.0f}",
                        mfu=f"{row['mfu']:.0%}", refresh=False)


def same_on_every_process(values):
    """values as rank 0 has them, on every process."""
    box = [values]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def agree_to_stop(stop, device):
    """True on every process if any process was asked to stop: they must stop at the same step."""
    flag = torch.tensor(float(bool(stop)), device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def main(argv):
    """Train as argv says; returns the exit status: 0 when done, 128 + N when signal N stopped the run."""
    cfg, ckpt = settings(argv)
    final = train(cfg, ckpt)
    if final["stopped_by"] is not None:
        if first_process():
            resume = shlex.join(["python", "train.py", f"--block={cfg.block}", f"--out_dir={cfg.run_dir}", "--resume"])
            print(f"stopped at step {final['step']}; checkpoint saved. Continue with: {resume}", file=sys.stderr)
        return 128 + final["stopped_by"]
    if first_process():
        losses = ", ".join(f"{name} {final[key]:.4f}" for name, key in (("train loss", "train_loss"),
                                                                         ("val loss", "val_loss")) if final[key])
        print(f"done: {final['step']} steps in {final['time'] / 60:.1f} min of training, {losses or 'no new loss'}; "
              f"checkpoint and log in {cfg.run_dir}")
    return 0


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
