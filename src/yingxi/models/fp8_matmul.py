"""fp8 matmuls on the tensor cores (`torch._scaled_mm`) for fp8 weights, where the card has them.

Ada (compute capability 8.9) and Hopper (9.0+) multiply float8 matrices natively. The weight is already
float8; the activations are cast to e4m3fn with a scale (the file's static `input_scale` where it has
one, as ComfyUI does, else absmax / 448 taken now: per token where the weight has one scale per row and
the card does row-wise scaling, per tensor otherwise). The extra error is the activations' rounding to
e4m3 (3 mantissa bits, at most 2^-4 relative per value): on random 1536-wide layers 2.7% relative L2 on
the layer's output against the dequantized fp32 matmul (row-wise and tensor-wise alike), where the
dequantize-then-matmul path in bf16 is 0.23% (torch's CPU `_scaled_mm`, tests/models/wan/
test_fp8_weights.py; on a GPU: `bench/wan_formats.py --device cuda`). That is the size of the weights' own
fp8 rounding, so it is on by default; `YINGXI_FP8_MATMUL=0` keeps ComfyUI's default numerics (it too
multiplies in fp8 only with `--fast`). Everywhere else, and for float32 inputs, e5m2 weights and shapes
the kernels refuse (dims not multiples of 16): dequantize-then-matmul.
"""

from __future__ import annotations

import os
import warnings
from typing import Literal

import torch
from torch import Tensor

__all__ = ["Fp8Kind", "fp8_linear", "fp8_matmul_kind", "scaled_mm_linear", "select_fp8_matmul"]

Fp8Kind = Literal["tensorwise", "rowwise"]
E4M3_MAX = 448.0
_failed: list[str] = []  # the first error a `_scaled_mm` call raised in this process: never tried again


def select_fp8_matmul(
    capability: tuple[int, int] | None,
    qtype: str,
    x_dtype: torch.dtype,
    weight_scales: int,
    in_features: int,
    out_features: int,
    *,
    enabled: bool = True,
) -> Fp8Kind | None:
    """Which `_scaled_mm` flavour a layer can use, or None for dequantize-then-matmul.

    capability: the CUDA device's (major, minor), None off CUDA; weight_scales: 1 per tensor, else per row.
    Row-wise scaling (per-token activations x per-channel weights) needs Hopper (9.0) and bf16 output;
    on Ada a per-row weight falls back to tensor-wise scaling with the row scales applied to the output.
    """
    if not enabled or capability is None or capability < (8, 9) or not hasattr(torch, "_scaled_mm"):
        return None
    if qtype != "fp8_e4m3fn" or x_dtype not in (torch.bfloat16, torch.float16):
        return None
    if in_features % 16 or out_features % 16:
        return None
    if weight_scales > 1 and capability >= (9, 0) and x_dtype == torch.bfloat16:
        return "rowwise"
    return "tensorwise"


def _enabled() -> bool:
    return os.environ.get("YINGXI_FP8_MATMUL", "1").lower() not in ("0", "false", "no", "off")


def fp8_matmul_kind(layer, x: Tensor) -> Fp8Kind | None:
    """`select_fp8_matmul` for a QuantLinear and its input (CPU inputs: always None)."""
    if x.device.type != "cuda" or _failed or getattr(layer, "full_precision", False):
        return None
    scales = layer.scale.numel() if layer.scale is not None else 1
    capability = torch.cuda.get_device_capability(x.device)
    return select_fp8_matmul(
        capability, layer.qtype, x.dtype, scales, layer.in_features, layer.out_features, enabled=_enabled()
    )


def fp8_linear(layer, x: Tensor) -> Tensor | None:
    """The layer's output through `_scaled_mm` where that is chosen, else None (dequantize-then-matmul).
    A kernel that refuses (an older torch, a driver without the row-wise kernels) is reported once and
    the dequantizing path is used from then on."""
    kind = fp8_matmul_kind(layer, x)
    if kind is None:
        return None
    try:
        return scaled_mm_linear(layer, x, kind)
    except RuntimeError as exc:
        _failed.append(str(exc))
        warnings.warn(f"fp8 matmul unavailable ({exc}); dequantizing fp8 weights instead", stacklevel=2)
        return None


def _to_e4m3(x: Tensor, scale: Tensor) -> Tensor:
    return (x.float() / scale).clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)


def scaled_mm_linear(layer, x: Tensor, kind: Fp8Kind) -> Tensor:
    """y = x W^T + b with W float8 (out, in) and x cast to e4m3fn; x (..., in) -> (..., out) in x.dtype."""
    rows = x.reshape(-1, layer.in_features)  # (M, K)
    w_t = layer.qweight.t()  # (K, N), column-major as _scaled_mm wants
    w_scale = (
        layer.scale.float().reshape(-1)
        if layer.scale is not None
        else torch.ones(1, device=x.device, dtype=torch.float32)
    )  # (N,) or (1,)
    bias = layer.bias.to(x.dtype) if layer.bias is not None else None
    static = layer.input_scale
    if kind == "rowwise":
        if static is not None:
            a_scale = static.float().reshape(1, 1).expand(rows.shape[0], 1).contiguous()  # (M, 1)
        else:
            a_scale = (rows.abs().amax(dim=1, keepdim=True).float() / E4M3_MAX).clamp_min(1e-12)  # (M, 1)
        out = torch._scaled_mm(
            _to_e4m3(rows, a_scale),
            w_t,
            scale_a=a_scale,
            scale_b=w_scale.reshape(1, -1).contiguous(),
            out_dtype=x.dtype,
        )  # fmt: skip  (the bias is added outside: not every torch's row-wise kernel takes one)
        out = out[0] if isinstance(out, tuple) else out
        out = out + bias if bias is not None else out
    else:
        a_scale = static.float().reshape(()) if static is not None else (rows.abs().amax().float() / E4M3_MAX)
        a_scale = a_scale.clamp_min(1e-12)
        one = torch.ones((), device=x.device, dtype=torch.float32)
        if w_scale.numel() == 1:
            out = torch._scaled_mm(
                _to_e4m3(rows, a_scale), w_t, scale_a=a_scale, scale_b=w_scale.reshape(()),
                bias=bias, out_dtype=x.dtype,
            )  # fmt: skip
        else:  # Ada with per-row weight scales: unit scales in the kernel, then a (M, N) float32 rescale
            acc = torch._scaled_mm(
                _to_e4m3(rows, a_scale), w_t, scale_a=one, scale_b=one, out_dtype=torch.float32
            )
            out = acc * (a_scale * w_scale)  # (M, N)
            out = (out + bias.float() if bias is not None else out).to(x.dtype)
    if isinstance(out, tuple):  # torch < 2.5 returned (out, amax)
        out = out[0]
    return out.reshape(*x.shape[:-1], layer.out_features)  # (..., N)
