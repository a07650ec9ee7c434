"""bench.py and compare.py at tiny sizes: their code paths, and how their numbers fit together."""

import json
import math
import re

import pytest
import torch

import bench
import compare
from errors import ConfigError
from hardware import ATTENTION_KERNELS
from helpers import TINY_MODEL, as_flags, recording_compile, run_script
from settings import parse_train_settings


def test_bench_measures_every_block_and_attention_form(capsys, monkeypatch, cpu_bf16):
    monkeypatch.setattr(bench, "HEADS", 2)  # attention on 2 heads of 16, not the paper's 12 of 64: a faster test
    monkeypatch.setattr(bench, "HEAD_SIZE", 16)
    cfg = bench.BenchConfig(shapes="2x32x2", blocks="pre_ln,sas,sas_p", batch_size=2, vocab_size=64, steps=3,
                            max_T=256, device="cpu")
    results = bench.bench(cfg)
    assert list(results) == ["throughput", "attention"]

    assert 0 < results["throughput"]["matmul_flops"] < math.inf
    rows = results["throughput"]["shapes"]["2x32x2"]["blocks"]
    assert list(rows) == ["pre_ln", "sas", "sas_p"]
    assert rows["pre_ln"]["vs_pre_ln"] == 1
    assert rows["sas"]["params"] < rows["pre_ln"]["params"]  # W_V and W_P are fixed to the identity
    for r in rows.values():
        assert r["attention"] in ATTENTION_KERNELS  # each block on the kernel train.py would pick for it
        assert 0 < r["seconds"] < math.inf and 0 < r["mfu"] < math.inf
        assert r["tokens_per_s"] == pytest.approx(cfg.batch_size * bench.TRAIN_T / r["seconds"])
        assert 0 < r["vs_pre_ln"] < math.inf  # the median of turn-by-turn ratios, not a ratio of medians
        assert r["first_step_seconds"] > 0
    assert rows["pre_ln"]["ceiling"] == 1 and rows["sas"]["ceiling"] > 1  # fewer matmul FLOPs per token

    assert list(results["attention"]) in (["float32"], ["float32", "bfloat16"])  # and the training dtype
    for by_T in results["attention"].values():
        assert list(by_T) == [128, 256]
        for measured in by_T.values():
            assert set(measured["auto"].values()) <= set(ATTENTION_KERNELS) and list(measured["auto"]) == ["plain",
                                                                                                            "shaped"]
            forms = measured["forms"]
            assert list(forms) == ["fused, plain", "fused, shaped", "explicit, plain", "explicit, shaped"]
            for r in forms.values():
                assert 0 < r["seconds"] < math.inf and r["memory"] > 0
            # the explicit kernel keeps T x T matrices, plain attention's and shaped attention's alike
            for form in ("plain", "shaped"):
                assert forms[f"explicit, {form}"]["memory"] > forms[f"fused, {form}"]["memory"]

    out = capsys.readouterr().out
    for name in [*rows, results["attention"]["float32"][128]["auto"]["plain"] + "*"]:
        assert f"  {name} " in out


def test_bench_profiles_where_a_step_spends_its_time(capsys):
    cfg = bench.BenchConfig(parts="profile", shapes="2x32x2", blocks="pre_ln,sas_p", batch_size=2, vocab_size=64,
                            steps=1, device="cpu", dtype="float32", attention="fused")
    groups = bench.bench(cfg)["profile"]["2x32x2"]
    assert list(groups) == ["pre_ln", "sas_p"]
    for block, ms in groups.items():
        assert ms["matmul"] > 0 and ms["attention (SDPA)"] > 0 and sum(ms.values()) > 0, block
    # only shaped attention takes a running mean (on the fused kernel: the explicit one builds the matrix)
    assert groups["pre_ln"]["running mean (cumsum, flip)"] == 0 < groups["sas_p"]["running mean (cumsum, flip)"]
    assert "ms per training step by operator group" in capsys.readouterr().out


def test_bench_compiles_every_model_afresh(monkeypatch):
    """More models than dynamo's recompile limit (lowered from 8 to 2 here, for speed): each must still run
    compiled, not fall back to eager. A recording backend (no code generation) keeps this fast."""
    compiled = recording_compile(monkeypatch)
    monkeypatch.setattr(torch._dynamo.config, "recompile_limit", 2)
    cfg = bench.BenchConfig(parts="throughput", shapes="1x32x2", blocks="pre_ln,sas,sas_p", batch_size=2,
                            vocab_size=64, steps=1, compile=True, device="cpu", dtype="float32")
    bench.bench(cfg)
    models = 3
    assert len(compiled) >= models  # at least one graph per model: none ran eager


def test_bench_keeps_what_it_printed_and_measured_in_its_report(tmp_path, capsys):
    assert bench.main(["--parts=throughput", "--shapes=2x32x2", "--blocks=pre_ln,sas", "--steps=1", "--batch_size=2",
                       "--vocab_size=64", "--device=cpu", "--dtype=float32", f"--report={tmp_path}"]) == 0
    printed = capsys.readouterr().out
    text = (tmp_path / "bench.txt").read_text()
    assert text.strip() in printed and "  sas " in text and "vs pre_ln: the median over turns" in text
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved["settings"]["blocks"] == "pre_ln,sas"
    assert list(saved["results"]["throughput"]["shapes"]["2x32x2"]["blocks"]) == ["pre_ln", "sas"]


def test_bench_refusal_from_the_command_line():
    result = run_script("bench.py", "--parts=foo")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "error: parts='foo': 'foo' is not valid; choose among: throughput, attention, profile\n"


def tiny_args(tiny_dataset, tmp_path, **overrides):
    """compare.py's arguments for a comparison of tiny runs."""
    return as_flags(dict(dataset=tiny_dataset, out_dir=tmp_path / "{block}", report=tmp_path, blocks="pre_ln,sas_p",
                         **TINY_MODEL, batch_size=4, max_steps=8, eval_interval=4, eval_windows=8, log_interval=2,
                         device="cpu", dtype="float32") | overrides)


def test_compare_trains_every_block_then_reuses_them(tiny_dataset, tmp_path):
    """Each run in a train.py of its own (the other compare.py tests train in this process)."""
    results = compare.compare(*compare.parse(tiny_args(tiny_dataset, tmp_path)))
    assert [r["block"] for r in results] == ["pre_ln", "sas_p"]
    assert results[1]["params"] < results[0]["params"]
    table = (tmp_path / "compare.md").read_text()
    assert "| pre_ln |" in table and "| sas_p |" in table and "+0.0%" in table
    saved = json.loads((tmp_path / "compare.json").read_text())
    assert [len(r["curve"]) for r in saved["results"]] == [2, 2]  # val loss at steps 4 and 8
    assert (tmp_path / "compare.png").stat().st_size > 0

    checkpoints = {block: (tmp_path / block / "ckpt.pt").stat().st_mtime_ns for block in ("pre_ln", "sas_p")}
    again = compare.compare(*compare.parse(tiny_args(tiny_dataset, tmp_path, log_interval=4)))
    assert again == results  # redrawn from the logs: nothing retrained
    assert {b: (tmp_path / b / "ckpt.pt").stat().st_mtime_ns for b in checkpoints} == checkpoints
    assert compare.markdown(json.loads((tmp_path / "compare.json").read_text())) == table  # the json is the report
    for block in checkpoints:  # results/ holds logs, not checkpoints: a finished run is reused from its log
        (tmp_path / block / "ckpt.pt").unlink()
    assert compare.compare(*compare.parse(tiny_args(tiny_dataset, tmp_path))) == results
    assert not any((tmp_path / block / "ckpt.pt").exists() for block in checkpoints)  # nothing retrained


def test_compare_over_seeds_reuses_the_first_and_shows_mean_and_spread(tiny_dataset, tmp_path, compare_trains_in_this_process):
    first, = compare.compare(*compare.parse(tiny_args(tiny_dataset, tmp_path, blocks="sas_p")))
    checkpoint = (tmp_path / "sas_p" / "ckpt.pt").stat().st_mtime_ns
    r, = compare.compare(*compare.parse(tiny_args(tiny_dataset, tmp_path, blocks="sas_p", seeds="1337,7")))
    assert (tmp_path / "sas_p" / "ckpt.pt").stat().st_mtime_ns == checkpoint  # seed 1337's run reused
    assert (tmp_path / "sas_p-seed7" / "ckpt.pt").exists()
    assert r["seeds"] == [1337, 7] and r["val_loss_by_seed"][0] == first["val_loss"]
    assert r["val_loss_by_seed"][0] != r["val_loss_by_seed"][1]  # another seed, another run
    assert r["val_loss"] == pytest.approx(sum(r["val_loss_by_seed"]) / 2)
    assert len(r["curves_by_seed"]) == 2 and len(r["curve"]) == 2
    low, high = sorted(r["val_loss_by_seed"])
    table = (tmp_path / "compare.md").read_text()
    assert f"{r['val_loss']:.3f} [{low:.3f}, {high:.3f}]" in table and "(seeds 1337, 7: mean [lowest, highest])" in table


def test_compare_sweeps_a_setting_with_a_row_per_value(tiny_dataset, tmp_path, compare_trains_in_this_process):
    results = compare.compare(*compare.parse(tiny_args(tiny_dataset, tmp_path, blocks="sas_p",
                                                       sweep="mlp_gain=0.1,0.4", plot=tmp_path / "sweep.png")))
    assert [r["group"] for r in results] == ["sas_p mlp_gain=0.1", "sas_p mlp_gain=0.4"]
    saved = {path.parent.name: compare.load_checkpoint(path)["config"]["mlp_gain"]
             for path in tmp_path.glob("*/ckpt.pt")}
    assert saved == {"sas_p": 0.1, "sas_p-mlp_gain0.4": 0.4}  # the settings' own value keeps the plain folder
    assert results[0]["val_loss"] != results[1]["val_loss"]
    assert (tmp_path / "sweep.png").stat().st_size > 0 and not (tmp_path / "compare.png").exists()


def test_compare_takes_its_settings_from_a_config_file_and_train_py_skips_them(tmp_path):
    """One file is one experiment: compare.py's settings beside train.py's, flags winning over both; the file sees
    each run's swept value (the depth preset picks beta_FF and the learning rate from n_layer); train.py reads the
    same file and skips compare.py's settings."""
    preset = tmp_path / "preset.py"
    preset.write_text('blocks = "pre_ln,no_attn_skip"\nseeds = "1337,7"\nsweep = "n_layer=2,8"\nreport = "out/x"\n'
                      'out_dir = "out/x/{block}"\nn_embd = 32\nmlp_gain = 0.2 if n_layer <= 2 else 0.1\n'
                      'learning_rate = 1e-4 if block == "no_attn_skip" and n_layer > 2 else 1e-3\n')
    cfg, runs = compare.parse([str(preset), "--seeds=1337"])
    assert (cfg.blocks, cfg.seeds, cfg.sweep, cfg.report) == ("pre_ln,no_attn_skip", "1337", "n_layer=2,8", "out/x")
    assert [(r.group, r.train.mlp_gain, r.train.learning_rate, str(r.train.run_dir)) for r in runs] == [
        ("pre_ln n_layer=2", 0.2, 1e-3, "out/x/pre_ln-n_layer2"), ("pre_ln n_layer=8", 0.1, 1e-3, "out/x/pre_ln-n_layer8"),
        ("no_attn_skip n_layer=2", 0.2, 1e-3, "out/x/no_attn_skip-n_layer2"),
        ("no_attn_skip n_layer=8", 0.1, 1e-4, "out/x/no_attn_skip-n_layer8")]
    assert all(r.train.n_embd == 32 for r in runs)
    assert parse_train_settings([str(preset), "--n_layer=8"]).mlp_gain == 0.1
    (tmp_path / "typo.py").write_text('blokcs = "pre_ln"\n')
    with pytest.raises(ConfigError, match="did you mean --blocks"):
        parse_train_settings([str(tmp_path / "typo.py")])
    usage = run_script("compare.py", "--help").stdout
    assert "A config file may set these and train.py's settings" in usage


def fake_result(block, swept, losses):
    """A result as group_results makes it, for the report's functions."""
    group = " ".join([block, *(f"{name}={value}" for name, value in swept.items())])
    return {"block": block, "group": group, "swept": swept, "seeds": list(range(len(losses))), "params": 2e6,
            "non_embedding_params": 1e6, "train_loss": None, "val_loss": sum(losses) / len(losses),
            "val_loss_by_seed": losses, "steps_per_sec": 2.0, "peak_memory": 2**20,
            "curve": [(10, 5.0, losses[0] + 1), (20, 10.0, losses[0])],
            "curves_by_seed": [[(10, 5.0, loss + 1), (20, 10.0, loss)] for loss in losses]}


def test_compare_crosses_two_swept_settings_into_a_table_by_value(tmp_path):
    cfg, runs = compare.parse(["--blocks=sas_vp", "--sweep=vp_gain=0,0.5 vp_base=identity,orthogonal",
                               f"--out_dir={tmp_path}/{{block}}"])
    assert [(r.group, r.train.run_dir.name) for r in runs] == [
        ("sas_vp vp_gain=0.0 vp_base=identity", "sas_vp-vp_gain0.0"),
        ("sas_vp vp_gain=0.0 vp_base=orthogonal", "sas_vp-vp_gain0.0-vp_baseorthogonal"),
        ("sas_vp vp_gain=0.5 vp_base=identity", "sas_vp-vp_gain0.5"),
        ("sas_vp vp_gain=0.5 vp_base=orthogonal", "sas_vp-vp_gain0.5-vp_baseorthogonal")]
    losses = ([5.0, 5.2], [6.0, 6.0], [5.5, 5.46], [6.6, 6.6])  # two seeds each
    results = [fake_result("sas_vp", r.swept, by_seed) for r, by_seed in zip(runs, losses)]
    report = {"settings": {"sweep": cfg.sweep, "speed": False}, "results": results}
    text = compare.markdown(report)
    assert "steps/s" not in text  # the runs shared the machine: no speed
    assert ("| block vp_base (seeds 0, 1: mean [lowest, highest]) | vp_gain=0.0 | vp_gain=0.5 | vp_gain=0.5 vs 0.0 |\n|---|---:|---:|---:|\n"
            "| sas_vp vp_base=identity | 5.100 [5.000, 5.200] | 5.480 [5.460, 5.500] | +7.5% [+5.0%, +10.0%] |\n"
            "| sas_vp vp_base=orthogonal | 6.000 [6.000, 6.000] | 6.600 [6.600, 6.600] | +10.0% [+10.0%, +10.0%] |"
            ) in text
    compare.plot(results, report["settings"], tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").stat().st_size > 0
    with pytest.raises(ConfigError, match="sweep one setting, or two"):
        compare.parse(["--sweep=mlp_gain=0.1,0.2 mlp_gain=0.3"])


def test_compare_refuses_to_mix_settings(tiny_dataset, tmp_path, compare_trains_in_this_process):
    compare.compare(*compare.parse(tiny_args(tiny_dataset, tmp_path, blocks="pre_ln")))
    with pytest.raises(compare.CheckpointError, match="other settings"):
        compare.compare(*compare.parse(tiny_args(tiny_dataset, tmp_path, blocks="pre_ln", learning_rate=0.01)))


@pytest.mark.parametrize("args, message", [
    (["--blocks=pre_ln,sasp"], "'sasp' is not valid; choose among: pre_ln"),
    (["--out_dir=out/same"], "out_dir must contain {block}"),
    (["--max_step=3"], "did you mean --max_steps?"),
    (["--seeds=1,1"], "give different whole numbers"),
    (["--seeds=one"], "give different whole numbers"),
    (["--sweep=mlp_gian=0.1"], "did you mean --mlp_gain?"),
    (["--sweep=seed=1,2"], "the seeds are compare.py's own setting: --seeds=1,2"),
    (["--sweep=mlp_gain"], "give the values after the name"),
    (["--sweep=mlp_gain=0.1,0.1"], "names a value twice"),
    (["--sweep=mlp_gain=big"], "expected a number"),
    (["--sweep=warmup_frac=0.1,2"], "warmup_frac must be in [0, 1)"),
])
def test_compare_bad_input(args, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        compare.parse(args)


def test_compare_refuses_a_run_made_on_another_device(tiny_dataset, tmp_path, monkeypatch, compare_trains_in_this_process):
    compare.compare(*compare.parse(tiny_args(tiny_dataset, tmp_path, blocks="pre_ln")))
    monkeypatch.setattr(compare, "device_name", lambda device: "NVIDIA H100 80GB HBM3")
    with pytest.raises(compare.CheckpointError, match="made on cpu in float32, and the others would run on NVIDIA"):
        compare.compare(*compare.parse(tiny_args(tiny_dataset, tmp_path, blocks="pre_ln")))


def test_bench_trains_float16_with_a_grad_scaler(monkeypatch):
    """As train.py does: a T4's step time includes scaling the loss and unscaling the gradients."""
    scaled = []

    class RecordingScaler(torch.amp.GradScaler):
        def scale(self, outputs):
            scaled.append(self.is_enabled())
            return super().scale(outputs)

    monkeypatch.setattr(torch.amp, "GradScaler", RecordingScaler)
    cfg = bench.BenchConfig(batch_size=2, vocab_size=64)
    for dtype in ("float16", "float32"):
        step, _ = bench.training_step("pre_ln", "1x32x2", cfg, "cpu", dtype)
        step()
    assert scaled == [True, False]


def test_bench_profiles_kernel_time_on_a_gpu():
    """On a CUDA GPU an operator's time is its kernels' time on the device, not the CPU's time to launch them."""
    event = type("Event", (), {"self_cpu_time_total": 5.0, "self_device_time_total": 80.0})
    assert bench.profiler_activities("cuda:0") == [torch.profiler.ProfilerActivity.CPU,
                                                   torch.profiler.ProfilerActivity.CUDA]
    assert bench.profiler_activities("cpu") == [torch.profiler.ProfilerActivity.CPU]
    assert bench.self_time(event, "cuda:0") == 80.0 and bench.self_time(event, "cpu") == 5.0
