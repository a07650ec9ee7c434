"""tutorial.md and README.md, checked rather than trusted: every command and code block runs
(at tiny sizes: the test appends flags, and the last value of a flag wins; what it writes goes to
a temporary folder, not out/), every diff and every block file shown matches the files, every
table of results is a copy of the report a command wrote, every measured number in the prose is
the number in the file it came from, and CI runs exactly the README's test command.

How a page states a measured result, so that these tests can hold it to its source:
- a table, or a program's output: the file it was written to between two comments, copied whole
  (a file other than markdown inside a ```text block):
      <!-- table: results/ladder/compare.md -->
      ...the file's contents...
      <!-- end table -->
  compare.py writes compare.md from compare.json, probe.py NAME.md from NAME.json; both are checked
  against the JSON they come from.
- a number in a sentence: a comment line right after its paragraph names where it comes from,
      <!-- checked: 4.074 = result("ladder", "no_attn_skip")["val_loss"]; +6.8% = ... -->
  a Python expression over the committed results (see SOURCES) that, rounded as the number is
  written, must give the number; a % is a fraction times 100.
"""

import ast
import importlib.metadata
import json
import os
import re
import runpy
import shlex
import statistics
import sys
import textwrap
from pathlib import Path

import pytest

import bench
from helpers import ROOT, TINY_MODEL, as_flags, exit_status
from settings import parse_experiment_settings, parse_sweep
DOCS = ["tutorial.md", "README.md", "exercises/class_plan.md"]
PAGES = [*DOCS, "tutorial.ja.md"]  # every page that states measured results


def fenced_code(doc):
    """Every fenced block of a markdown file, as (language, contents), in order."""
    return re.findall(r"^```(\w*)\n(.*?)^```", (ROOT / doc).read_text(), flags=re.S | re.M)


def fenced_blocks(doc, language):
    """The contents of the ```language blocks of a markdown file, in order."""
    return [code for lang, code in fenced_code(doc) if lang == language]


def images(doc):
    """The paths of the images a markdown file shows, in order."""
    return re.findall(r"!\[[^]]*\]\(([^)]+)\)", (ROOT / doc).read_text())


def commands(doc):
    return [cmd.strip() for block in fenced_blocks(doc, "bash") for line in block.splitlines()
            for cmd in line.split("&&") if cmd.strip()]


def tiny_flags(script, tiny_dataset):
    """Flags that shrink a documented command to seconds; they go after the command's own, except those
    that name where it writes (in_tmp has moved those under tmp)."""
    model = as_flags(TINY_MODEL | {"device": "cpu"})
    run = as_flags(dict(dataset=tiny_dataset, batch_size=4, max_steps=4, eval_interval=2, eval_windows=4,
                        log_interval=1, dtype="float32", attention="fused"))
    return {
        "train.py": model + run + ["--overwrite"],
        "compare.py": model + run,
        "prepare.py": [f"--source={Path(tiny_dataset).parent / 'corpus'}", "--vocab_size=300", "--val_fraction=0.3"],
        "probe.py": ["--n_layer=3", "--n_embd=32", "--n_head=2", "--block_size=16", "--batch_size=2",
                     f"--dataset={tiny_dataset}", "--device=cpu"],
        "bench.py": ["--shapes=2x32x2", "--steps=1", "--batch_size=2", "--vocab_size=64",
                     "--max_T=128", "--device=cpu"],
        "sample.py": ["--num_samples=1", "--max_new_tokens=5", "--device=cpu"],
    }.get(script, [])


WRITES_TO = {  # where each script writes when a command does not say, under tmp
    "train.py": {"--out_dir": "out/{block}"}, "sample.py": {"--out_dir": "out/{block}"},
    "compare.py": {"--out_dir": "out/compare/{block}", "--report": "out/compare"}, "probe.py": {"--out": "out/probe"},
    "prepare.py": {"--out": "data/stdlib"},
}


def fewer_runs(args, script):
    """A compare.py command with one block, one seed and one value of each swept setting, whether its flags or its
    config files set the seeds and sweep: the same flags and code paths, as few runs as can show them
    (tests/test_bench_compare.py runs the many). Without --blocks it trains the blocks that later commands read."""
    if script != "compare.py":
        return args
    experiment = parse_experiment_settings([arg for arg in args if arg.endswith(".py") or arg.partition("=")[0] in
                                            ("--blocks", "--seeds", "--sweep")])
    shrunk = [arg for arg in args if arg.partition("=")[0] not in ("--blocks", "--seeds", "--sweep")]
    shrunk += [f"--seeds={experiment.seeds.split(',')[0]}",
               "--sweep=" + " ".join(f"{name}={values[0]}" for name, values in parse_sweep(experiment.sweep))]
    given = [arg.partition("=")[2] for arg in args if arg.startswith("--blocks=")]
    # without --blocks, the blocks that the probe of trained runs reads later: sas_p and sas_vp
    return shrunk + [f"--blocks={given[0].split(',')[0] if given else 'sas_p,sas_vp'}"]


def in_tmp(args, script, tmp):
    """The command's own arguments, writing and reading under tmp instead of the repository: its out/, results/
    and assets/ paths moved there, and the script's default folders too."""
    args = [re.sub(r"(?<=[=,])(out|results|assets)(?=/|,|$)", f"{tmp}/\\1", arg) for arg in args]
    given = {arg.partition("=")[0] for arg in args}
    return args + [f"{flag}={tmp}/{folder}" for flag, folder in WRITES_TO.get(script, {}).items() if flag not in given]


def figures(doc):
    """The images a markdown file shows from assets/, the figures the repository's commands draw, as paths from
    the repository's root."""
    paths = [os.path.normpath(Path(doc).parent / path) for path in images(doc)]
    return [path for path in paths if path.startswith("assets/")]


def test_documented_pip_install_matches_the_environment():
    """`pip install -r requirements.txt` is not run (a test must not change the environment):
    every pinned requirement must already be installed at its pinned version."""
    for doc in DOCS:
        assert "pip install -r requirements.txt" in commands(doc), doc
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            assert importlib.metadata.version(name).split("+")[0] == version, line  # "+cpu": the build


def run_in_this_process(argv):
    """Run a documented command, python SCRIPT ... or python -m MODULE ..., in this process, as its command line
    would (a script through its main and run_main): its exit status."""
    if argv[1] != "-m":
        return exit_status(Path(argv[1]).name, argv[2:])
    saved = sys.argv
    sys.argv = [argv[2], *argv[3:]]
    try:
        runpy.run_module(argv[2], run_name="__main__", alter_sys=True)
    except SystemExit as ended:
        return ended.code
    finally:
        sys.argv = saved
    return 0


def test_every_documented_command_runs(tiny_dataset, tmp_path, monkeypatch, capfd, compare_trains_in_this_process):
    """Every command of every doc, at tiny sizes, in one folder, in the order written (so that sample.py finds
    what train.py wrote before it); a command written in two docs runs once. In this process, as the command line
    would run it: a fresh interpreter for each would cost seconds apiece (tests/test_train.py and the others start
    each script once as a process). Then every figure a doc shows must have been drawn by one of them."""
    monkeypatch.setenv("NANOSAS_SOLUTIONS", "1")  # exercise checks must pass on the solutions
    monkeypatch.setattr(bench, "HEADS", 2)  # bench.py's attention part on 2 heads of 16, not the paper's 12 of 64
    monkeypatch.setattr(bench, "HEAD_SIZE", 16)
    ran = []
    for doc in DOCS:
        for command in commands(doc):
            argv = shlex.split(command)
            if argv[:2] == ["pip", "install"]:
                continue  # checked by test_documented_pip_install_matches_the_environment
            if argv[:3] == ["python", "-m", "pytest"] or command in ran:
                continue  # the test suite itself, which is running this (tests/test_exercises.py runs the checks)
            assert argv[0] == "python", f"{doc}: cannot run {command!r}"
            if argv[1] == "-m":  # a module: an exercise runs solved (a task is a stub); one that trains, tiny
                module = argv[2].replace("exercises.tasks.", "exercises.solutions.")
                script = "train.py" if any(arg.startswith("--max_steps=") for arg in argv) else module
                argv = ["python", "-m", module, *in_tmp(argv[3:], script, tmp_path), *tiny_flags(script, tiny_dataset)]
            else:
                script = Path(argv[1]).name
                argv = ["python", argv[1], *in_tmp(fewer_runs(argv[2:], script), script, tmp_path),
                        *tiny_flags(script, tiny_dataset)]
            status = run_in_this_process(argv)
            output = capfd.readouterr()
            assert status in (0, None), f"{doc}: {command}\n{output.out[-2000:]}\n{output.err[-2000:]}"
            ran.append(command)
    assert len(ran) > 10
    for doc in DOCS:  # every figure shown is drawn by a command shown
        for figure in figures(doc):
            assert (tmp_path / figure).stat().st_size > 0, f"{doc} shows {figure}, but no documented command draws it"


SHOWN = re.compile(r"^<!-- code: (\S+?)(?: (\S+))? -->\n```python\n(.*?)^```$", flags=re.S | re.M)


def source_of(path, name=""):
    """A file of the repository, or one class or function of it (Class.method for a method), dedented."""
    text = (ROOT / path).read_text()
    if not name:
        return text
    node = ast.parse(text)
    for part in name.split("."):
        node = next(n for n in node.body if getattr(n, "name", None) == part)
    first = min([node, *node.decorator_list], key=lambda n: n.lineno).lineno
    return textwrap.dedent("".join(text.splitlines(keepends=True)[first - 1:node.end_lineno]))


def test_every_file_shown_is_the_file():
    """A page shows a block's whole file, or a part of one, as <!-- code: blocks/sas.py --> (or
    <!-- code: blocks/parts.py ShapedAttention -->) followed by a python block: it must be the code as it is."""
    shown = 0
    for page in PAGES:
        for path, name, code in SHOWN.findall((ROOT / page).read_text()):
            assert code == source_of(path, name), f"{page} shows {path} {name}, which has changed: copy it in again"
            shown += 1
    assert shown >= 6


@pytest.mark.parametrize("doc", DOCS)
def test_every_python_block_runs(doc, monkeypatch):
    """Each python block a page shows, other than the repository's own code, runs as a script of its own would,
    from the repository's root (in this process, in a namespace of its own)."""
    monkeypatch.chdir(ROOT)
    shown = {code for _, _, code in SHOWN.findall((ROOT / doc).read_text())}  # the repository's own code
    for code in sorted(set(fenced_blocks(doc, "python")) - shown):
        try:
            exec(compile(code, f"<a python block of {doc}>", "exec"), {"__name__": "__main__"})
        except Exception as e:
            raise AssertionError(f"{doc}:\n{code}\n{type(e).__name__}: {e}") from e


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


def markdown_files():
    """Every markdown file of the repository."""
    return sorted(path for path in ROOT.rglob("*.md") if not any(part.startswith(".") for part in path.parts))


def test_math_renders_on_github():
    """GitHub applies Markdown's backslash escapes inside $...$ and $$...$$ before MathJax sees them, so \\, shows
    as a comma and \\{ as a brace (github/markup#1547). Its safe forms: a ```math block for a displayed equation,
    and $`...`$ inline. So no $$ at all, and no backslash before punctuation inside $...$."""
    for path in markdown_files():
        text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)  # code blocks, ```math ones too
        text = re.sub(r"\$`.*?`\$", "", text)  # math in the safe inline form
        text = re.sub(r"`[^`\n]*`", "", text)  # inline code
        assert "$$" not in text, f"{path.relative_to(ROOT)}: a $$ equation; write it as a ```math block"
        for math in re.findall(r"\$([^$\n]+)\$", text):
            assert not re.search(r"\\[^A-Za-z0-9\s]", math), \
                f"{path.relative_to(ROOT)}: ${math}$ has a backslash before punctuation; write it as $`...`$"


def test_ci_runs_exactly_the_readme_test_command():
    readme_commands = commands("README.md")
    ci_commands = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
                   if line.strip() and not line.startswith("#")]
    test_command = ci_commands[-1]
    assert test_command.startswith("python -m pytest")
    assert test_command in readme_commands[:3]  # the quickstart's second command
    assert "python -m pip install -r requirements.txt" in ci_commands


def test_the_japanese_tutorial_is_in_step_with_the_english_one():
    """tutorial.ja.md translates tutorial.md: the same code blocks (every command and output among them), the
    same figures in the same order, the same sections, plus its appendix mapping the reading group's slides."""
    english, japanese = "tutorial.md", "tutorial.ja.md"
    assert fenced_code(japanese) == fenced_code(english), "a code block differs: change both files alike"
    assert images(japanese) == images(english), "a figure differs: show the same figures in the same order"
    sections = [re.findall(r"^## (\d+)\.", (ROOT / doc).read_text(), flags=re.M) for doc in (english, japanese)]
    assert sections[0] == sections[1] and len(sections[0]) >= 9
    assert "## 付録" in (ROOT / japanese).read_text()
    assert "(tutorial.ja.md)" in (ROOT / english).read_text() and "(tutorial.md)" in (ROOT / japanese).read_text()


# -----------------------------------------------------------------------------
# measured results: every table and every checked number against the file it came from

TABLE = re.compile(r"^<!-- table: (\S+) -->\n(.*?)^<!-- end table -->$", flags=re.S | re.M)
CHECKED = re.compile(r"^<!-- checked: (.*?) -->$", flags=re.S | re.M)


def result(report, group):
    """The row `group` of results/REPORT/compare.json (a block, with its swept values: "pre_ln n_layer=72")."""
    results = json.loads((ROOT / "results" / report / "compare.json").read_text())["results"]
    return next(r for r in results if r["group"] == group)


def row(run, step, log="log.jsonl"):
    """results/RUN/log.jsonl's row at a step, the rows of one step merged (or gains.jsonl's, with log=)."""
    rows = [r for r in map(json.loads, (ROOT / "results" / run / log).read_text().splitlines()) if r["step"] == step]
    assert rows, f"results/{run}/{log} has no row at step {step}"
    return {key: value for r in rows for key, value in r.items()}


def probed(report, model):
    """What probe.py measured for a model (a block, or a run folder) in REPORT.json, e.g.
    probed("assets/signal_propagation_18", "pre_ln")."""
    return json.loads((ROOT / f"{report}.json").read_text())["results"][model]


def gains(run, step):
    """results/RUN/gains.jsonl's row at a step: every gain of the model, by parameter name."""
    return row(run, step, log="gains.jsonl")


def loss_at(report, group, step):
    """The validation loss of a row of results/REPORT/compare.json at a step (its curve: the mean over seeds)."""
    return next(loss for at, _, loss in result(report, group)["curve"] if at == step)


def vs(report, group, baseline="pre_ln"):
    """How far a row's final validation loss is from the baseline's, as a fraction: the mean over seeds of each
    seed's own difference, as compare.py's table gives it."""
    pairs = zip(result(report, group)["val_loss_by_seed"], result(report, baseline)["val_loss_by_seed"])
    return statistics.fmean(loss / base - 1 for loss, base in pairs)


def loaded(path):
    """A committed JSON file, such as bench.py's bench.json."""
    return json.loads((ROOT / path).read_text())


def number_in(path, pattern):
    """The number a regular expression's first group finds in a committed text file, such as a run's timing."""
    return float(re.search(pattern, (ROOT / path).read_text()).group(1).replace(",", ""))


SOURCES = {"loaded": loaded, "number_in": number_in, "result": result, "row": row, "gains": gains, "loss_at": loss_at,
           "vs": vs, "probed": probed, "mean": statistics.fmean, "min": min, "max": max}


def written_as(text, value):
    """Whether value, rounded as text writes a number (4.074, +6.8%, 0.79x, 1,600), gives text."""
    number = text.replace(",", "").rstrip("%x")
    value *= 100 if text.endswith("%") else 1
    decimals = len(number.partition(".")[2])
    return format(value, ("+" if number[0] in "+-" else "") + f".{decimals}f") == number


def test_every_table_of_results_is_a_copy_of_its_report():
    shown = 0
    for page in PAGES:
        text = (ROOT / page).read_text()
        for source, table in TABLE.findall(text):
            copy = (ROOT / source).read_text().strip()
            if not source.endswith(".md"):  # a program's output, shown as text
                copy = f"```text\n{copy}\n```"
            assert table.strip() == copy, f"{page}: the table from {source} differs from the file: copy it in again"
            shown += 1
        outside = TABLE.sub("", text)
        for header in re.findall(r"^\|.*\|$\n^\|[-:| ]+\|$", outside, flags=re.M):
            assert not re.search(r"val loss|tokens/s|stable rank|ms/step", header), \
                f"{page}: a table of measured results must be a report's copy (<!-- table: ... -->): {header}"
    assert shown >= 4


def test_every_report_is_what_its_json_makes():
    """compare.md and probe.py's NAME.md are generated from their JSON; a hand edit, or a JSON rewritten without
    its report, fails here."""
    import compare
    import probe

    checked = 0
    for path in sorted([*ROOT.glob("assets/*.json"), *ROOT.glob("results/*/*.json")]):
        report = json.loads(path.read_text())
        if path.name == "compare.json":
            assert compare.markdown(report) == path.with_suffix(".md").read_text(), path
        elif "uniform_entropy" in report:  # probe.py's
            assert probe.markdown(report) == path.with_suffix(".md").read_text(), path
        else:
            continue
        checked += 1
    assert checked >= 6


def test_every_checked_number_is_its_source():
    checked = 0
    for page in PAGES:
        text = (ROOT / page).read_text()
        for match in CHECKED.finditer(text):
            paragraph = text[:match.start()].rstrip("\n").rpartition("\n\n")[2]
            for claim in match.group(1).split(";"):
                number, _, expression = claim.strip().partition(" = ")
                assert number in paragraph, f"{page}: {number} is not in the paragraph before its check"
                value = eval(expression, dict(SOURCES))
                assert written_as(number, value), f"{page}: {number} is {value} ({expression})"
                checked += 1
    assert checked >= 10
