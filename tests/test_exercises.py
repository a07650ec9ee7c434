"""The classroom exercises in exercises/: every check fails on the unsolved tasks and passes on the solutions,
and a check given a known mistake names it, and every other mistake with it.

The checks run in two fresh `python -m pytest exercises` processes, one grading exercises/tasks/ and
one grading exercises/solutions/ (NANOSAS_SOLUTIONS=1), side by side; the outcome of every check
comes back through pytest's JUnit XML report. The tests of the messages call the checks' problems_*
functions here, with mistakes written below.
"""

import ast
import importlib.util
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from collections import defaultdict

import pytest

from helpers import ROOT

EXERCISES = sorted(p.stem for p in (ROOT / "exercises" / "tasks").glob("*.py") if p.stem != "__init__")


def start_checks(folder, graded):
    """Start grading graded ("tasks" or "solutions"); the report and log go into folder."""
    env = {key: value for key, value in os.environ.items() if key != "NANOSAS_SOLUTIONS"}
    if graded == "solutions":
        env["NANOSAS_SOLUTIONS"] = "1"
    # one thread each: the checks use tiny models, where threads cost more than they give
    env["OMP_NUM_THREADS"] = "1"
    command = [sys.executable, "-m", "pytest", "exercises", "-q", "-p", "no:cacheprovider",
               f"--junit-xml={folder / 'report.xml'}"]
    with open(folder / "log.txt", "w") as log:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def outcomes(folder):
    """{exercise: {check: (outcome, report text)}}, outcome one of passed, failure, error, skipped."""
    report = folder / "report.xml"
    assert report.exists(), (folder / "log.txt").read_text()[-3000:]
    results = defaultdict(dict)
    for case in ET.parse(report).iter("testcase"):
        exercise = case.get("classname").split(".")[-1].removeprefix("test_")
        found = next((child for child in case if child.tag in ("failure", "error", "skipped")), None)
        text = "" if found is None else f"{found.get('message', '')}\n{found.text or ''}"
        results[exercise][case.get("name")] = ("passed" if found is None else found.tag, text)
    return results


@pytest.fixture(scope="module")
def graded_folders(tmp_path_factory):
    """{"tasks": folder, "solutions": folder}, each with the report and log of one of two runs going at once."""
    folders = {name: tmp_path_factory.mktemp(name) for name in ("tasks", "solutions")}
    processes = {name: start_checks(folder, name) for name, folder in folders.items()}
    try:
        for process in processes.values():
            process.wait(timeout=600)
    finally:
        for process in processes.values():
            process.kill()  # only one still running after a timeout
    return folders


@pytest.fixture(scope="module")
def graded(graded_folders):
    """{"tasks": outcomes, "solutions": outcomes}."""
    return {name: outcomes(folder) for name, folder in graded_folders.items()}


def test_every_check_fails_on_the_unsolved_tasks(graded):
    results = graded["tasks"]
    assert sorted(results) == EXERCISES, "every exercise in exercises/tasks/ has a check file, and no other"
    for exercise, checks in results.items():
        assert len(checks) >= 3, exercise
        for check, (outcome, text) in checks.items():
            # failing, and because of the stubs, not because the check itself is broken
            assert outcome in ("failure", "error") and "NotImplementedError" in text, \
                f"{exercise}: {check} should fail on the stub's NotImplementedError, got {outcome}: {text[:300]}"


def test_every_check_passes_on_the_solutions(graded):
    results = graded["solutions"]
    assert sorted(results) == EXERCISES
    for exercise, checks in results.items():
        not_passed = {check: text[:300] for check, (outcome, text) in checks.items() if outcome != "passed"}
        assert not not_passed, f"{exercise}: {not_passed}"


def test_predictions_are_reported_at_the_end_of_the_run(graded_folders):
    log = (graded_folders["solutions"] / "log.txt").read_text()
    assert "exercise 4, attention_skip: your prediction next to the measurement (not graded)" in log
    assert "no_attn_skip_unshaped   predicted 'collapsed'  measured 1.00 (collapsed): as predicted" in log
    assert "exercise 13, depth: your prediction next to results/depth/compare.json (not graded)" in log
    assert "exercise 3, zero_queries: your prediction next to the measurement (not graded)" in log
    assert "W_Q = 0                     True/True    True/True  False/False   as predicted" in log
    assert "exercise 6, centring: your derivation next to the measurement (not graded)" in log


# -----------------------------------------------------------------------------
# the checks' messages, on known mistakes


def failure(problems):
    """The message assert_none gives for problems (None if there are none)."""
    from exercises.checks import assert_none

    try:
        assert_none(problems)
    except AssertionError as e:
        return str(e)
    return None


def test_every_wrong_step_of_the_parameter_count_is_reported():
    from exercises.checks import test_parameter_count as check
    from exercises.solutions.parameter_count import saved_along_the_ladder

    def two_steps_wrong(n_layer, n_embd, n_head):
        counted = saved_along_the_ladder(n_layer, n_embd, n_head)
        counted["sas"] += 2  # forgot layer 0's alpha_V, beta_V
        counted["sas_p_nonorm"] = n_layer * n_embd  # forgot block 0's entry LayerNorm
        return counted

    def one_step_off(n_layer, n_embd, n_head):
        return saved_along_the_ladder(n_layer, n_embd, n_head) | {"sas_p": n_layer * n_embd + 7}

    message = failure(check.problems_with_ladder(two_steps_wrong))
    assert "no_attn_skip -> sas: layer 0's W_V = alpha_V I + beta_V dW has two gains as well as dW" in message
    assert "sas_p -> sas_p_nonorm: block 0 keeps an entry LayerNorm" in message
    assert "-> no_attn_skip:" not in message and "sas -> sas_p:" not in message  # the right steps are not named
    message = failure(check.problems_with_ladder(one_step_off))  # no usual mistake: where to look, not the count
    assert "sas -> sas_p: too high: blocks/sas.py against sas_p's equation in the task" in message
    counts = {f"{saved:,}" for shape in check.SHAPES for saved in saved_along_the_ladder(**shape).values()
              if abs(saved) >= 1000}  # not the shapes' own numbers (width 32)
    assert not [count for count in counts if count in message], "a check never prints the count it expects"


def test_the_paper_count_is_exact():
    """A count a few thousand off still rounds to the paper's 146M: the check must not round."""
    from exercises.checks import test_parameter_count as check
    from exercises.solutions.parameter_count import saved_along_the_ladder, saved_by_identity_values

    def off_by_a_thousand(n_layer, n_embd, n_head):
        return saved_along_the_ladder(n_layer, n_embd, n_head) | {"sas": saved_by_identity_values(n_layer, n_embd)
                                                                         + 1000}

    assert check.problems_with_the_papers_counts(saved_along_the_ladder, saved_by_identity_values) == []
    message = failure(check.problems_with_the_papers_counts(off_by_a_thousand, saved_by_identity_values))
    assert message.startswith("1 problem") and "your first two steps save more than pre_ln and sas differ by" in message
    assert "1,000" not in message and "146,199,488" not in message  # neither how far off nor the count


def test_shaped_attention_check_names_the_scale():
    from exercises.checks import test_shaped_attention as check

    def unscaled(q, k, v, alpha, beta, gamma):
        return check.written_out(q, k, v, alpha, beta, gamma, scale=1.0)

    message = failure(check.problems_with_shaped_attention(unscaled))
    assert message.startswith("1 problem") and "1/sqrt(head size)" in message and "T = 64" in message


def test_parallel_block_check_names_alpha_ff_and_the_skip():
    import blocks.sas
    from exercises.checks import test_parallel_block as check

    class ParallelButSkipKept(blocks.sas.Block):
        def forward(self, x):
            h = self.ln_1(x)
            return x + self.beta_sa * self.attn(h) + self.beta_ff * self.mlp(h)

    message = failure(check.problems_with_parameters(ParallelButSkipKept))
    assert "sas_p has no alpha_FF: the skip it scaled is gone" in message and "ln_2" in message
    assert "the MLP skip is still there" in failure(check.problems_with_forward(ParallelButSkipKept))


def test_no_mlp_skip_check_names_the_skip():
    import blocks.sas
    from exercises.checks import test_no_mlp_skip as check

    message = failure(check.problems_with_parameters(blocks.sas.Block))
    assert "alpha_ff should not be there" in message
    assert "the MLP skip is still there" in failure(check.problems_with_forward(blocks.sas.Block))


def test_running_mean_check_names_the_direction():
    from exercises.checks import test_running_mean as check
    from exercises.solutions.running_mean import running_mean

    message = failure(check.problems_with_transposed(running_mean))  # C g instead of C^T g
    assert "the forward direction" in message
    assert check.problems_with_running_mean(running_mean) == []


def test_quiz_checks_work_out_one_true_option_each():
    from exercises.checks import test_quiz as check
    from exercises.solutions.quiz import answers

    for number, (work_out, options, _) in check.QUESTIONS.items():
        true = [letter for letter, holds in work_out().items() if holds]
        assert true == [answers()[number]], (number, true)
        assert set(options) == set(check.LETTERS)


def test_read_the_plot_check_names_the_speed_the_run_seconds_and_strict_below(tmp_path):
    import json

    from exercises.checks import test_read_the_plot as check
    from exercises.solutions import read_the_plot as solution

    entries = [{"block": block, "val_loss": curve[-1][2], "curve": curve} for block, curve in check.CURVES.items()]
    (tmp_path / "compare.json").write_text(json.dumps({"runs": [], "results": entries}))
    results, speeds = solution.load(tmp_path / "compare.json"), dict(check.SPEEDS)
    assert check.problems_with_reaching(solution.step_reaching, solution.time_reaching, results) == []
    assert check.problems_with_race(solution.race, results, speeds) == []

    def strictly_below(result, loss):
        return next((step for step, _, val_loss in result["curve"] if val_loss < loss), None)

    def the_runs_own_seconds(result, loss, speed):  # what the ladder's shared machines clocked
        return next((seconds for _, seconds, val_loss in result["curve"] if val_loss <= loss), None)

    def times_the_speed(result, loss, speed):
        step = solution.step_reaching(result, loss)
        return None if step is None else step * speed

    message = failure(check.problems_with_reaching(strictly_below, solution.time_reaching, results))
    assert "at or below: pre_ln reaches its own final loss" in message
    message = failure(check.problems_with_reaching(solution.step_reaching, the_runs_own_seconds, results))
    assert "that is the ladder run's own seconds, which compare machines: use the speed" in message
    message = failure(check.problems_with_reaching(solution.step_reaching, times_the_speed, results))
    assert "multiplied by the speed" in message

    def by_step(results, speeds, baseline="pre_ln"):
        target = results[baseline]["val_loss"]
        return sorted(((block, solution.step_reaching(result, target)) for block, result in results.items()
                       if block in speeds), key=lambda pair: (pair[1] is None, pair[1] or 0))

    def every_block(results, speeds, baseline="pre_ln"):
        return solution.race(results, speeds | {"sas_vp": 1.0}, baseline)

    assert "parallel: 200, expected 400.0: that is the step" in failure(check.problems_with_race(by_step, results,
                                                                                                 speeds))
    assert "sas_vp has no speed in speeds" in failure(check.problems_with_race(every_block, results, speeds))


def test_attention_skip_reports_the_prediction_and_grades_the_measurement():
    from exercises.checks import problems_with_prediction
    from exercises.checks import test_attention_skip as check
    from exercises.solutions.attention_skip import similarity_by_depth

    wrong_but_honest = dict.fromkeys(check.BLOCKS, "apart")
    assert problems_with_prediction(wrong_but_honest, check.BLOCKS, check.WORDS) == []  # any honest guess passes
    assert check.how_far("no_attn_skip_unshaped", "apart").endswith("two steps off: question a says why")
    assert check.how_far("no_attn_skip", "apart").endswith("as predicted")
    message = failure(problems_with_prediction({"pre_ln": "maybe", "no_attn_skip": "apart"}, check.BLOCKS,
                                               check.WORDS))
    assert message.startswith("2 problems") and "predict()['pre_ln'] is 'maybe'" in message
    assert "predict()['no_attn_skip_unshaped'] is None" in message

    def one_block_early(model, idx):  # the input of every block, not the output
        measured = similarity_by_depth(model, idx)
        return measured[:1] + measured[:-1]

    assert check.problems_with_similarity_by_depth(similarity_by_depth, "pre_ln") == []
    assert "one block early" in failure(check.problems_with_similarity_by_depth(one_block_early, "pre_ln"))


def test_centring_check_names_the_sign_the_halves_and_the_late_record_and_reports_the_derivation():
    import torch

    from blocks.parts import uniform_causal_matrix
    from exercises.checks import problems_with_predictions
    from exercises.checks import test_centring as check
    from exercises.solutions import centring as solution

    def centring_added(T, alpha, beta, gamma=None):
        C = uniform_causal_matrix(T).double()
        return alpha * torch.eye(T, dtype=torch.float64) + (beta + (gamma or 0.0)) * C

    def halves_swapped(model, idx):
        measured = solution.first_gradients(model, idx)
        return measured | {"W_Q": measured["W_K"], "W_K": measured["W_Q"]}

    def recorded_after_the_update(block, steps=3):
        model, idx = solution.build(block), solution.tokens()
        optimizer = model.configure_optimizers(weight_decay=0.1, learning_rate=1e-3)
        measured = []
        for _ in range(steps):
            solution.first_gradients(model, idx)
            optimizer.step()
            measured.append(solution.first_gradients(model, idx))
        return measured

    assert check.problems_with_matrix(solution.matrix_at_zero_logits) == []
    assert "+ gamma C: the centring term is subtracted" in failure(check.problems_with_matrix(centring_added))
    message = failure(check.problems_with_first_gradients(halves_swapped))
    assert "W_Q and W_K are swapped" in message and "no_attn_skip, at initialisation" in message
    assert "one step late" in failure(check.problems_with_steps(recorded_after_the_update))
    def form(derived):
        return problems_with_predictions(derived, check.BLOCKS, ("W_Q", "W_K"), check.STEPS, "first_learning_step()")

    wrong_but_honest = solution.first_learning_step() | {"no_attn_skip": {"W_Q": 1, "W_K": 1}}  # "W_K at once"
    assert form(wrong_but_honest) == []  # a derivation is never graded
    assert check.next_to_the_measurement("no_attn_skip", wrong_but_honest["no_attn_skip"]).endswith(
        "W_K derived 1, measured 2:  W_K off: question c says why")
    assert check.next_to_the_measurement("v_skipinit", wrong_but_honest["v_skipinit"]).endswith("as derived")
    message = failure(form({"v_skipinit": {"W_Q": 2}, "no_attn_skip": "W_Q first"}))
    assert message.startswith("2 problems") and "first_learning_step()['v_skipinit']['W_K'] is None" in message
    assert "first_learning_step()['no_attn_skip'] is 'W_Q first'; it must be a dict" in message


def test_zero_queries_reports_the_prediction_and_grades_the_functions():
    from exercises.checks import problems_with_predictions
    from exercises.checks import test_zero_queries as check
    from exercises.solutions.zero_queries import predict

    wrong_but_honest = {init: {"identity": True, "W_Q learns": True, "W_K learns": True} for init in check.INITS}
    assert problems_with_predictions(wrong_but_honest, check.INITS, check.KEYS, (True, False)) == []  # never graded
    assert check.next_to_the_measurement("W_Q = 0", wrong_but_honest["W_Q = 0"]).endswith(
        "1 off: question c says why")
    assert check.next_to_the_measurement("W_Q = 0", predict()["W_Q = 0"]).endswith("as predicted")
    message = failure(problems_with_predictions(predict() | {"W_Q = 0": {"identity": "yes"}}, check.INITS, check.KEYS,
                                                (True, False)))
    assert message.startswith("3 problems") and "predict()['W_Q = 0']['identity'] is 'yes'" in message
    assert "predict()['W_Q = 0']['W_K learns'] is None; it must be one of (True, False)" in message


def test_depth_check_names_the_place_in_the_file_and_the_mean_and_reports_the_prediction(tmp_path):
    from exercises.checks import problems_with_prediction
    from exercises.checks import test_depth as check
    from exercises.solutions import depth as solution

    assert check.problems_with_changes(solution.change_with_depth, tmp_path) == []
    assert check.problems_with_beyond(solution.beyond_the_seeds, tmp_path) == []

    def by_place_in_the_file(report):  # the first entry of a block taken as the shallow one
        losses = {}
        for entry in report["results"]:
            losses.setdefault(entry["block"], []).append(entry["val_loss_by_seed"])
        changes = {}
        for block, (first, second) in ((b, l) for b, l in losses.items() if len(l) == 2):
            by_seed = [b / a - 1 for a, b in zip(first, second)]
            changes[block] = {"by_seed": by_seed, "mean": sum(by_seed) / len(by_seed)}
        return changes

    def change_of_the_means(report):
        changes = solution.change_with_depth(report)
        for block, by_depth in solution.by_block_and_depth(report).items():
            changes[block]["mean"] = sum(by_depth[72]) / sum(by_depth[18]) - 1
        return changes

    message = failure(check.problems_with_changes(by_place_in_the_file, tmp_path))
    assert message.startswith("1 problem") and "no_attn_skip" in message and "not the entry's place" in message
    message = failure(check.problems_with_changes(change_of_the_means, tmp_path))
    assert "sas: mean" in message and "not the change of the mean losses" in message
    wrong_but_honest = dict.fromkeys(check.BLOCKS, "loses")
    assert problems_with_prediction(wrong_but_honest, check.BLOCKS, check.WORDS) == []  # never graded
    report = {"results": [{"block": "sas_p", "swept": {"n_layer": depth}, "val_loss_by_seed": losses}
                          for depth, losses in ((18, [4.0, 4.1]), (72, [3.8, 3.9]))]}
    assert check.measured(report) == {"sas_p": (pytest.approx(-0.0494, abs=1e-4), "gains")}


# -----------------------------------------------------------------------------
# the checks, on the shortcuts their tasks forbid


def students_file(tmp_path, source):
    """A student's file holding source, imported as a module: a shortcut, with the source a check can read."""
    path = tmp_path / "students_file.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location("students_file", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shaped_attention_check_fails_on_the_library_imported_by_name(tmp_path):
    """Patching blocks.parts.shaped_attention cannot stop a file that bound it when it was loaded."""
    from exercises.checks import test_shaped_attention as check
    from exercises.solutions import shaped_attention as solution

    bound = students_file(tmp_path, """\
        from blocks.parts import shaped_attention as fused


        def shaped_attention(q, k, v, alpha, beta, gamma):
            return fused(q, k, v, alpha, beta, gamma)
        """)
    assert check.problems_with_shaped_attention(bound.shaped_attention) == []  # right, by the library's hand
    assert failure(check.problems_with_library_use(bound)).startswith(
        "1 problem:\n  - line 1, `from blocks.parts import shaped_attention as fused`: exercise 2 asks for the "
        "explicit T x T form")
    fused = students_file(tmp_path, """\
        from torch.nn import functional as F


        def shaped_attention(q, k, v, alpha, beta, gamma):
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        """)
    assert "line 5, `return F.scaled_dot_product_attention" in failure(check.problems_with_library_use(fused))
    assert check.problems_with_library_use(solution) == []


def test_rank_collapse_check_fails_on_a_limit_taken_as_a_power():
    """matrix_power imported by name, and an eigendecomposition: either way torch multiplies or decomposes C."""
    import torch
    from torch.linalg import matrix_power

    from blocks.parts import uniform_causal_matrix
    from exercises.checks import test_rank_collapse as check
    from exercises.solutions.rank_collapse import limit

    def a_high_power(T):
        return matrix_power(uniform_causal_matrix(T).double(), 500)

    def from_the_eigenvectors(T):
        eigenvalues, vectors = torch.linalg.eig(uniform_causal_matrix(T).double())
        keep = (eigenvalues.real > 0.999).to(vectors.dtype)
        return (vectors @ torch.diag(keep) @ torch.linalg.inv(vectors)).real

    assert check.problems_with_limit(a_high_power) == []  # the right matrix, the wrong way
    message = failure(check.problems_with_limit_by_hand(a_high_power))
    assert "limit(4) multiplied or decomposed 4 x 4 matrices (torch's mm): build it by hand" in message
    assert "torch's linalg_eig" in failure(check.problems_with_limit_by_hand(from_the_eigenvectors))
    assert "is built by hand but is not the limit" in failure(check.problems_with_limit_by_hand(
        lambda T: torch.zeros(T, T, dtype=torch.float64)))
    assert check.problems_with_limit_by_hand(limit) == []


def test_running_mean_check_fails_on_a_T_by_T_matrix():
    import torch

    from exercises.checks import test_running_mean as check
    from exercises.solutions import running_mean as solution

    def C(v):
        T = v.size(-2)
        return torch.ones(T, T, dtype=v.dtype).tril() / torch.arange(1, T + 1, dtype=v.dtype).view(T, 1)

    class BackwardByTheMatrix(torch.autograd.Function):
        @staticmethod
        def forward(ctx, v):
            return solution.running_mean(v)

        @staticmethod
        def backward(ctx, grad_output):
            return C(grad_output).T @ grad_output

    def by_the_matrix(v):
        return C(v) @ v

    def transposed_by_the_matrix(g):
        return C(g).T @ g

    assert check.problems_with_running_mean(by_the_matrix) == []  # the right numbers, in O(T^2) memory
    message = failure(check.problems_with_memory(by_the_matrix, transposed_by_the_matrix, BackwardByTheMatrix))
    assert message.startswith("3 problems") and "running_mean made a tensor of shape (300, 300) (torch's ones) at " \
        "T = 300: build no T x T matrix" in message
    assert "running_mean_transposed made a tensor of shape (300, 300)" in message
    assert "RunningMean, forward and backward made a tensor of shape (300, 300)" in message
    assert check.problems_with_memory(solution.running_mean, solution.running_mean_transposed,
                                      solution.RunningMean) == []


def test_parallel_block_check_fails_on_the_answer_imported(tmp_path):
    from exercises.checks import test_parallel_block as check
    from exercises.solutions import parallel_block as solution

    imported = students_file(tmp_path, "from blocks.sas_p import Block\n")
    assert check.problems_with_forward(imported.Block) == []  # sas_p's block computes sas_p
    assert "line 1, `from blocks.sas_p import Block`: blocks/sas_p.py is the answer" in \
        failure(check.problems_with_the_answer_used(imported))
    looked_up = students_file(tmp_path, """\
        from blocks import BLOCKS

        Block = BLOCKS["sas_p_nonorm"]
        """)
    assert "line 3, `Block = BLOCKS[\"sas_p_nonorm\"]`" in failure(check.problems_with_the_answer_used(looked_up))
    hidden = students_file(tmp_path, """\
        import importlib

        Block = importlib.import_module("blocks.sas" + "_p").Block
        """)
    assert "Block is blocks.sas_p.Block, or made from it" in failure(check.problems_with_the_answer_used(hidden))
    assert check.problems_with_the_answer_used(solution) == []


def test_parameter_count_check_fails_on_counts_read_off_models(tmp_path):
    from exercises.checks import test_parameter_count as check
    from exercises.solutions import parameter_count as solution

    built = students_file(tmp_path, """\
        import torch

        from blocks import LADDER
        from model import GPT, GPTConfig


        def count(block, n_layer, n_embd, n_head=2):
            with torch.device("meta"):
                return GPT(GPTConfig(block=block, vocab_size=64, block_size=16, n_layer=n_layer, n_embd=n_embd,
                                     n_head=n_head)).num_params()


        def saved_by_identity_values(n_layer, n_embd):
            return count("no_attn_skip", n_layer, n_embd) - count("sas", n_layer, n_embd)


        def saved_along_the_ladder(n_layer, n_embd, n_head):
            return {block: count(before, n_layer, n_embd, n_head) - count(block, n_layer, n_embd, n_head)
                    for before, block in zip(LADDER, LADDER[1:])}
        """)
    assert check.problems_with_ladder(built.saved_along_the_ladder) == []  # the right counts, read off models
    message = failure(check.problems_with_shortcuts(built))
    assert message.startswith("2 problems") and "line 9, `return GPT(GPTConfig(block=block," in message
    assert "expected_num_params (tests/test_model.py) and num_params are the answer" in message
    assert "your functions built a GPT as they ran: count by reasoning, not by building models" in message
    looked_up = students_file(tmp_path, """\
        from tests.test_model import expected_num_params


        def saved_by_identity_values(n_layer, n_embd):
            return 0


        def saved_along_the_ladder(n_layer, n_embd, n_head):
            return {}
        """)
    assert "line 1, `from tests.test_model import expected_num_params`" in \
        failure(check.problems_with_shortcuts(looked_up))
    assert check.problems_with_shortcuts(solution) == []


# -----------------------------------------------------------------------------
# a student's file that hangs, does not import, or returns what torch cannot compare

STAND_INS = '''"""Stands in for a student's files: running_mean loops for ever, shaped_attention has a syntax error,
rank_collapse's power returns None. Loaded with -p, before exercises/conftest.py reads the time limit."""
import importlib.abc
import importlib.util
import sys
import types

import exercises.checks

exercises.checks.CHECK_SECONDS = 2


def loop_for_ever(*args):
    while True:
        try:
            pass
        except Exception:  # swallows what it can: the time limit is not an Exception
            pass


def stand_in(name, **functions):
    module = types.ModuleType(f"exercises.tasks.{name}")
    module.__dict__.update(functions)
    sys.modules[module.__name__] = module


stand_in("running_mean", running_mean=loop_for_ever, running_mean_transposed=loop_for_ever)
stand_in("rank_collapse", power=lambda T, n: None)


class SyntaxErrorOnImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        return importlib.util.spec_from_loader(name, self) if name == "exercises.tasks.shaped_attention" else None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        raise SyntaxError("invalid syntax", ("exercises/tasks/shaped_attention.py", 3, 5, "x = = 1\\n"))


sys.meta_path.insert(0, SyntaxErrorOnImport())
'''


def test_a_task_that_hangs_does_not_import_or_returns_none_fails_its_own_checks_in_a_line(tmp_path):
    """python -m pytest exercises -k ..., with stand-ins for three tasks: each of their checks fails in one line
    that says what the file did, within the time limit; collecting every check file (a syntax error used to stop
    them all, -k or not) and the exercises not selected are untouched."""
    (tmp_path / "stand_ins.py").write_text(STAND_INS)
    env = {key: value for key, value in os.environ.items() if key != "NANOSAS_SOLUTIONS"}
    env |= {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(tmp_path)}
    with open(tmp_path / "log.txt", "w") as log:
        subprocess.run([sys.executable, "-m", "pytest", "exercises", "-q", "-p", "no:cacheprovider", "-p",
                        "stand_ins", "-k", "running_mean or shaped_attention or power_is or best_is",
                        f"--junit-xml={tmp_path / 'report.xml'}"], cwd=ROOT, env=env, stdout=log,
                       stderr=subprocess.STDOUT, timeout=300)
    results = outcomes(tmp_path)
    assert sorted(results) == ["rank_collapse", "running_mean", "shaped_attention", "sweep"], results
    assert "did not return within 2 s: look for a loop that never ends" in \
        results["running_mean"]["test_running_mean_is_C_times_v"][1]
    for check, (outcome, text) in results["shaped_attention"].items():
        assert "exercises/tasks/shaped_attention.py, line 3 cannot be imported: SyntaxError" in text, check
    assert "a value is None where a tensor or a number should be: does each of your functions end in `return ...`?" \
        in results["rank_collapse"]["test_power_is_a_matrix_power"][1]
    assert "NotImplementedError" in results["sweep"]["test_best_is_the_lowest_loss"][1]  # a task as it is given


def test_a_tensor_of_another_dtype_or_device_or_none_is_named_as_such():
    """What torch would say as "Double did not match Float", "not on the expected device meta" or "'NoneType'
    object has no attribute", a check says as what the student's function returned or did."""
    from exercises.checks import in_plain_words
    from exercises.checks import test_running_mean as running_mean_check
    from exercises.checks import test_shaped_attention as check

    def in_float64(*inputs):
        return check.written_out(*inputs).double()

    def on_meta(*inputs):
        return check.written_out(*inputs).to("meta")

    assert failure(check.problems_with_shaped_attention(in_float64)) == \
        "1 problem:\n  - returned float64, expected float32 (at T = 1; at T = 2; at T = 17; at T = 64)"
    assert "returned a tensor on meta, expected cpu" in failure(check.problems_with_shaped_attention(on_meta))
    assert "returned None, expected a tensor: is a `return` missing?" in \
        failure(running_mean_check.problems_with_running_mean(lambda v: None))

    def mixes_dtypes(q, k, v, alpha, beta, gamma):
        return (q @ k.transpose(-2, -1).double()) @ v

    with pytest.raises(RuntimeError) as raised:
        check.problems_with_shaped_attention(mixes_dtypes)
    assert in_plain_words(raised.value).startswith("tensors of two dtypes (float32, float64) met in one operation: "
                                                   "make each new tensor with the dtype of the inputs")
    assert in_plain_words(ValueError("something else")) is None


# -----------------------------------------------------------------------------
# a task and its solution are the same file but for what the student writes


def written_by_the_student(task):
    """The functions and methods a task leaves to the student (Class.method for a method): those that raise
    NotImplementedError."""
    names = set()

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.ClassDef)):
                name = prefix + child.name
                if isinstance(child, ast.FunctionDef) and any(
                        isinstance(n, ast.Raise) and "NotImplementedError" in ast.unparse(n) for n in ast.walk(child)):
                    names.add(name)
                visit(child, name + ".")

    visit(task, "")
    return names


def imported(tree):
    """Every (module, name) a module's import statements bring in."""
    return {(getattr(node, "module", None), alias.name) for node in tree.body
            if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}


def outside_the_students_part(tree, students, top_level):
    """The module's code without its docstring (a task's text; a solution's answers), its imports, and the top-level
    functions that are not in top_level; the body of every function in students replaced by `...`."""
    body = [node for node in tree.body[1:] if not isinstance(node, (ast.Import, ast.ImportFrom)) and
            (not isinstance(node, ast.FunctionDef) or node.name in top_level)]

    def stub(nodes, prefix):
        for node in nodes:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                if prefix + node.name in students:
                    node.body = [ast.Expr(ast.Constant(...))]
                else:
                    stub(node.body, prefix + node.name + ".")

    stub(body, "")
    return ast.unparse(ast.Module(body=body, type_ignores=[]))


@pytest.mark.parametrize("exercise", EXERCISES)
def test_a_task_and_its_solution_differ_only_where_the_student_writes(exercise):
    """The solution is the task solved: the same code around the functions the task leaves to the student (which
    the solution fills in, with any imports and helper functions of its own) and the docstring (the task's text,
    the solution's answers). A change to one file that forgets the other fails here."""
    task, solution = (ast.parse((ROOT / "exercises" / folder / f"{exercise}.py").read_text())
                      for folder in ("tasks", "solutions"))
    students = written_by_the_student(task)
    assert students, f"exercises/tasks/{exercise}.py leaves nothing to the student (no NotImplementedError)"
    assert imported(task) <= imported(solution), f"{exercise}: the solution lacks an import of the task"
    top_level = {node.name for node in task.body if isinstance(node, ast.FunctionDef)}
    assert outside_the_students_part(task, students, top_level) == \
        outside_the_students_part(solution, students, top_level), \
        f"exercises/tasks/{exercise}.py and exercises/solutions/{exercise}.py differ outside the student's part"
