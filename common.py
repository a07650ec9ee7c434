"""
What every script shares: the oldest torch it runs on, how it ends (run_main: the exit status and the one line
that says why, running out of memory included), how it runs another script as its child (run_child), its output
files (checked before the work, and what to do about a failed write) and figures (pyplot).
"""

import errno
import os
import re
import signal
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch

from errors import CheckpointError, ConfigError, DataError, ProcessesError, ResourceError
from processes import STOP_SIGNALS, first_process, terminal_outputs, write_nowhere

# ---------------------------------------------------------------------------------------------------
# the oldest torch this code runs on

# torch.cpu._is_avx512_bf16_supported (cpu_has_native_bfloat16) came in 2.5; fused AdamW on a CPU in 2.4; 2.3 added
# torch.amp.GradScaler for any device and torch.nn.attention.sdpa_kernel; 2.2 the cuDNN attention backend and
# init_process_group's device_id. Newer releases are fine: Colab ships its own torch.
OLDEST_TORCH = (2, 5)


def torch_too_old(version):
    """One line saying why this code cannot run on this torch version string, or None if it can."""
    major_minor = tuple(int(part) for part in re.findall(r"\d+", version)[:2])
    if major_minor >= OLDEST_TORCH:
        return None
    return (f"torch {version} is older than {'.'.join(map(str, OLDEST_TORCH))}, the oldest release this code runs on "
            f"(README, On a GPU); install the pinned one: pip install -r requirements.txt")


if problem := torch_too_old(torch.__version__):  # every script imports this module
    sys.exit(f"error: {problem}")


# ---------------------------------------------------------------------------------------------------
# exit statuses, the same for every script


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP where nothing asks to finish the step first: ends the script as Ctrl-C does."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


def run_main(main, argv):
    """Run a script's main(argv), which returns its exit status, and exit with it. A refused input exits
    with one line on stderr saying what was wrong: 2 for bad usage (a setting, a flag, a config file),
    1 for anything else (a missing or damaged checkpoint or dataset, a diverged run, output nobody reads).
    A run stopped by a signal exits 128 + its number (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP), as
    shells expect: where the script does not handle the signal itself (train.py's loop, a child it waits for),
    it stops with one line saying so. Under torchrun, rank 0 alone says what every process met alike."""
    terminals = terminal_outputs()

    def stop(signum, frame):
        if signum == getattr(signal, "SIGHUP", None):
            write_nowhere(terminals)
        raise Stopped(signum)

    others = [signum for signum in STOP_SIGNALS if signum != signal.SIGINT]  # (Ctrl-C is KeyboardInterrupt)
    previous = {signum: signal.signal(signum, stop) for signum in others}
    try:
        status = main(argv)
        sys.stdout.flush()  # here, where a closed pipe is still caught, not at exit
    except ConfigError as e:
        say_error(e)
        status = 2
    except (CheckpointError, DataError, FloatingPointError, ResourceError) as e:
        say_error(e)
        status = 1
    except ProcessesError as e:
        if e.report:
            say_error(e, every_process=True)
        status = 1
    except KeyboardInterrupt as e:  # a signal where nothing asks to finish the step first, or a second Ctrl-C
        signum = getattr(e, "signum", signal.SIGINT)
        how = "interrupted by Ctrl-C" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"
        say_error(f"{how}; what was saved before is kept (a run resumes from its last checkpoint)")
        status = 128 + signum
    except BrokenPipeError:  # the output's reader went away early: python sample.py | head -n 1
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # or Python's flush at exit fails again
        say_error("the output's reader closed it early (e.g. | head); stopped there (a run resumes from its last "
                  "checkpoint)")
        status = 1
    except UnicodeEncodeError as e:  # PYTHONIOENCODING=ascii, or a terminal in a narrow locale
        say_error(f"this terminal's encoding ({sys.stdout.encoding}) cannot show {e.object[e.start:e.end]!a}; run "
                  f"again with PYTHONIOENCODING=utf-8 (or a UTF-8 locale)")
        status = 1
    finally:
        for signum, handler in previous.items():
            if signal.getsignal(signum) is stop:  # (torchrun's processes ignore them from their end on: kept)
                signal.signal(signum, handler)
    sys.exit(status)


def say_error(error, every_process=False):
    """One line, error: ..., on stderr, by rank 0 alone unless every_process; on a line of its own (a process
    other than rank 0 starts a new one: rank 0's progress bar may stand on the current one)."""
    if every_process or first_process():
        try:
            print(("" if first_process() else "\n") + f"error: {error}", file=sys.stderr)
        except OSError:  # stderr is gone too
            pass


CHILD_GRACE = 60  # seconds a child stopped with SIGTERM has to save its work before it is killed


def run_child(argv, **popen):
    """Run a child process (argv: a script's command line) as a part of this one, and return its exit status.
    Ctrl-C, SIGTERM and SIGHUP sent to this process are passed on to the child, once each, and this process waits
    for it to stop as it does on its own (train.py finishes its step and saves a checkpoint); a second Ctrl-C
    passed on stops train.py at once. The child has a session of its own, so a Ctrl-C at the terminal reaches it
    only through this process, never twice. Once this process has received a signal, the status is 128 + that
    signal, whatever the child made of it (pytest exits 2 on Ctrl-C; a run may have finished meanwhile): this
    process was asked to stop. If this process ends any other way, the child is stopped and waited for: no
    child outlives it."""
    terminals = terminal_outputs()
    child = subprocess.Popen(argv, start_new_session=True, **popen)
    received = []

    def pass_on(signum, frame):
        received.append(signum)
        if signum == getattr(signal, "SIGHUP", None):  # this process's terminal is gone too
            write_nowhere(terminals)
        child.send_signal(signum)

    previous = {signum: signal.signal(signum, pass_on) for signum in STOP_SIGNALS}
    try:
        status = child.wait()
        status = 128 - status if status < 0 else status  # killed by signal N: 128 + N, as shells report it
        return 128 + received[0] if received else status
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if child.poll() is None:  # this process is ending by an error of its own: so does the child, saving
            child.terminate()
            try:
                child.wait(timeout=CHILD_GRACE)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


@contextmanager
def lower_if_out_of_memory(advice):
    """Turn running out of memory in the with-block, the host's or a GPU's, into one line: how much more was asked
    for, and advice, which says what to lower (ResourceError, exit status 1)."""
    try:
        yield
    except (MemoryError, RuntimeError) as e:
        if not out_of_memory(e):
            raise
        asked = re.search(r"tried to allocate (\d+) bytes|Tried to allocate ([\d.]+ \w+)", str(e))
        how_much = f" (it asked for {f'{int(asked[1]) / 2**30:.1f} GiB' if asked[1] else asked[2]} more)" if asked \
            else ""
        raise ResourceError(f"out of memory{how_much}; {advice}") from None


def out_of_memory(e):
    """Whether an error is running out of memory: Python's, torch's on the CPU (its allocator's RuntimeError), or a
    GPU's."""
    return isinstance(e, (MemoryError, torch.OutOfMemoryError)) or \
        any(words in str(e) for words in ("can't allocate memory", "out of memory"))


# ---------------------------------------------------------------------------------------------------
# output files


def remedy(e, otherwise):
    """What to do about a failed write, by its cause: room for a full disk, permissions for a refused one."""
    code = getattr(e, "errno", None)
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return "make room on that disk"
    if code == errno.EROFS:
        return f"its filesystem is read-only: remount it writable, or {otherwise}"
    if code in (errno.EACCES, errno.EPERM):
        return f"this user may not write there: fix its permissions, or {otherwise}"
    if code in (errno.ENOTDIR, errno.EEXIST):
        return f"a file stands where a folder should be: {otherwise}"
    return f"check that its disk is healthy and writable, or {otherwise}"


def writable_folder(folder, flag):
    """Refuse, before any work, an output folder that cannot be written (flag: the setting that names it): a file
    where it should be, no permission, a read-only disk. The folder is made if need be."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as e:
        raise ConfigError(f"cannot write into {flag}={folder} ({e.strerror}); {remedy(e, f'pick another {flag}')}") \
            from None


def figure_file(path, flag):
    """Refuse, before any work, a figure's file that cannot be drawn: a folder, a type matplotlib has no writer
    for (it would add .png to a name without one), or a folder it cannot write into."""
    from matplotlib.backend_bases import FigureCanvasBase

    path, types = Path(path), FigureCanvasBase.get_supported_filetypes()
    if path.is_dir():
        raise ConfigError(f"{flag}={path} is a folder; name the figure's file in it, e.g. {flag}={path / 'plot.png'}")
    if path.suffix[1:].lower() not in types:
        raise ConfigError(f"{flag}={path}: a figure's file name must end in the type to draw: one of "
                          f"{', '.join('.' + kind for kind in sorted(types))}")
    writable_folder(path.parent, flag)


def pyplot():
    """matplotlib's pyplot, drawing into files only (never a window), imported when a figure is made."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt
