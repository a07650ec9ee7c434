"""
The errors a script refuses its input with, at the bottom of the import graph: any module may raise them, and
common.run_main turns each into one line on stderr and an exit status (2 for bad usage, 1 for the rest).
"""


class ConfigError(ValueError):
    """A setting the user gave that cannot work (a flag, a config file); the message says how to fix it."""


class CheckpointError(ValueError):
    """A run folder's file (checkpoint, log) that is missing, unreadable, unwritable or does not fit the run."""


class DataError(ValueError):
    """Bad input or an unusable dataset, explained in one line."""


class ResourceError(RuntimeError):
    """Not enough memory for what was asked; the message says what to lower (common.lower_if_out_of_memory)."""


class ProcessesError(RuntimeError):
    """One of torchrun's processes lost the others: said by the process that saw it (report), not by every one."""

    def __init__(self, message, report=True):
        super().__init__(message)
        self.report = report
