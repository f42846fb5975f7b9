"""Quantized weights as a storage choice, not a model fork (the idea of ComfyUI's `comfy/ops.py`).

A checkpoint reader returns plain tensors and `QuantizedTensor`s; a `QuantLinear` keeps the stored bytes
(fp8, or GGUF blocks) on the device and dequantizes them just before its matmul, so the weights take the
memory they take on disk. Each storage type registers one dequantizer (`register_qtype`); GGUF's block types
live in `yingxi.models.gguf`, which registers them when imported.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from yingxi.errors import InputError, unknown_word
from yingxi.models.fp8_matmul import fp8_linear

__all__ = ["Dequantizer", "QuantLinear", "QuantizedTensor", "dequantize", "qtypes", "register_qtype"]

# (stored data, scale or None, logical shape, dtype wanted) -> dequantized tensor of `shape` in `dtype`
Dequantizer = Callable[[Tensor, "Tensor | None", tuple[int, ...], torch.dtype], Tensor]
_DEQUANT: dict[str, Dequantizer] = {}
_PROVIDERS = ("yingxi.models.gguf",)  # modules that register more types when imported


@dataclass
class QuantizedTensor:
    """One stored weight that is not a plain float tensor.

    qtype: "fp8_e4m3fn", "fp8_e5m2", or a GGUF type name ("Q8_0", "Q4_K", ...);
    data: what the file holds (a float8 tensor of `shape`, or uint8 blocks);
    shape: the logical (dequantized) shape; scale: float32, () per tensor or (out, 1) per output channel;
    input_scale: ComfyUI's `.scale_input` / `.input_scale`, the scale an fp8 matmul divides the
    activations by before casting them to fp8 (no part of the weight's value; None: the input as it is);
    full_precision: the file asks for no fp8 matmul on this weight (ComfyUI's "full_precision_matrix_mult").
    """

    qtype: str
    data: Tensor
    shape: tuple[int, ...]
    scale: Tensor | None = None
    input_scale: Tensor | None = None
    full_precision: bool = False

    @property
    def nbytes(self) -> int:
        return sum(
            t.numel() * t.element_size() for t in (self.data, self.scale, self.input_scale) if t is not None
        )

    def dequantize(self, dtype: torch.dtype = torch.float32) -> Tensor:
        return dequantize(self.qtype, self.data, self.scale, self.shape, dtype)


def register_qtype(name: str, fn: Dequantizer) -> None:
    """Make `name` a storage type every `QuantLinear` and `dequantize` understands."""
    _DEQUANT[name] = fn


def qtypes() -> list[str]:
    """The storage types known so far (importing the providers first)."""
    for module in _PROVIDERS:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:  # the provider or its package (gguf) is not installed here
            if exc.name not in (module, module.rsplit(".", 1)[-1]):
                raise
    return list(_DEQUANT)


def dequantize(
    qtype: str, data: Tensor, scale: Tensor | None, shape: tuple[int, ...], dtype: torch.dtype
) -> Tensor:
    """The float tensor of `shape` in `dtype` that stored `data` (+ `scale`) stands for."""
    if qtype not in _DEQUANT:
        qtypes()  # a GGUF type: its provider registers it on import
    fn = _DEQUANT.get(qtype)
    if fn is None:
        raise InputError(unknown_word("weight storage type", qtype, _DEQUANT), field="weights")
    return fn(data, scale, tuple(shape), dtype)


def _fp8(data: Tensor, scale: Tensor | None, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
    """float8 values times their scale, multiplied in float32 and rounded once to `dtype` (ComfyUI rounds
    twice in bf16: the fp8 value, then the product; both agree exactly in float32)."""
    if scale is None:
        return data.to(dtype).reshape(shape)
    w = data.to(torch.float32).reshape(shape)  # (out, ...)
    s = scale.to(torch.float32)
    if s.numel() > 1:  # one scale per output row: (out,) or (out, 1) -> (out, 1, ...)
        s = s.reshape(shape[0], *([1] * (len(shape) - 1)))
    return (w * s.reshape(()) if s.numel() == 1 else w * s).to(dtype)


register_qtype("fp8_e4m3fn", _fp8)
register_qtype("fp8_e5m2", _fp8)


class QuantLinear(nn.Module):
    """nn.Linear whose weight is stored quantized (`qweight`, optional `scale` buffers) and dequantized to
    the input's dtype in each forward: the device holds the stored bytes, plus one layer's float weight
    while it runs. On Ada/Hopper an e4m3fn weight multiplies in fp8 instead (`yingxi.models.fp8_matmul`)."""

    def __init__(self, in_features: int, out_features: int, bias: bool, qtype: str) -> None:
        super().__init__()
        self.in_features, self.out_features, self.qtype = in_features, out_features, qtype
        self.register_buffer("qweight", torch.empty(0, dtype=torch.uint8))  # replaced by the stored data
        self.register_buffer("scale", None)
        self.register_buffer("input_scale", None)  # used only by the fp8 matmul path
        self.full_precision = False  # True: never the fp8 matmul (the file says so)
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None

    @classmethod
    def from_quantized(cls, q: QuantizedTensor, bias: Tensor | None) -> QuantLinear:
        out_features, in_features = q.shape[0], math.prod(q.shape[1:])
        with torch.device(q.data.device):
            layer = cls(in_features, out_features, bias is not None, q.qtype)
        layer.qweight = q.data
        layer.scale = q.scale
        layer.input_scale = q.input_scale
        layer.full_precision = q.full_precision
        if bias is not None:
            layer.bias = nn.Parameter(bias, requires_grad=False)
        return layer

    def _apply(self, fn, recurse: bool = True):
        """`.to(device)` moves the stored bytes; `.to(dtype)` / `.half()` leave them (and the float32
        scales) as stored, as they would otherwise widen a float8 weight in place. The bias follows."""
        stored = {name: b for name, b in self._buffers.items() if b is not None}
        for name in stored:
            self._buffers[name] = None
        super()._apply(fn, recurse)
        for name, b in stored.items():
            moved = fn(b)
            self._buffers[name] = moved if moved.dtype == b.dtype else b.to(moved.device)
        return self

    def weight_as(self, dtype: torch.dtype) -> Tensor:
        """The dequantized (out, in) weight."""
        return dequantize(self.qtype, self.qweight, self.scale, (self.out_features, self.in_features), dtype)

    def forward(self, x: Tensor) -> Tensor:
        out = fp8_linear(self, x)  # Ada/Hopper with e4m3fn weights: a float8 matmul; else None
        if out is not None:
            return out  # (..., out)
        w = self.weight_as(x.dtype)  # (out, in)
        bias = self.bias.to(x.dtype) if self.bias is not None else None
        y = F.linear(x, w, bias)  # (..., out)
        for lora in getattr(self, "lora_paths", ()):  # LoRAs beside the stored weight (yingxi.models.lora)
            y = y + lora(x)  # (..., out)
        return y

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, qtype={self.qtype}, bias={self.bias is not None}"
