"""Bad input to every script, table-driven: each case must exit non-zero with exactly one line on stderr,
`error: ...` naming what was wrong, no traceback, and leave every file of the dataset and run folders as it
was. Scripts run in this process through the same entry points as on the command line (run_main, or
prepare.py's argparse main), so the table stays fast; tests/test_train.py runs one of them as a process."""

import re
import shutil

import numpy as np
import pytest
import torch

import compare
import train
from data import DATA_DIR
from helpers import exit_status, snapshot, tiny_flags, trains_in_this_process
from settings import run_settings


@pytest.fixture(scope="module")
def place(tiny_dataset, tmp_path_factory):
    """A dataset, a finished run, broken copies of the dataset, and a few files to point scripts at."""
    root = tmp_path_factory.mktemp("bad_input")
    train.train(*run_settings(tiny_flags(tiny_dataset, root / "run", max_steps=2)))
    broken = {}
    for damage in ("ids", "tokenizer"):
        broken[damage] = root / f"broken_{damage}"
        shutil.copytree(tiny_dataset, broken[damage])
    ids = np.memmap(broken["ids"] / "train.bin", dtype=np.uint16, mode="r+")
    ids[5] = 60000  # an id the vocabulary does not have
    ids.flush()
    (broken["tokenizer"] / "tokenizer.json").write_text('{"name": "bpe", "pattern"')  # truncated
    (root / "syntax.py").write_text("n_layer = = 3\n")
    (root / "raises.py").write_text("n_layer = 1 / 0\n")
    (root / "exits.py").write_text("import os\nn_layer = 3\nos._exit(0)\n")  # would end train.py without a word
    (root / "latin1.py").write_bytes(b"# caf\xe9\nn_layer = 3\n")
    (root / "a_file").write_text("not a folder")
    place = {"data": tiny_dataset, "root": root, "run": root / "run", "data_package": DATA_DIR,
             **{f"broken_{k}": v for k, v in broken.items()}}
    (root / "foreign").mkdir()
    torch.save({"hello": 1}, root / "foreign" / "ckpt.pt")  # a torch file, not a checkpoint of train.py
    log = (root / "run" / "log.jsonl").read_bytes()
    for damage, line in (("not_utf8_log", b"\xff\xfe\n"), ("not_a_row_log", b"[1, 2]\n")):  # not what a kill leaves
        place[damage] = shutil.copytree(root / "run", root / damage)
        (place[damage] / "log.jsonl").write_bytes(log + line + log)
    with pytest.MonkeyPatch.context() as patch:
        trains_in_this_process(patch, compare)
        compare.compare(*compare.parse([arg.format(**place) for arg in COMPARE_FLAGS]))
    diverged = shutil.copytree(root / "compare" / "pre_ln", root / "diverged" / "pre_ln")  # as an earlier train.py
    (diverged / "ckpt.pt").unlink()  # (reused from its log, as results/ holds runs)
    (diverged / "log.jsonl").write_text(re.sub(r'"val_loss": [^,]*', '"val_loss": NaN', (diverged / "log.jsonl")
                                               .read_text()))
    (root / "compare" / "pre_ln" / "log.jsonl").unlink()  # a finished block whose log went missing
    place["nan_weights"] = shutil.copytree(root / "run", root / "nan_weights")
    ckpt = torch.load(root / "run" / "ckpt.pt", weights_only=True)
    ckpt["model"]["lm_head.weight"][0, 0] = float("nan")  # saved by a diverged run of an earlier train.py
    torch.save(ckpt, place["nan_weights"] / "ckpt.pt")
    (root / "damaged" / "pre_ln").mkdir(parents=True)
    (root / "damaged" / "pre_ln" / "config.json").write_text('{"max_steps": ')  # no checkpoint, a torn record
    return place


COMPARE_FLAGS = ["--dataset={data}", "--blocks=pre_ln", "--out_dir={root}/compare/{{block}}", "--report={root}/compare",
                 "--max_steps=2", "--n_layer=2", "--n_head=2", "--n_embd=32", "--block_size=32", "--batch_size=4",
                 "--eval_windows=8", "--device=cpu", "--dtype=float32"]


T = "train.py"
CASES = [  # (script, arguments with {placeholders} from `place`, a hint the error line must hold, exit status)
    (T, ["--blok=sas"], "did you mean --block?", 2),
    (T, ["--block=sasp"], "block='sasp' is not valid", 2),
    (T, ["--max_steps=ten"], "expected an integer", 2),
    (T, ["--max_steps"], "--max_steps needs a value", 2),
    (T, ["--compile=maybe"], "expected true or false", 2),
    (T, ["positional"], "cannot read argument 'positional'", 2),
    (T, ["--dtype=fp8"], "dtype='fp8' is not valid", 2),
    (T, ["--attention=flash"], "attention='flash' is not valid; choose one of: auto, fused, explicit", 2),
    (T, ["--device=gpu"], "--device=gpu is not a device", 2),
    (T, ["--device=cuda:99"], "--device=cuda:99", 2),  # no GPU here, or not that many: either way refused
    (T, ["--n_embd=30", "--n_head=4"], "n_embd=30 must be divisible by n_head=4", 2),
    (T, ["--batch_size=0"], "batch_size must be a positive integer", 2),
    (T, ["--learning_rate=-1"], "learning_rate must be > 0", 2),
    (T, ["--learning_rate=nan"], "must be a finite number", 2),
    (T, ["--learning_rate=inf"], "must be a finite number", 2),
    (T, ["--beta1=1.5"], "beta1 must be in [0, 1)", 2),
    (T, ["--beta2=-0.1"], "beta2 must be in [0, 1)", 2),
    (T, ["--seed=18446744073709551616"], "seed must be a whole number from -2**63 to 2**64 - 1", 2),
    (T, ["--eps=-1"], "eps must be > 0", 2),
    (T, ["--weight_decay=-1"], "weight_decay must be >= 0", 2),
    (T, ["--grad_clip=-1"], "grad_clip must be >= 0", 2),
    (T, ["--warmup_frac=1"], "warmup_frac must be in [0, 1)", 2),
    (T, ["--mlp_gain=nan"], "must be a finite number", 2),
    (T, ["--out_dir={root}/new/{{foo}}"], "the only placeholder it may hold is {block}", 2),
    (T, ["--out_dir={root}/a_file/run"], "cannot create --out_dir", 2),
    (T, ["{root}/nonexistent.py"], "cannot read config file", 2),
    (T, ["{root}/syntax.py"], "line 1: invalid syntax", 2),
    (T, ["{root}/raises.py"], "raised ZeroDivisionError", 2),
    (T, ["{root}/exits.py"], "exits.py, line 3, calls os._exit(): a config file assigns settings", 2),
    (T, ["--out_dir={root}/new/{{block.upper}}"], "the only placeholder it may hold is {block}", 2),
    (T, ["--out_dir="], "--out_dir is empty; name a folder (. for the current one)", 2),
    (T, ["--out_dir={root}/new/{{block[0]}}"], "the only placeholder it may hold is {block}", 2),
    (T, ["--out_dir={run}", "--resume", "--max_steps=1", "--allow_changes"],
     "--max_steps=1 is below step 2, where the run in", 2),
    (T, ["{root}/latin1.py"], "is not UTF-8 text", 2),
    (T, ["--out_dir={run}"], "already holds a run", 2),
    (T, ["--out_dir={run}", "--resume", "--n_layer=3"], "n_layer=3 (saved: 2)", 1),
    (T, ["--out_dir={run}", "--resume", "--learning_rate=0.01"], "--allow_changes", 2),
    (T, ["--out_dir={root}/none", "--resume"], "no checkpoint at", 1),
    (T, ["--dataset=missing_name"], "python data/prepare.py --source=DIR --name=missing_name", 1),
    (T, ["--dataset="], "--dataset is empty; name a dataset: a folder in data/ (--dataset=stdlib) or a path", 2),
    (T, ["--dataset={data_package}"], "is data/, the folder that holds the datasets, not one of them", 2),
    (T, ["--dataset={root}/missing/path"], "--out=", 1),
    (T, ["--dataset={broken_ids}"], "holds token id 60000", 1),
    (T, ["--dataset={root}/a_file"], "a_file is a file, not a dataset folder; point --dataset at a folder", 1),
    (T, ["--dataset={broken_tokenizer}"], "tokenizer.json is damaged", 1),
    (T, ["--block_size=100000"], "fewer than block_size + 1", 1),
    (T, ["--out_dir={root}/foreign", "--resume"], "is a torch file, but not a checkpoint that train.py wrote", 1),
    (T, ["--out_dir={not_utf8_log}", "--resume"], "log.jsonl, line 3 is not a row of train.py's log", 1),
    (T, ["--out_dir={not_a_row_log}", "--resume"], "log.jsonl, line 3 is not a row of train.py's log", 1),
    ("sample.py", ["--out_dir={run}", "--temperature=nan"], "must be a finite number", 2),
    ("sample.py", ["--out_dir={run}", "--temperature=0"], "temperature must be > 0, got 0.0", 2),
    ("sample.py", ["--out_dir={run}", "--top_k=-1"], "top_k must be >= 0, got -1", 2),
    ("sample.py", ["--out_dir={run}", "--num_samples=0"], "num_samples must be a positive integer", 2),
    ("sample.py", ["--out_dir={run}", "--seed=18446744073709551616"], "seed must be a whole number from -2**63", 2),
    ("sample.py", ["--out_dir={run}", "--prompt=FILE:{root}/none.txt"], "cannot read the prompt file", 2),
    ("sample.py", ["--out_dir={root}/none"], "no checkpoint at", 1),
    ("sample.py", ["--out_dir={nan_weights}"], "nan_weights has weights that are not finite: its run diverged", 1),
    ("sample.py", ["--out_dir=out/{{foo}}"], "the only placeholder it may hold is {block}", 2),
    ("sample.py", ["--out_dir={root}/foreign"], "is a torch file, but not a checkpoint that train.py wrote", 1),
    ("prepare.py", ["--vocab_size=10", "--out={root}/new_data"], "vocab_size=10 is out of range", 2),
    ("prepare.py", ["--val_fraction=2", "--out={root}/new_data"], "val_fraction=2.0 must be between 0 and 1", 2),
    ("prepare.py", ["--source={root}/none", "--out={root}/new_data"], "does not exist", 2),
    ("prepare.py", ["--tokenizer=words"], "invalid choice: 'words'", 2),
    ("prepare.py", ["--vocab=300"], "unknown argument(s) --vocab=300", 2),
    ("prepare.py", ["--out={data}", "--vocab_size=300"], "was built with other settings", 1),
    ("prepare.py", ["--name=../x"], "--name=../x is not a name: --name names a folder in data/", 2),
    ("prepare.py", ["--name=a/b"], "to build anywhere else, give --out=a/b", 2),
    ("prepare.py", ["--source={root}/a_file", "--out={root}/new_data"], "a_file is not a folder; pass --source=DIR", 2),
    ("prepare.py", ["--out=."], "--out=. is the current folder or holds it, which the build would replace", 2),
    ("compare.py", ["--blocks=pre_ln,pre_ln"], "names pre_ln twice", 2),
    ("compare.py", ["--blocks=nope"], "blocks='nope': 'nope' is not valid; choose among: pre_ln", 2),
    ("compare.py", ["--max_step=3"], "valid settings: blocks, seeds, sweep, report, plot", 2),
    ("compare.py", ["--block=sas"], "did you mean --blocks?", 2),
    ("compare.py", ["--out_dir={root}/same"], "out_dir must contain {block}", 2),
    ("compare.py", ["--seeds=1,1"], "--seeds=1,1: give different whole numbers separated by commas", 2),
    ("compare.py", ["--sweep=mlp_gain=big"], "--mlp_gain=big: expected a number", 2),
    ("compare.py", ["--sweep=seed=1,2"], "--sweep=seed=1,2: the seeds are compare.py's own setting: --seeds=1,2", 2),
    ("compare.py", ["--sweep=block=sas,sas_p"], "the blocks are compare.py's own setting: --blocks=sas,sas_p", 2),
    ("compare.py", ["--sweep=out_dir=a,b"], "compare.py sets out_dir itself for each run", 2),
    ("compare.py", ["{root}/exits.py"], "calls os._exit()", 2),
    ("compare.py", ["--report="], "--report is empty; name a folder (. for the current one)", 2),
    ("compare.py", COMPARE_FLAGS + ["--out_dir={root}/diverged/{{block}}"],
     "diverged/pre_ln diverged (its last validation loss is nan), so pre_ln cannot be compared", 1),
    ("compare.py", ["--seeds=1,01"], "--seeds=1,01: give different whole numbers separated by commas", 2),
    ("compare.py", COMPARE_FLAGS + ["--out_dir={root}/damaged/{{block}}"],
     "damaged/pre_ln/config.json is damaged (not the settings train.py writes), and", 1),
    ("compare.py", COMPARE_FLAGS, "holds no validation loss", 1),
    ("compare.py", ["--report={root}/a_file"], "cannot write into --report=", 2),
    ("compare.py", ["--plot={root}/plot.xyz"], "a figure's file name must end in the type to draw: one of", 2),
    ("compare.py", ["--plot={root}"], "is a folder; name the figure's file in it", 2),
    ("compare.py", ["--plot={root}/a_file/plot.png"], "cannot write into --plot=", 2),
    ("bench.py", ["--parts=foo"], "'foo' is not valid; choose among: throughput, attention, profile", 2),
    ("bench.py", ["--parts=throughput,atention"], "'atention' is not valid", 2),
    ("bench.py", ["--steps=0"], "steps must be a positive integer, got 0", 2),
    ("bench.py", ["--attention=flash"], "attention='flash' is not valid; choose one of: auto, fused, explicit", 2),
    ("bench.py", ["--batch_size=0"], "batch_size must be a positive integer, got 0", 2),
    ("bench.py", ["--vocab_size=-1"], "vocab_size must be a positive integer, got -1", 2),
    ("bench.py", ["--max_T=0"], "--max_T=0: must be a power of two, at least 128", 2),
    ("bench.py", ["--max_T=384"], "--max_T=384: must be a power of two, at least 128", 2),
    ("bench.py", ["--blocks=pre_ln,sasp"], "'sasp' is not valid; choose among: pre_ln", 2),
    ("bench.py", ["--shapes=2x30x4"], "shape '2x30x4': n_embd=30 must be divisible by n_head=4", 2),
    ("bench.py", ["--shapes=tiny"], "unknown shape 'tiny'", 2),
    ("bench.py", ["--device=tpu"], "--device=tpu", 2),
    ("probe.py", ["--blocks=pre_ln,nope"], "'nope' is not valid; choose among: pre_ln", 2),
    ("probe.py", ["--checkpoints={root}/none"], "no checkpoint at", 1),
    ("probe.py", ["--n_layer=many"], "expected an integer", 2),
    ("probe.py", ["--block_size=1"], "block_size >= 2", 2),
    ("probe.py", ["--layer=-1"], "give a block number from 1", 2),
    ("probe.py", ["--checkpoints={root}/foreign"], "is a torch file, but not a checkpoint that train.py wrote", 1),
    ("probe.py", ["--out={root}/a_file/probe"], "cannot write into --out=", 2),
    ("probe.py", ["--name=sub/x"], "name must be a name, not a path (no /, and not . or ..), got 'sub/x'", 2),
    ("gpu_check.py", ["--tiny", "--device=cpu", "--out={root}/a_file"], "cannot write into --out=", 2),
    ("gpu_check.py", ["--tiny", "--device=cpu", "--dataset="], "--dataset is empty", 2),
    ("probe.py", ["--dataset="], "--dataset is empty", 2),
    ("probe.py", ["--out="], "--out is empty", 2),
    ("probe.py", ["--name=trained.json"], "give the name without a file type, --name=trained", 2),
    ("probe.py", ["--checkpoints={run},{run}/"], "names a run twice; name each run once", 2),
    ("probe.py", ["--checkpoints={nan_weights}"], "has weights that are not finite", 1),
    ("probe.py", ["--seed=-9223372036854775809"], "seed must be a whole number from -2**63", 2),
]


@pytest.mark.parametrize("script, args, hint, status", CASES, ids=[f"{c[0]} {' '.join(c[1])}"[:80] for c in CASES])
def test_bad_input_is_refused_in_one_line_and_changes_nothing(script, args, hint, status, place, capfd, monkeypatch):
    monkeypatch.chdir(place["root"])  # anything a case writes by mistake lands here, and is seen
    argv = [arg.format(**place) for arg in args]
    if script == "train.py" and not any(arg.startswith("--dataset=") for arg in argv):
        argv.insert(0, f"--dataset={place['data']}")
    before = snapshot(place["root"], place["data"])
    capfd.readouterr()
    code = exit_status(script, argv)
    err = capfd.readouterr().err
    # a bare SystemExit("error: ...") leaves its message to the interpreter: print it as Python would
    line = code if isinstance(code, str) else err.strip()
    assert (1 if isinstance(code, str) else code) == status, (code, err)
    assert len(line.splitlines()) == 1 and line.startswith("error: "), err
    assert hint in line, line
    assert "Traceback" not in err
    assert snapshot(place["root"], place["data"]) == before
