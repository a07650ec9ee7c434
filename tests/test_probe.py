"""probe.py: its metrics on known inputs, rank collapse at 18 layers, the CLI, trained checkpoints, bad input."""

import json
import math

import pytest
import torch

import probe
import train
from blocks import BLOCKS
from blocks.parts import CausalSelfAttention, ShapedAttention, uniform_causal_matrix
from helpers import assert_one_line_error, run_script, tiny_flags
from settings import run_settings
from model import GPT, GPTConfig

N_LAYER = 18  # the paper's main depth


def probe_at_init(block, seed=0):
    """measure() on a narrow 18-layer model of this block at initialisation, on random tokens."""
    torch.manual_seed(seed)
    model = GPT(GPTConfig(block=block, vocab_size=64, block_size=64, n_layer=N_LAYER, n_head=4, n_embd=64))
    model.to(torch.float64).eval()  # as probe() measures
    idx = torch.randint(64, (4, 64), generator=torch.Generator().manual_seed(seed))
    return probe.measure(model, idx)


def test_cosine_similarity_of_identical_and_orthogonal_tokens():
    same = torch.randn(1, 1, 16).expand(2, 5, 16)  # every position holds the same vector
    assert probe.mean_cosine_similarity(same) == pytest.approx(1.0)
    orthogonal = torch.eye(5).expand(2, 5, 5) * 3.0
    assert probe.mean_cosine_similarity(orthogonal) == pytest.approx(0.0)


def test_centred_stable_rank_counts_the_directions_positions_differ_along():
    spread = torch.eye(5).expand(2, 5, 5) * 3.0 + 7.0  # 5 orthogonal positions on top of a shared mean
    assert probe.centred_stable_rank(spread) == pytest.approx(4.0)  # centring removes one direction
    g = torch.Generator().manual_seed(0)
    one_direction = torch.randn(2, 16, 1, generator=g) * torch.randn(1, 1, 8, generator=g) + 5.0
    assert probe.centred_stable_rank(one_direction) == pytest.approx(1.0)
    assert probe.mean_cosine_similarity(one_direction) > 0.9  # the shared mean fools the cosine


def test_entropy_of_the_uniform_causal_matrix_is_the_mean_of_log_t_plus_1():
    T = 50
    entropy = probe.attention_entropy(uniform_causal_matrix(T).expand(2, 3, T, T))
    assert entropy.shape == (3,)
    torch.testing.assert_close(entropy, torch.full((3,), sum(math.log(t + 1) for t in range(T)) / T))


def test_softmax_attention_is_the_matrix_the_module_applies():
    torch.manual_seed(0)
    B, T, C, nh = 2, 9, 12, 3
    attn = CausalSelfAttention(GPTConfig(n_embd=C, n_head=nh), layer_idx=1, identity_values=True)  # W_V = W_P = I
    torch.nn.init.normal_(attn.c_qk.weight, std=0.5)  # logits far from zero
    x = torch.randn(B, T, C)
    A = probe.softmax_attention(attn, x)  # (B, nh, T, T)
    heads = x.view(B, T, nh, C // nh).transpose(1, 2)  # (B, nh, T, hs)
    torch.testing.assert_close(attn(x), (A @ heads).transpose(1, 2).reshape(B, T, C))


def test_depths_shown_in_the_tables():
    assert probe.depths(18) == [0, 1, 2, 4, 8, 16, 18]
    assert probe.depths(16) == [0, 1, 2, 4, 8, 16]


def test_measure_returns_one_value_per_layer_and_head():
    stats = probe_at_init("sas_p")
    assert len(stats["cosine"]) == len(stats["rms"]) == N_LAYER + 1  # the embedding, then every block
    assert len(stats["entropy"]) == N_LAYER and all(len(heads) == 4 for heads in stats["entropy"])
    # zero queries: the softmax part of shaped attention is exactly C at init (§4.1)
    uniform = probe.attention_entropy(uniform_causal_matrix(64)[None, None]).item()
    assert stats["entropy"][5] == pytest.approx([uniform] * 4, abs=1e-5)


# Measured at this size (seeds 0-2): the unshaped control goes from ~0.75 at layer 1 to 1.000 at layer 18;
# sas, sas_p and no_attn_skip move by < 0.001 from their input's ~0.01; pre_ln ends at 0.64-0.71.


def test_unshaped_attention_collapses_with_depth():
    cosine = probe_at_init("no_attn_skip_unshaped")["cosine"]
    assert cosine[-1] > 0.99
    assert cosine[-1] > cosine[1] + 0.15


@pytest.mark.parametrize("block", ["no_attn_skip", "sas", "sas_p"])
def test_shaped_attention_keeps_tokens_apart(block):
    cosine = probe_at_init(block)["cosine"]
    assert abs(cosine[-1] - cosine[0]) < 0.02


def test_shaped_attention_check_fails_with_ordinary_attention(monkeypatch):
    monkeypatch.setattr(ShapedAttention, "attend", CausalSelfAttention.attend)  # softmax A only: no alpha I - gamma C
    cosine = probe_at_init("sas")["cosine"]
    assert abs(cosine[-1] - cosine[0]) > 0.5


def test_pre_ln_keeps_its_positions_apart_once_the_shared_mean_is_removed():
    """pre_ln's cosine similarity climbs with depth, but that is a mean vector shared by every position:
    centred, its positions still spread over several directions, where the unshaped block's collapse."""
    pre_ln, unshaped = (probe_at_init(block) for block in ("pre_ln", "no_attn_skip_unshaped"))
    assert pre_ln["cosine"][-1] > 0.5 and pre_ln["stable_rank"][-1] > 3
    assert unshaped["stable_rank"][-1] < 1.5


def test_a_deep_collapse_is_measured_in_float64_and_not_past_its_resolution():
    """48 layers of the unshaped control collapse geometrically. In float32 the centred energy stops falling at the
    rounding of the stream and the stable rank of that noise climbs back, showing less collapse the deeper the
    model; in float64 the energy goes on falling, the stable rank stays at 1, and below float64's resolution it is
    left out rather than measured on noise."""
    def control(dtype):
        torch.manual_seed(0)
        model = GPT(GPTConfig(block="no_attn_skip_unshaped", vocab_size=64, block_size=16, n_layer=48, n_head=2,
                              n_embd=32)).to(dtype).eval()
        return probe.measure(model, torch.randint(64, (4, 16), generator=torch.Generator().manual_seed(1)))

    single, double = control(torch.float32), control(torch.float64)
    assert min(single["centred_energy"]) > 1e-15 and single["stable_rank"][-1] > 1.5  # float32's floor
    assert double["centred_energy"][-1] < probe.RESOLUTION < double["centred_energy"][30]
    assert all(b < a for a, b in zip(double["centred_energy"][1:30], double["centred_energy"][2:31]))
    defined = [rank for rank in double["stable_rank"] if rank is not None]
    assert len(defined) > 30 and max(defined[8:]) < 1.05 and double["stable_rank"][-1] is None
    report = {"results": {"control": double}}
    assert "| control | " in probe.markdown(report) and "n/a" in probe.markdown(report)


def test_cli_writes_json_and_plot(tiny_dataset, tmp_path):
    result = run_script("probe.py", f"--dataset={tiny_dataset}", "--blocks=pre_ln,sas", "--n_layer=3", "--n_embd=32",
                        "--n_head=2", "--block_size=32", "--batch_size=2", f"--out={tmp_path}", "--device=cpu")
    assert result.returncode == 0, result.stderr
    assert "cosine similarity between positions" in result.stdout and "sas " in result.stdout
    report = json.loads((tmp_path / "init.json").read_text())
    assert set(report["results"]) == {"pre_ln", "sas"}
    assert len(report["results"]["sas"]["cosine"]) == 4 and len(report["results"]["sas"]["entropy"]) == 3
    assert len(report["results"]["sas"]["centred_energy"]) == 4
    assert (tmp_path / "init.png").stat().st_size > 0
    import probe
    assert (tmp_path / "init.md").read_text() == probe.markdown(report)  # the table a page copies
    assert "| sas | " in probe.markdown(report)


def test_checkpoint_probe_reports_learned_gains(tiny_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    train.train(*run_settings(tiny_flags(tiny_dataset, run, block="sas")))
    report = probe.probe(probe.ProbeConfig(checkpoints=str(run), out=str(tmp_path / "probe"), device="cpu"))
    gains = report["results"][str(run)]["gains"]
    assert len(gains) == 2  # tiny_flags trains 2 layers
    assert {"alpha", "beta", "gamma", "beta_sa", "alpha_ff", "beta_ff", "alpha_v", "beta_v"} == set(gains[0])
    assert "alpha_v" not in gains[1]  # only the first layer keeps trainable values
    mean, low, high = gains[1]["alpha"]
    assert low <= mean <= high
    assert gains[0]["beta_ff"] != pytest.approx(0.1, abs=1e-5)  # trained away from its init
    printed = capsys.readouterr().out
    assert "learned gains" in printed and "alpha_v=" in printed
    assert (tmp_path / "probe" / "trained.json").exists()


def test_every_figure_of_a_trained_run_is_drawn(tiny_dataset, tmp_path, capsys):
    """sas_vp has every kind of gain: per head, per branch, and W_V, W_P = alpha I + beta dW; and shaped attention."""
    run = tmp_path / "sas_vp"
    train.train(*run_settings(tiny_flags(tiny_dataset, run, block="sas_vp")))
    report = probe.probe(probe.ProbeConfig(checkpoints=str(run), out=str(tmp_path / "probe"), name="vp", device="cpu"))
    assert {"alpha_v", "beta_v", "alpha_p", "beta_p"} <= set(report["results"][str(run)]["gains"][1])
    assert "beta / alpha of W_V and W_P" in capsys.readouterr().out
    for figure in ("vp.png", "gains_sas_vp.png", "gains_over_training_sas_vp.png", "attention_sas_vp.png"):
        assert (tmp_path / "probe" / figure).stat().st_size > 0, figure
    assert (tmp_path / "probe" / "vp.json").exists()


def test_names_with_a_dot_keep_files_of_their_own(tiny_dataset, tmp_path):
    """--name=mlp_gain0.1, then --name=mlp_gain0.2: what follows the dot is a part of the name, not a file type."""
    for name in ("mlp_gain0.1", "mlp_gain0.2"):
        probe.probe(probe.ProbeConfig(dataset=tiny_dataset, blocks="pre_ln", n_layer=2, n_embd=32, n_head=2,
                                      block_size=32, batch_size=2, out=str(tmp_path), name=name, device="cpu"))
    assert sorted(path.name for path in tmp_path.iterdir()) == \
        [f"mlp_gain0.{i}.{kind}" for i in (1, 2) for kind in ("json", "md", "png")]


def test_runs_of_one_folder_name_keep_figures_of_their_own_and_no_blocks_means_every_block(tiny_dataset, tmp_path):
    """results/ladder/sas_p beside out/sas_p: the figures take as much of each path as tells the runs apart."""
    for parent in ("ladder", "out"):
        train.train(*run_settings(tiny_flags(tiny_dataset, tmp_path / parent / "sas_p", max_steps=2)))
    probe.probe(probe.ProbeConfig(checkpoints=f"{tmp_path}/ladder/sas_p,{tmp_path}/out/sas_p", out=str(tmp_path / "p"),
                                  device="cpu"))
    assert sorted(path.name for path in (tmp_path / "p").glob("gains_*")) == \
        ["gains_ladder-sas_p.png", "gains_out-sas_p.png", "gains_over_training_ladder-sas_p.png",
         "gains_over_training_out-sas_p.png"]
    assert probe.ProbeConfig(blocks="").block_list == list(BLOCKS)  # as compare.py's --blocks


def test_a_run_without_gains_or_shaped_attention_gets_only_its_signal_figure(tiny_dataset, tmp_path):
    run = tmp_path / "pre_ln"
    train.train(*run_settings(tiny_flags(tiny_dataset, run, block="pre_ln")))
    probe.probe(probe.ProbeConfig(checkpoints=str(run), out=str(tmp_path / "probe"), device="cpu"))
    assert sorted(path.name for path in (tmp_path / "probe").iterdir()) == ["trained.json", "trained.md", "trained.png"]


def test_shaped_attention_matrices_at_initialisation_are_c_and_the_identity():
    """W_Q = 0: the logits are 0, so A = C, and alpha = beta = gamma = 1 make the shaped matrix I (§4.1)."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(block="sas_p", vocab_size=64, block_size=16, n_layer=3, n_head=2, n_embd=32)).eval()
    A, C, matrix = probe.attention_matrices(model, torch.randint(64, (2, 16)), index=1)
    assert A.shape == C.shape == matrix.shape == (2, 16, 16)
    torch.testing.assert_close(A, C)
    torch.testing.assert_close(matrix, torch.eye(16).expand(2, 16, 16), rtol=0, atol=1e-6)


def test_a_block_outside_the_model_is_refused(tiny_dataset, tmp_path):
    run = tmp_path / "sas"
    train.train(*run_settings(tiny_flags(tiny_dataset, run, block="sas")))
    assert_one_line_error(run_script("probe.py", f"--checkpoints={run}", "--layer=3", f"--out={tmp_path}",
                                     "--device=cpu"), "--layer=3", "blocks 1 to 2")
