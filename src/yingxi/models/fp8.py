"""fp8 weights as ComfyUI, Kijai and yingxi store them: read them into `QuantizedTensor`s, or make them.

The file formats, as ComfyUI reads them (`comfy/model_detection.py`, `comfy/ops.py`, `comfy/utils.py
::convert_old_quants`, `comfy/quant_ops.py`):

- plain fp8 (`*_fp8_e4m3fn.safetensors`): float8 weights with no scale; the value is the float8 number.
- "fp8 scaled" (`*_fp8_scaled`, Kijai's `*_fp8_e4m3fn_scaled_KJ` / `*_fp8_e5m2_scaled_KJ`): a `scaled_fp8`
  marker tensor (ComfyUI's files; its dtype names the fp8 type, float32 meaning e4m3fn) and, per quantized
  Linear, `X.weight` in float8 plus `X.scale_weight` (float32, one per tensor or one per output row):
  weight = float8 value * scale_weight. `X.scale_input` is not part of the weight: it is the scale the
  fp8 matmul divides the activations by before casting them to fp8 (1.0, ComfyUI drops it, means none).
- the newer format: safetensors metadata `_quantization_metadata` = {"layers": {NAME: {"format":
  "float8_e4m3fn" | "float8_e5m2", ...}}} (or a `NAME.comfy_quant` uint8 JSON tensor per layer), with
  `NAME.weight` in float8, `NAME.weight_scale` and optionally `NAME.input_scale`, meaning as above.

Where ComfyUI differs, on purpose: it dequantizes in the compute dtype (bf16(fp8) * bf16(scale), rounded
twice) and casts an e5m2 weight of the newer format to e4m3fn; here the product is taken in float32 and
rounded once, and every weight keeps the fp8 type it was stored in. In float32 both agree exactly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

import torch
from torch import Tensor

from yingxi.errors import InputError
from yingxi.models.quant import QuantizedTensor

__all__ = [
    "FP8_DTYPES",
    "MARKER",
    "QUANT_SUFFIXES",
    "gather_quantized",
    "is_quantization_key",
    "quantize_fp8",
]

FP8_DTYPES: dict[torch.dtype, str] = {torch.float8_e4m3fn: "fp8_e4m3fn", torch.float8_e5m2: "fp8_e5m2"}
QTYPE_DTYPES = {v: k for k, v in FP8_DTYPES.items()}
_FORMATS = {"float8_e4m3fn": "fp8_e4m3fn", "float8_e5m2": "fp8_e5m2"}  # the newer format's names
MARKER = "scaled_fp8"
WEIGHT_SCALES = (".scale_weight", ".weight_scale")
INPUT_SCALES = (".scale_input", ".input_scale")
QUANT_SUFFIXES = (*WEIGHT_SCALES, *INPUT_SCALES, ".comfy_quant")


def is_quantization_key(key: str) -> bool:
    """A tensor that describes another one (scale, per-layer config, format marker): read it as stored."""
    return key.endswith(QUANT_SUFFIXES) or key == MARKER or key.endswith("." + MARKER)


def quantize_fp8(weight: Tensor, qtype: str = "fp8_e4m3fn") -> QuantizedTensor:
    """One scale per output row (absmax / fp8 max, in float32), values rounded to nearest in fp8.

    weight (out, ...) -> QuantizedTensor(data (out, ...) float8, scale (out, 1) float32).
    """
    fp8 = QTYPE_DTYPES[qtype]
    w = weight.detach().to(torch.float32)
    rows = w.reshape(w.shape[0], -1)  # (out, in)
    scale = rows.abs().amax(dim=1, keepdim=True) / torch.finfo(fp8).max  # (out, 1)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero row stays zero
    data = (rows / scale).clamp(torch.finfo(fp8).min, torch.finfo(fp8).max).to(fp8)  # (out, in)
    return QuantizedTensor(qtype, data.reshape(weight.shape), tuple(weight.shape), scale)


def _layer_formats(state: Mapping[str, Tensor], metadata: Mapping[str, str] | None, source: str | None):
    """{layer name: qtype} from `_quantization_metadata` and `.comfy_quant` tensors (the newer format)."""
    layers: dict[str, dict] = {}
    raw = (metadata or {}).get("_quantization_metadata")
    if raw:
        try:
            layers.update(json.loads(raw)["layers"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise InputError(f"_quantization_metadata is not ComfyUI's JSON: {exc}", file=source) from exc
    for key, value in state.items():
        if key.endswith(".comfy_quant"):
            try:
                layers[key.removesuffix(".comfy_quant")] = json.loads(value.numpy().tobytes())
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise InputError(f"{key} is not a JSON layer config: {exc}", file=source) from exc
    out: dict[str, str] = {}
    for name, conf in layers.items():
        fmt = conf.get("format") if isinstance(conf, Mapping) else None
        if fmt not in _FORMATS:
            raise InputError(
                f'layer {name}: quantization format "{fmt}" is not supported here; '
                f"supported: {', '.join(_FORMATS)} (GGUF files are read as .gguf)",
                file=source,
            )
        out[name] = _FORMATS[fmt]
    return out


def _scale(state: dict[str, Tensor], layer: str, suffixes: tuple[str, ...]) -> Tensor | None:
    for suffix in suffixes:
        value = state.pop(layer + suffix, None)
        if value is not None:
            return value.to(torch.float32)
    return None


def gather_quantized(
    state: Mapping[str, Tensor], metadata: Mapping[str, str] | None = None, *, source: str | None = None
) -> dict[str, Tensor | QuantizedTensor]:
    """A raw state dict (as stored, float8 tensors and scales included) -> entries: each float8 `X.weight`
    becomes a QuantizedTensor with its scale and input scale; scales, markers and layer configs go.

    Other float8 tensors (a bias, a norm weight in a plain fp8 file) stay float8 tensors: loading casts
    them like any other. A scale whose weight is missing or not float8 is an error naming it.
    """
    state = dict(state)
    marker = next((k for k in state if k == MARKER or k.endswith("." + MARKER)), None)
    marker_dtype = state.pop(marker).dtype if marker is not None else None
    if marker_dtype is not None and marker_dtype not in FP8_DTYPES and marker_dtype != torch.float32:
        raise InputError(f"{marker}: marker dtype {marker_dtype} names no fp8 type", file=source)
    formats = _layer_formats(state, metadata, source)
    for key in [k for k in state if k.endswith(".comfy_quant")]:
        del state[key]

    out: dict[str, Tensor | QuantizedTensor] = {}
    for key in sorted(state, key=lambda k: k.endswith(QUANT_SUFFIXES)):  # weights before their scales
        if key not in state:
            continue
        value = state[key]
        if key.endswith(".weight") and value.dtype in FP8_DTYPES:
            layer = key.removesuffix(".weight")
            qtype = FP8_DTYPES[value.dtype]
            if layer in formats and formats[layer] != qtype:
                raise InputError(
                    f"{key}: stored as {value.dtype} but the quantization metadata says {formats[layer]}",
                    file=source,
                )
            scale = _scale(state, layer, WEIGHT_SCALES)
            input_scale = _scale(state, layer, INPUT_SCALES)
            if input_scale is not None and input_scale.numel() == 1 and float(input_scale) == 1.0:
                input_scale = None  # ComfyUI drops a unit input scale too
            out[key] = QuantizedTensor(qtype, value, tuple(value.shape), scale, input_scale)
        elif key.endswith(QUANT_SUFFIXES):
            layer = re.sub(r"\.[a-z_]+$", "", key)
            raise InputError(
                f"{key}: a scale for {layer}.weight, which is not stored in fp8 (or is missing)", file=source
            )
        elif key.endswith(".weight") and key.removesuffix(".weight") in formats:
            raise InputError(
                f"{key}: the quantization metadata says fp8 but it is stored as {value.dtype}", file=source
            )
        else:
            out[key] = value
    missing = [f"{name}.weight" for name in formats if f"{name}.weight" not in out]
    if missing:
        raise InputError(f"the quantization metadata names layers the file lacks: {missing[0]}", file=source)
    return out
