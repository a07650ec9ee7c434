"""
Train a GPT built from any block of the ladder.

    python train.py                        # small default model on the stdlib corpus, ~6 min on 2 CPU cores
    python train.py --block=sas_p          # any block from blocks/: python train.py --help lists them
    python train.py config/paper.py        # the paper's CodeParrot recipe on one GPU
    python train.py --block=sas_p --resume # continue out/sas_p/ from its last checkpoint
    torchrun --standalone --nproc_per_node=4 train.py config/paper.py

A run writes into out_dir: ckpt.pt (model, optimizer, step, config, data
position and every RNG state; written atomically, so a crash never leaves a
broken one), and log.jsonl (step, lr, train loss, val loss, tokens/s, MFU).
"""

import json
import math
import os
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from blocks import BLOCKS
from configurator import ConfigError, parse_config, setting
from data.bpe import DataError
from data.dataset import Dataset
from data.prepare import prepare
from model import GPT, GPTConfig

DATA_ROOT = Path(__file__).parent / "data"


@dataclass
class TrainConfig:
    # data
    dataset: str = setting("stdlib", "dataset folder under data/, or a path (python data/prepare.py builds one; "
                                     "stdlib is built on first use)")
    # model
    block: str = setting("pre_ln", "the transformer block every layer uses", choices=BLOCKS)
    n_layer: int = setting(4, "number of blocks")
    n_head: int = setting(4, "attention heads per block (head size n_embd / n_head; the paper: 64)")
    n_embd: int = setting(256, "width of the residual stream")
    block_size: int = setting(128, "context length in tokens (the paper uses 128)")
    mlp_ratio: int = setting(4, "MLP hidden width = mlp_ratio * n_embd")
    mlp_gain: float = setting(0.1, "initial beta_FF, the MLP branch gain of the shaped blocks: O(1/sqrt(n_layer))")
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
    out_dir: str = setting("out/{block}", "where the checkpoint and log go; {block} becomes the block name")
    resume: bool = setting(False, "continue from out_dir/ckpt.pt")
    overwrite: bool = setting(False, "start afresh even if out_dir already holds a checkpoint (it is replaced)")
    on_nonfinite: str = setting("stop", "on a NaN/inf loss: stop (keeping the last good checkpoint) or skip the batch",
                                choices=["stop", "skip"])
    # system
    device: str = setting("auto", "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    dtype: str = setting("auto", "auto: bfloat16 where supported (CUDA, CPU), float16 + grad scaler on older GPUs",
                         choices=["auto", "float32", "bfloat16", "float16"])
    compile: bool = setting(False, "torch.compile the model")
    seed: int = setting(1337, "seeds the initialisation and the batches: the same seed gives every block the same data")

    def __post_init__(self):
        self.model_config(vocab_size=1)  # GPTConfig checks the model settings
        for name in ("max_steps", "batch_size", "grad_accum", "eval_interval", "eval_windows", "log_interval",
                     "checkpoint_interval"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if not 0 <= self.warmup_frac < 1:
            raise ConfigError(f"warmup_frac must be in [0, 1), got {self.warmup_frac}")

    def model_config(self, vocab_size):
        return GPTConfig(block=self.block, vocab_size=vocab_size, block_size=self.block_size, n_layer=self.n_layer,
                         n_head=self.n_head, n_embd=self.n_embd, mlp_ratio=self.mlp_ratio, mlp_gain=self.mlp_gain)

    @property
    def run_dir(self):
        return Path(self.out_dir.format(block=self.block))


# settings a checkpoint cannot be resumed with different values of
MODEL_KEYS = ("dataset", "block", "n_layer", "n_head", "n_embd", "block_size", "mlp_ratio", "mlp_gain")


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or does not fit the run."""


# -----------------------------------------------------------------------------
# device and precision


def pick_device(name):
    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if torch.backends.mps.is_available() else "cpu"
    try:
        kind = torch.device(name).type
    except RuntimeError:
        raise ConfigError(f"--device={name} is not a device; use auto, cpu, cuda, cuda:N or mps") from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available.get(kind, False):
        raise ConfigError(f"--device={name} is not available on this machine; use --device=auto")
    return name


def pick_dtype(name, device_type):
    """bfloat16 autocast where the hardware has it (on this project's 2-core CPU it is ~4x
    faster than float32), float16 with a grad scaler on GPUs without bfloat16."""
    bf16_ok = {"cuda": torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
               "cpu": torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported(),
               "mps": False}[device_type]
    if name == "auto":
        if device_type == "cuda":
            return "bfloat16" if bf16_ok else "float16"
        return "bfloat16" if bf16_ok else "float32"
    if name == "bfloat16" and not bf16_ok:
        raise ConfigError(f"--dtype=bfloat16 is not supported on {device_type} here; use --dtype=float32")
    if name == "float16" and device_type != "cuda":
        raise ConfigError("--dtype=float16 is for CUDA GPUs; use --dtype=bfloat16 or float32")
    return name


def autocast(device_type, dtype):
    if dtype == "float32":
        return nullcontext()
    return torch.autocast(device_type, dtype=getattr(torch, dtype))


def synchronize(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    elif device == "mps":
        torch.mps.synchronize()


def peak_memory(device):
    """Peak memory of this process so far, in bytes: the CUDA allocator's peak on a GPU, else the
    peak resident memory of the whole process (interpreter and data included)."""
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated(device)
    try:
        import resource  # not on Windows
    except ImportError:
        return float("nan")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS reports bytes, Linux KiB


def measure_matmul_flops(device, dtype, seconds=0.5):
    """This machine's dense matmul rate in FLOP/s, measured: the peak that MFU is taken against."""
    n = 8192 if device.startswith("cuda") else 2048  # large enough to reach the peak, small enough for a CPU
    a, b = (torch.randn(n, n, device=device, dtype=getattr(torch, dtype)) for _ in range(2))
    a @ b  # warm up
    synchronize(device)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(4):
            a @ b
        synchronize(device)
        count += 4
    return 2 * n**3 * count / (time.perf_counter() - start)


# -----------------------------------------------------------------------------
# learning rate, evaluation, checkpoints


def learning_rate_at(step, cfg):
    """Linear warmup (not zero at step 0), then linear decay towards 0 (App. D.1: linear beat cosine)."""
    warmup = max(1, round(cfg.warmup_frac * cfg.max_steps))
    if step < warmup:
        return cfg.learning_rate * (step + 1) / (warmup + 1)
    return cfg.learning_rate * (cfg.max_steps - step) / max(1, cfg.max_steps - warmup)


@torch.no_grad()
def evaluate(model, windows, batch_size, device, ctx, rank=0, world_size=1):
    """Mean loss over the fixed validation windows, shared out over the processes."""
    x_all, y_all = windows
    total, count = torch.zeros((), device=device), torch.zeros((), device=device)
    model.eval()
    for x, y in zip(x_all[rank::world_size].split(batch_size), y_all[rank::world_size].split(batch_size)):
        with ctx:
            _, loss = model(x.to(device), y.to(device))
        total += loss.float() * len(x)
        count += len(x)
    model.train()
    if world_size > 1:
        dist.all_reduce(total)
        dist.all_reduce(count)
    return (total / count).item()


def save_checkpoint(path, state):
    """Write to a temporary file, fsync, then rename over the old checkpoint: a kill at any
    moment leaves either the old or the new checkpoint, never a torn one."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_checkpoint(path):
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; train one first (python train.py) or check --out_dir")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, corrupt or not a checkpoint at all: torch raises many kinds
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(e).__name__}); "
                              f"it may be truncated or corrupt: restore it or start afresh with --overwrite") from None


def load_trained_model(run_dir):
    """The GPT saved in run_dir/ckpt.pt, and the Dataset it was trained on, whose tokenizer must
    still fit the model (it does not if the dataset was rebuilt differently since)."""
    ckpt = load_checkpoint(Path(run_dir) / "ckpt.pt")
    model = GPT(GPTConfig(**ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
    dataset = Dataset(DATA_ROOT / ckpt["config"]["dataset"])
    if dataset.vocab_size != model.config.vocab_size:
        raise CheckpointError(f"{dataset.data_dir} has a {dataset.vocab_size}-token vocabulary but the model in "
                              f"{run_dir} has {model.config.vocab_size}: the dataset was rebuilt since; "
                              f"rebuild it as it was")
    return model, dataset


def read_log(path, up_to_step=None):
    """The rows of a log.jsonl, ignoring a torn last line left by a kill."""
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if up_to_step is None or row["step"] <= up_to_step:
                rows.append(row)
    return rows


def resolve_resume(cfg, explicit):
    """The settings of a resumed run: the checkpoint's, with what the user set now on top.
    Refuses a change to the model or the dataset."""
    ckpt = load_checkpoint(cfg.run_dir / "ckpt.pt")
    try:
        saved = TrainConfig(**ckpt["config"])
    except (KeyError, TypeError, ConfigError) as e:
        raise CheckpointError(f"{cfg.run_dir / 'ckpt.pt'} was not written by this train.py ({e})") from None
    for key in MODEL_KEYS:
        if key in explicit and getattr(cfg, key) != getattr(saved, key):
            raise CheckpointError(f"the checkpoint in {cfg.run_dir} was trained with {key}={getattr(saved, key)!r}, "
                                  f"not {getattr(cfg, key)!r}; drop --{key} or use another --out_dir")
    return replace(saved, **{key: getattr(cfg, key) for key in explicit}), ckpt


def load_dataset(cfg, master):
    path = DATA_ROOT / cfg.dataset  # a name under data/, or an absolute path
    if master and not path.exists() and cfg.dataset == "stdlib":
        print("first run: building the default dataset from this Python's standard library")
        prepare(path)
    if dist.is_initialized():
        dist.barrier()  # the other processes wait for the master to build it
    return Dataset(path)


# -----------------------------------------------------------------------------
# the training loop


def train(cfg, explicit=frozenset()):
    """Train as cfg says; returns the final {"step", "train_loss", "val_loss", "time"}."""
    ddp = int(os.environ.get("RANK", -1)) != -1  # launched by torchrun?
    rank, world_size = (int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])) if ddp else (0, 1)
    master = rank == 0
    device = pick_device(cfg.device)
    if ddp:
        if device.startswith("cuda"):
            device = f"cuda:{os.environ['LOCAL_RANK']}"
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    device_type = torch.device(device).type
    dtype = pick_dtype(cfg.dtype, device_type)
    if device_type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # float32 matmuls in TF32 on GPUs that have it
    if cfg.grad_accum % world_size:
        raise ConfigError(f"--grad_accum={cfg.grad_accum} must be a multiple of the {world_size} processes")
    run_dir, ckpt_path, log_path = cfg.run_dir, cfg.run_dir / "ckpt.pt", cfg.run_dir / "log.jsonl"

    ckpt = None
    if cfg.resume:
        cfg, ckpt = resolve_resume(cfg, explicit)
    elif ckpt_path.exists() and not cfg.overwrite:
        raise ConfigError(f"{run_dir} already holds a checkpoint; continue it with --resume, "
                          f"replace it with --overwrite, or pick another --out_dir")
    ds = load_dataset(cfg, master)
    if ckpt is not None and ckpt["dataset_fingerprint"] != ds.fingerprint:
        raise CheckpointError(f"the checkpoint in {run_dir} was trained on a different build of "
                              f"data/{cfg.dataset}; resume with the same data or use another --out_dir")
    val_windows = ds.val_windows(cfg.block_size, cfg.eval_windows)

    torch.manual_seed(cfg.seed)  # the same initial weights for the same block and seed
    model = GPT(cfg.model_config(ds.vocab_size)).to(device)
    optimizer = model.configure_optimizers(cfg.weight_decay, cfg.learning_rate, (cfg.beta1, cfg.beta2), cfg.eps,
                                           device_type)
    scaler = torch.amp.GradScaler(device_type, enabled=dtype == "float16")
    data_rng = torch.Generator().manual_seed(cfg.seed)  # the batches: apart from the model's RNG
    step, train_time = 0, 0.0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scaler.load_state_dict(ckpt["scaler"])
        data_rng.set_state(ckpt["data_rng"])
        torch.set_rng_state(ckpt["torch_rng"])
        step, train_time = ckpt["step"], ckpt["train_time"]
        ckpt = None  # free the memory
    raw_model = model
    if cfg.compile:
        model = torch.compile(model)
    ddp_model = DDP(model, device_ids=[device] if device_type == "cuda" else None) if ddp else model
    ctx = autocast(device_type, dtype)

    def checkpoint():
        save_checkpoint(ckpt_path, {
            "model": raw_model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
            "step": step, "train_time": train_time, "config": asdict(cfg), "model_config": asdict(raw_model.config),
            "dataset_fingerprint": ds.fingerprint,
            "data_rng": data_rng.get_state(), "torch_rng": torch.get_rng_state()})

    rows = []
    if master:
        run_dir.mkdir(parents=True, exist_ok=True)
        rows = read_log(log_path, up_to_step=step)  # a resumed run drops rows logged after its checkpoint
        log_path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        (run_dir / "config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
        tokens_per_step = cfg.batch_size * cfg.grad_accum * cfg.block_size
        print(f"{cfg.block}: {raw_model.num_params() / 1e6:.2f}M parameters, {tokens_per_step:,} tokens per step, "
              f"{device} {dtype}{f', {world_size} processes' if ddp else ''}")
        peak_flops = measure_matmul_flops(device, dtype)
    flops_per_token = raw_model.flops_per_token()

    # Ctrl-C (or SIGTERM) finishes the current step, saves a checkpoint and exits; a second Ctrl-C kills
    stop_requested = False

    def request_stop(signum, frame):
        nonlocal stop_requested
        stop_requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    local_accum = cfg.grad_accum // world_size
    interval_loss, interval_steps, interval_time = 0.0, 0, 0.0
    bar = tqdm(total=cfg.max_steps, initial=step, disable=not master, unit="step", dynamic_ncols=True)
    while step < cfg.max_steps:
        t0 = time.perf_counter()
        lr = learning_rate_at(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        # every process draws the whole global batch (same generator, same windows) and keeps its share,
        # so the data seen does not depend on the number of processes
        x, y = ds.get_batch("train", cfg.batch_size * cfg.grad_accum, cfg.block_size, data_rng)
        micro_batches = list(zip(x.split(cfg.batch_size), y.split(cfg.batch_size)))[rank::world_size]
        loss_sum = torch.zeros((), device=device)
        for i, (xb, yb) in enumerate(micro_batches):
            if ddp:  # all-reduce the gradients only on the last micro-batch
                ddp_model.require_backward_grad_sync = i == local_accum - 1
            with ctx:
                _, loss = ddp_model(xb.to(device, non_blocking=True), yb.to(device, non_blocking=True))
            loss = loss / local_accum  # the gradient of the mean over micro-batches
            scaler.scale(loss).backward()
            loss_sum += loss.detach()
        if ddp:
            dist.all_reduce(loss_sum, op=dist.ReduceOp.AVG)
        step_loss = loss_sum.item()
        if not math.isfinite(step_loss):
            if cfg.on_nonfinite == "stop":
                bar.close()
                raise FloatingPointError(f"{cfg.block}: loss is {step_loss} at step {step}; stopped, and the last "
                                         f"good checkpoint in {run_dir} is kept (try a lower --learning_rate, "
                                         f"or --on_nonfinite=skip)")
            tqdm.write(f"step {step}: loss is {step_loss}, skipping this batch")
            optimizer.zero_grad(set_to_none=True)
        else:
            if cfg.grad_clip > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            interval_loss += step_loss
            interval_steps += 1
        synchronize(device)
        dt = time.perf_counter() - t0
        step += 1
        train_time += dt
        interval_time += dt
        bar.update()

        last = step == cfg.max_steps
        if step % cfg.eval_interval == 0 or step % cfg.log_interval == 0 or last:
            val_loss = None
            if step % cfg.eval_interval == 0 or last:
                val_loss = evaluate(model, val_windows, cfg.batch_size, device, ctx, rank, world_size)
            if master:
                tokens_per_sec = interval_steps * cfg.batch_size * cfg.grad_accum * cfg.block_size / interval_time
                row = {"step": step, "lr": lr, "train_loss": interval_loss / max(1, interval_steps),
                       "tokens_per_sec": tokens_per_sec,
                       "mfu": flops_per_token * tokens_per_sec / world_size / peak_flops, "time": train_time,
                       "peak_memory": peak_memory(device)}
                if val_loss is not None:
                    row["val_loss"] = val_loss
                    tqdm.write(f"step {step}: train loss {row['train_loss']:.4f}, val loss {val_loss:.4f}")
                rows.append(row)
                with open(log_path, "a") as f:
                    f.write(json.dumps(row) + "\n")
                bar.set_postfix(loss=f"{row['train_loss']:.3f}", tok_s=f"{tokens_per_sec:,.0f}",
                                mfu=f"{row['mfu']:.0%}", refresh=False)
            interval_loss, interval_steps, interval_time = 0.0, 0, 0.0

        if ddp:  # every process must agree to stop at the same step
            flag = torch.tensor(float(stop_requested), device=device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            stop_requested = bool(flag.item())
        if master and (step % cfg.checkpoint_interval == 0 or last or stop_requested):
            checkpoint()
        if stop_requested:
            break
    bar.close()
    if ddp:
        dist.destroy_process_group()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

    if stop_requested:
        if master:
            print(f"stopped at step {step}; checkpoint saved. Continue with: python train.py "
                  f"--block={cfg.block} --out_dir={cfg.out_dir} --resume")
        sys.exit(130)
    final = {"step": step, "time": train_time}
    if master and rows:
        final["train_loss"] = rows[-1]["train_loss"]
        final["val_loss"] = next((r["val_loss"] for r in reversed(rows) if "val_loss" in r), None)
        print(f"done: {step} steps in {train_time / 60:.1f} min of training, train loss {final['train_loss']:.4f}, "
              f"val loss {final['val_loss']:.4f}; checkpoint and log in {run_dir}")
    return final


def main(argv):
    try:
        cfg, explicit = parse_config(TrainConfig, argv, "train.py")
        train(cfg, explicit)
    except (ConfigError, CheckpointError, DataError, FloatingPointError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main(sys.argv[1:])
