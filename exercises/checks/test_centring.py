"""Checks for exercise 6: Eq. 4 and Eq. 5 at zero logits, the attention's gradients step by step in tiny
v_skipinit and no_attn_skip models; the derived first step at which W_Q and W_K learn is recorded and reported
next to the measurement, not graded."""

import functools

import pytest
import torch

from blocks.parts import ShapedAttention, uniform_causal_matrix
from exercises.checks import assert_none, diagnose, note, problems_with_predictions, randomise, under_test
from model import GPT, GPTConfig

exercise = under_test("centring")
BLOCKS = ["v_skipinit", "no_attn_skip"]
CONFIG = dict(vocab_size=64, block_size=16, n_layer=2, n_head=2, n_embd=32)  # the task's models
NAMES = ("W_Q", "W_K", "beta")
STEPS = (1, 2, 3, 4)  # the steps the check measures: a derived step must be one of them
QUESTION = {"v_skipinit": "b", "no_attn_skip": "c"}  # the question that explains each block


def build(block, seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(block=block, **CONFIG))


def tokens(batch=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, CONFIG["vocab_size"], (batch, CONFIG["block_size"]), generator=g)


def per_layer(model, idx, zero_grad=True):
    """[{"W_Q", "W_K", "beta": that layer's gradient}, ...] after one backward pass, written out here; without
    zero_grad, added to the gradients the model holds."""
    if zero_grad:
        model.zero_grad()
    logits, _ = model(idx[:, :-1])
    torch.nn.functional.cross_entropy(logits.flatten(0, 1), idx[:, 1:].flatten()).backward()
    layers = []
    for attn in (m for m in model.modules() if isinstance(m, ShapedAttention)):
        d = attn.c_qk.in_features
        layers.append({"W_Q": attn.c_qk.weight.grad[:d], "W_K": attn.c_qk.weight.grad[d:], "beta": attn.beta.grad})
    return layers


def norms(layers, combine="over all layers"):
    """{name: the gradient's size}: over all layers together, or with one of the usual mistakes."""
    sizes = {}
    for name in NAMES:
        per = [layer[name].norm().item() for layer in layers]
        sizes[name] = {"over all layers": sum(n**2 for n in per)**0.5, "summed": sum(per), "layer 0": per[0],
                       "last layer": per[-1]}[combine]
    return sizes


def reference_steps(block, steps, zero_grad=True):
    """The gradient norms before each of `steps` AdamW steps; without zero_grad, as if they piled up."""
    model, idx = build(block), tokens()
    optimizer = model.configure_optimizers(weight_decay=0.1, learning_rate=1e-3)
    measured = []
    for _ in range(steps):
        measured.append(norms(per_layer(model, idx, zero_grad)))
        optimizer.step()
    return measured


@functools.cache
def first_steps(block):
    """{"W_Q": the first step whose gradient is not 0, "W_K": ...}, measured."""
    measured = reference_steps(block, len(STEPS))
    return {name: next(step for step, grads in enumerate(measured, start=1) if grads[name] > 0)
            for name in ("W_Q", "W_K")}


def same(got, expected):
    return all(got[name] == pytest.approx(expected[name], rel=1e-4, abs=1e-12) for name in NAMES)


def shown(gradients):
    return ", ".join(f"{name} {gradients[name]:.3g}" for name in NAMES)


def problems_with_matrix(matrix_at_zero_logits):
    problems = []
    for T, alpha, beta, gamma in [(5, 1.0, 1.0, 1.0), (5, 1.0, 1.0, None), (4, 1.0, 0.0, None),
                                  (6, 0.5, 2.0, 1.5), (7, 2.0, 0.5, None), (1, 2.0, 3.0, 4.0)]:
        eye, C = torch.eye(T, dtype=torch.float64), uniform_causal_matrix(T).double()
        uniform = torch.full((T, T), 1.0 / T, dtype=torch.float64)
        unnormalised = torch.ones(T, T, dtype=torch.float64).tril()
        centring = 0.0 if gamma is None else gamma
        expected = alpha * eye + (beta - centring) * C
        mistakes = {"+ gamma C: the centring term is subtracted": alpha * eye + (beta + centring) * C,
                    "A at zero logits is C, the average of what each position may see, not the identity":
                        alpha * eye + beta * eye - centring * C,
                    "the causal mask is missing: without it zero logits average all T positions (1/T); here "
                    "position i sees only j <= i": alpha * eye + (beta - centring) * uniform,
                    "C's rows are averages: divide row i of the lower triangle by i + 1":
                        alpha * eye + (beta - centring) * unnormalised}
        if gamma is None:
            mistakes["gamma None is Eq. 4: alpha I + beta A, with no centring term at all"] = \
                alpha * eye + (beta - 1.0) * C
        got = torch.as_tensor(matrix_at_zero_logits(T, alpha, beta, gamma)).double()
        problems += diagnose(got, expected, mistakes, f"T = {T}, alpha = {alpha}, beta = {beta}, gamma = {gamma}")
    return problems


def problems_with_first_gradients(first_gradients):
    problems = []
    for block in BLOCKS:
        for start, randomised in (("at initialisation", False), ("with random weights", True)):
            model, idx = build(block), tokens()
            if randomised:
                randomise(model)  # every gradient non-zero, to tell W_Q from W_K
            layers = per_layer(model, idx)
            expected = norms(layers)
            swapped = {"W_Q": expected["W_K"], "W_K": expected["W_Q"], "beta": expected["beta"]}
            hints = {"W_Q and W_K are swapped: rows 0..d-1 of c_qk.weight are W_Q, rows d..2d-1 W_K": swapped,
                     "the sum of the layers' norms: take the norm over all layers together, the square root of "
                     "the sum of every layer's squares": norms(layers, "summed"),
                     "that is layer 0 alone: every layer's ShapedAttention counts": norms(layers, "layer 0"),
                     "that is the last layer alone: every layer's ShapedAttention counts": norms(layers, "last layer")}
            model.zero_grad()
            got = first_gradients(model, idx)
            again = first_gradients(model, idx)
            where = f"{block}, {start}"
            if not isinstance(got, dict) or set(got) != set(NAMES):
                problems.append((where, f"first_gradients returned {got!r}: a dict with the keys {NAMES}"))
            elif same(got, expected):
                if not same(again, expected):
                    problems.append((where, "a second call gives other numbers: the gradients add up across "
                                            "backward passes, clear them first (model.zero_grad())"))
            else:
                hint = next((hint for hint, wrong in hints.items() if same(got, wrong)),
                            "the next-token loss model(idx[:, :-1], idx[:, 1:]), one backward pass, then the norms")
                problems.append((where, f"{shown(got)}, expected {shown(expected)}: {hint}"))
    return problems


def problems_with_steps(gradients_by_step):
    problems = []
    for block in BLOCKS:
        expected = reference_steps(block, 3)
        got = gradients_by_step(block, steps=3)
        if len(got) != 3:
            problems.append(f"{block}: {len(got)} steps recorded, expected 3, one per training step")
            continue
        if all(same(a, b) for a, b in zip(got, expected)):
            continue
        if all(same(a, b) for a, b in zip(got, reference_steps(block, 3, zero_grad=False))):
            hint = "the gradients add up across steps: clear them before each backward pass (first_gradients does)"
        elif all(same(a, b) for a, b in zip(got[:2], expected[1:])):
            hint = "one step late: record the gradient before the step's update (optimizer.step()), not after"
        elif same(got[0], expected[0]):
            hint = ("the first step is right, the later ones not: one optimizer, "
                    "model.configure_optimizers(weight_decay=0.1, learning_rate=1e-3), stepped after each record")
        else:
            hint = "start from build(block) and tokens(), and use first_gradients at each step"
        step = next(i for i, (a, b) in enumerate(zip(got, expected), start=1) if not same(a, b))
        problems.append(f"{block}, step {step}: {shown(got[step - 1])}, expected {shown(expected[step - 1])}: "
                        f"{hint}")
    return problems


def next_to_the_measurement(block, derived):
    """A line for the student: the derived first steps of one block next to the measured ones."""
    measured = first_steps(block)
    cells = "".join(f"   {name} derived {derived[name]}, measured {measured[name]}" for name in measured)
    off = [name for name in measured if derived[name] != measured[name]]
    verdict = "as derived" if not off else f"{' and '.join(off)} off: question {QUESTION[block]} says why"
    return f"{block:13}{cells}:  {verdict}"


def test_matrices_at_zero_logits():
    assert_none(problems_with_matrix(exercise.matrix_at_zero_logits))


def test_first_gradients_of_a_model():
    assert_none(problems_with_first_gradients(exercise.first_gradients))


def test_gradients_step_by_step():
    assert_none(problems_with_steps(exercise.gradients_by_step))


def test_derivation_is_recorded():
    """Any honest derivation passes: it is reported next to the measurement at the end of the run."""
    derived = exercise.first_learning_step()
    problems = problems_with_predictions(derived, BLOCKS, ("W_Q", "W_K"), STEPS, "first_learning_step()")
    if not problems:
        for block in BLOCKS:
            note("exercise 6, centring: your derivation next to the measurement (not graded)",
                 next_to_the_measurement(block, derived[block]))
    assert_none(problems)
