"""
Byte-level BPE tokenizers for nanoSAS, always run through tiktoken.

- train_bpe() learns a small vocabulary from text in seconds (not hours);
- save_tokenizer() / load_tokenizer() keep it in a dataset folder in tiktoken's rank format
  ("base64(token bytes) rank", one line per token) plus a JSON sidecar; load_tokenizer() returns
  the Tokenizer that train.py and sample.py use.

GPT-2's own vocabulary, an alternative to training one, is found by data/sources.py.

Nothing here downloads anything or writes into tiktoken's cache: the tiktoken.Encoding is built
directly from the ranks, and no global setting is changed.
"""
import base64
import hashlib
import heapq
import json
from collections import Counter, defaultdict
from itertools import pairwise
from pathlib import Path

import regex
import tiktoken
from tqdm import tqdm

from errors import DataError

# GPT-2's pre-tokenizer: text is cut into chunks (words with their leading space, numbers, runs of
# punctuation, runs of whitespace) and BPE never merges across chunk boundaries.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# Training cuts longer chunks into pieces of this many characters (see train_bpe). Code hardly has
# longer ones: the standard library's longest chunk is 80 characters, a comment ruler of #.
MAX_PIECE = 128
EOT = "<|endoftext|>"
RANKS_FILE = "tokenizer.tiktoken"
META_FILE = "tokenizer.json"


def train_bpe(texts, vocab_size, pattern=GPT2_PATTERN, progress=True):
    """Learn a byte-level BPE with `vocab_size` tokens (256 bytes + merges) from an iterable of texts.

    Returns tiktoken's mergeable ranks {token bytes: rank}: the 256 single bytes get ranks 0-255,
    then every new token gets the next rank in the order it was learned. tiktoken merges the pair
    whose result has the lowest rank first, so that order is exactly the merge priority.
    Equally frequent pairs are broken by the smallest (left id, right id): training is deterministic.
    """
    # 1. Pre-tokenise and count distinct chunks. 12 MB of code has only ~50k distinct chunks, so
    #    all the work below is done once per distinct chunk, weighted by how often it occurs.
    splitter = regex.compile(pattern)
    chunk_counts = Counter()
    for text in tqdm(texts, desc="bpe: splitting", unit=" docs", disable=not progress):
        chunk_counts.update(splitter.findall(text))
    # Every merge rewrites each word that holds its pair, so one long chunk (a line of minified code or
    # base64 without a space) is rewritten on nearly every merge: a 1 MB line of letters took ~40 minutes.
    # Cut into pieces of MAX_PIECE characters, a merge only rewrites the few pieces that hold its pair,
    # and training stays linear in the corpus size. Encoding needs no cut: tiktoken applies the learned
    # merges to whole chunks, and any sequence of tokens decodes back to its exact text.
    for chunk in [chunk for chunk in chunk_counts if len(chunk) > MAX_PIECE]:
        count = chunk_counts.pop(chunk)
        for start in range(0, len(chunk), MAX_PIECE):
            chunk_counts[chunk[start : start + MAX_PIECE]] += count
    words = [list(chunk.encode("utf-8")) for chunk in chunk_counts]  # each word: a list of token ids
    word_counts = list(chunk_counts.values())

    # 2. Count every adjacent pair once, and remember which words contain it.
    pair_counts = Counter()
    pair_words = defaultdict(set)
    for w, (word, count) in enumerate(zip(words, word_counts)):
        for pair in pairwise(word):
            pair_counts[pair] += count
            pair_words[pair].add(w)
    # A max-heap of (-count, pair). Counts change as we merge; rather than updating entries in
    # place we push a fresh entry on every change and skip the out-of-date ones when they surface.
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)

    vocab = [bytes([b]) for b in range(256)]  # token id -> bytes
    ranks = {token: i for i, token in enumerate(vocab)}
    bar = tqdm(total=vocab_size - 256, desc="bpe: merging", unit=" tokens", disable=not progress)
    while len(vocab) < vocab_size and heap:
        neg_count, pair = heapq.heappop(heap)
        if -neg_count != pair_counts[pair]:
            continue  # out of date: a newer entry holds this pair's current count
        merged = vocab[pair[0]] + vocab[pair[1]]
        new_id = ranks.get(merged)
        if new_id is None:  # usually; but "ab"+"c" can give a token that "a"+"bc" already made
            new_id = len(vocab)
            vocab.append(merged)
            ranks[merged] = new_id
            bar.update()
        # 3. Rewrite only the words that contain the pair, and update the counts of their pairs.
        deltas = Counter()
        for w in pair_words.pop(pair):
            old, count = words[w], word_counts[w]
            new = merge_pair(old, pair, new_id)
            if len(new) == len(old):
                continue  # the pair left this word in an earlier merge
            for p in pairwise(old):
                deltas[p] -= count
            for p in pairwise(new):
                deltas[p] += count
                pair_words[p].add(w)
            words[w] = new
        for p, delta in deltas.items():
            if delta:
                pair_counts[p] += delta
                if pair_counts[p] > 0:
                    heapq.heappush(heap, (-pair_counts[p], p))
    bar.close()
    return ranks


def merge_pair(word, pair, new_id):
    """Replace every occurrence of `pair` in the list `word`, left to right, with `new_id`."""
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and word[i] == pair[0] and word[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


def make_encoding(name, ranks, pattern):
    """A tiktoken.Encoding on `ranks`, with <|endoftext|> as the last id (= len(ranks))."""
    eot = len(ranks)
    return tiktoken.Encoding(name, pat_str=pattern, mergeable_ranks=ranks, special_tokens={EOT: eot},
                             explicit_n_vocab=eot + 1)


class Tokenizer:
    """encode / decode with a tiktoken.Encoding, under the names train.py and sample.py use."""

    def __init__(self, encoding):
        self.encoding = encoding
        self.vocab_size = encoding.n_vocab  # every id, <|endoftext|> included, e.g. 4097
        self.eot_token = encoding.eot_token

    def encode(self, text):
        """Token ids of ordinary text: a literal "<|endoftext|>" in it is text, not eot_token."""
        return self.encoding.encode_ordinary(text)

    def decode(self, ids):
        """Text of a sequence of token ids (a list, or a 1-D tensor)."""
        return self.encoding.decode([int(i) for i in ids])


def ranks_to_bytes(ranks):
    """tiktoken's rank format: one "base64(token bytes) rank" line per token, in rank order."""
    in_order = sorted(ranks.items(), key=lambda item: item[1])
    return b"".join(base64.b64encode(token) + b" %d\n" % rank for token, rank in in_order)


def ranks_from_bytes(data):
    """Inverse of ranks_to_bytes."""
    ranks = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def save_tokenizer(data_dir, name, ranks, pattern, corpus_sha256=None):
    """Write the rank file and its JSON sidecar into data_dir; return the sidecar's content."""
    ranks_bytes = ranks_to_bytes(ranks)
    meta = {
        "name": name,
        "pattern": pattern,
        "n_vocab": len(ranks) + 1,  # every id, <|endoftext|> included
        "special_tokens": {EOT: len(ranks)},
        "corpus_sha256": corpus_sha256,  # the file list the BPE was trained on (None for GPT-2)
        "ranks_sha256": hashlib.sha256(ranks_bytes).hexdigest(),
    }
    (Path(data_dir) / RANKS_FILE).write_bytes(ranks_bytes)
    (Path(data_dir) / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return meta


def load_tokenizer(data_dir):
    """The Tokenizer saved in a dataset folder (all that sample.py needs)."""
    data_dir = Path(data_dir)
    rebuild = "rebuild the dataset with `python data/prepare.py --force` and the options it was built with"
    if not (data_dir / META_FILE).is_file() or not (data_dir / RANKS_FILE).is_file():
        raise DataError(f"no tokenizer ({META_FILE}, {RANKS_FILE}) in {data_dir}; {rebuild}")
    ranks_bytes = (data_dir / RANKS_FILE).read_bytes()
    try:
        meta = json.loads((data_dir / META_FILE).read_text())
        name, pattern, ranks_sha256 = meta["name"], meta["pattern"], meta["ranks_sha256"]
    except (ValueError, KeyError, TypeError):  # truncated, not JSON, or a key missing
        raise DataError(f"{data_dir / META_FILE} is damaged (not the JSON prepare.py writes); {rebuild}") from None
    if hashlib.sha256(ranks_bytes).hexdigest() != ranks_sha256:
        raise DataError(f"{data_dir / RANKS_FILE} does not match {META_FILE}; {rebuild}")
    try:
        return Tokenizer(make_encoding(name, ranks_from_bytes(ranks_bytes), pattern))
    except (ValueError, TypeError) as e:  # a pattern that does not compile, a name that is not text
        raise DataError(f"{data_dir / META_FILE} is damaged ({(str(e).splitlines() or [''])[0]}); {rebuild}") from None
