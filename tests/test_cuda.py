"""What only a CUDA GPU can show: kernels, float16 with its grad scaler, NCCL. Marked `cuda`, skipped
(with the reason) on a machine without one; `python gpu_check.py` runs them on a GPU."""

import json

import pytest
import torch

import train
from blocks.parts import shaped_attention, shaped_attention_matrix
from hardware import native_precision
from helpers import cuda_training_dtype, run_script, tiny_flags, train_signalled
from model import GPT, GPTConfig
from run_folder import load_checkpoint, read_log
from settings import run_settings

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: python gpu_check.py")]

TOLERANCE = {torch.float32: 1e-4, torch.bfloat16: 3e-2, torch.float16: 5e-3}  # TF32 matmuls in float32


@pytest.mark.parametrize("dtype", TOLERANCE)
@pytest.mark.parametrize("T", [1, 17, 128, 1024])
def test_fused_shaped_attention_equals_the_explicit_matrix_on_cuda(dtype, T):
    if not native_precision(str(dtype).removeprefix("torch."), "cuda"):
        pytest.skip(f"{dtype} is only emulated on this GPU: no fused kernel to check")
    g = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (torch.randn(2, 4, T, 64, device="cuda", dtype=dtype, generator=g).requires_grad_() for _ in range(3))
    gains = [(torch.rand(4, device="cuda", generator=g) * 2).requires_grad_() for _ in range(3)]
    grad_out = torch.randn_like(q)
    fused = shaped_attention(q, k, v, *gains)
    fused_grads = torch.autograd.grad(fused, [q, k, v, *gains], grad_out)
    # the reference: the T x T matrix, in float64
    inputs64 = [t.detach().double().requires_grad_() for t in (q, k, v, *gains)]
    reference = shaped_attention_matrix(*inputs64[:2], *inputs64[3:]) @ inputs64[2]
    reference_grads = torch.autograd.grad(reference, inputs64, grad_out.double())
    scale = reference.abs().max().item()
    torch.testing.assert_close(fused.double(), reference, rtol=0, atol=TOLERANCE[dtype] * scale)
    for got, want in zip(fused_grads, reference_grads):
        assert got.dtype == (torch.float32 if got.dim() == 1 else dtype)  # the gains' gradients are float32
        torch.testing.assert_close(got.double(), want, rtol=0, atol=TOLERANCE[dtype] * max(1.0, want.abs().max()))


@pytest.mark.parametrize("block", ["sas_p", "sas"])
def test_gains_gradients_are_float32_under_autocast(block):
    torch.manual_seed(0)
    model = GPT(GPTConfig(block=block, vocab_size=64, block_size=32, n_layer=2, n_head=2, n_embd=32)).cuda()
    idx = torch.randint(0, 64, (4, 32), device="cuda")
    with torch.autocast("cuda", dtype=getattr(torch, cuda_training_dtype())):
        _, loss = model(idx, idx)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all(), name


def test_float16_with_the_grad_scaler_trains_50_steps(tiny_dataset, tmp_path):
    final = train.train(*run_settings(tiny_flags(tiny_dataset, tmp_path, max_steps=50, eval_interval=25,
                                                   device="cuda", dtype="float16", block="sas_p_nonorm")))
    rows = read_log(tmp_path / "log.jsonl")
    assert final["step"] == 50 and rows[-1]["train_loss"] < rows[0]["train_loss"]
    scale = load_checkpoint(tmp_path / "ckpt.pt")["scaler"]["scale"]
    assert 1.0 <= scale <= 2.0**24  # neither collapsing (overflow every step) nor growing without bound


def test_resume_on_cuda_continues_the_run(tiny_dataset, tmp_path):
    """Stopped by Ctrl-C after step 5 and resumed: the same losses as 12 steps straight (to rounding: CUDA
    kernels need not be bitwise deterministic)."""
    flags = dict(device="cuda", dtype=cuda_training_dtype())
    train.train(*run_settings(tiny_flags(tiny_dataset, tmp_path / "straight", **flags)))
    final = train_signalled(*run_settings(tiny_flags(tiny_dataset, tmp_path / "resumed", **flags)), step=4,
                            device="cuda")
    assert final["step"] == 5
    train.train(*run_settings(tiny_flags(tiny_dataset, tmp_path / "resumed", resume=True, **flags)))
    straight, resumed = (read_log(tmp_path / name / "log.jsonl") for name in ("straight", "resumed"))
    assert [r["step"] for r in straight] == [r["step"] for r in resumed]
    for a, b in zip(straight, resumed):
        assert b["train_loss"] == pytest.approx(a["train_loss"], abs=1e-2)


def test_a_cuda_checkpoint_samples_on_the_cpu(tiny_dataset, tmp_path):
    train.train(*run_settings(tiny_flags(tiny_dataset, tmp_path, max_steps=4, device="cuda")))
    result = run_script("sample.py", f"--out_dir={tmp_path}", "--device=cpu", "--num_samples=1", "--max_new_tokens=5")
    assert result.returncode == 0, result.stderr


def test_torchrun_with_nccl(tiny_dataset, tmp_path):
    result = run_script("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", "train.py",
                        *tiny_flags(tiny_dataset, tmp_path, max_steps=6, device="cuda"), timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "config.json").read_text())["device"] == "cuda"
    assert len(read_log(tmp_path / "log.jsonl")) == 6
