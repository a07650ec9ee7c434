"""
The processes that train together, and how a run is asked to stop.

A run trains in one process, or in several started by torchrun (one per GPU), which must do the same steps: the
training loop calls a Processes object's methods alike in both cases (share out the batch, average the loss, agree
to stop), and the torchrun version does them with the other processes, never waiting on them for longer than
--process_timeout. A heartbeat names a process that stops answering. Ctrl-C, SIGTERM and SIGHUP ask the loop to
stop after its step (stop_signals), which then saves a checkpoint.
"""

import os
import signal
import threading
import time
from contextlib import contextmanager, nullcontext
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from errors import ConfigError, ProcessesError


def first_process():
    """True but in torchrun's processes other than rank 0: what every process would say alike, rank 0 says."""
    return os.environ.get("RANK", "0") == "0"


# -----------------------------------------------------------------------------
# stopping


class Stop:
    """Whether the run was asked to stop: `requested` is the number of the signal that asked (or that another
    process was asked by), None until then."""

    def __init__(self):
        self.requested = None

    def request(self, signum):
        if self.requested is None:
            self.requested = signum


# the signals that stop a run after its current step, with a checkpoint: Ctrl-C, kill's default, a closed terminal
STOP_SIGNALS = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])


@contextmanager
def stop_signals():
    """Ctrl-C (SIGINT), SIGTERM or SIGHUP (a closed terminal or ssh session) asks the loop to stop after the
    current step, which then saves a checkpoint; a second Ctrl-C stops at once, keeping the last checkpoint.
    After SIGHUP, what was written to the terminal, which is gone, goes nowhere: writing there would fail
    before the checkpoint is saved. Yields the Stop that the signals set."""
    stop = Stop()
    terminals = terminal_outputs()

    def request_stop(signum, frame):
        stop.request(signum)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if signum == getattr(signal, "SIGHUP", None):
            write_nowhere(terminals)

    previous = {signum: signal.signal(signum, request_stop) for signum in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def terminal_outputs():
    """This process's outputs (stdout, stderr) that are a terminal: asked before a hang-up, after which they fail."""
    return [fd for fd in (1, 2) if os.isatty(fd)]


def write_nowhere(terminals):
    """After SIGHUP the terminal is gone: what is written to it from now on goes to /dev/null, not into an error."""
    nowhere = os.open(os.devnull, os.O_WRONLY)
    for fd in terminals:
        os.dup2(nowhere, fd)
    os.close(nowhere)


# -----------------------------------------------------------------------------
# one process, or torchrun's several


class Processes:
    """This process training alone: rank 0 of 1, on device. Every method is what the loop asks of the processes
    (share the work, average, agree); alone, each is trivial. TorchrunProcesses does them together."""
    rank, world_size = 0, 1

    def __init__(self, device):
        self.device = device

    @property
    def is_rank_0(self):  # the process that logs, evaluates the summary and writes checkpoints
        return self.rank == 0

    def share(self, items):
        """This process's share of a batch's items (micro-batches, validation windows): every world_size-th."""
        return items[self.rank::self.world_size]

    def wrap(self, model):
        """The model as the loop calls it: under torchrun, in DDP, which averages the gradients."""
        return model

    def sync_gradients(self, on):
        """Whether the next backward pass averages the gradients over the processes (only the last micro-batch's)."""

    def mean(self, tensor):
        """The mean of tensor over the processes."""
        return tensor

    def sum(self, tensor):
        """The sum of tensor over the processes."""
        return tensor

    def same_on_every_process(self, values):
        """values as rank 0 has them, on every process."""
        return values

    def rank_0_first(self):
        """A with-block that rank 0 goes through before the others (it builds what they then read)."""
        return nullcontext()

    def set_up_by_rank_0(self):
        """Where the others wait for rank 0 to set the run up alone (its folder, the first checkpoint)."""

    def agree_to_stop(self, stop, waiting_anyway):
        """True if the run stops after this step. Alone: whenever a stop was asked for."""
        return stop.requested is not None


class TorchrunProcesses(Processes):
    """One of torchrun's processes: it does what the loop asks together with the others, through torch.distributed
    and torchrun's key-value store (store), waiting for them at most timeout seconds."""

    def __init__(self, rank, world_size, device, store, timeout):
        super().__init__(device)
        self.rank, self.world_size, self.store, self.timeout = rank, world_size, store, timeout
        self.ddp = None

    def wrap(self, model):
        self.ddp = DDP(model, device_ids=[self.device] if self.device.startswith("cuda") else None)
        return self.ddp

    def sync_gradients(self, on):
        self.ddp.require_backward_grad_sync = on

    def mean(self, tensor):
        dist.all_reduce(tensor)  # a sum, then the mean: gloo averages only since torch 2.8
        return tensor / self.world_size

    def sum(self, tensor):
        dist.all_reduce(tensor)
        return tensor

    def same_on_every_process(self, values):
        box = [values]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    @contextmanager
    def rank_0_first(self):
        if not self.is_rank_0:
            dist.barrier()
        yield
        if self.is_rank_0:
            dist.barrier()

    def set_up_by_rank_0(self):
        """Rank 0 sets the run up alone (its folder, the first checkpoint, the matmul peak), which may take
        longer than a step: the others wait for it here, at torchrun's store, up to ten times the timeout, so
        that from then on no process waits long for another."""
        if self.is_rank_0:
            self.store.set("set up", "yes")
        else:
            self.store.wait(["set up"], timedelta(seconds=10 * self.timeout))

    def agree_to_stop(self, stop, waiting_anyway):
        """The processes must stop at the same step. They agree where the host waits for the device anyway, at log
        and checkpoint steps (asking every step would make it wait for the GPUs every step), so a stop waits for
        the next of those. A process stopped because another was asked to stops as if by SIGTERM."""
        if not waiting_anyway:
            return False
        flag = torch.tensor(float(stop.requested is not None), device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if flag.item():
            stop.request(signal.SIGTERM)
        return bool(flag.item())


def leave_quietly():
    """After this process has left the others, with its exit status decided: torchrun sends SIGTERM to the processes
    still running once one has ended, and all of them are ending together here, so a stop signal now must not kill
    this one (its status would become -15 in torchrun's report). torchrun sends SIGKILL 30 s later if need be."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


@contextmanager
def joined_processes(device, timeout):
    """This process's Processes: alone, or, if launched by torchrun, joined to torchrun's process group, which it
    leaves on every way out (a process that exits without destroy_process_group can die at exit, SIGABRT). Every
    wait for the other processes ends after timeout seconds (on a GPU, torch's NCCL watchdog then ends the
    process). Under torchrun each process trains on its own GPU: device "cuda" becomes its local rank's."""
    if "RANK" not in os.environ:
        yield Processes(device)
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
        yield TorchrunProcesses(rank, world_size, device, store, timeout)
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
        self.thread = threading.Thread(target=self.beat, daemon=True)
        self.thread.start()

    def beat(self):
        while not self.stopped.wait(1.0):
            try:
                self.store.add(self.key, 1)
            except RuntimeError:  # the store is gone: the run is ending
                return

    def stop(self):
        """Stop beating, and wait for the last beat (a second at most): a beat still in the store's C++ code as the
        process exits aborts it (SIGABRT), which would hide the exit status it meant to give."""
        self.stopped.set()
        self.thread.join(timeout=5)


def lost_contact(e, store, rank, world_size, timeout):
    """The error of a process whose exchange with the others failed: another one ended (the connection closed)
    or stopped answering (the wait timed out), and then its heartbeat has stopped: the lowest rank whose
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
    reporter = min(set(range(world_size)) - set(silent))
    return ProcessesError(message, report=rank == reporter)
