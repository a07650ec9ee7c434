"""
Generate text from a trained checkpoint, decoded with its dataset's own tokenizer.

    python sample.py                                   # from out/pre_ln/ckpt.pt
    python sample.py --block=sas_p --prompt="def fib(n):" --num_samples=3
    python sample.py --out_dir=out/mine --prompt=FILE:prompt.py --temperature=0.5
"""

import codecs
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from common import lower_if_out_of_memory, run_main
from configurator import Settings, above, at_least, parse_config, positive, seed_range, setting
from errors import ConfigError
from hardware import pick_device, synchronize
from run_folder import load_trained_model, run_dir


@dataclass
class SampleConfig(Settings):
    block: str = setting("pre_ln", "fills {block} in out_dir")
    out_dir: str = setting("out/{block}", "the run folder holding ckpt.pt", path=True)
    prompt: str = setting("", "text to continue, or FILE:path to read it from a file; empty starts a new document")
    num_samples: int = setting(3, "how many samples to draw", check=positive)
    max_new_tokens: int = setting(200, "tokens to generate per sample", check=positive)
    temperature: float = setting(0.8, "below 1 is more conservative, above 1 more random; the lowest always picks "
                                      "the likeliest token", check=above(0))
    top_k: int = setting(200, "sample only among the k most likely tokens (0: all)", check=at_least(0))
    seed: int = setting(1337, "random seed: the same seed gives the same samples", check=seed_range)
    kv_cache: bool = setting(True, "keep every layer's keys and values (a KV cache): each new token costs O(T), not "
                                   "O(T^2); the same tokens either way with --top_k=1")
    device: str = setting("auto", "auto, cpu, cuda, cuda:N or mps")

    def __post_init__(self):
        super().__post_init__()
        run_dir(self.out_dir, self.block)  # refuses a placeholder other than {block}


def read_prompt(prompt):
    if not prompt.startswith("FILE:"):
        return prompt
    path = Path(prompt[len("FILE:"):]).expanduser()
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read the prompt file {path}: {e}") from None


def sample(cfg):
    prompt = read_prompt(cfg.prompt)
    device = pick_device(cfg.device)
    model, dataset = load_trained_model(run_dir(cfg.out_dir, cfg.block))
    tokenizer = dataset.tokenizer
    model.to(device).eval()

    ids = tokenizer.encode(prompt) if prompt else [tokenizer.eot_token]
    torch.manual_seed(cfg.seed)
    start = time.perf_counter()
    with lower_if_out_of_memory(f"lower --num_samples={cfg.num_samples} (or --max_new_tokens)"):
        idx = torch.tensor([ids], device=device).expand(cfg.num_samples, -1)
        out = model.generate(idx, cfg.max_new_tokens, temperature=cfg.temperature, top_k=cfg.top_k or None,
                             kv_cache=cfg.kv_cache)
    synchronize(device)
    seconds = time.perf_counter() - start
    samples = [tokenizer.decode(row[len(ids):].tolist()) for row in out]
    # as this terminal can show them: a character its encoding (ASCII, a narrow locale's) lacks as an escape
    encoding = sys.stdout.encoding or "utf-8"
    shown = [(prompt + text).encode(encoding, "backslashreplace").decode(encoding) for text in samples]
    if shown != [prompt + text for text in samples]:
        why = ("the prompt holds bytes that are not UTF-8 text" if codecs.lookup(encoding).name == "utf-8" else
               f"this terminal's encoding ({encoding}) cannot show every character of the samples")
        print(f"note: {why}: those characters are written as backslash escapes"
              + ("" if why.startswith("the prompt") else " (PYTHONIOENCODING=utf-8 shows them)"), file=sys.stderr)
    for text in shown:
        print(text)
        print("-" * 40)
    generated = cfg.num_samples * cfg.max_new_tokens
    print(f"generated {generated:,} tokens in {seconds:.2f} s: {generated / seconds:,.0f} tokens/s "
          f"({'with' if cfg.kv_cache else 'without'} a KV cache)", file=sys.stderr)
    return samples


def main(argv):
    sample(parse_config(SampleConfig, argv, "sample.py"))
    return 0


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
