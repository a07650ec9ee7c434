"""
Signal propagation through the depth of a GPT: how token representations evolve block by block.

    python probe.py                                    # every block at initialisation, 18 layers
    python probe.py --n_layer=72 --blocks=no_attn_skip_unshaped,sas,sas_p
    python probe.py --checkpoints=out/pre_ln,out/sas_p # trained models, plus their learned gains

For each layer (layer 0 is the embedding, layer l the output of block l) it measures the mean
cosine similarity between token positions, the share of the stream's energy left once the positions'
shared mean is removed (the centred energy: 0 = rank collapse), the stable rank of what is left (1 =
the positions differ along one direction only; the cosine alone mistakes a large shared mean for
collapse), the RMS of the residual stream, and the entropy of each head's softmax attention. Without
its attention skip, ordinary attention averages tokens together at every layer and the
representations collapse with depth; shaped attention starts as the identity and does not (He &
Hofmann, §4.1). The model runs in float64 here: a collapse shrinks the positions' differences
geometrically with depth, and in float32 they drop below the rounding of the stream within about 24
layers, where the stable rank measures rounding noise. Even float64 runs out near 56 layers of the
unshaped control, so the stable rank is left out (None) where the centred energy is below
float64's resolution. Prints tables and writes
init.json / init.png (or trained.json / trained.png) into --out. With --checkpoints it also draws, for
each run: its learned gains per layer (gains_RUN.png) and over training (gains_over_training_RUN.png, from
the gains.jsonl train.py logs), and for a shaped block one layer's attention matrices A, C and
alpha I + beta A - gamma C at initialisation and after training (attention_RUN.png).
"""

import json
import statistics
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.nn import functional as F
from tqdm import tqdm

from blocks import BLOCKS
from blocks.parts import (IdentityPlusLinear, ShapedAttention, causal_softmax, shaped_attention_matrix,
                          uniform_causal_matrix)
from common import pyplot, run_main, writable_folder
from configurator import a_name, parse_config, positive, seed_range, setting
from data import dataset_dir, load_dataset
from errors import CheckpointError, ConfigError
from hardware import pick_device
from model import GPT, GPTConfig, ModelSettings
from run_folder import load_trained_model, read_log


@dataclass
class ProbeConfig(ModelSettings):  # the model's shape settings come from ModelSettings; deeper by default here
    n_layer: int = setting(18, "number of blocks (the paper: 18, and 72 in its depth experiment)")
    blocks: str = setting(",".join(BLOCKS), "comma-separated blocks to probe at initialisation", choices=BLOCKS,
                          each=True)
    checkpoints: str = setting("", "comma-separated run folders (e.g. out/pre_ln,out/sas_p): probe these trained "
                                   "models instead, and report their learned gains", each=True, path=True)
    batch_size: int = setting(16, "validation windows the measurements are averaged over", check=positive)
    dataset: str = setting("stdlib", "dataset for the windows: a folder name under data/, or a path with a slash "
                                     "(at init the tokens matter little; a checkpoint uses its own dataset)")
    out: str = setting("out/probe", "folder for the JSON of the raw numbers and the figures", path=True)
    name: str = setting("", "the JSON's and the signal propagation figure's name in --out (NAME.json, NAME.md, "
                            "NAME.png); empty: init, or trained with --checkpoints", check=a_name)
    layer: int = setting(0, "with --checkpoints: the block (1 to n_layer) whose attention matrices are drawn; "
                            "0: the middle one")
    seed: int = setting(1337, "seeds the initialisation: every block starts from the same seed", check=seed_range)
    device: str = setting("auto", "auto, cpu, cuda, cuda:N or mps")

    def __post_init__(self):
        super().__post_init__()
        dataset_dir(self.dataset)  # refuses a setting that names no dataset, before any work
        if self.block_size < 2:
            raise ConfigError("need block_size >= 2 (pairs of positions)")
        if self.layer < 0:
            raise ConfigError(f"--layer={self.layer}: give a block number from 1, or 0 for the middle block")
        if Path(self.name).suffix in (".json", ".md", ".png"):  # it would write NAME.json.json
            raise ConfigError(f"--name={self.name}: give the name without a file type, --name={Path(self.name).stem}; "
                              f"probe.py writes NAME.json, NAME.md and NAME.png")
        folders = [Path(folder).resolve() for folder in self.checkpoints.split(",")] if self.checkpoints else []
        if len(set(folders)) < len(folders):
            raise ConfigError(f"--checkpoints={self.checkpoints} names a run twice; name each run once")

    @property
    def block_list(self):
        """The blocks to probe at initialisation; every block if --blocks is empty (as compare.py's)."""
        return self.blocks.split(",") if self.blocks else list(BLOCKS)

    def model_config(self, block, vocab_size):
        return GPTConfig.of(self, block, vocab_size)


# -----------------------------------------------------------------------------
# measurements


def mean_cosine_similarity(x):
    """Mean cosine similarity between the T positions of x (B, T, C), diagonal excluded, averaged
    over the batch. 1 means every position points the same way: rank collapse (§4.1)."""
    T = x.size(1)
    unit = F.normalize(x.double(), dim=-1)
    gram = unit @ unit.transpose(1, 2)  # (B, T, T)
    off_diagonal = gram.sum(dim=(1, 2)) - gram.diagonal(dim1=1, dim2=2).sum(dim=-1)  # (B,)
    return (off_diagonal / (T * (T - 1))).mean().item()


# Below this centred energy the positions agree to about 13 significant digits: what is left of X_c is the rounding of
# the forward pass (about 1e-15 of the stream in float64), and its stable rank measures that noise, not the model.
RESOLUTION = (1000 * torch.finfo(torch.float64).eps) ** 2


def centred_energy(x):
    """The share of the energy of x (B, T, C) left once the mean over positions is removed: ||X_c||_F^2 / ||X||_F^2,
    averaged over the batch. 1 - (mean cosine) on a log scale, but without its floor: it goes on falling as long as
    the forward pass can represent the positions' differences, where 1 - cos stops at float64's 1e-16."""
    x = x.double()
    centred = x - x.mean(dim=1, keepdim=True)
    return (centred.pow(2).sum(dim=(1, 2)) / x.pow(2).sum(dim=(1, 2))).mean().item()


def centred_stable_rank(x):
    """How many directions the positions of x (B, T, C) spread over once their shared mean is removed:
    the stable rank ||X_c||_F^2 / ||X_c||_2^2 of X_c = X - (mean over positions), averaged over the batch.
    It lies between 1 (the positions differ along one direction only: collapse) and min(T, C). The cosine
    similarity cannot tell collapse from a large mean vector that every position shares; this can."""
    centred = x.double() - x.double().mean(dim=1, keepdim=True)  # (B, T, C)
    T, C = centred.shape[1:]
    # the squared singular values are the eigenvalues of the smaller Gram matrix: ten times faster than an SVD
    gram = centred @ centred.transpose(1, 2) if T <= C else centred.transpose(1, 2) @ centred
    squared_singular_values = torch.linalg.eigvalsh(gram)  # (B, min(T, C)), smallest first
    return (squared_singular_values.sum(dim=-1) / squared_singular_values[:, -1]).mean().item()


def softmax_attention(attn, x):
    """The softmax part A of an attention module's matrix for its input x (B, T, C): (B, nh, T, T).
    Standard and shaped attention share it; shaped attention adds alpha I - gamma C around it."""
    q, k, _ = attn.heads(x)  # (B, nh, T, hs)
    return causal_softmax(q, k)


def attention_entropy(A):
    """Per head entropy of the rows of A (B, nh, T, T), mean over the batch and the positions: (nh,).
    Row t of a causal matrix has t + 1 entries, so its entropy is at most log(t + 1); the uniform
    causal matrix C reaches that bound at every row."""
    return torch.special.entr(A.float()).sum(dim=-1).mean(dim=(0, 2))


@torch.no_grad()
def measure(model, idx):
    """One forward pass of model on idx (B, T); per layer, with layer 0 the embedding:
    cosine, centred_energy, stable_rank, rms (L + 1 floats each; stable_rank None below RESOLUTION) and
    entropy (L lists of nh floats, one per block). Run it on a float64 model (probe() does).
    Forward hooks read the residual stream and each attention module's input; the model is unchanged."""
    stats = {"cosine": [], "centred_energy": [], "stable_rank": [], "rms": [], "entropy": []}

    def record_stream(x):
        energy = centred_energy(x)
        stats["cosine"].append(mean_cosine_similarity(x))
        stats["centred_energy"].append(energy)
        stats["stable_rank"].append(centred_stable_rank(x) if energy > RESOLUTION else None)
        stats["rms"].append(x.double().pow(2).mean().sqrt().item())

    def record_attention(attn, args, out):
        stats["entropy"].append(attention_entropy(softmax_attention(attn, args[0])).tolist())

    hooks = [model.blocks[0].register_forward_pre_hook(lambda module, args: record_stream(args[0]))]
    for block in model.blocks:
        hooks.append(block.register_forward_hook(lambda module, args, out: record_stream(out)))
        hooks.append(block.attn.register_forward_hook(record_attention))
    try:
        model(idx)
    finally:
        for hook in hooks:
            hook.remove()
    return stats


@torch.no_grad()
def attention_matrices(model, idx, index):
    """A, C and alpha I + beta A - gamma C of the heads of shaped attention in model.blocks[index], for the first
    window of idx: three (nh, T, T) tensors. A forward pre-hook reads the attention's input; the model is unchanged."""
    attn, inputs = model.blocks[index].attn, []
    hook = attn.register_forward_pre_hook(lambda module, args: inputs.append(args[0]))
    try:
        model(idx[:1])
    finally:
        hook.remove()
    q, k, _ = attn.heads(inputs[0])  # (1, nh, T, hs)
    A = causal_softmax(q, k)[0]
    C = uniform_causal_matrix(q.size(-2), device=q.device).expand_as(A)
    return A, C, shaped_attention_matrix(q, k, attn.alpha, attn.beta, attn.gamma)[0]


def learned_gains(model):
    """Per block: [mean, min, max] of the per-head alpha, beta, gamma of shaped attention, the block's
    branch gains (beta_sa, alpha_ff, beta_ff) and the gains of W_V, W_P = alpha I + beta dW where they
    have that form (Eq. 6): alpha_v, beta_v (sas: the first block only), alpha_p, beta_p (sas_vp)."""
    rows = []
    for block in model.blocks:
        row = {}
        if isinstance(block.attn, ShapedAttention):
            for name in ("alpha", "beta", "gamma"):
                gain = getattr(block.attn, name)
                if gain is not None:  # v_skipinit has no gamma
                    row[name] = [gain.mean().item(), gain.min().item(), gain.max().item()]
        row |= {name: gain.item() for name, gain in block.named_parameters(recurse=False)}  # the branch gains
        for matrix, which in ((block.attn.c_v, "v"), (block.attn.c_proj, "p")):
            if isinstance(matrix, IdentityPlusLinear):
                row |= {f"alpha_{which}": matrix.alpha.item(), f"beta_{which}": matrix.beta.item()}
        rows.append(row)
    return rows


# -----------------------------------------------------------------------------
# models and windows


def models(cfg):
    """(name, model, windows) for every block cfg names at initialisation, or for every checkpoint
    (with windows from the dataset it was trained on)."""
    if cfg.checkpoints:
        for folder in cfg.checkpoints.split(","):
            model, dataset = load_trained_model(folder)
            yield folder, model, dataset.val_windows(model.config.block_size, cfg.batch_size)[0]
        return
    ds = load_dataset(cfg.dataset)
    idx, vocab_size = ds.val_windows(cfg.block_size, cfg.batch_size)[0], ds.vocab_size
    for block in cfg.block_list:
        torch.manual_seed(cfg.seed)  # the same seed for every block, as train.py does
        yield block, GPT(cfg.model_config(block, vocab_size)), idx


def probe(cfg):
    """Measure every block (or checkpoint) cfg names; print the tables, write the JSON and the plot."""
    device = pick_device(cfg.device)
    if device == "mps":  # the measurements are one float64 forward pass, which a CPU does in seconds
        print("note: probe.py measures in float64, which MPS does not have: it runs on the CPU")
        device = pick_device("cpu")
    folders = cfg.checkpoints.split(",") if cfg.checkpoints else []
    missing = [folder for folder in folders if not (Path(folder) / "ckpt.pt").is_file()]
    if missing:  # refuse before any work; --checkpoints names folders, not files
        raise CheckpointError(f"no checkpoint at {Path(missing[0]) / 'ckpt.pt'}; --checkpoints takes run folders "
                              f"of train.py, e.g. out/sas_p")
    for folder in folders:  # likewise a run that cannot be read (its weights, its data), or lacks --layer
        n_layer = load_trained_model(folder)[0].config.n_layer
        if cfg.layer > n_layer:
            raise ConfigError(f"--layer={cfg.layer}: {folder} has blocks 1 to {n_layer}")
    out = Path(cfg.out)
    writable_folder(out, "--out")  # likewise an --out it cannot write into
    results = {}
    for name, model, idx in tqdm(models(cfg), total=len(folders or cfg.block_list), desc="probing",
                                 unit="model"):
        model.to(device, torch.float64).eval()  # float64: see the top
        results[name] = {"block": model.config.block, **measure(model, idx.to(device))}
        if folders:
            results[name]["gains"] = learned_gains(model)
    uniform = attention_entropy(uniform_causal_matrix(idx.size(1))[None, None]).item()
    print_tables(results, uniform)
    name = cfg.name or ("trained" if folders else "init")  # (--name=mlp_gain0.1: ".1" is no file type)
    report = {"settings": asdict(cfg), "uniform_entropy": uniform, "results": results}
    (out / f"{name}.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / f"{name}.md").write_text(markdown(report))
    print(f"\nwrote {out / f'{name}.json'} and {out / f'{name}.md'}")
    plot(results, out / f"{name}.png")
    for folder, run in zip(folders, figure_names(folders)):
        draw_run(folder, run, cfg, out, device)
    return report


def figure_names(folders):
    """A name for each run's figures: its folder's name, or, where runs share one (results/ladder/sas_p and
    out/sas_p), as many of the folders above it as tell them apart (ladder-sas_p, out-sas_p)."""
    paths, names = [Path(folder).resolve().parts[1:] for folder in folders], []  # (without the root)
    for depth in range(1, max(map(len, paths), default=0) + 1):
        names = ["-".join(parts[-depth:]) for parts in paths]
        if len(set(names)) == len(names):
            break
    return names


def draw_run(folder, run, cfg, out, device):
    """The figures of one trained run (run: their name): its gains per layer and over training, and, for a shaped
    block, one layer's attention matrices at initialisation and after training, on the first validation window."""
    trained, dataset = load_trained_model(folder)
    trained.to(device).eval()
    if trained.gains():  # blocks with gains
        plot_learned_gains(trained, out / f"gains_{run}.png")
    if read_log(Path(folder) / "gains.jsonl"):
        plot_gains_over_training(folder, out / f"gains_over_training_{run}.png")
    if isinstance(trained.blocks[0].attn, ShapedAttention):
        torch.manual_seed(cfg.seed)
        initial = GPT(trained.config).to(device).eval()
        block = cfg.layer or (trained.config.n_layer + 1) // 2
        idx = dataset.val_windows(trained.config.block_size, 1)[0].to(device)
        plot_attention({"at initialisation": attention_matrices(initial, idx, block - 1),
                        "after training": attention_matrices(trained, idx, block - 1)}, block,
                       shaped_matrix_name(trained.blocks[0].attn), out / f"attention_{run}.png")


# -----------------------------------------------------------------------------
# output


def depths(n_layer):
    """The layers a table shows: 0, 1, 2, 4, 8, ... and the last."""
    shown = [0] + [2**i for i in range(n_layer.bit_length()) if 2**i < n_layer]
    return shown + [n_layer]


def print_table(title, rows, columns, fmt):
    """rows: {label: {layer: value}}; a missing layer leaves its cell blank, a value of None says n/a."""
    width = max(map(len, rows)) + 2
    print(f"\n{title}\n" + "layer".ljust(width) + "".join(f"{c:>8}" for c in columns))
    for label, cells in rows.items():
        print(label.ljust(width) + "".join(f"{format_cell(fmt, cells[c]) if c in cells else '':>8}" for c in columns))


def format_cell(fmt, value):
    return "n/a" if value is None else fmt.format(value)


def head_mean(entropy):
    """Each layer's entropy averaged over its heads."""
    return [sum(heads) / len(heads) for heads in entropy]


def print_tables(results, uniform):
    columns = depths(max(len(r["rms"]) for r in results.values()) - 1)
    print_table("cosine similarity between positions (1 = rank collapse)",
                {name: dict(enumerate(r["cosine"])) for name, r in results.items()}, columns, "{:.3f}")
    print_table("share of the energy left after removing the positions' mean (0 = rank collapse)",
                {name: dict(enumerate(r["centred_energy"])) for name, r in results.items()}, columns, "{:.2g}")
    print_table("stable rank of the positions after removing their mean (1 = rank collapse; n/a: below float64's "
                "resolution)", {name: dict(enumerate(r["stable_rank"])) for name, r in results.items()}, columns,
                "{:.2f}")
    print_table("RMS of the residual stream",
                {name: dict(enumerate(r["rms"])) for name, r in results.items()}, columns, "{:.3g}")
    print_table(f"softmax attention entropy, mean over heads and positions (uniform causal: {uniform:.3f})",
                {name: dict(enumerate(head_mean(r["entropy"]), start=1)) for name, r in results.items()}, columns,
                "{:.3f}")
    for name, r in results.items():
        if "gains" in r:
            print_gains(name, r["gains"])


def print_gains(name, gains):
    """The learned gains of the blocks at the table's depths; per-head gains as mean [min, max]."""
    shown = {key for row in gains for key in row}
    keys = [key for key in ("alpha", "beta", "gamma", "beta_sa", "alpha_ff", "beta_ff") if key in shown]
    if not keys:
        print(f"\n{name}: no learned gains")
        return
    print(f"\n{name}: learned gains (alpha, beta, gamma per head: mean [min, max])")
    print("block " + "".join(f"{key:>20}" for key in keys))
    for layer in depths(len(gains))[1:]:
        print(f"{layer:<6}" + "".join(f"{format_gain(gains[layer - 1][key]):>20}" for key in keys))
    if "alpha_p" in shown:  # sas_vp: W_V and W_P = alpha I + beta dW in every block
        print("beta / alpha of W_V and W_P = alpha I + beta dW (0: the identity; they start at vp_gain)")
        for layer in depths(len(gains))[1:]:
            row = gains[layer - 1]
            print(f"{layer:<6}{row['beta_v'] / row['alpha_v']:>20.3f}{row['beta_p'] / row['alpha_p']:>20.3f}")
    elif "alpha_v" in gains[0]:
        print(f"block 1 values W_V = alpha_v I + beta_v dW: alpha_v={gains[0]['alpha_v']:.3f}, "
              f"beta_v={gains[0]['beta_v']:.3f}")


def markdown(report):
    """NAME.md, from NAME.json's contents alone: each model's positions after the last block against the embedding
    (layer 0). The tables in tutorial.md are copies of it (tests/test_docs.py)."""
    lines = ["| block | cosine, layer 0 | cosine, last layer | centred stable rank, layer 0 | centred stable rank, "
             "last layer | residual RMS, last layer |", "|---|---:|---:|---:|---:|---:|"]
    for name, r in report["results"].items():
        first, last = (format_cell("{:.2f}", r["stable_rank"][i]) for i in (0, -1))
        cosines = f"{r['cosine'][0]:.3f} | {r['cosine'][-1]:.3f}"
        lines.append(f"| {name} | {cosines} | {first} | {last} | {r['rms'][-1]:.2f} |")
    layers = len(next(iter(report["results"].values()))["rms"]) - 1
    note = f"layer 0: the embedding; last layer: the output of block {layers}"
    if any(rank is None for r in report["results"].values() for rank in r["stable_rank"]):
        note += (f". n/a: the energy left after removing the positions' mean is below float64's resolution "
                 f"({RESOLUTION:.0e} of the stream's), so what is left is rounding, and its stable rank says nothing")
    return "\n".join(lines) + f"\n\n{note}\n"


def format_gain(value):
    """A scalar gain, or a per-head one as mean [min, max]."""
    return f"{value[0]:.2f} [{value[1]:.2f}, {value[2]:.2f}]" if isinstance(value, list) else f"{value:.3f}"


def plot(results, path):
    """One line per model in four panels against depth (layer 0: the embedding, layer l: block l's output):
    cosine similarity, centred energy, centred stable rank (a gap where it is n/a) and the residual stream's RMS.
    The attention entropy is in the tables and the JSON only (at initialisation it is within a few thousandths of
    the uniform matrix's in every block)."""
    plt = pyplot()
    fig, (cos_ax, energy_ax, rank_ax, rms_ax) = plt.subplots(1, 4, figsize=(20, 4.5))
    for i, (name, r) in enumerate(results.items()):
        style = {"label": name, "linestyle": ["-", "--", ":", "-."][i % 4]}  # blocks that coincide stay visible
        cos_ax.plot(r["cosine"], **style)
        energy_ax.plot(r["centred_energy"], **style)
        rank_ax.plot([float("nan") if rank is None else rank for rank in r["stable_rank"]], **style)
        rms_ax.plot(r["rms"], **style)
    cos_ax.set(title="cosine similarity between positions", xlabel="layer", ylim=(-0.05, 1.05))
    energy_ax.axhline(RESOLUTION, color="grey", linewidth=0.8, linestyle=":")
    energy_ax.annotate("float64's resolution", (0, RESOLUTION), xytext=(2, 3), textcoords="offset points",
                       fontsize="small", color="grey")
    energy_ax.set(title="energy left after removing the mean", xlabel="layer", yscale="log")
    rank_ax.set(title="stable rank after removing the mean", xlabel="layer", yscale="log")
    rms_ax.set(title="RMS of the residual stream", xlabel="layer", yscale="log")
    cos_ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path}")


def plot_gains_over_training(folder, path):
    """A run's gains over training, from the gains.jsonl train.py writes: per layer, shaped attention's alpha,
    beta, gamma (mean over heads), beta/alpha of W_V and W_P where they are alpha I + beta dW (sas_vp: do they
    stay the identity?), and the branch gains beta_SA, alpha_FF, beta_FF. One panel per quantity, one line
    per layer, from dark (the first layer) to yellow (the last)."""
    rows = read_log(Path(folder) / "gains.jsonl")
    n_layer = 1 + max(int(name.split(".")[1]) for name in rows[0] if name.startswith("blocks."))
    quantities = {  # title: the value of layer l in a row
        "alpha (mean over heads)": lambda row, l: statistics.fmean(row[f"blocks.{l}.attn.alpha"]),
        "beta (mean over heads)": lambda row, l: statistics.fmean(row[f"blocks.{l}.attn.beta"]),
        "gamma (mean over heads)": lambda row, l: statistics.fmean(row[f"blocks.{l}.attn.gamma"]),
        "W_V: beta / alpha": lambda row, l: row[f"blocks.{l}.attn.c_v.beta"] / row[f"blocks.{l}.attn.c_v.alpha"],
        "W_P: beta / alpha": lambda row, l: row[f"blocks.{l}.attn.c_proj.beta"] / row[f"blocks.{l}.attn.c_proj.alpha"],
        "beta_SA": lambda row, l: row[f"blocks.{l}.beta_sa"],
        "alpha_FF": lambda row, l: row[f"blocks.{l}.alpha_ff"],
        "beta_FF": lambda row, l: row[f"blocks.{l}.beta_ff"],
    }
    shown = {}
    for title, value in quantities.items():
        try:
            shown[title] = [[value(row, layer) for row in rows] for layer in range(n_layer)]
        except KeyError:  # this block has no such gain (in every layer)
            continue
    plt = pyplot()
    columns = min(4, len(shown))
    rows_of_panels = -(-len(shown) // columns)
    fig, axes = plt.subplots(rows_of_panels, columns, figsize=(4.2 * columns, 3.4 * rows_of_panels), squeeze=False)
    steps = [row["step"] for row in rows]
    colours = plt.get_cmap("viridis")
    for ax, (title, per_layer) in zip(axes.flat, shown.items()):
        for layer, values in enumerate(per_layer):
            ax.plot(steps, values, color=colours(layer / max(1, n_layer - 1)), label=f"block {layer + 1}")
        ax.set(title=title, xlabel="step")
        ax.axhline(0, color="grey", linewidth=0.5)
    for ax in axes.flat[len(shown):]:
        ax.axis("off")
    axes[0][0].legend(fontsize="x-small", ncol=2)
    fig.suptitle(f"gains over training: {folder}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")


def plot_learned_gains(model, path):
    """A trained model's gains per block: shaped attention's alpha, beta, gamma as heat maps (blocks down,
    heads across), the branch gains beta_SA, alpha_FF, beta_FF, and beta/alpha of W_V and W_P where they are
    alpha I + beta dW."""
    per_head = {name: torch.stack([getattr(block.attn, name).detach().cpu() for block in model.blocks]).numpy()
                for name in ("alpha", "beta", "gamma") if getattr(model.blocks[0].attn, name, None) is not None}
    branch = {name: [getattr(block, name).item() for block in model.blocks] for name in ("beta_sa", "alpha_ff", "beta_ff")
              if hasattr(model.blocks[0], name)}
    ratios = {f"W_{which}: beta / alpha": [(m.beta / m.alpha).item() for m in matrices]
              for which, matrices in (("V", [b.attn.c_v for b in model.blocks]), ("P", [b.attn.c_proj for b in model.blocks]))
              if all(isinstance(m, IdentityPlusLinear) for m in matrices)}
    plt = pyplot()
    panels = len(per_head) + bool(branch) + bool(ratios)
    fig, axes = plt.subplots(1, panels, figsize=(3.6 * panels, 4.2), squeeze=False)
    axes = iter(axes[0])
    layers = range(1, len(model.blocks) + 1)
    for name, values in per_head.items():  # (blocks, heads)
        ax = next(axes)
        image = ax.imshow(values, cmap="RdBu_r", vmin=0, vmax=2, aspect="auto",
                          extent=(0.5, values.shape[1] + 0.5, len(model.blocks) + 0.5, 0.5))
        ax.set(title=f"{name} (starts at {values_at_init(model, name)})", xlabel="head", ylabel="block")
        fig.colorbar(image, ax=ax, shrink=0.8)
    if branch:
        ax = next(axes)
        for name, values in branch.items():
            ax.plot(layers, values, marker="o", label=name)
        ax.set(title="branch gains", xlabel="block", xticks=layers)
        ax.legend(fontsize="small")
    if ratios:
        ax = next(axes)
        for name, values in ratios.items():
            ax.plot(layers, values, marker="o", label=name)
        ax.axhline(0, color="grey", linewidth=0.5)
        ax.set(title="beta / alpha (0: the identity)", xlabel="block", xticks=layers)
        ax.legend(fontsize="small")
    fig.suptitle(f"learned gains after training: {model.config.block}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")


def shaped_matrix_name(attn):
    return "alpha I + beta A" if attn.gamma is None else "alpha I + beta A - gamma C"


def values_at_init(model, name):
    """What a per-head gain of shaped attention starts at (GPT.init_weights): 1, but Eq. 4's beta 0."""
    return 0 if name == "beta" and model.blocks[0].attn.gamma is None else 1


def plot_attention(stages, block, matrix_name, path, positions=32):
    """Heat maps of one block's heads, the first `positions` positions: for each stage (at initialisation, after
    training), the softmax matrix A, the uniform causal matrix C and the shaped matrix (matrix_name: alpha I +
    beta A - gamma C, or Eq. 4's alpha I + beta A). stages: {title: (A, C, matrix)}, each (nh, T, T)."""
    plt = pyplot()
    n_head = next(iter(stages.values()))[0].size(0)
    names = ("A (softmax)", "C (uniform causal)", matrix_name)
    fig, axes = plt.subplots(len(stages) * 3, n_head, figsize=(2.2 * n_head + 1, 2.1 * 3 * len(stages)), squeeze=False)
    for s, (stage, matrices) in enumerate(stages.items()):
        for m, (name, matrix) in enumerate(zip(names, matrices)):
            row = 3 * s + m
            for h in range(n_head):
                ax = axes[row][h]
                shown = matrix[h, :positions, :positions].float().cpu().numpy()
                image = ax.imshow(shown, cmap="RdBu_r", vmin=-1, vmax=1)
                ax.set_xticks([])
                ax.set_yticks([])
                if row == 0:
                    ax.set_title(f"head {h + 1}", fontsize="small")
                if h == 0:
                    ax.set_ylabel(f"{name}\n{stage}", fontsize="small")
    fig.colorbar(image, ax=axes, shrink=0.5)
    fig.suptitle(f"block {block}: attention from each position (row) to the earlier ones (column), "
                 f"first {positions} positions")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    print(f"wrote {path}")


def main(argv):
    probe(parse_config(ProbeConfig, argv, "probe.py"))
    return 0


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
