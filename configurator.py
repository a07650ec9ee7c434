"""
nanoGPT-style settings for train.py, sample.py, bench.py and compare.py:

    python train.py [config/file.py ...] [--key=value ...]

The settings are the fields of a dataclass, each made with setting(): a default,
a one-line help and, where only a few values make sense, the choices. A config
file is plain Python that assigns settings; it sees the settings chosen so far
(config/paper.py picks its learning rate from `block`), and --key=value flags
always win over config files; names starting with _ are a file's own helpers.
One file may hold the settings of an experiment for two scripts, train.py's and
compare.py's (ExperimentSettings): each script takes its own and skips the other's.
Anything unknown or of the wrong type is refused with a one-line error.
"""

import ast
import dataclasses
import difflib
import math


class ConfigError(ValueError):
    """A setting the user gave that cannot work; the message says how to fix it."""


def setting(default, help, choices=None):
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices})


@dataclasses.dataclass
class ExperimentSettings:
    """What an experiment adds to one run's settings: compare.py's own settings. A config file may set them
    beside train.py's (config/class.py is the class's experiment, config/depth.py the depth experiment), so that
    `python compare.py config/class.py` is the whole experiment; the other scripts read the same file and skip
    them (probe.py, which has a blocks setting of its own, takes that one)."""
    blocks: str = setting("", "blocks to train and compare, the first being the baseline; every other setting and "
                              "config file goes to train.py for each block (python train.py --help); empty: all")
    seeds: str = setting("", "comma-separated seeds, e.g. 1337,1,2: every block is trained once per seed, and the "
                             "table and plot show the mean and the spread (lowest to highest) over them; empty: "
                             "train.py's seed setting alone")
    sweep: str = setting("", "NAME=V1,V2,...: every block is trained once per value of one train.py setting, e.g. "
                             "mlp_gain=0.05,0.1,0.2, and each value gets its own row and curve; two settings, "
                             "separated by a space, give every pair of values")
    report: str = setting("out/compare", "folder for compare.md, compare.json and compare.png")
    plot: str = setting("", "where to draw the plot; empty: compare.png in --report")
    speed: bool = setting(True, "show speed (steps/s and the loss per minute); false where the runs shared the "
                                "machine with other work, which makes their speeds meaningless")


def usage(cls, program, other, other_program):
    lines = [f"usage: python {program} [config_file.py ...] [--key=value ...]", ""]
    for f in dataclasses.fields(cls):
        choices = f" (one of: {', '.join(map(str, f.metadata['choices']))})" if f.metadata["choices"] else ""
        lines.append(f"  --{f.name}={f.default}".ljust(34) + f" {f.metadata['help']}{choices}")
    others = [f.name for f in dataclasses.fields(other) if f.name not in {f.name for f in dataclasses.fields(cls)}]
    listed = ", ".join(others) if len(others) <= 8 else f"python {other_program} --help"
    lines += ["", f"A config file may set these and {other_program}'s settings ({listed}); {program} reads only "
                  f"its own."]
    return "\n".join(lines)


def parse_value(f, text):
    kind = type(f.default)
    try:
        if kind is bool:
            return {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}[text.lower()]
        return kind(text)
    except (KeyError, ValueError):
        expected = {bool: "true or false", int: "an integer", float: "a number"}.get(kind, "a string")
        raise ConfigError(f"--{f.name}={text}: expected {expected}") from None


def check_value(f, value, source):
    kind = type(f.default)
    if not (isinstance(value, kind) or (kind is float and type(value) is int)) or (kind is int and type(value) is bool):
        raise ConfigError(f"{source} sets {f.name}={value!r}, but it must be of type {kind.__name__}")
    if kind is float and not math.isfinite(value):
        raise ConfigError(f"{source} sets {f.name}={value!r}; it must be a finite number")
    choices = f.metadata["choices"]
    if choices and value not in choices:
        raise ConfigError(f"{f.name}={value!r} is not valid; choose one of: {', '.join(map(str, choices))}")
    return kind(value)


def unknown(name, fields, source):
    close = difflib.get_close_matches(name, fields, n=1)
    hint = f"did you mean --{close[0]}? " if close else ""
    return ConfigError(f"{source}: unknown setting {name!r}; {hint}valid settings: {', '.join(fields)}")


def parse_config(cls, argv, program, defaults=None, other=ExperimentSettings, other_program="compare.py"):
    """Build cls from argv, starting from the defaults (a dict; by default the fields' own).
    A config file may also set the settings of `other`, the dataclass of other_program's settings: they are in
    scope with their defaults while it runs, and skipped. With -h or --help, prints every setting with its
    default and help, and exits."""
    if "-h" in argv or "--help" in argv:
        print(usage(cls, program, other, other_program))
        raise SystemExit(0)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    flags, files = {}, []
    for arg in argv:
        if arg.startswith("--"):
            name, has_value, text = arg[2:].partition("=")
            if name not in fields:
                raise unknown(name, fields, arg)
            if not has_value and type(fields[name].default) is not bool:
                raise ConfigError(f"{arg} needs a value: --{name}=...")
            flags[name] = parse_value(fields[name], text) if has_value else True
        elif arg.endswith(".py"):
            files.append(arg)
        else:
            raise ConfigError(f"cannot read argument {arg!r}: give config files (*.py) and --key=value settings")

    values = {name: f.default for name, f in fields.items()} | (defaults or {}) | flags
    others = {f.name: f.default for f in dataclasses.fields(other) if f.name not in fields}
    for path in files:
        values |= read_config_file(path, values, fields, others)
        values |= flags  # flags win over config files
    for name, value in values.items():
        check_value(fields[name], value, f"--{name}")
    try:
        return cls(**values)
    except ValueError as e:  # the dataclass's own checks, in __post_init__
        raise ConfigError(str(e)) from None


def read_config_file(path, values, fields, others):
    """The settings a config file assigns. It runs with the settings chosen so far in scope, and the other
    script's at their defaults; what it assigns to those (others) is skipped."""
    try:
        with open(path, encoding="utf-8") as file:
            tree = ast.parse(file.read(), path)
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text; save it as UTF-8") from None
    except SyntaxError as e:
        raise ConfigError(f"config file {path}, line {e.lineno}: {e.msg}") from None
    namespace = others | values
    try:
        exec(compile(tree, path, "exec"), namespace)
    except Exception as e:  # a config file is a user's Python: any error is theirs to fix
        raise ConfigError(f"config file {path} raised {type(e).__name__}: {e}") from None
    assigned = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    settings = {}
    for name in sorted(assigned):
        if name.startswith("_") or name in others:  # a config file's own helper variables, another script's
            continue
        if name not in fields:
            raise unknown(name, [*fields, *others], path)
        settings[name] = check_value(fields[name], namespace[name], path)
    return settings
