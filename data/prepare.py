"""
Build a nanoSAS dataset, offline: token ids on disk plus the tokenizer that made them.

    python data/prepare.py                                # Python's standard library -> data/stdlib/
    python data/prepare.py --source=~/code --patterns=*.py,*.md   # your own files -> data/code/
    python data/prepare.py --tokenizer=gpt2               # GPT-2's vocabulary instead of a new BPE
    python data/prepare.py --codeparrot=20000             # the paper's data (needs `datasets`, network)

The paper trains on CodeParrot (Python from GitHub). The standard library of the running
interpreter is Python code too, and it is on every machine, so it is the default corpus.

A dataset folder holds train.bin / val.bin (uint16 token ids, each document followed by
<|endoftext|>), tokenizer.tiktoken + tokenizer.json, and manifest.json (every file with its size,
sha256 and split, the settings, the token counts). It is built in a temporary folder beside the
target and renamed into place at the end, so a failed run never leaves a half-written dataset.

prepare() below runs the steps in order, and the functions after it follow that order: check the
settings, list the files, read them, train the BPE, encode, write. Bad input stops the script with
one line, `error: ...`, on stderr, and exit status 2 for a bad option, 1 for anything else.
"""
import argparse
import errno
import fnmatch
import glob
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import stat
import sys
import sysconfig
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

try:
    import fcntl  # file locks, on Linux, macOS and the other POSIX systems
except ImportError:  # Windows: no lock (one_build_at_a_time says what that means)
    fcntl = None

if __package__ in (None, ""):  # run as `python data/prepare.py`: make the `data` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from configurator import is_name
from data import DATA_DIR, DEFAULT_DATASET
from data.bpe import GPT2_PATTERN, META_FILE, RANKS_FILE, make_encoding, save_tokenizer, train_bpe
from data.dataset import FORMAT, MANIFEST, SPLITS, load_manifest
from data.sources import gpt2_ranks, read_codeparrot
from errors import ConfigError, DataError

ALWAYS_EXCLUDED = ["__pycache__", "site-packages", "dist-packages"]  # hidden folders are skipped too
STDLIB_TESTS = ["test", "tests", "idle_test"]
STDLIB_CODECS = ["encodings", "pydoc_data"]  # codec tables, and one huge string of help text: poor text
BUILD_WAIT = 600  # seconds a build waits for another one in the same folder
MIN_VOCAB, MAX_VOCAB = 257, 65535  # 256 bytes + at least one merge; ids, up to eot = vocab_size, are uint16


@dataclass
class Document:
    path: str  # relative path (posix): the document's identity, and what decides its split
    text: str
    split: str


def prepare(out_dir, source=None, patterns=("*.py",), tokenizer="bpe", vocab_size=4096, val_fraction=0.05,
            include_codecs=False, force=False, codeparrot=0):
    """Build the dataset in out_dir (or confirm that it is up to date) and return its path.

    source: folder to read; default: this interpreter's standard library without its tests, and
        without its codec tables and pydoc_data unless include_codecs.
    patterns: file-name patterns to read, a list or a comma-separated string.
    tokenizer: "bpe" trains a byte-level BPE of vocab_size tokens (+ <|endoftext|>) on the train
        split; "gpt2" uses GPT-2's vocabulary if it is available offline.
    codeparrot: stream that many CodeParrot documents instead of reading a folder.
    Raises DataError (one line, saying what to do) on bad input, or if GPT-2's vocabulary is
    missing; out_dir is then left as it was.
    """
    start = time.time()
    out_dir = Path(out_dir)
    if isinstance(patterns, str):  # "*.py, *.md": a space after the comma is no part of a file name
        patterns = [p.strip() for p in patterns.split(",") if p.strip()]
    settings = check_settings(source, list(patterns), tokenizer, vocab_size, val_fraction, include_codecs,
                              codeparrot)
    with one_build_at_a_time(out_dir):  # a second build of out_dir waits here for this one, then sees it built
        existing = existing_manifest(out_dir, force)
        if existing is not None and existing["settings"] != settings:
            changed = ", ".join(f"{key}: {existing['settings'].get(key)!r} there, {value!r} now"
                                for key, value in settings.items() if existing["settings"].get(key) != value)
            raise DataError(f"{out_dir} was built with other settings ({changed}); "
                            "pass --force to replace it, or choose another --name")

        docs, skipped = read_corpus(settings)
        files_list = [describe(doc) for doc in docs]
        corpus_sha256 = hashlib.sha256(json.dumps(files_list, sort_keys=True).encode()).hexdigest()
        if existing is not None:
            if existing["corpus_sha256"] != corpus_sha256:
                raise DataError(f"the source files changed since {out_dir} was built; "
                                "pass --force to rebuild it, or choose another --name")
            print(f"{out_dir} is up to date (fingerprint {existing['fingerprint']}); --force rebuilds it")
            return out_dir

        remove_killed_builds(out_dir)
        tmp_dir = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")  # beside out_dir, so rename is atomic
        tmp_dir.mkdir()
        try:
            ranks = make_ranks(docs, settings)
            manifest = write_dataset(tmp_dir, docs, ranks, files_list, skipped, settings, corpus_sha256)
            move_into_place(tmp_dir, out_dir)
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)  # a failed run leaves nothing behind
    print_summary(out_dir, manifest, time.time() - start)
    return out_dir


def check_settings(source, patterns, tokenizer, vocab_size, val_fraction, include_codecs, codeparrot):
    """Validate the options (ConfigError: exit status 2); return them as the dict the manifest stores (and re-runs
    compare)."""
    if tokenizer not in ("bpe", "gpt2"):
        raise ConfigError(f"unknown tokenizer {tokenizer!r}; choose bpe or gpt2")
    if tokenizer == "bpe" and not MIN_VOCAB <= vocab_size <= MAX_VOCAB:
        raise ConfigError(f"vocab_size={vocab_size} is out of range; choose {MIN_VOCAB}..{MAX_VOCAB} "
                          "(256 byte tokens + at least one merge, and ids are stored as uint16)")
    if not 0 < val_fraction < 1:
        raise ConfigError(f"val_fraction={val_fraction} must be between 0 and 1, e.g. 0.05")
    if codeparrot < 0:
        raise ConfigError(f"codeparrot={codeparrot} must be a number of documents (0: off)")
    if codeparrot and source is not None:
        raise ConfigError("--codeparrot and --source exclude each other; pass only one of them")
    if include_codecs and (source is not None or codeparrot):
        raise ConfigError("include_codecs only applies to the default source, the standard library")
    if codeparrot:
        source, patterns, excluded = "huggingface-course/codeparrot-ds", None, None
    elif source is None:
        source = sysconfig.get_paths()["stdlib"]
        excluded = ALWAYS_EXCLUDED + STDLIB_TESTS + ([] if include_codecs else STDLIB_CODECS)
    else:
        source, excluded = Path(source).expanduser().resolve(), ALWAYS_EXCLUDED
        if not source.is_dir():
            raise ConfigError(f"source folder {source} {'is not a folder' if source.exists() else 'does not exist'}; "
                              f"pass --source=DIR, a folder of text")
    if patterns is not None and not patterns:
        raise ConfigError("no file patterns given; pass e.g. --patterns=*.py,*.md")
    return {"source": str(source), "patterns": patterns, "excluded": excluded, "tokenizer": tokenizer,
            "vocab_size": vocab_size if tokenizer == "bpe" else None, "val_fraction": val_fraction,
            "codeparrot": codeparrot}


@contextmanager
def one_build_at_a_time(out_dir):
    """Hold the folder out_dir is built in (the operating system's flock on it, which ends with the process) from
    the check of what out_dir holds to the rename into place: two builds of one dataset at once never both build,
    one silently replacing the other; the second waits, then finds the first's build (up to date, or built with
    other settings: refused, as later). It waits at most BUILD_WAIT seconds. Without locks (Windows, some
    network filesystems) there is no wait."""
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot make the folder {out_dir.parent} to build {out_dir.name} in ({e.strerror}); give "
                        f"another --out") from None
    fd = os.open(out_dir.parent, os.O_RDONLY) if fcntl else None
    try:
        for waited in range(int(BUILD_WAIT / 0.2) + 1):
            try:
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if waited == 0:
                    print(f"waiting for another prepare.py, which is building a dataset in {out_dir.parent}",
                          file=sys.stderr)
                time.sleep(0.2)
            except OSError:  # a filesystem without locks
                break
        else:
            raise DataError(f"another prepare.py has been building a dataset in {out_dir.parent} for "
                            f"{BUILD_WAIT // 60} minutes; run this again once it has finished")
        yield
    finally:
        if fd is not None:
            os.close(fd)  # lets go of the lock


def existing_manifest(out_dir, force):
    """The manifest of the dataset already in out_dir, or None if there is nothing to keep.
    Refuses (even with force) to replace a folder that holds anything but a dataset."""
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"{out_dir} is a file; choose another --name or --out")
    if not out_dir.exists() or not any(out_dir.iterdir()):
        return None
    if not (out_dir / MANIFEST).is_file():
        raise DataError(f"{out_dir} holds files that are not a dataset; choose another --name or --out")
    return None if force else load_manifest(out_dir)


# --- 1. list the files, 2. read them ----------------------------------------------------------------

def read_corpus(settings):
    """The documents, each with its split, and the counts of skipped files; DataError if unusable."""
    if settings["codeparrot"]:
        docs = read_codeparrot(settings["codeparrot"], settings["val_fraction"])
        return [Document(*doc) for doc in docs], Counter()
    source, patterns = settings["source"], ",".join(settings["patterns"])
    files = list_files(source, settings["patterns"], settings["excluded"])
    if not files:
        raise DataError(f"no files matching {patterns} in {source}; pass another --source or --patterns")
    docs, skipped = read_files(source, files, settings["val_fraction"])
    if not docs and set(skipped) == {"empty"}:
        raise DataError(f"the {len(files)} files matching {patterns} in {source} are all empty; pass another "
                        f"--source or --patterns")
    if not docs:
        raise DataError(f"none of the {len(files)} files matching {patterns} in {source} is UTF-8 text "
                        f"({counts_text(skipped)}); pass another --source or --patterns")
    unusable = {reason: n for reason, n in skipped.items() if reason != "empty"}  # empty files are no loss
    if unusable:
        print(f"warning: skipped {counts_text(unusable)} files; only readable regular files of UTF-8 text, "
              "named in UTF-8, are read (not broken or looping links, FIFOs, sockets or devices): convert other "
              "encodings to UTF-8 to include them", file=sys.stderr)
    if len(docs) == 1:
        raise DataError(f"only one usable file matches {patterns} in {source}; the train and validation splits "
                        "take whole files, so at least two are needed: add files")
    n_val = sum(doc.split == "val" for doc in docs)
    if n_val == 0 or n_val == len(docs):
        empty, advice = ("validation", "a larger") if n_val == 0 else ("training", "a smaller")
        raise DataError(f"no file landed in the {empty} split ({len(docs)} files, val_fraction="
                        f"{settings['val_fraction']}); use {advice} --val_fraction or more files")
    return docs, skipped


def list_files(root, patterns, excluded):
    """Files under root whose name matches one of the patterns, skipping excluded and hidden folders."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in excluded and not d.startswith(".")]
        found += [Path(dirpath, f) for f in filenames
                  if not f.startswith(".") and any(fnmatch.fnmatch(f, p) for p in patterns)]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())  # never walk order


def read_files(root, files, val_fraction):
    """Decode the files as UTF-8 into Documents; skip the others, counted by the reason read_text gives."""
    docs, skipped = [], Counter()
    for file in tqdm(files, desc="reading", unit=" files"):
        path = file.relative_to(root).as_posix()
        text, reason = read_text(file) if utf8(path) else (None, "non-UTF-8 named")
        if reason:
            skipped[reason] += 1
        else:
            docs.append(Document(path, text, split_of(path, val_fraction)))
    return docs, skipped


def utf8(path):
    """Whether a path is UTF-8 text: the manifest records it, and its hash picks the split."""
    try:
        path.encode("utf-8")  # a name that is not UTF-8 comes from the system as lone surrogates, which fail here
        return True
    except UnicodeEncodeError:
        return False


def read_text(file):
    """(text, None) for a regular file of UTF-8 text, else (None, why it is skipped)."""
    try:
        mode = os.stat(file).st_mode  # follows a symbolic link; a dangling or looping one raises
    except FileNotFoundError:
        return None, "broken link"
    except OSError as e:
        return None, "broken link" if e.errno == errno.ELOOP else "unreadable"
    if not stat.S_ISREG(mode):  # a FIFO, socket or device: opening a FIFO would wait forever for a writer
        return None, "special"
    try:
        raw = file.read_bytes()
    except OSError:  # no permission, or gone since it was listed
        return None, "unreadable"
    if not raw:
        return None, "empty"
    if b"\0" in raw:  # text files never contain NUL bytes
        return None, "binary"
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, "undecodable"


def split_of(path, val_fraction):
    """'val' or 'train', from a hash of the relative path alone: adding, removing or reordering
    other files never moves this one to the other split."""
    h = int.from_bytes(hashlib.sha256(path.encode("utf-8")).digest()[:8], "big")
    return "val" if h < val_fraction * 2**64 else "train"


def describe(doc):
    """The manifest's entry for one document."""
    data = doc.text.encode("utf-8")
    return {"path": doc.path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "split": doc.split}


def counts_text(counter):
    """Counter({'binary': 2, 'empty': 1}) -> '2 binary, 1 empty'"""
    return ", ".join(f"{n} {what}" for what, n in sorted(counter.items()))


# --- 3. train the BPE, 4. encode, 5. write ----------------------------------------------------------

def make_ranks(docs, settings):
    """The tokenizer's mergeable ranks: a BPE trained on the train split only, so that val stays
    unseen, or GPT-2's vocabulary."""
    if settings["tokenizer"] == "gpt2":
        return gpt2_ranks()
    ranks = train_bpe([doc.text for doc in docs if doc.split == "train"], settings["vocab_size"])
    if len(ranks) < settings["vocab_size"]:
        print(f"warning: the training split only has enough distinct pairs for {len(ranks)} tokens, "
              f"not {settings['vocab_size']}; add files or lower --vocab_size", file=sys.stderr)
    return ranks


def encode(docs, enc):
    """Each split's token ids, as one uint16 array: every document followed by <|endoftext|>."""
    ids = {split: [] for split in SPLITS}
    for doc in tqdm(docs, desc="encoding", unit=" docs"):
        ids[doc.split].append(np.array(enc.encode_ordinary(doc.text) + [enc.eot_token], dtype=np.uint16))
    return {split: np.concatenate(ids[split]) for split in SPLITS}


def write_dataset(tmp_dir, docs, ranks, files_list, skipped, settings, corpus_sha256):
    """Save the tokenizer, encode every document into tmp_dir/{train,val}.bin, write the manifest
    (last, so its presence means the rest is complete) and return it."""
    name = settings["tokenizer"]
    tokenizer = save_tokenizer(tmp_dir, name, ranks, GPT2_PATTERN, corpus_sha256 if name == "bpe" else None)
    tokens = encode(docs, make_encoding(name, ranks, GPT2_PATTERN))
    fingerprint = hashlib.sha256((tmp_dir / RANKS_FILE).read_bytes() + (tmp_dir / META_FILE).read_bytes())
    for split in SPLITS:
        tokens[split].tofile(tmp_dir / f"{split}.bin")
        fingerprint.update(tokens[split].tobytes())
    manifest = {
        "format": FORMAT,
        "fingerprint": fingerprint.hexdigest()[:16],  # identifies the token streams + tokenizer
        "settings": settings,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "tokenizer": tokenizer,
        "corpus_sha256": corpus_sha256,
        "documents": {split: sum(doc.split == split for doc in docs) for split in SPLITS},
        "bytes": {split: sum(f["size"] for f in files_list if f["split"] == split) for split in SPLITS},
        "tokens": {split: len(tokens[split]) for split in SPLITS},
        "skipped": dict(skipped),
        "files": files_list,
    }
    (tmp_dir / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def remove_killed_builds(out_dir):
    """Delete the temporary folders (.NAME.tmp-PID) that killed builds of out_dir left behind: those
    whose process is gone. A build still running elsewhere keeps its folder."""
    prefix = f".{out_dir.name}.tmp-"
    for path in out_dir.parent.glob(glob.escape(prefix) + "*"):
        pid = re.fullmatch(r"(\d+)(-old)?", path.name[len(prefix):])  # -old: see move_into_place
        if pid and path.is_dir() and not is_running(int(pid[1])):
            shutil.rmtree(path, ignore_errors=True)


def is_running(pid):
    """Whether a process other than this one has this id."""
    if pid == os.getpid():
        return False  # the folder was left by an earlier, killed process that had our id
    try:
        os.kill(pid, 0)  # signal 0 sends nothing: it only checks that the process exists
        return True
    except PermissionError:
        return True  # it exists, and belongs to another user
    except (ProcessLookupError, OverflowError):  # gone, or no possible process id
        return False


def move_into_place(tmp_dir, out_dir):
    """Rename the finished tmp_dir to out_dir: readers see the old dataset or the new one, never a mix."""
    old = tmp_dir.with_name(tmp_dir.name + "-old")
    if out_dir.exists():
        out_dir.rename(old)
    tmp_dir.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)


def print_summary(out_dir, manifest, seconds):
    settings, tok = manifest["settings"], manifest["tokenizer"]
    what = f"{', '.join(settings['patterns'])} files" if settings["patterns"] else "documents"
    print(f"dataset {out_dir} from {settings['source']} ({what}), built in {seconds:.1f} s")
    print(f"  tokenizer {tok['name']}: {tok['n_vocab']} ids, <|endoftext|> = {tok['n_vocab'] - 1}")
    for split in SPLITS:
        docs, tokens = manifest["documents"][split], manifest["tokens"][split]
        bytes_per_token = manifest["bytes"][split] / (tokens - docs)  # without the <|endoftext|> separators
        print(f"  {split:5s} {docs:6d} docs {manifest['bytes'][split] / 1e6:7.2f} MB {tokens:10,d} tokens "
              f"{bytes_per_token:5.2f} bytes/token")
    if manifest["skipped"]:
        print(f"  skipped {counts_text(manifest['skipped'])} files")
    print(f"  fingerprint {manifest['fingerprint']}")


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):  # argparse prints the whole usage first; one line is easier to read
        self.exit(2, f"error: {message} (see python data/prepare.py --help)\n")


def main(argv=None):
    parser = OneLineParser(description="Build a nanoSAS dataset (token ids + tokenizer), offline.",
                           allow_abbrev=False)
    add = parser.add_argument
    add("--source", help="folder to read; hidden folders, __pycache__ and site-packages are skipped "
                         "(default: this Python's standard library, without its tests)")
    add("--patterns", default="*.py", help="comma-separated file-name patterns (default: %(default)s)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--name", help="dataset folder in data/ (default: stdlib, codeparrot or the --source "
                                      "folder's name)")
    where.add_argument("--out", help="dataset folder anywhere, instead of --name")
    add("--tokenizer", default="bpe", choices=["bpe", "gpt2"],
        help="bpe: train a small BPE on the train split; gpt2: GPT-2's vocabulary (default: %(default)s)")
    add("--vocab_size", type=int, default=4096,
        help=f"BPE tokens, <|endoftext|> excluded, {MIN_VOCAB}..{MAX_VOCAB} (default: %(default)s)")
    add("--val_fraction", type=float, default=0.05,
        help="share of files, picked by path hash, in the validation split (default: %(default)s)")
    add("--include_codecs", action="store_true",
        help="keep the standard library's encodings/ and pydoc_data/ (default: off)")
    add("--force", action="store_true", help="replace an existing dataset built differently (default: off)")
    add("--codeparrot", type=int, default=0,
        help="stream this many CodeParrot documents instead; needs `datasets` and network (default: off)")
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        flags = " ".join(f"--{name}" for name in vars(args))
        parser.error(f"unknown argument(s) {' '.join(unknown)}; valid flags: {flags}")

    if args.name is not None and not (args.name and is_name(args.name)):  # the rule train.py's --dataset follows
        parser.error(f"--name={args.name} is not a name: --name names a folder in data/ (e.g. --name=mine); to "
                     f"build anywhere else, give --out={args.name or 'DIR'}")
    name = args.name or ("codeparrot" if args.codeparrot else Path(args.source).expanduser().resolve().name
                         if args.source else DEFAULT_DATASET)
    out_dir = Path(args.out).expanduser().resolve() if args.out else DATA_DIR / name
    if Path.cwd().is_relative_to(out_dir):  # a build is renamed into place: the shell would be left in a husk
        parser.error(f"--out={args.out} is the current folder or holds it, which the build would replace; give a "
                     f"folder of its own, e.g. --out={Path(args.out) / 'ds'}")
    stops = [getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]
    previous = {signum: signal.signal(signum, stopped) for signum in stops}  # then as Ctrl-C: the build is removed
    try:
        prepare(out_dir, source=args.source, patterns=args.patterns, tokenizer=args.tokenizer,
                vocab_size=args.vocab_size, val_fraction=args.val_fraction,
                include_codecs=args.include_codecs, force=args.force, codeparrot=args.codeparrot)
    except (ConfigError, DataError, OSError) as e:  # 2 for a bad option, 1 for the rest, as every script
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2 if isinstance(e, ConfigError) else 1)
    except KeyboardInterrupt as e:  # 128 + the signal, as every script
        signum = e.args[0] if e.args else signal.SIGINT
        how = "interrupted by Ctrl-C" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"
        print(f"\nerror: {how}; nothing was built, and {out_dir} is as it was", file=sys.stderr)
        sys.exit(128 + signum)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def stopped(signum, frame):
    raise KeyboardInterrupt(signum)


if __name__ == "__main__":
    main()
