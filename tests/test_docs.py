"""tutorial.md and README.md, checked rather than trusted: every command and code block runs
(at tiny sizes: the test appends flags, and the last value of a flag wins; what it writes goes to
a temporary folder, not out/), every diff matches the files, and CI runs exactly the README's
test command."""

import importlib.metadata
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
DOCS = ["tutorial.md", "README.md"]


def fenced_blocks(doc, language):
    """The contents of the ```language blocks of a markdown file, in order."""
    text = (ROOT / doc).read_text()
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.S | re.M)


def commands(doc):
    return [cmd.strip() for block in fenced_blocks(doc, "bash") for line in block.splitlines()
            for cmd in line.split("&&") if cmd.strip()]


def tiny_flags(script, tiny_dataset, tmp):
    """Flags that shrink a documented command to seconds; they go after the command's own."""
    model = ["--n_layer=2", "--n_embd=32", "--n_head=2", "--block_size=32", "--device=cpu"]
    run = [f"--dataset={tiny_dataset}", "--batch_size=4", "--max_steps=4", "--eval_interval=2", "--eval_windows=4",
           "--log_interval=1", "--dtype=float32"]
    return {
        "train.py": model + run + ["--overwrite"],
        "compare.py": model + run + [f"--out_dir={tmp}/compare/{{block}}", f"--report={tmp}/compare",
                                     "--blocks=pre_ln,sas_p"],
        "probe.py": ["--n_layer=3", "--n_embd=32", "--n_head=2", "--block_size=16", "--batch_size=2",
                     f"--dataset={tiny_dataset}", f"--out={tmp}/probe", "--device=cpu"],
        "bench.py": ["--shapes=2x32x2", "--steps=1", "--batch_size=2", "--vocab_size=64",
                     "--max_T=128", "--device=cpu"],
        "sample.py": ["--num_samples=1", "--max_new_tokens=5", "--device=cpu"],
    }.get(script, [])


def in_tmp(args, script, tmp):
    """The command's own arguments, writing and reading its runs under tmp instead of out/."""
    args = [re.sub(r"(?<=[=,])out/", f"{tmp}/out/", arg) for arg in args]
    if script in ("train.py", "sample.py") and not any(arg.startswith("--out_dir=") for arg in args):
        args.append(f"--out_dir={tmp}/out/{{block}}")  # where train.py's default out/{block} would be
    return args


def test_documented_pip_install_matches_the_environment():
    """`pip install -r requirements.txt` is not run (a test must not change the environment):
    every pinned requirement must already be installed at its pinned version."""
    for doc in DOCS:
        assert "pip install -r requirements.txt" in commands(doc), doc
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            assert importlib.metadata.version(name).split("+")[0] == version, line  # "+cpu": the build


@pytest.mark.parametrize("doc", DOCS)
def test_every_documented_command_runs(doc, tiny_dataset, tmp_path):
    """Run in the order written, so sample.py finds what train.py wrote before it."""
    env = os.environ | {"NANOSAS_SOLUTIONS": "1"}  # exercise checks must pass on the solutions
    ran = 0
    for command in commands(doc):
        argv = shlex.split(command)
        if argv[:2] == ["pip", "install"]:
            continue  # checked by test_documented_pip_install_matches_the_environment
        if argv == ["python", "-m", "pytest", "-q"]:
            continue  # the test suite itself, which is running this
        assert argv[0] == "python", f"{doc}: cannot run {command!r}"
        script = Path(argv[1]).name
        args = in_tmp(argv[2:], script, tmp_path) + tiny_flags(script, tiny_dataset, tmp_path)
        argv = [sys.executable, argv[1], *args]
        result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{doc}: {command}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        ran += 1
    assert ran > 0


@pytest.mark.parametrize("doc", DOCS)
def test_every_python_block_runs(doc):
    for code in fenced_blocks(doc, "python"):
        result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                                timeout=300, env=os.environ | {"PYTHONPATH": str(ROOT)})
        assert result.returncode == 0, f"{doc}:\n{code}\n{result.stderr[-2000:]}"


def test_tutorial_diffs_match_the_block_files():
    """Each ```diff block names its two files; its - lines are in the old file, its + lines in the new."""
    diffs = fenced_blocks("tutorial.md", "diff")
    assert len(diffs) >= 4
    for diff in diffs:
        lines = diff.splitlines()
        old_lines, new_lines = ((ROOT / line[4:]).read_text().splitlines() for line in lines[:2])  # --- a, +++ b
        for line in lines[2:]:
            if line.startswith("-"):
                assert line[1:] in old_lines and line[1:] not in new_lines, line
            elif line.startswith("+"):
                assert line[1:] in new_lines and line[1:] not in old_lines, line


def test_ci_runs_exactly_the_readme_test_command():
    readme_commands = commands("README.md")
    ci_commands = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
                   if line.strip() and not line.startswith("#")]
    test_command = ci_commands[-1]
    assert test_command.startswith("python -m pytest")
    assert test_command in readme_commands[:3]  # the quickstart's second command
    assert "python -m pip install -r requirements.txt" in ci_commands
