"""
Train a GPT built from any block of the ladder.

    python train.py                        # the small default model on the stdlib corpus
    python train.py --block=sas_p          # any block from blocks/: python train.py --help lists them
    python train.py config/paper.py        # the paper's CodeParrot recipe on one GPU
    python train.py --block=sas_p --resume # continue out/sas_p/ from its last checkpoint
    torchrun --standalone --nproc_per_node=4 train.py config/paper.py

This file reads top to bottom: the learning-rate schedule, the training state (what a checkpoint holds), one
training step, evaluation, the loop (train) and main. The settings are in settings.py. What the loop leans on has
rooms of its own: the run folder's files and its one writer (run_folder.py), the processes and the signals that
stop a run (processes.py), the device, precision and attention kernel (hardware.py).
"""

import shlex
import sys
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from types import SimpleNamespace

import torch
from tqdm import tqdm

from common import lower_if_out_of_memory, run_main
from data import load_dataset
from errors import CheckpointError, ConfigError
from hardware import (autocast, datasheet_flops, device_name, emulation_warning,
                      measure_matmul_flops, pick_device, precision_and_kernel, set_up_device, to_device)
from model import GPT, has_shaped_attention
from processes import Processes, Stop, first_process, joined_processes, leave_quietly, stop_signals
from run_folder import Interval, RunLog, hold_run_folder, save_checkpoint, start_run_folder
from settings import notes_on_resuming, run_settings


def learning_rate_at(step, cfg):
    """Linear warmup (not zero at step 0), then linear decay towards 0 (v1 Fig. 11 / v2 Fig. 12: linear beat cosine)."""
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

    def checkpoint(self, cfg, fingerprint):
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(), "step": self.step, "train_time": self.train_time,
                "config": asdict(cfg), "model_config": asdict(self.model.config), "dataset_fingerprint": fingerprint,
                "device": device_name(self.device), "dtype": self.dtype, "attention": self.attention,
                "data_rng": self.data_rng.get_state(), "torch_rng": torch.get_rng_state(),
                "run_dir": str(cfg.run_dir.resolve())}  # where it was saved: a resumed run says if its folder moved


def start_or_resume(cfg, ckpt, vocab_size, device, dtype, attention):
    """The training state: fresh from the seed, or as the checkpoint left it."""
    torch.manual_seed(cfg.seed)  # the same initial weights for the same block and seed
    model = GPT(cfg.model_config(vocab_size)).to(device)
    optimizer = model.configure_optimizers(cfg.weight_decay, cfg.learning_rate, (cfg.beta1, cfg.beta2), cfg.eps,
                                           torch.device(device).type)
    scaler = torch.amp.GradScaler(torch.device(device).type, enabled=dtype == "float16")
    model.set_attention_kernel(attention)
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


def train_step(model, state, micro_batches, cfg, ctx, procs):
    """One optimizer step over this process's micro-batches (model: what to call, procs: the processes, which
    average the gradients). Returns the mean loss over all processes' micro-batches as a tensor on the device:
    reading it would make the host wait for the device, so the loop reads losses back only when it logs or saves.
    With --on_nonfinite=skip it must look at once: a non-finite loss then skips the update, and it returns None."""
    lr = learning_rate_at(state.step, cfg)
    for group in state.optimizer.param_groups:
        group["lr"] = lr
    loss_sum = torch.zeros((), device=state.device)
    for i, (x, y) in enumerate(micro_batches):
        procs.sync_gradients(i == len(micro_batches) - 1)  # the gradients are averaged once, after the last
        with ctx:
            _, loss = model(x, y)
        loss = loss / len(micro_batches)  # the gradient of the mean over micro-batches
        state.scaler.scale(loss).backward()
        loss_sum += loss.detach()
    loss = procs.mean(loss_sum)
    if cfg.on_nonfinite == "skip" and not torch.isfinite(loss):
        state.optimizer.zero_grad(set_to_none=True)
        return None
    if cfg.grad_clip > 0:
        state.scaler.unscale_(state.optimizer)
        torch.nn.utils.clip_grad_norm_(state.model.parameters(), cfg.grad_clip)
    state.scaler.step(state.optimizer)
    state.scaler.update()
    state.optimizer.zero_grad(set_to_none=True)
    return loss


def validation_batches(windows, batch_size, procs):
    """This process's share of the fixed validation windows, in batches (the last one may be smaller)."""
    x_all, y_all = (procs.share(t) for t in windows)
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
    return (procs.sum(total) / procs.sum(count)).item()


def train(cfg, ckpt=None, procs=None, stop=None):
    """Train as cfg says, continuing ckpt if given, in the processes procs (processes.Processes; this one alone if
    None), until the last step or until stop (a processes.Stop) is asked for. Returns {"step", "time",
    "train_loss", "val_loss", "stopped_by"}: the number of the signal that stopped the run early, else None."""
    procs, stop = procs or Processes(pick_device(cfg.device)), stop or Stop()
    with ExitStack() as held:
        run = start(cfg, ckpt, procs, stop, held)
        state, interval = run.state, Interval(run.state.step)
        bar = held.enter_context(tqdm(total=cfg.max_steps, initial=state.step, disable=not procs.is_rank_0,
                                      unit="step", dynamic_ncols=True))  # closed on every way out
        stopping = procs.agree_to_stop(stop, waiting_anyway=False)  # a stop while the run started
        while state.step < cfg.max_steps and not stopping:
            t0 = time.perf_counter()
            # every process draws the whole global batch (same generator, same windows) and keeps its share,
            # so the data seen does not depend on the number of processes
            x, y = run.data.get_batch("train", cfg.batch_size * cfg.grad_accum, cfg.block_size, state.data_rng)
            micro_batches = procs.share(list(zip(x.split(cfg.batch_size), y.split(cfg.batch_size))))
            interval.add(train_step(run.model, state, to_device(micro_batches, procs.device), cfg, run.ctx, procs))
            state.step += 1
            last = state.step == cfg.max_steps
            evaluating = state.step % cfg.eval_interval == 0 or last
            logging = evaluating or state.step % cfg.log_interval == 0
            checkpointing = state.step % cfg.checkpoint_interval == 0 or last
            stopping = procs.agree_to_stop(stop, waiting_anyway=logging or checkpointing)
            if logging or checkpointing or stopping:
                interval.read_back(cfg)  # waits for the device; a non-finite loss stops the run here, unsaved
            dt = time.perf_counter() - t0
            state.train_time, interval.seconds = state.train_time + dt, interval.seconds + dt
            bar.update()

            val_loss = evaluate(run.model, run.val_windows, cfg.batch_size, run.ctx, procs) if evaluating else None
            interval.check(cfg, state, val_loss, saving=checkpointing or stopping)  # a diverged run stops here
            if procs.is_rank_0 and logging:
                run.log.write(state, interval, val_loss, bar)
            if logging:
                interval = Interval(state.step, previous=interval)
            if procs.is_rank_0 and (checkpointing or stopping):
                save_checkpoint(cfg.run_dir / "ckpt.pt", state.checkpoint(cfg, run.data.fingerprint))
    final = run.log.last_row if procs.is_rank_0 else {}
    return {"step": state.step, "time": state.train_time, "train_loss": final.get("train_loss"),
            "val_loss": final.get("val_loss"), "stopped_by": stop.requested if stopping else None}


def start(cfg, ckpt, procs, stop, held):
    """Everything the loop needs, set up in order: the run folder held by rank 0 (held: the ExitStack that lets go
    of it), the precision and attention kernel, the data, the state, the model as the loop calls it (wrapped for
    the processes, compiled), and rank 0's log. The start-up measurements end early if stop is asked for."""
    if cfg.grad_accum % procs.world_size:
        raise ConfigError(f"--grad_accum={cfg.grad_accum} must be a multiple of the {procs.world_size} processes: "
                          f"pass --grad_accum={procs.world_size} for one micro-batch of batch_size per process and "
                          f"step (or a multiple of {procs.world_size})")
    if procs.is_rank_0:  # the run folder's one writer, from now until the run ends
        held.enter_context(hold_run_folder(cfg.run_dir))
    shape = (cfg.batch_size, cfg.n_head, cfg.block_size, cfg.n_embd // cfg.n_head, cfg.n_layer)
    # the processes must compute alike: rank 0's measurements decide
    dtype, why, attention, why_attention, resumed = procs.same_on_every_process(precision_and_kernel(
        cfg.dtype, cfg.attention, procs.device, shape, ckpt, stop, shaped=has_shaped_attention(cfg.block)))
    with procs.rank_0_first():  # rank 0 builds the default dataset on first use
        data = load_dataset(cfg.dataset)
    if ckpt is not None and ckpt["dataset_fingerprint"] != data.fingerprint:
        raise CheckpointError(f"the checkpoint in {cfg.run_dir} was trained on a different build of "
                              f"{data.data_dir}; resume with the same data or use another --out_dir")
    val_windows = data.val_windows(cfg.block_size, cfg.eval_windows)
    state = start_or_resume(cfg, ckpt, data.tokenizer.vocab_size, procs.device, dtype, attention)
    changes = ckpt["changes"] if ckpt else {}
    model = procs.wrap(state.model)
    # compiled around DDP, not inside it: dynamo then splits the graph at DDP's gradient buckets, so that each
    # bucket's all-reduce overlaps the rest of the backward pass (DDP around a compiled model cannot)
    model = torch.compile(model) if cfg.compile else model
    ctx = autocast(torch.device(procs.device).type, dtype)
    if cfg.compile and stop.requested is None:  # compile now, so that no training step's time includes it
        warm_up(model, val_windows, cfg.batch_size, ctx, procs)
    log = None
    if procs.is_rank_0:
        for note in notes_on_resuming(cfg, ckpt) if ckpt else []:  # (before config.json is written again)
            print(note)
        start_run_folder(cfg.run_dir, state.checkpoint(cfg, data.fingerprint), asdict(cfg), changes)
        if len(val_windows[0]) < cfg.eval_windows:
            print(f"note: the validation split holds {len(val_windows[0])} windows of {cfg.block_size} tokens, fewer "
                  f"than eval_windows={cfg.eval_windows}: the run evaluates on those {len(val_windows[0])}")
        if resumed:
            print(resumed)
        print(f"{cfg.block}: {state.model.num_params() / 1e6:.2f}M parameters, {cfg.tokens_per_step:,} tokens per "
              f"step, {procs.device} {dtype} ({why}), {attention} attention ({why_attention})" +
              (f", {procs.world_size} processes" if procs.world_size > 1 else ""))
        if warning := emulation_warning(dtype, procs.device, stop):
            print(f"warning: {warning}", file=sys.stderr)
        # a few tenths of a second, paid by every run, short test runs included; bench.py measures for longer
        peaks = {"mfu": measure_matmul_flops(procs.device, dtype, rounds=3, seconds=0.1, stop=stop),
                 "mfu_datasheet": datasheet_flops(procs.device, dtype)}
        log = RunLog(cfg.run_dir, cfg.tokens_per_step, state.model.flops_per_token() / procs.world_size, peaks,
                     procs.device)
    procs.set_up_by_rank_0()
    return SimpleNamespace(data=data, val_windows=val_windows, state=state, model=model, ctx=ctx, log=log)


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


def main(argv):
    """Train as argv says; returns the exit status: 0 when done, 128 + N when signal N stopped the run."""
    cfg, ckpt = run_settings(argv)
    device = pick_device(cfg.device)
    set_up_device(device)
    # the signal handlers go on until the processes have left each other, and then under torchrun signals are
    # ignored: a process still leaving when another has ended gets torchrun's SIGTERM, which must not kill it
    with stop_signals() as stop, joined_processes(device, cfg.process_timeout) as procs, \
            lower_if_out_of_memory(f"the last checkpoint in {cfg.run_dir} is kept; lower --batch_size (and raise "
                                   f"--grad_accum to keep the batch), --block_size, or the model (--n_layer, "
                                   f"--n_embd)"):
        final = train(cfg, ckpt, procs, stop)
    if procs.world_size > 1:
        leave_quietly()
    if final["stopped_by"] is not None:
        if first_process():
            resume = shlex.join(["python", "train.py", f"--block={cfg.block}", f"--out_dir={cfg.run_dir}", "--resume"])
            print(f"stopped at step {final['step']}; checkpoint saved. Continue with: {resume}", file=sys.stderr)
        return 128 + final["stopped_by"]
    if first_process() and ckpt is not None and ckpt["step"] == cfg.max_steps:
        print(f"done: the run in {cfg.run_dir} had reached --max_steps={cfg.max_steps} already, so nothing was "
              f"trained; to train on, give a larger --max_steps with --allow_changes")
    elif first_process():
        losses = ", ".join(f"{name} {final[key]:.4f}" for name, key in (("train loss", "train_loss"),
                                                                         ("val loss", "val_loss")) if final[key])
        print(f"done: {final['step']} steps in {final['time'] / 60:.1f} min of training, {losses or 'no new loss'}; "
              f"checkpoint and log in {cfg.run_dir}")
    return 0


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
