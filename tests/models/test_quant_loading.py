"""`load_module` with quantized entries: nn.Linear -> QuantLinear holding the stored bytes, others dequantized."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from yingxi.models.loading import CheckpointError, load_module
from yingxi.models.quant import QuantizedTensor, QuantLinear
from yingxi.models.wan.config import WanDiTConfig
from yingxi.models.wan.dit import KEEP_FP32, WanDiT


def tiny_config() -> WanDiTConfig:
    return WanDiTConfig(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=16, in_channels=16, out_channels=16,
        text_dim=32, freq_dim=32, ffn_dim=64, num_layers=2, cross_attn_norm=True, rope_max_seq_len=32,
    )  # fmt: skip


def random_state(cfg: WanDiTConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = WanDiT(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def per_row_fp8(w: torch.Tensor, qtype: str = "fp8_e4m3fn") -> QuantizedTensor:
    fp8 = torch.float8_e4m3fn if qtype == "fp8_e4m3fn" else torch.float8_e5m2
    flat = w.float().reshape(w.shape[0], -1)
    scale = (flat.abs().amax(dim=1, keepdim=True) / torch.finfo(fp8).max).clamp_min(1e-12)  # (out, 1)
    return QuantizedTensor(
        qtype, (w.float() / scale.view(-1, *[1] * (w.ndim - 1))).to(fp8), tuple(w.shape), scale
    )


def inputs(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 16, 2, 4, 4, generator=g), torch.tensor([500.0]), torch.randn(1, 7, 32, generator=g)


def quantized_state(state):
    """Every 2-D+ weight (Linears, the patch conv, the float32 time MLP) as per-row fp8; scalar-scale for one."""
    out = {}
    for key, value in state.items():
        if key.endswith(".weight") and value.ndim >= 2:
            out[key] = per_row_fp8(value, "fp8_e5m2" if "ffn.net.2" in key else "fp8_e4m3fn")
        else:
            out[key] = value
    q = out["blocks.0.attn1.to_q.weight"]
    out["blocks.0.attn1.to_q.weight"] = QuantizedTensor(q.qtype, q.data, q.shape, q.scale.amax().reshape(()))
    return out


def test_quantized_linears_equal_the_dequantized_weights_fp32_exact():
    cfg = tiny_config()
    qstate = quantized_state(random_state(cfg))
    plain = {
        k: v.dequantize(torch.float32) if isinstance(v, QuantizedTensor) else v for k, v in qstate.items()
    }
    ours = load_module(WanDiT, cfg, qstate, dtype="fp32", keep_fp32=KEEP_FP32)
    ref = load_module(WanDiT, cfg, plain, dtype="fp32", keep_fp32=KEEP_FP32)
    # Linears became QuantLinear holding the float8 bytes; the conv and the float32 time MLP were dequantized.
    to_q = ours.blocks[0].attn1.to_q
    assert isinstance(to_q, QuantLinear) and to_q.qweight.dtype == torch.float8_e4m3fn
    assert (
        isinstance(ours.blocks[1].ffn.net[2], QuantLinear) and ours.blocks[1].ffn.net[2].qtype == "fp8_e5m2"
    )
    assert isinstance(ours.blocks[0].attn1.to_out[0], QuantLinear) and isinstance(ours.proj_out, QuantLinear)
    assert type(ours.condition_embedder.time_embedder.linear_1) is nn.Linear
    assert ours.condition_embedder.time_embedder.linear_1.weight.dtype == torch.float32
    assert type(ours.patch_embedding) is nn.Conv3d
    x, t, text = inputs()
    with torch.no_grad():
        got, want = ours(x, t, text), ref(x, t, text)
    assert torch.equal(got, want)  # fp32-exact: the same dequantized weight goes into the same F.linear
    # and each QuantLinear is F.linear with its dequantized weight, bit for bit
    y = torch.randn(3, 5, 32)
    w = qstate["blocks.0.attn1.to_q.weight"].dequantize(torch.float32)
    assert torch.equal(to_q(y), torch.nn.functional.linear(y, w, to_q.bias))


def test_quantized_model_holds_the_stored_bytes_on_its_device():
    cfg = tiny_config()
    qstate = quantized_state(random_state(cfg))
    model = load_module(WanDiT, cfg, qstate, dtype="bf16", keep_fp32=KEEP_FP32)
    assert model.blocks[0].attn2.to_k.qweight.element_size() == 1
    assert model.blocks[0].attn2.to_k.bias.dtype == torch.bfloat16
    assert model.patch_embedding.weight.dtype == torch.bfloat16  # dequantized at load to the target dtype
    x, t, text = inputs()
    with torch.no_grad():
        out = model(x, t, text)
    assert out.shape == x.shape and out.dtype == torch.bfloat16 and torch.isfinite(out).all()


def test_quantized_shape_errors_name_the_key():
    cfg = tiny_config()
    qstate = quantized_state(random_state(cfg))
    q = qstate["blocks.1.attn1.to_v.weight"]
    bad = dict(qstate)
    bad["blocks.1.attn1.to_v.weight"] = QuantizedTensor(q.qtype, q.data[:16], (16, 32), q.scale[:16])
    with pytest.raises(CheckpointError, match=r"blocks\.1\.attn1\.to_v\.weight: checkpoint shape \(16, 32\)"):
        load_module(WanDiT, cfg, bad, dtype="fp32", source="x.safetensors")
    bad["blocks.1.attn1.to_v.weight"] = QuantizedTensor(q.qtype, q.data[:, :16], q.shape, q.scale)
    with pytest.raises(
        CheckpointError, match=r"to_v\.weight: stored data \(32, 16\) is not the shape \(32, 32\)"
    ):
        load_module(WanDiT, cfg, bad, dtype="fp32")
    bad["blocks.1.attn1.to_v.weight"] = QuantizedTensor(q.qtype, q.data, q.shape, q.scale[:3])
    with pytest.raises(CheckpointError, match=r"scale of shape \(3, 1\) fits neither one tensor nor 32"):
        load_module(WanDiT, cfg, bad, dtype="fp32")
    missing = {k: v for k, v in qstate.items() if k != "blocks.0.ffn.net.0.proj.bias"}
    with pytest.raises(CheckpointError, match=r"missing keys for WanDiT: blocks\.0\.ffn\.net\.0\.proj\.bias"):
        load_module(WanDiT, cfg, missing, dtype="fp32")
