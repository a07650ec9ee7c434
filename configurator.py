"""
nanoGPT-style settings for every script:

    python train.py [config/file.py ...] [--key=value ...]

The settings are the fields of a dataclass derived from Settings, each made with setting(): a default, a
one-line help and, where it applies, the choices or a check (positive, at_least(0), ...), so that every check of
a value is declared once, beside its setting. A config file is plain Python that assigns settings; it sees the
settings chosen so far (config/paper.py picks its learning rate from `block`), and --key=value flags always win
over config files; names starting with _ are a file's own helpers. One file may hold the settings of two scripts
(an experiment's: compare.py's own beside train.py's): each script takes its own and skips the other's.
Anything unknown, of the wrong type or out of range is refused with a one-line error.
"""

import ast
import dataclasses
import difflib
import math
import os

from errors import ConfigError


def setting(default, help, choices=None, check=None, each=False, path=False):
    """A setting: its default, a line of help, and what a value must be. choices: the values it may take (with
    each=True, a comma-separated list of them); check: a Check such as positive; path: a path (with each=True, a
    comma-separated list of them), where ~ is the home folder, as a shell would have it (which it does not do in
    --out=~/x), and that may be empty only where its default is."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices, "check": check,
                                                        "each": each, "path": path})


@dataclasses.dataclass(frozen=True)
class Check:
    """What a setting's value must be: test(value) holds, and `wanted` says so in words (">= 0")."""
    test: object
    wanted: str


def at_least(low, what=None):
    return Check(lambda value: value >= low, what or f">= {low}")


def above(low):
    return Check(lambda value: value > low, f"> {low}")


positive = at_least(1, "a positive integer")
fraction = Check(lambda value: 0 <= value < 1, "in [0, 1)")
seed_range = Check(lambda seed: -2**63 <= seed < 2**64, "a whole number from -2**63 to 2**64 - 1 (torch's seeds)")


def is_name(text):
    """Whether text names a file or folder within a folder (no /, and not . or ..), rather than a path."""
    return "/" not in text and text not in (".", "..")


a_name = Check(is_name, "a name, not a path (no /, and not . or ..)")


class Settings:
    """A dataclass of settings (derive from it, and decorate with @dataclass): a value is checked on creation
    against what its setting declares, and a refused one raises ConfigError in one line. A subclass with checks
    that tie settings together adds them in __post_init__ after calling super().__post_init__()."""

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value, meta = getattr(self, f.name), f.metadata
            check_type(f, value, type(self).__name__)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{f.name}={value!r}: it must be a finite number")
            if meta.get("choices") and not meta["each"] and value not in meta["choices"]:
                raise ConfigError(f"{f.name}={value!r} is not valid; choose one of: {', '.join(meta['choices'])}")
            for item in value.split(",") if meta.get("choices") and meta["each"] and value else []:
                if item not in meta["choices"]:
                    raise ConfigError(f"{f.name}={value!r}: {item!r} is not valid; choose among: "
                                      f"{', '.join(meta['choices'])}")
            if meta.get("check") and not meta["check"].test(value):
                raise ConfigError(f"{f.name} must be {meta['check'].wanted}, got {value!r}")
            if meta.get("path") and not value and f.default:  # an unset variable in $RUNS/x, a slip
                raise ConfigError(f"--{f.name} is empty; name a folder (. for the current one)")
            if meta.get("path"):
                setattr(self, f.name, ",".join(map(os.path.expanduser, value.split(","))) if meta["each"]
                        else os.path.expanduser(value))


def usage(cls, program, others):
    lines = [f"usage: python {program} [config_file.py ...] [--key=value ...]", ""]
    for f in dataclasses.fields(cls):
        choices = f.metadata["choices"]
        listed = f" (one of: {', '.join(map(str, choices))})" if choices and len(choices) <= 12 else ""
        lines.append(f"  --{f.name}={f.default}".ljust(34) + f" {f.metadata['help']}{listed}")
    if others:
        other, other_program = others
        names = [f.name for f in dataclasses.fields(other) if f.name not in {f.name for f in dataclasses.fields(cls)}]
        listed = ", ".join(names) if len(names) <= 8 else f"python {other_program} --help"
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


def check_type(f, value, source):
    kind = type(f.default)
    if not (isinstance(value, kind) or (kind is float and type(value) is int)) or (kind is int and type(value) is bool):
        raise ConfigError(f"{source} sets {f.name}={value!r}, but it must be of type {kind.__name__}")
    return kind(value)


def unknown(name, fields, source):
    close = difflib.get_close_matches(name, fields, n=1)
    hint = f"did you mean --{close[0]}? " if close else ""
    return ConfigError(f"{source}: unknown setting {name!r}; {hint}valid settings: {', '.join(fields)}")


def split_flags(argv, fields):
    """argv's --key=value flags, typed, and its config files, in order."""
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
    return flags, files


def parse_config(cls, argv, program, defaults=None, others=None):
    """Build cls from argv, starting from the defaults (a dict; by default the fields' own).
    others: (the dataclass of another script's settings, that script's name); a config file may also set those:
    they are in scope with their defaults while it runs, and skipped. With -h or --help, prints every setting with
    its default and help, and exits."""
    if "-h" in argv or "--help" in argv:
        print(usage(cls, program, others))
        raise SystemExit(0)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    flags, files = split_flags(argv, fields)
    values = {name: f.default for name, f in fields.items()} | (defaults or {}) | flags
    skipped = {f.name: f.default for f in dataclasses.fields(others[0]) if f.name not in fields} if others else {}
    for path in files:
        values |= read_config_file(path, values, fields, skipped)
        values |= flags  # flags win over config files
    values = {name: check_type(fields[name], value, f"--{name}") for name, value in values.items()}
    return cls(**values)


EXITS = {"exit", "quit", "sys.exit", "os._exit", "os.abort"}  # calls that would end the script from a config file


def read_config_file(path, values, fields, skipped):
    """The settings a config file assigns. It runs with the settings chosen so far in scope, and the other
    script's at their defaults; what it assigns to those (skipped) is skipped."""
    try:
        with open(path, encoding="utf-8") as file:
            tree = ast.parse(file.read(), path)
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text; save it as UTF-8") from None
    except SyntaxError as e:
        raise ConfigError(f"config file {path}, line {e.lineno}: {e.msg}") from None
    for node in ast.walk(tree):  # os._exit would end this process at once, without a word: refused unrun
        if isinstance(node, ast.Call) and ast.unparse(node.func) in EXITS:
            raise ConfigError(f"config file {path}, line {node.lineno}, calls {ast.unparse(node.func)}(): a config "
                              f"file assigns settings, and the script goes on after it; remove that call")
    namespace = skipped | values
    try:
        exec(compile(tree, path, "exec"), namespace)
    except (Exception, SystemExit) as e:  # a config file is a user's Python: any error is theirs to fix
        raise ConfigError(f"config file {path} raised {type(e).__name__}: {e}") from None
    assigned = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    settings = {}
    for name in sorted(assigned):
        if name.startswith("_") or name in skipped:  # a config file's own helper variables, another script's
            continue
        if name not in fields:
            raise unknown(name, [*fields, *skipped], path)
        settings[name] = check_type(fields[name], namespace[name], path)
    return settings
