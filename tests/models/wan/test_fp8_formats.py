"""ComfyUI's and Kijai's fp8 single files, written here in their real layouts, against references.

References: diffusers' own `WanTransformer3DModel.from_single_file` where it reads the format (plain fp8:
it upcasts the float8 values); for the scaled formats, which diffusers does not read, the same class
loaded from the weights dequantized here in float32 (value * scale). Tolerance: FP32_TOL (1e-5 absolute,
as for plain float32 checkpoints); the dequantized weights themselves are compared exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from diffusers import WanTransformer3DModel
from safetensors.torch import save_file
from test_loading import DIFFUSERS_TO_ORIGINAL, FP32_TOL, out, sample
from tiny import save_tiny_wan, tiny_dit_config

from yingxi.models.fp8 import gather_quantized, quantize_fp8
from yingxi.models.loading import CheckpointError, read_state_dict, rename_keys
from yingxi.models.quant import QuantizedTensor, QuantLinear
from yingxi.models.wan.config import WanDiTConfig
from yingxi.models.wan.loading import load_transformer as _load_transformer

PREFIX = "model.diffusion_model."
E4M3, E5M2 = torch.float8_e4m3fn, torch.float8_e5m2


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("tiny_wan_fp8")
    return {k: save_tiny_wan(base / k, k) for k in ("t2v", "i2v")}


def load_transformer(path, kind: str = "t2v", **kw):
    """Tiny heads are 16 wide, not Wan's 128, so the single file's config comes from the test."""
    return _load_transformer(path, config=WanDiTConfig.from_diffusers(tiny_dit_config(kind)), **kw)


def original_state(folder: Path) -> dict[str, torch.Tensor]:
    """The tiny transformer's weights under Wan's original names (as ComfyUI's files name them)."""
    return rename_keys(read_state_dict(folder / "transformer"), DIFFUSERS_TO_ORIGINAL)


def quantizable(key: str, value: torch.Tensor) -> bool:
    """What the files quantize: weights of 2+ dims (the Linears, the patch conv), not the modulation tables."""
    return key.endswith(".weight") and value.ndim >= 2


def scaled(value: torch.Tensor, dtype: torch.dtype, per_row: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(float8 weight, float32 scale: () per tensor or (out, 1) per row), as the converters make them."""
    w = value.float()
    amax = w.reshape(w.shape[0], -1).abs().amax(dim=1, keepdim=True) if per_row else w.abs().amax()
    scale = amax / torch.finfo(dtype).max
    view = scale.reshape(-1, *[1] * (w.ndim - 1)) if per_row else scale
    return (w / view).to(dtype), scale


def dequantized(stored: dict[str, torch.Tensor], scales: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The float32 weights a file stands for, computed independently of yingxi: float8 value * scale."""
    out = {}
    for key, value in stored.items():
        w = value.float()
        s = scales.get(key)
        if s is not None:
            w = w * (s.reshape(-1, *[1] * (w.ndim - 1)) if s.numel() > 1 else s)
        out[key] = w
    return out


def write_plain_fp8(state, path: Path, prefix: str = PREFIX) -> dict[str, torch.Tensor]:
    """ComfyUI's `*_fp8_e4m3fn` files: float8 weights, no scales; one bias in float8 too."""
    stored = {
        k: v.to(E4M3) if quantizable(k, v) or k == "blocks.0.ffn.0.bias" else v for k, v in state.items()
    }
    save_file({prefix + k: v.contiguous() for k, v in stored.items()}, str(path))
    return dequantized(stored, {})


def write_scaled(state, path: Path, *, fp8=E4M3, per_row=False, marker=True, prefix=PREFIX, input_scale=True):
    """ComfyUI's `*_fp8_scaled` / Kijai's `*_scaled_KJ`: a `scaled_fp8` marker whose dtype names the fp8
    type, float8 `X.weight` + float32 `X.scale_weight` per quantized Linear (head and text embedding kept
    in full width), `X.scale_input` on some (one of them 1.0, which means none)."""
    stored, scales, extra = {}, {}, {}
    for key, value in state.items():
        layer = key.removesuffix(".weight")
        if quantizable(key, value) and not key.startswith(("head.", "text_embedding.", "patch_embedding.")):
            stored[key], scales[key] = scaled(value, fp8, per_row)
            extra[layer + ".scale_weight"] = scales[key]
            if input_scale and ".self_attn." in key:
                extra[layer + ".scale_input"] = torch.tensor(1.0 if ".q." in key else 0.02)
        else:
            stored[key] = value
    if marker:
        extra["scaled_fp8"] = torch.empty(2 if per_row else 0, dtype=fp8)
    save_file({prefix + k: v.contiguous() for k, v in {**stored, **extra}.items()}, str(path))
    return dequantized(stored, scales)


def write_quant_metadata(state, path: Path, *, per_layer_tensors=False) -> dict[str, torch.Tensor]:
    """ComfyUI's newer format: `_quantization_metadata` JSON (or `X.comfy_quant` tensors), float8 weights,
    `X.weight_scale`, optional `X.input_scale`; layer names as in the file, prefix included."""
    stored, scales, extra, layers = {}, {}, {}, {}
    for key, value in state.items():
        layer = PREFIX + key.removesuffix(".weight")
        if quantizable(key, value) and key.startswith("blocks."):
            fmt, dtype = ("float8_e5m2", E5M2) if ".ffn." in key else ("float8_e4m3fn", E4M3)
            stored[key], scales[key] = scaled(value, dtype, per_row=False)
            extra[layer + ".weight_scale"] = scales[key]
            if ".cross_attn." in key:
                extra[layer + ".input_scale"] = torch.tensor(0.05)
            layers[layer] = {"format": fmt}
            if per_layer_tensors:
                extra[layer + ".comfy_quant"] = torch.tensor(
                    list(json.dumps(layers[layer]).encode()), dtype=torch.uint8
                )
        else:
            stored[key] = value
    metadata = (
        None
        if per_layer_tensors
        else {"_quantization_metadata": json.dumps({"format_version": "1.0", "layers": layers})}
    )
    save_file({PREFIX + k: v.contiguous() for k, v in stored.items()} | extra, str(path), metadata=metadata)
    return dequantized(stored, scales)


def reference(plain: dict[str, torch.Tensor], folder: Path) -> WanTransformer3DModel:
    return WanTransformer3DModel.from_single_file(
        plain, config=str(folder / "transformer"), torch_dtype=torch.float32
    ).eval()


def diffusers_out(model: WanTransformer3DModel, inputs) -> torch.Tensor:
    with torch.no_grad():
        return model(*inputs, return_dict=False)[0]


def test_plain_fp8_matches_diffusers_from_single_file(folders, tmp_path):
    path = tmp_path / "wan2.1_t2v_1.3B_fp8_e4m3fn.safetensors"
    write_plain_fp8(original_state(folders["t2v"]), path)
    ours = load_transformer(path, dtype="fp32")
    ref = WanTransformer3DModel.from_single_file(
        str(path), config=str(folders["t2v"] / "transformer"), torch_dtype=torch.float32
    ).eval()  # diffusers' own reading of the file
    to_q = ours.blocks[0].attn1.to_q
    assert isinstance(to_q, QuantLinear) and to_q.qweight.dtype == E4M3 and to_q.scale is None
    inputs = sample(ours.config, False)
    torch.testing.assert_close(out(ours, inputs), diffusers_out(ref, inputs), rtol=0, atol=FP32_TOL)


SCALED = {
    "comfy_fp8_scaled": dict(fp8=E4M3, per_row=False, marker=True, prefix=PREFIX),
    "kj_fp8_e4m3fn_scaled": dict(fp8=E4M3, per_row=True, marker=True, prefix=""),
    "kj_fp8_e5m2_scaled": dict(fp8=E5M2, per_row=False, marker=True, prefix=""),
    "scaled_without_marker": dict(fp8=E4M3, per_row=False, marker=False, prefix=PREFIX, input_scale=False),
}


@pytest.mark.parametrize("name", list(SCALED))
def test_scaled_fp8_files_match_the_dequantized_weights(folders, tmp_path, name):
    kind = "i2v" if name == "kj_fp8_e4m3fn_scaled" else "t2v"  # the I2V image k/v projections too
    path = tmp_path / f"wan_{name}.safetensors"
    plain = write_scaled(original_state(folders[kind]), path, **SCALED[name])
    ours = load_transformer(path, kind, dtype="fp32")
    layer = ours.blocks[1].attn1.to_k
    assert isinstance(layer, QuantLinear) and layer.qweight.dtype == SCALED[name]["fp8"]
    assert layer.scale.numel() == (layer.out_features if SCALED[name]["per_row"] else 1)
    assert type(ours.proj_out) is torch.nn.Linear  # stored in full width: stays so
    if SCALED[name].get("input_scale", True):
        assert ours.blocks[0].attn1.to_q.input_scale is None  # 1.0 means none (ComfyUI drops it too)
        assert float(ours.blocks[0].attn1.to_v.input_scale) == pytest.approx(0.02)
    # Every weight the file stands for equals float8 value * scale, exactly.
    w = ours.blocks[1].attn1.to_k.weight_as(torch.float32)
    assert torch.equal(w, plain["blocks.1.self_attn.k.weight"])
    ref = reference(plain, folders[kind])
    inputs = sample(ours.config, kind == "i2v")
    if kind == "i2v":  # diffusers' I2V cross-attention takes the first 257 tokens as image: 512 text tokens
        x, t, text, img = inputs
        inputs = (x, t, torch.nn.functional.pad(text, (0, 0, 0, 512 - text.shape[1])), img)
    torch.testing.assert_close(out(ours, inputs), diffusers_out(ref, inputs), rtol=0, atol=FP32_TOL)


@pytest.mark.parametrize("per_layer_tensors", [False, True], ids=["metadata", "comfy_quant"])
def test_newer_quantization_format_matches_the_dequantized_weights(folders, tmp_path, per_layer_tensors):
    path = tmp_path / "wan2.2_t2v_fp8_mixed.safetensors"
    plain = write_quant_metadata(original_state(folders["t2v"]), path, per_layer_tensors=per_layer_tensors)
    ours = load_transformer(path, dtype="fp32")
    assert ours.blocks[0].ffn.net[0].proj.qtype == "fp8_e5m2"  # each layer keeps its stored fp8 type
    assert ours.blocks[0].attn1.to_q.qtype == "fp8_e4m3fn"
    assert float(ours.blocks[0].attn2.to_q.input_scale) == pytest.approx(0.05)
    ref = reference(plain, folders["t2v"])
    inputs = sample(ours.config, False)
    torch.testing.assert_close(out(ours, inputs), diffusers_out(ref, inputs), rtol=0, atol=FP32_TOL)


def test_weights_bf16_dequantizes_at_load_and_fp8_keeps_the_file_as_stored(folders, tmp_path):
    path = tmp_path / "scaled.safetensors"
    write_scaled(original_state(folders["t2v"]), path)
    stored = load_transformer(path, dtype="fp32", weights="fp8")  # already fp8: kept as stored
    plain = load_transformer(path, dtype="fp32", weights="bf16")
    assert isinstance(stored.blocks[0].attn1.to_q, QuantLinear)
    assert not any(isinstance(m, QuantLinear) for m in plain.modules())
    inputs = sample(plain.config, False)
    assert torch.equal(out(stored, inputs), out(plain, inputs))


def test_marker_names_the_fp8_type_and_float32_marker_means_e4m3fn():
    w = torch.randn(4, 8)
    q = quantize_fp8(w)
    raw = {"a.weight": q.data, "a.scale_weight": q.scale.amax().reshape(()), "scaled_fp8": torch.empty(0)}
    entries = gather_quantized(raw)
    assert set(entries) == {"a.weight"} and entries["a.weight"].qtype == "fp8_e4m3fn"
    assert isinstance(entries["a.weight"], QuantizedTensor) and entries["a.weight"].shape == (4, 8)


def test_bad_fp8_files_are_refused_with_the_key(folders, tmp_path):
    state = {
        "blocks.0.self_attn.q.weight": torch.randn(4, 4),
        "blocks.0.self_attn.q.scale_weight": torch.tensor(0.1),
    }
    save_file(state, str(tmp_path / "a.safetensors"))
    with pytest.raises(
        CheckpointError,
        match=r"a\.safetensors: blocks\.0\.self_attn\.q\.scale_weight: a scale for "
        r"blocks\.0\.self_attn\.q\.weight, which is not stored in fp8",
    ):
        read_state_dict(tmp_path / "a.safetensors")
    meta = {"_quantization_metadata": json.dumps({"layers": {"x": {"format": "nvfp4"}}})}
    save_file(
        {"x.weight": torch.zeros(4, 4, dtype=torch.uint8)}, str(tmp_path / "b.safetensors"), metadata=meta
    )
    with pytest.raises(CheckpointError, match=r'layer x: quantization format "nvfp4" is not supported here'):
        read_state_dict(tmp_path / "b.safetensors")
    save_file(
        {"x.weight": torch.zeros(4, 4).to(E4M3)},
        str(tmp_path / "c.safetensors"),
        metadata={"_quantization_metadata": "{"},
    )
    with pytest.raises(CheckpointError, match="_quantization_metadata is not ComfyUI's JSON"):
        read_state_dict(tmp_path / "c.safetensors")
    meta = {"_quantization_metadata": json.dumps({"layers": {"x": {"format": "float8_e5m2"}}})}
    save_file({"x.weight": torch.zeros(4, 4).to(E4M3)}, str(tmp_path / "d.safetensors"), metadata=meta)
    with pytest.raises(
        CheckpointError,
        match=r"x\.weight: stored as torch\.float8_e4m3fn but the quantization metadata says fp8_e5m2",
    ):
        read_state_dict(tmp_path / "d.safetensors")
    save_file(
        {"x.weight": torch.zeros(4, 4), "scaled_fp8": torch.empty(0, dtype=torch.int8)},
        str(tmp_path / "e.safetensors"),
    )
    with pytest.raises(CheckpointError, match="scaled_fp8: marker dtype torch.int8 names no fp8 type"):
        read_state_dict(tmp_path / "e.safetensors")
    with pytest.raises(Exception, match=r'unknown weights "fp4" \(did you mean "fp8"\?\)'):
        load_transformer(folders["t2v"] / "transformer", weights="fp4")
