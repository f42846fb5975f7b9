"""Wan transformers from city96-style GGUF files: loaded quantized, compared with the same model built from the
file's weights dequantized by the `gguf` package (float32) and with diffusers' own GGUF loader; memory by
accounting."""

from __future__ import annotations

import json
import math

import pytest
import torch
from gguf_files import original_state, reference_state, write_wan_gguf
from tiny import _perturb, tiny_dit_config

from yingxi.models.gguf import gguf_bytes, quantized_model_bytes
from yingxi.models.loading import load_module, rename_keys
from yingxi.models.quant import QuantLinear
from yingxi.models.wan.config import WanDiTConfig
from yingxi.models.wan.dit import KEEP_FP32, WanDiT
from yingxi.models.wan.loading import ORIGINAL_TO_DIFFUSERS, load_transformer

# Ours and the reference hold the same float32 weights (ours dequantizes them in each forward, bit-exact with
# gguf.quants.dequantize), so outputs agree to float32 rounding of differently scheduled kernels.
FP32_TOL = 1e-5
QTYPES = ("Q8_0", "Q6_K", "Q5_K", "Q5_0", "Q4_K", "Q4_0", "Q3_K", "Q4_1", "Q5_1", "Q2_K")


def wide_config(kind: str) -> dict:
    """A tiny model whose Linear rows hold whole K-quant super-blocks (256 values): 2 heads x 128, 1 layer."""
    cfg = tiny_dit_config(kind)
    cfg.update(
        attention_head_dim=128, text_dim=256, freq_dim=256, ffn_dim=512, num_layers=1, rope_max_seq_len=1024
    )
    if kind == "i2v":
        cfg.update(image_dim=256, added_kv_proj_dim=256)
    return cfg


def random_model(cfg: dict, seed: int = 0) -> WanDiT:
    torch.manual_seed(seed)
    return _perturb(WanDiT(WanDiTConfig.from_diffusers(cfg)), seed + 1).eval()


@pytest.fixture(scope="module")
def models():
    return {kind: random_model(wide_config(kind)) for kind in ("t2v", "i2v")}


def inputs(cfg: WanDiTConfig, with_image: bool):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(1, cfg.in_channels, 2, 4, 4, generator=g)  # (B, C, F, H, W)
    text = torch.randn(1, 8, cfg.text_dim, generator=g)
    text = torch.cat(
        [text, text.new_zeros(1, 512 - 8, cfg.text_dim)], dim=1
    )  # padded to 512, as Wan's DiT pads
    img = torch.randn(1, 17, cfg.image_dim, generator=g) if with_image else None
    return x, torch.tensor([700.0]), text, img


def reference_model(path, config: WanDiTConfig, dtype=torch.float32) -> WanDiT:
    state = rename_keys(reference_state(path), ORIGINAL_TO_DIFFUSERS)
    return load_module(WanDiT, config, state, dtype=dtype, keep_fp32=KEEP_FP32)


@pytest.mark.parametrize("qtype", QTYPES)
def test_gguf_transformer_matches_its_dequantized_weights(tmp_path, models, qtype):
    kind = "i2v" if qtype in ("Q4_K", "Q8_0") else "t2v"
    path = tmp_path / f"wan_{kind}_{qtype}.gguf"
    types = write_wan_gguf(path, original_state(models[kind]), qtype, prefix=qtype != "Q5_0")
    assert types["blocks.0.ffn.0.weight"] == qtype and types["patch_embedding.weight"] == qtype
    assert types["time_embedding.0.weight"] == "F32" and types["blocks.0.norm3.bias"] == "F32"

    ours = load_transformer(path, dtype="fp32")  # config inferred from the shapes
    config = WanDiTConfig.from_diffusers(wide_config(kind))
    assert ours.config == config
    quant = {n: m for n, m in ours.named_modules() if isinstance(m, QuantLinear)}
    assert "blocks.0.ffn.net.0.proj" in quant and "blocks.0.attn1.to_q" in quant
    assert all(m.qtype == qtype and m.qweight.dtype == torch.uint8 for m in quant.values())
    assert not any(n.startswith("condition_embedder.time_embedder") for n in quant)  # kept float32
    ref = reference_model(path, config)
    args = inputs(config, kind == "i2v")
    with torch.no_grad():
        got, want = ours(*args), ref(*args)
    assert got.shape == want.shape == (1, config.out_channels, *args[0].shape[2:])
    torch.testing.assert_close(got, want, rtol=0, atol=FP32_TOL)


@pytest.mark.parametrize("qtype", ("Q8_0", "Q4_K", "Q5_0"))
def test_gguf_transformer_matches_diffusers_from_single_file(tmp_path, models, qtype):
    """diffusers reads GGUF without `comfy.gguf.orig_shape` (it would misshape a reshaped patch conv), so this
    file keeps the 5-D patch conv as F32; diffusers multiplies the fp16 block scales in fp16 (ours in float32):
    weights differ by fp16 rounding, 2^-11 relative, and outputs by ~1e-3 of their magnitude."""
    from diffusers import GGUFQuantizationConfig, WanTransformer3DModel

    path = tmp_path / f"wan_{qtype}.gguf"
    write_wan_gguf(path, original_state(models["t2v"]), qtype, reshape_5d=False)
    folder = tmp_path / "cfg"
    folder.mkdir()
    (folder / "config.json").write_text(
        json.dumps({"_class_name": "WanTransformer3DModel", **wide_config("t2v")})
    )
    theirs = WanTransformer3DModel.from_single_file(
        str(path),
        config=str(folder),
        quantization_config=GGUFQuantizationConfig(compute_dtype=torch.float32),
        torch_dtype=torch.float32,
        local_files_only=True,
    ).eval()
    ours = load_transformer(path, dtype="fp32")
    x, t, text, _ = inputs(ours.config, False)
    with torch.no_grad():
        got = ours(x, t, text)
        want = theirs(hidden_states=x, timestep=t, encoder_hidden_states=text, return_dict=False)[0]
    scale = want.abs().max().item()
    assert (got - want).abs().max().item() <= 2e-3 * scale


def model_bytes(model: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])


@pytest.mark.parametrize(("qtype", "limit"), (("Q4_K", 0.35), ("Q8_0", 0.55)))
def test_quantized_model_bytes_by_accounting(tmp_path, models, qtype, limit):
    """Parameter+buffer bytes of a GGUF model against the bf16 model of the same weights, and the arithmetic
    (`quantized_model_bytes` on a meta build) that `models inspect` and the benchmark use for full sizes."""
    cfg = wide_config("t2v")
    # Mostly block weights, as real models are (in Wan 1.3B the parts kept at full width are 0.4% of the bytes;
    # here, with 6 layers, about 2%): Q8_0 stores 34 bytes per 32 weights (53% of bf16), Q4_K 144 per 256 (28%).
    cfg.update(num_layers=6, ffn_dim=1024, freq_dim=32)
    path = tmp_path / f"wan_{qtype}.gguf"
    write_wan_gguf(path, original_state(random_model(cfg)), qtype)
    config = WanDiTConfig.from_diffusers(cfg)
    bf16 = reference_model(path, config, torch.bfloat16)
    quant = load_transformer(path, dtype="bf16")
    ratio = model_bytes(quant) / model_bytes(bf16)
    assert ratio <= limit, f"{qtype}: {ratio:.3f} of bf16"
    with torch.device("meta"):
        meta = WanDiT(config)
    assert quantized_model_bytes(meta, qtype, dtype=torch.bfloat16, keep_fp32=KEEP_FP32) == model_bytes(quant)
    assert quantized_model_bytes(meta, None, dtype=torch.bfloat16, keep_fp32=KEEP_FP32) == model_bytes(bf16)
    ffn = quant.blocks[0].ffn.net[0].proj
    assert ffn.qweight.numel() == gguf_bytes(qtype, math.prod((cfg["ffn_dim"], 256)))


def test_gguf_with_weights_bf16_is_dequantized_at_load(tmp_path, models):
    """`weights="bf16"` (fp8's switch) turns every GGUF block weight into a plain tensor at load."""
    path = tmp_path / "wan_Q4_K.gguf"
    write_wan_gguf(path, original_state(models["t2v"]), "Q4_K")
    plain = load_transformer(path, dtype="fp32", weights="bf16")
    assert not any(isinstance(m, QuantLinear) for m in plain.modules())
    ref = reference_model(path, plain.config)
    args = inputs(plain.config, False)
    with torch.no_grad():
        torch.testing.assert_close(plain(*args), ref(*args), rtol=0, atol=FP32_TOL)


@pytest.mark.parametrize("ftype", ("F16", "BF16"))
def test_float_gguf_files_load_as_plain_models(tmp_path, models, ftype):
    """city96's F16/BF16 releases: every tensor a plain float (the reshaped patch conv included)."""
    path = tmp_path / f"wan_{ftype}.gguf"
    types = write_wan_gguf(path, original_state(models["t2v"]), ftype)
    assert types["blocks.0.ffn.0.weight"] == types["patch_embedding.weight"] == ftype
    ours = load_transformer(path, dtype="fp32")
    assert not any(isinstance(m, QuantLinear) for m in ours.modules())
    ref = reference_model(path, ours.config)
    args = inputs(ours.config, False)
    with torch.no_grad():
        torch.testing.assert_close(ours(*args), ref(*args), rtol=0, atol=FP32_TOL)
    # and the values are the stored ones: fp16/bf16 of the fp32 weights, read back bit for bit
    stored = ours.blocks[0].ffn.net[0].proj.weight
    want = models["t2v"].blocks[0].ffn.net[0].proj.weight.detach()
    assert torch.equal(stored, want.to(getattr(torch, {"F16": "float16", "BF16": "bfloat16"}[ftype])).float())
