"""`weights="fp8"`: quantize a full-width checkpoint at load; memory by accounting; the fp8 matmul path."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from yingxi.models.fp8 import module_bytes, quantize_fp8, quantize_linears_
from yingxi.models.fp8_matmul import scaled_mm_linear, select_fp8_matmul
from yingxi.models.quant import QuantizedTensor, QuantLinear
from yingxi.models.wan.config import VARIANTS, WanDiTConfig
from yingxi.models.wan.dit import KEEP_FP32, WanDiT
from yingxi.models.wan.loading import FP8_LAYERS, load_transformer, weight_bytes

# A narrow-but-deep model: like the real ones, the blocks' Linears hold most weights (here 12 blocks of
# width 128; 14B: 40 of 5120), so its byte ratio says something about the full-size one.
MID = WanDiTConfig(
    patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=64, in_channels=16, out_channels=16,
    text_dim=32, freq_dim=32, ffn_dim=512, num_layers=12, rope_max_seq_len=32,
)  # fmt: skip
# fp8 e4m3fn keeps 3 mantissa bits: each weight within 2^-4 relative of its row's grid; through 12 blocks
# the output of this model moves by ~2.5% (relative L2) from the bf16 model's. Bound: 6%.
FP8_VS_BF16_REL = 0.06


def random_checkpoint(path, cfg: WanDiTConfig, dtype: torch.dtype, seed: int = 0):
    torch.manual_seed(seed)
    model = WanDiT(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(
                0.05 * torch.randn_like(p) + (1.0 if p.ndim == 1 and p.shape[0] == cfg.inner_dim else 0.0)
            )
    save_file({k: v.to(dtype).contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def inputs(cfg: WanDiTConfig, dtype=torch.bfloat16):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(1, cfg.in_channels, 2, 8, 8, generator=g)
    return x.to(dtype), torch.tensor([700.0]), torch.randn(1, 12, cfg.text_dim, generator=g).to(dtype)


def run(model, args):
    with torch.no_grad():
        return model(*args).float()


def rel(a, b) -> float:
    return float((a - b).norm() / b.norm())


@pytest.fixture(scope="module")
def bf16_file(tmp_path_factory):
    return random_checkpoint(
        tmp_path_factory.mktemp("fp8w") / "wan_mid_bf16.safetensors", MID, torch.bfloat16
    )


def test_weights_fp8_quantizes_the_block_linears_within_the_bound_and_55_percent(bf16_file):
    bf16 = load_transformer(bf16_file, config=MID, dtype="bf16")
    fp8 = load_transformer(bf16_file, config=MID, dtype="bf16", weights="fp8")
    quantized = {n for n, m in fp8.named_modules() if isinstance(m, QuantLinear)}
    linears = {n for n, m in bf16.named_modules() if isinstance(m, torch.nn.Linear)}
    assert quantized == {n for n in linears if FP8_LAYERS.match(f"{n}.weight")}
    assert len(quantized) == MID.num_layers * 10  # q, k, v, o twice + the FFN's two
    for name in quantized:  # e4m3fn, one float32 scale per output channel
        layer = fp8.get_submodule(name)
        assert layer.qweight.dtype == torch.float8_e4m3fn and layer.scale.shape == (layer.out_features, 1)
    # embeddings, time projection, head, norms and modulation tables stay in the compute dtype
    assert fp8.proj_out.weight.dtype == fp8.condition_embedder.time_proj.weight.dtype == torch.bfloat16
    assert fp8.condition_embedder.time_embedder.linear_1.weight.dtype == torch.float32  # KEEP_FP32
    assert (
        fp8.blocks[0].scale_shift_table.dtype == torch.float32
        and fp8.patch_embedding.weight.dtype == torch.bfloat16
    )
    ratio = module_bytes(fp8) / module_bytes(bf16)
    assert ratio <= 0.55, ratio
    args = inputs(MID)
    err = rel(run(fp8, args), run(bf16, args))
    assert 0 < err < FP8_VS_BF16_REL, err


def test_weights_fp8_quantizes_from_the_stored_precision(tmp_path):
    cfg = replace(MID, num_layers=1)
    path = random_checkpoint(tmp_path / "fp32.safetensors", cfg, torch.float32, seed=3)
    model = load_transformer(path, config=cfg, dtype="bf16", weights="fp8")
    from safetensors.torch import load_file

    stored = load_file(str(path))["blocks.0.ffn.net.2.weight"]  # float32 on disk
    want = quantize_fp8(stored)  # not via bf16: no double rounding
    layer = model.blocks[0].ffn.net[2]
    assert torch.equal(layer.qweight.view(torch.uint8), want.data.view(torch.uint8))
    assert torch.equal(layer.scale, want.scale)
    err = (layer.weight_as(torch.float32) - stored).abs() / stored.abs().amax(dim=1, keepdim=True)
    assert float(err.max()) <= 2**-4 * 448 / 256  # half an fp8 step at the row's largest binade (e4m3: 2^-4)


def test_full_size_14b_fp8_bytes_on_meta():
    """Accounting on a meta-device build: a 14B expert in fp8 is ~15 GB (<= 55% of its bf16 bytes)."""
    cfg = VARIANTS["wan2.1-t2v-14b"].dit  # (every variant's figures: bench/wan_formats.py)
    with torch.device("meta"):
        model = WanDiT(cfg)
    for pname, p in model.named_parameters():  # bf16 except the float32 parts the reference keeps
        keep = any(part in KEEP_FP32 for part in pname.split("."))
        p.data = p.data.to(torch.float32 if keep else torch.bfloat16)
    bf16 = module_bytes(model)
    fp8 = module_bytes(quantize_linears_(model, FP8_LAYERS.match))
    assert fp8 / bf16 <= 0.55, fp8 / bf16
    assert 14.0e9 < fp8 < 15.5e9 and 28.0e9 < bf16 < 29.5e9, (fp8, bf16)


# --- the fp8 matmul path: selection by capability, and its numerics (torch's CPU _scaled_mm) -------


def test_fp8_matmul_is_chosen_only_where_the_card_and_layer_allow_it():
    bf16, fp16, fp32 = torch.bfloat16, torch.float16, torch.float32
    pick = select_fp8_matmul
    assert pick((9, 0), "fp8_e4m3fn", bf16, 64, 128, 64) == "rowwise"  # H100/H200, per-channel scales
    assert pick((9, 0), "fp8_e4m3fn", bf16, 1, 128, 64) == "tensorwise"  # a per-tensor ComfyUI scale
    assert pick((8, 9), "fp8_e4m3fn", bf16, 64, 128, 64) == "tensorwise"  # Ada: no row-wise scaling
    assert pick((9, 0), "fp8_e4m3fn", fp16, 64, 128, 64) == "tensorwise"  # row-wise wants bf16 output
    assert pick((8, 6), "fp8_e4m3fn", bf16, 1, 128, 64) is None  # Ampere: no fp8 tensor cores
    assert pick(None, "fp8_e4m3fn", bf16, 1, 128, 64) is None  # CPU / MPS
    assert pick((9, 0), "fp8_e5m2", bf16, 1, 128, 64) is None  # e5m2 weights: dequantize
    assert pick((9, 0), "fp8_e4m3fn", fp32, 1, 128, 64) is None  # float32 asks for exact
    assert pick((9, 0), "fp8_e4m3fn", bf16, 1, 120, 64) is None  # kernels need multiples of 16
    assert pick((9, 0), "Q8_0", bf16, 1, 128, 64) is None
    assert pick((9, 0), "fp8_e4m3fn", bf16, 1, 128, 64, enabled=False) is None  # YINGXI_FP8_MATMUL=0


def test_cpu_forward_dequantizes_then_multiplies_exactly():
    w = torch.randn(64, 128)
    layer = QuantLinear.from_quantized(quantize_fp8(w), torch.randn(64))
    x = torch.randn(2, 5, 128, dtype=torch.bfloat16)
    want = F.linear(x, layer.weight_as(torch.bfloat16), layer.bias.to(torch.bfloat16))
    assert torch.equal(layer(x), want)  # on the CPU the fp8 matmul is never chosen


@pytest.mark.parametrize("kind,per_row,static", [("rowwise", True, False), ("tensorwise", False, False),
                                                  ("tensorwise", True, False), ("tensorwise", False, True),
                                                  ("rowwise", True, True)])  # fmt: skip
def test_scaled_mm_linear_matches_the_dequantized_matmul_within_fp8_input_rounding(kind, per_row, static):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(64, 128, generator=g)
    q = quantize_fp8(w)
    if not per_row:
        q = QuantizedTensor(
            q.qtype, (w / (w.abs().amax() / 448)).to(torch.float8_e4m3fn), q.shape, w.abs().amax() / 448
        )
    x = torch.randn(3, 7, 128, generator=g).to(torch.bfloat16)
    if static:
        q.input_scale = (x.float().abs().amax() / 448).reshape(())
    layer = QuantLinear.from_quantized(q, torch.randn(64, generator=g))
    exact = F.linear(x.float(), layer.weight_as(torch.float32), layer.bias)  # dequantize-then-matmul
    got = scaled_mm_linear(layer, x, kind)
    assert got.shape == (3, 7, 64) and got.dtype == torch.bfloat16
    # The only extra error is the activations' rounding to e4m3 (<= 2^-4 relative each): ~2-3% relative.
    assert rel(got.float(), exact) < 0.05


@pytest.mark.parametrize("added_kv", [None, 32])
def test_weight_bytes_arithmetic_equals_the_built_model(added_kv):
    cfg = replace(MID, num_layers=2, added_kv_proj_dim=added_kv, image_dim=16 if added_kv else None)
    model = WanDiT(cfg).to(torch.bfloat16)
    assert weight_bytes(cfg, torch.bfloat16) == module_bytes(model)
    assert weight_bytes(cfg, torch.bfloat16, "fp8") == module_bytes(
        quantize_linears_(model, FP8_LAYERS.match)
    )


def test_bench_wan_formats_runs_its_cpu_tables_small(monkeypatch, capsys):
    import runpy
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[3] / "bench" / "wan_formats.py"
    argv = [str(script), "--sizes", "", "--dim", "128", "--layers", "1", "--tokens", "32", "--repeats", "1"]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    rows = {
        line[:24].strip(): line.split()
        for line in out.splitlines()
        if line.startswith(("fp32", "bf16", "fp8"))
    }
    assert set(rows) == {"fp32 (plain)", "bf16 (plain)", "fp8 e4m3fn per-row", "fp8 e4m3fn per-tensor",
                         "fp8 e5m2 per-tensor"}  # fmt: skip
    assert float(rows["fp8 e4m3fn per-row"][-3]) > 0  # a measured forward time
    assert float(rows["fp8 e4m3fn per-row"][-1]) < 0.05  # its relative error against fp32
    assert float(rows["fp8 e4m3fn per-row"][-4]) < float(rows["fp32 (plain)"][-4])  # fewer MB


def test_forward_takes_the_fp8_matmul_when_chosen_and_falls_back_once_if_the_kernel_refuses(monkeypatch):
    """The CPU never chooses it; pretend it did (torch's CPU `_scaled_mm` computes the same maths)."""
    from yingxi.models import fp8_matmul

    layer = QuantLinear.from_quantized(quantize_fp8(torch.randn(64, 128)), torch.randn(64))
    x = torch.randn(4, 128, dtype=torch.bfloat16)
    dequantized = F.linear(x, layer.weight_as(torch.bfloat16), layer.bias.to(torch.bfloat16))
    monkeypatch.setattr(fp8_matmul, "_failed", [])
    real_kind = fp8_matmul.fp8_matmul_kind
    monkeypatch.setattr(
        fp8_matmul, "fp8_matmul_kind", lambda lyr, t: None if fp8_matmul._failed else "rowwise"
    )
    fast = layer(x)
    assert not torch.equal(fast, dequantized) and rel(fast.float(), dequantized.float()) < 0.05

    def refuse(*args, **kwargs):
        raise RuntimeError("no row-wise kernel here")

    monkeypatch.setattr(torch, "_scaled_mm", refuse)
    with pytest.warns(UserWarning, match="fp8 matmul unavailable .no row-wise kernel here."):
        assert torch.equal(layer(x), dequantized)
    assert torch.equal(layer(x), dequantized) and fp8_matmul._failed == ["no row-wise kernel here"]
    monkeypatch.setattr(fp8_matmul, "fp8_matmul_kind", real_kind)
