"""plot_sweep.py: a sweep's final losses against the swept value, with another report's rows as reference lines."""

import json

from helpers import assert_error, exit_status, run_script


def write_report(folder, rows):
    """A compare.json holding only what plot_sweep.py reads: each row's block, group, swept values, seeds, losses
    and curve."""
    results = [{"block": block, "group": " ".join([block, *(f"{k}={v}" for k, v in swept.items())]),
                "swept": swept, "seeds": [1337, 1][:len(losses)], "val_loss": sum(losses) / len(losses),
                "val_loss_by_seed": losses, "curve": [(10, 1.0, losses[0])]} for block, swept, losses in rows]
    folder.mkdir(parents=True)
    (folder / "compare.json").write_text(json.dumps({"results": results}))
    return folder


def test_draws_the_sweep_with_its_reference_lines(tmp_path):
    sweep = write_report(tmp_path / "sweep", [
        ("sas_vp", {"vp_gain": value, "vp_base": base}, [loss, loss + 0.01])
        for base, offset in (("identity", 0.0), ("orthogonal", 0.1)) for value, loss in ((0.0, 5.0 + offset),
                                                                                          (1.0, 5.2 + offset))])
    references = write_report(tmp_path / "references", [("pre_ln", {}, [4.9]), ("no_attn_skip", {}, [5.4])])
    out = tmp_path / "figure" / "fig3.png"
    result = run_script("plot_sweep.py", f"--sweep={sweep}", f"--references={references}", f"--out={out}")
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size > 0 and f"wrote {out}" in result.stdout


def test_a_report_without_a_sweep_or_without_a_report_is_refused_in_one_line(tmp_path, capfd):
    plain = write_report(tmp_path / "plain", [("pre_ln", {}, [4.9])])
    assert_error(capfd, 2, exit_status("plot_sweep.py", [f"--sweep={plain}"]), "swept no setting")
    assert_error(capfd, 1, exit_status("plot_sweep.py", [f"--sweep={tmp_path / 'nowhere'}"]), "no report at")
    assert_error(capfd, 2, exit_status("plot_sweep.py", []), "--sweep")
