"""
Generate text from a trained checkpoint, decoded with its dataset's own tokenizer.

    python sample.py                                   # from out/pre_ln/ckpt.pt
    python sample.py --block=sas_p --prompt="def fib(n):" --num_samples=3
    python sample.py --out_dir=out/mine --prompt=FILE:prompt.py --temperature=0.5
"""

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from common import run_main
from configurator import Settings, parse_config, setting
from errors import ConfigError
from hardware import pick_device, synchronize
from run_folder import load_trained_model, run_dir


@dataclass
class SampleConfig(Settings):
    block: str = setting("pre_ln", "fills {block} in out_dir")
    out_dir: str = setting("out/{block}", "the run folder holding ckpt.pt")
    prompt: str = setting("", "text to continue, or FILE:path to read it from a file; empty starts a new document")
    num_samples: int = setting(3, "how many samples to draw")
    max_new_tokens: int = setting(200, "tokens to generate per sample")
    temperature: float = setting(0.8, "below 1 is more conservative, above 1 more random")
    top_k: int = setting(200, "sample only among the k most likely tokens (0: all)")
    seed: int = setting(1337, "random seed: the same seed gives the same samples")
    kv_cache: bool = setting(True, "keep every layer's keys and values (a KV cache): each new token costs O(T), not "
                                   "O(T^2); the same tokens either way with --top_k=1")
    device: str = setting("auto", "auto, cpu, cuda, cuda:N or mps")

    def __post_init__(self):
        super().__post_init__()
        run_dir(self.out_dir, self.block)  # refuses a placeholder other than {block}


def read_prompt(prompt):
    if not prompt.startswith("FILE:"):
        return prompt
    path = Path(prompt[len("FILE:"):])
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read the prompt file {path}: {e}") from None


def sample(cfg):
    if cfg.max_new_tokens < 1 or cfg.num_samples < 1 or cfg.temperature <= 0 or cfg.top_k < 0:
        raise ConfigError("need max_new_tokens >= 1, num_samples >= 1, temperature > 0 and top_k >= 0")
    prompt = read_prompt(cfg.prompt)
    device = pick_device(cfg.device)
    model, dataset = load_trained_model(run_dir(cfg.out_dir, cfg.block))
    tokenizer = dataset.tokenizer
    model.to(device).eval()

    ids = tokenizer.encode(prompt) if prompt else [tokenizer.eot_token]
    idx = torch.tensor([ids] * cfg.num_samples, device=device)
    torch.manual_seed(cfg.seed)
    start = time.perf_counter()
    out = model.generate(idx, cfg.max_new_tokens, temperature=cfg.temperature, top_k=cfg.top_k or None,
                         kv_cache=cfg.kv_cache)
    synchronize(device)
    seconds = time.perf_counter() - start
    samples = [tokenizer.decode(row[len(ids):].tolist()) for row in out]
    for text in samples:
        print(prompt + text)
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
