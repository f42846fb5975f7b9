"""Attention kernels against PyTorch's SDPA math kernel on random inputs; refusals of the ones this machine
cannot run; the log-sum-exp kernel Ring attention merges with; per-module kernels in the Wan DiT."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from yingxi.errors import InputError
from yingxi.models.attention import (
    KERNELS,
    attention,
    attention_with_lse,
    available_attention_backends,
    canonical_name,
    choose_attention,
    get_attention_backend,
    kernel_name,
    refusal,
    resolve_attention,
    set_attention_backend,
)

sys.path.insert(0, str(Path(__file__).resolve().parent / "wan"))
from tiny import tiny_dit_config  # noqa: E402

# Max |kernel - math| allowed. float32: the kernels sum in a different order (observed <= 6e-7 on these
# inputs). bfloat16: outputs of magnitude < 1 round to 2^-8 steps; a kernel that keeps its softmax in
# float32 and rounds once differs from math (which rounds its bf16 intermediates) by up to a few steps
# (observed 3.9e-3, one step).
TOL = {torch.float32: 1e-5, torch.bfloat16: 1.6e-2}
CUDA_ONLY = ("sdpa-efficient", "sdpa-cudnn", "flash2", "flash3", "sage")


def _qkv(dtype, lq=77, lk=50, heads=3, dim=64, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, heads, lq, dim, generator=g).to(dtype)  # (B, H, Lq, D)
    k = torch.randn(batch, heads, lk, dim, generator=g).to(dtype)  # (B, H, Lk, D)
    v = torch.randn(batch, heads, lk, dim, generator=g).to(dtype)  # (B, H, Lk, D)
    return q, k, v


def _math(q, k, v):
    with sdpa_kernel(SDPBackend.MATH):
        return F.scaled_dot_product_attention(q, k, v)


def test_the_kernels_that_run_on_this_cpu_are_the_ones_offered():
    """PyTorch 2.13's CPU has the math and flash SDPA kernels; the efficient and cuDNN ones raise."""
    for dtype in TOL:
        assert available_attention_backends("cpu", dtype) == ["sdpa", "sdpa-math", "sdpa-flash"]
    q, k, v = _qkv(torch.float32)
    for backend in (SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION):
        with pytest.raises(RuntimeError, match="No viable backend"), sdpa_kernel(backend):
            F.scaled_dot_product_attention(q, k, v)


@pytest.mark.parametrize("dtype", list(TOL), ids=lambda d: str(d).removeprefix("torch."))
@pytest.mark.parametrize("name", ["auto", "sdpa", "sdpa-math", "sdpa-flash"])
@pytest.mark.parametrize("shape", [(77, 50, 64), (64, 64, 128), (33, 512, 16)], ids=["cross", "self", "text"])
def test_every_available_kernel_matches_sdpa_math(name, dtype, shape):
    lq, lk, dim = shape
    fn = resolve_attention(name, "cpu", dtype, head_dim=dim)
    assert kernel_name(fn) in available_attention_backends("cpu", dtype)
    q, k, v = _qkv(dtype, lq, lk, dim=dim)
    out, ref = fn(q, k, v), _math(q, k, v)
    assert out.shape == (2, 3, lq, dim) and out.dtype == dtype
    assert (out.float() - ref.float()).abs().max().item() <= TOL[dtype]
    # and math itself against the textbook formula in float64
    exact = torch.softmax(q.double() @ k.double().transpose(-1, -2) / math.sqrt(dim), -1) @ v.double()
    assert (ref.double() - exact).abs().max().item() <= TOL[dtype]


@pytest.mark.parametrize("name", CUDA_ONLY)
def test_cuda_only_kernels_are_refused_on_cpu_saying_what_they_need(name):
    kernel = KERNELS[name]
    installed = kernel.module is None or __import__("importlib").util.find_spec(kernel.module) is not None
    expected = f"pip install {kernel.pip}" if not installed else "needs a CUDA device, not cpu"
    for dtype in (torch.float32, torch.bfloat16):
        with pytest.raises(InputError, match="needs") as info:
            resolve_attention(name, "cpu", dtype)
        assert expected in info.value.message and info.value.field == "attention"
    assert name not in available_attention_backends("cpu", torch.bfloat16)


def test_refusals_name_the_dtype_and_the_package():
    assert refusal("flash2", "cpu", torch.bfloat16).endswith("pip install flash-attn") or refusal(
        "flash2", "cpu", torch.bfloat16
    ).endswith("not cpu")
    assert "sageattention" in refusal("sage", "cpu", torch.float16)
    # SDPA's flash kernel runs float32 on the CPU but fp16/bf16 only on CUDA: refused before any launch
    assert "fp16/bf16 on CUDA" in refusal("sdpa-flash", "cuda", torch.float32)
    assert refusal("sdpa-flash", "cpu", torch.float32) is None


def test_unknown_names_get_the_closest_and_aliases_resolve():
    with pytest.raises(InputError, match='did you mean "sdpa-flash"'):
        resolve_attention("sdpa-flsh", "cpu")
    with pytest.raises(InputError, match='did you mean "sage"') as info:
        canonical_name("sagee", field="--cross-attention")
    assert info.value.field == "--cross-attention"
    assert canonical_name("math") == "sdpa-math" and canonical_name("Flash_Attn") == "flash2"
    assert canonical_name("SageAttention") == "sage" and canonical_name("cudnn") == "sdpa-cudnn"
    assert kernel_name(resolve_attention("math", "cpu")) == "sdpa-math"


def test_auto_is_sdpa_on_the_cpu():
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        assert choose_attention("cpu", dtype) == "sdpa"
        assert kernel_name(resolve_attention("auto", "cpu", dtype)) == "sdpa"
        assert kernel_name(resolve_attention(None, "cpu", dtype)) == "sdpa"


@pytest.mark.parametrize("dtype", list(TOL), ids=lambda d: str(d).removeprefix("torch."))
def test_attention_with_lse_matches_math_and_merges_key_blocks_exactly(dtype):
    q, k, v = _qkv(dtype, lq=70, lk=90, dim=32)
    out, lse = attention_with_lse(q, k, v, chunk=32)  # three query chunks
    assert out.dtype == dtype and lse.dtype == torch.float32 and lse.shape == (2, 3, 70)
    assert (out.float() - _math(q, k, v).float()).abs().max().item() <= TOL[dtype]
    scores = q.double() @ k.double().transpose(-1, -2) / math.sqrt(32)  # (B, H, Lq, Lk)
    assert (lse.double() - torch.logsumexp(scores, -1)).abs().max().item() <= 1e-5
    # Ring attention's merge: attention over all keys from attention over two halves and their lse
    o1, l1 = attention_with_lse(q, k[:, :, :40], v[:, :, :40])
    o2, l2 = attention_with_lse(q, k[:, :, 40:], v[:, :, 40:])
    total = torch.logaddexp(l1, l2)  # (B, H, Lq)
    merged = o1.float() * (l1 - total).exp().unsqueeze(-1) + o2.float() * (l2 - total).exp().unsqueeze(-1)
    assert (merged - _math(q, k, v).float()).abs().max().item() <= TOL[dtype]
    assert (total - lse).abs().max().item() <= 1e-5


def test_process_wide_default_is_kept_and_validated():
    assert get_attention_backend() == "sdpa"
    with pytest.raises(InputError, match='did you mean "sdpa"'):
        set_attention_backend("sdp")
    if "flash2" not in available_attention_backends():
        with pytest.raises(InputError, match="pip install flash-attn"):
            set_attention_backend("flash")
    q, k, v = _qkv(torch.float32)
    try:
        set_attention_backend("sdpa-math")
        assert torch.equal(attention(q, k, v), _math(q, k, v))
        set_attention_backend("sdpa-efficient")  # no CPU kernel: the default falls back to SDPA there
        assert (attention(q, k, v) - _math(q, k, v)).abs().max().item() <= TOL[torch.float32]
    finally:
        set_attention_backend("sdpa")


def test_wan_dit_runs_each_modules_own_kernel():
    """Self- and cross-attention get their kernels separately; outputs with sdpa-flash match sdpa-math."""
    from yingxi.models.wan.config import WanDiTConfig
    from yingxi.models.wan.dit import WanDiT

    torch.manual_seed(0)
    cfg = WanDiTConfig.from_diffusers(tiny_dit_config("i2v"))
    model = WanDiT(cfg).eval()
    x = torch.randn(1, cfg.in_channels, 2, 4, 6)
    args = (torch.tensor([700.0]), torch.randn(1, 20, cfg.text_dim), torch.randn(1, 17, cfg.image_dim))
    seen: dict[str, list[int]] = {"self": [], "cross": []}

    def recording(kind, fn):
        def run(q, k, v):
            seen[kind].append(k.shape[2])  # Lk: video tokens for self, 512 text / 17 image for cross
            return fn(q, k, v)

        return run

    math_fn, flash_fn = resolve_attention("sdpa-math", "cpu"), resolve_attention("sdpa-flash", "cpu")
    with torch.no_grad():
        model.set_attention(
            self_attention=recording("self", math_fn), cross_attention=recording("cross", math_fn)
        )
        ref = model(x, *args)
        assert seen == {"self": [12, 12], "cross": [512, 17, 512, 17]}
        model.set_attention(self_attention=flash_fn)  # cross-attention keeps its own
        assert [kernel_name(b.attn1.attention_fn) for b in model.blocks] == ["sdpa-flash"] * 2
        out = model(x, *args)
    assert seen["cross"] == [512, 17] * 4 and len(seen["self"]) == 2
    assert (out - ref).abs().max().item() <= TOL[torch.float32]
