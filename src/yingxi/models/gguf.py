"""GGUF transformer files as city96 (ComfyUI-GGUF) and QuantStack publish Wan: read with the `gguf` package,
kept quantized, and dequantized by torch on any device.

Layout (city96 `loader.py`, `tools/convert.py`): `general.architecture = "wan"`; tensor names in Wan's original
layout, optionally under `model.diffusion_model.`; GGML dimension order (innermost first, the reverse of
torch's); a tensor stored reshaped (the 5-D `patch_embedding`, flattened to rows of 256) carries its torch
shape in `comfy.gguf.orig_shape.NAME`. F32/F16/BF16 tensors come back as plain tensors; block-quantized ones
as `QuantizedTensor(qtype, uint8 blocks, shape)`, dequantized layer by layer by `QuantLinear`.

The block decoders below follow ggml's `dequantize_row_*` (ggml-quants.c), vectorised over all blocks; they
compute in float32 in the same order as `gguf.quants.dequantize`, so they match it bit for bit.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from yingxi.errors import unknown_word
from yingxi.models.loading import Cast, CheckpointError
from yingxi.models.quant import QuantizedTensor, register_qtype

__all__ = [
    "FLOAT_TYPES",
    "QUANT_TYPES",
    "WAN_ARCHITECTURES",
    "dequantize_blocks",
    "gguf_bytes",
    "gguf_keys",
    "quantized_model_bytes",
    "read_gguf",
]

QK_K = 256  # elements per K-quant super-block
# name -> (elements per block, bytes per block), as ggml's type traits (gguf.GGML_QUANT_SIZES) state them
QUANT_TYPES: dict[str, tuple[int, int]] = {
    "Q8_0": (32, 2 + 32),
    "Q5_1": (32, 2 + 2 + 4 + 16),
    "Q5_0": (32, 2 + 4 + 16),
    "Q4_1": (32, 2 + 2 + 16),
    "Q4_0": (32, 2 + 16),
    "Q6_K": (QK_K, QK_K // 2 + QK_K // 4 + QK_K // 16 + 2),
    "Q5_K": (QK_K, 2 + 2 + 12 + QK_K // 8 + QK_K // 2),
    "Q4_K": (QK_K, 2 + 2 + 12 + QK_K // 2),
    "Q3_K": (QK_K, QK_K // 8 + QK_K // 4 + 12 + 2),
    "Q2_K": (QK_K, QK_K // 16 + QK_K // 4 + 2 + 2),
}
# GGUF float types read as plain tensors: name -> torch dtype
FLOAT_TYPES: dict[str, torch.dtype] = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
WAN_ARCHITECTURES = ("wan",)  # city96's IMG_ARCH_LIST name for every Wan 2.1/2.2 video transformer
PREFIX = "model.diffusion_model."  # ComfyUI's single-file prefix
_ORIG_SHAPE = "comfy.gguf.orig_shape."


def gguf_bytes(qtype: str, numel: int) -> int:
    """Bytes `numel` weights take stored as `qtype` ("Q4_K", "Q8_0", "F16", ...): the arithmetic behind the
    memory accounting, `yingxi models inspect` and the benchmark's full-size figures."""
    if qtype in FLOAT_TYPES:
        return numel * FLOAT_TYPES[qtype].itemsize
    if qtype not in QUANT_TYPES:
        raise CheckpointError(unknown_word("GGUF tensor type", qtype, [*FLOAT_TYPES, *QUANT_TYPES]))
    block, size = QUANT_TYPES[qtype]
    if numel % block:
        raise CheckpointError(f"{qtype} stores whole blocks of {block} values; {numel} is not a multiple")
    return numel // block * size


QUANTIZATION_THRESHOLD = 1024  # city96's convert.py keeps tensors of at most this many values in F32


def quantized_model_bytes(
    model: nn.Module, qtype: str | None, *, dtype: torch.dtype, keep_fp32: tuple[str, ...] = ()
) -> int:
    """Parameter+buffer bytes `model` (a meta-device build will do) takes loaded from a city96-style GGUF file
    of `qtype` (None: plain, every weight at `dtype`): the weights of `nn.Linear`s with more than 1024 values,
    whole blocks per row and outside the `keep_fp32` parts stay `qtype`; the rest is held at `dtype`, float32
    in `keep_fp32` parts, as `load_module` holds them."""

    def fp32(name: str) -> bool:
        return any(part in name.split(".") for part in keep_fp32)

    block = QUANT_TYPES[qtype][0] if qtype is not None else 0
    stored: set[str] = set()
    total = 0
    for name, mod in model.named_modules():
        w = getattr(mod, "weight", None)
        key = f"{name}.weight" if name else "weight"
        if qtype is None or not isinstance(mod, nn.Linear) or w is None or fp32(key):
            continue
        if w.numel() > QUANTIZATION_THRESHOLD and mod.in_features % block == 0:
            total += gguf_bytes(qtype, w.numel())
            stored.add(key)
    for name, p in model.named_parameters():
        if name in stored:
            continue
        width = (4 if fp32(name) else dtype.itemsize) if p.is_floating_point() else p.element_size()
        total += p.numel() * width
    return total + sum(b.numel() * b.element_size() for b in model.buffers())


# ---------------------------------------------------------------------------------------------- decoders
# Each takes blocks (n, bytes per block) uint8 and returns (n, elements per block) float32.


def _f16(blocks: Tensor, at: int) -> Tensor:
    """The fp16 scale at byte `at` of each block -> (n, 1) float32."""
    return blocks[:, at : at + 2].contiguous().view(torch.float16).to(torch.float32)


def _split(x: Tensor, shift: int, count: int, mask: int) -> Tensor:
    """(n, ..., k) uint8 -> (n, ..., count, k): the `count` fields of `shift` bits each byte packs, low first."""
    shifts = torch.arange(0, shift * count, shift, dtype=torch.uint8, device=x.device).view(count, 1)
    return (x.unsqueeze(-2) >> shifts) & mask


def _q8_0(b: Tensor) -> Tensor:
    return b[:, 2:].contiguous().view(torch.int8).to(torch.float32) * _f16(b, 0)  # (n, 32)


def _q4_0(b: Tensor) -> Tensor:
    q = _split(b[:, 2:], 4, 2, 0x0F).reshape(-1, 32).to(torch.int8) - 8  # low nibbles: 0..15, high: 16..31
    return _f16(b, 0) * q.to(torch.float32)


def _q4_1(b: Tensor) -> Tensor:
    q = _split(b[:, 4:], 4, 2, 0x0F).reshape(-1, 32).to(torch.float32)
    return _f16(b, 0) * q + _f16(b, 2)


def _fifth_bits(qh: Tensor) -> Tensor:
    """(n, 4) uint8, one little-endian uint32 per block -> (n, 32): bit j of it for element j."""
    return _split(qh, 1, 8, 1).transpose(-1, -2).reshape(-1, 32)


def _q5_0(b: Tensor) -> Tensor:
    ql = _split(b[:, 6:], 4, 2, 0x0F).reshape(-1, 32)
    q = (ql | (_fifth_bits(b[:, 2:6]) << 4)).to(torch.int8) - 16
    return _f16(b, 0) * q.to(torch.float32)


def _q5_1(b: Tensor) -> Tensor:
    ql = _split(b[:, 8:], 4, 2, 0x0F).reshape(-1, 32)
    q = (ql | (_fifth_bits(b[:, 4:8]) << 4)).to(torch.float32)
    return _f16(b, 0) * q + _f16(b, 2)


def _scale_min_k4(s: Tensor) -> tuple[Tensor, Tensor]:
    """Q4_K/Q5_K's 12 bytes -> (scales, mins), (n, 8) each, 6 bits apiece (ggml's get_scale_min_k4)."""
    s = s.reshape(-1, 3, 4)
    d, m, md = s[:, 0], s[:, 1], s[:, 2]  # (n, 4) each
    sc = torch.cat([d & 0x3F, (md & 0x0F) | ((d >> 2) & 0x30)], dim=-1)
    mn = torch.cat([m & 0x3F, (md >> 4) | ((m >> 2) & 0x30)], dim=-1)
    return sc, mn


def _q4_k(b: Tensor) -> Tensor:
    sc, mn = _scale_min_k4(b[:, 4:16])
    d = (_f16(b, 0) * sc.to(torch.float32)).unsqueeze(-1)  # (n, 8, 1)
    dm = (_f16(b, 2) * mn.to(torch.float32)).unsqueeze(-1)
    q = _split(b[:, 16:].reshape(-1, 4, 32), 4, 2, 0x0F).reshape(-1, 8, 32).to(torch.float32)
    return (d * q - dm).reshape(-1, QK_K)


def _q5_k(b: Tensor) -> Tensor:
    sc, mn = _scale_min_k4(b[:, 4:16])
    d = (_f16(b, 0) * sc.to(torch.float32)).unsqueeze(-1)  # (n, 8, 1)
    dm = (_f16(b, 2) * mn.to(torch.float32)).unsqueeze(-1)
    ql = _split(b[:, 48:].reshape(-1, 4, 32), 4, 2, 0x0F).reshape(-1, 8, 32)
    qh = _split(b[:, 16:48], 1, 8, 1)  # (n, 8, 32): bit s of byte j is element j of sub-block s
    return (d * (ql | (qh << 4)).to(torch.float32) - dm).reshape(-1, QK_K)


def _q6_k(b: Tensor) -> Tensor:
    scales = b[:, 192:208].contiguous().view(torch.int8).to(torch.float32)  # (n, 16)
    d = (_f16(b, 208) * scales).unsqueeze(-1)  # (n, 16, 1)
    ql = _split(b[:, :128].reshape(-1, 2, 64), 4, 2, 0x0F).reshape(-1, 8, 32)
    qh = _split(b[:, 128:192].reshape(-1, 2, 32), 2, 4, 0x03).reshape(-1, 8, 32)
    q = ((ql | (qh << 4)).to(torch.int8) - 32).reshape(-1, 16, 16).to(torch.float32)
    return (d * q).reshape(-1, QK_K)


def _q3_k(b: Tensor) -> Tensor:
    s = b[:, 96:108]
    low = _split(s[:, :8], 4, 2, 0x0F).reshape(-1, 16)  # 4 low bits of the 16 scales
    high = _split(s[:, 8:12], 2, 4, 0x03).reshape(-1, 16)  # their 2 high bits
    scales = ((low | (high << 4)).to(torch.int8) - 32).to(torch.float32)
    dl = (_f16(b, 108) * scales).unsqueeze(-1)  # (n, 16, 1)
    ql = _split(b[:, 32:96].reshape(-1, 2, 32), 2, 4, 0x03).reshape(-1, 16, 16)
    qh = _split(b[:, :32], 1, 8, 1).reshape(-1, 16, 16) ^ 1  # the mask bit set means no -4 offset
    q = (ql.to(torch.int8) - (qh << 2).to(torch.int8)).to(torch.float32)
    return (dl * q).reshape(-1, QK_K)


def _q2_k(b: Tensor) -> Tensor:
    s = b[:, :16]
    dl = (_f16(b, 80) * (s & 0x0F).to(torch.float32)).unsqueeze(-1)  # (n, 16, 1)
    ml = (_f16(b, 82) * (s >> 4).to(torch.float32)).unsqueeze(-1)
    q = _split(b[:, 16:80].reshape(-1, 2, 32), 2, 4, 0x03).reshape(-1, 16, 16).to(torch.float32)
    return (dl * q - ml).reshape(-1, QK_K)


_DECODERS: dict[str, Callable[[Tensor], Tensor]] = {
    "Q8_0": _q8_0,
    "Q5_1": _q5_1,
    "Q5_0": _q5_0,
    "Q4_1": _q4_1,
    "Q4_0": _q4_0,
    "Q6_K": _q6_k,
    "Q5_K": _q5_k,
    "Q4_K": _q4_k,
    "Q3_K": _q3_k,
    "Q2_K": _q2_k,
}


def dequantize_blocks(qtype: str, data: Tensor) -> Tensor:
    """Stored bytes of `qtype` (any shape, uint8, any device) -> the flat float32 values they encode."""
    block, size = QUANT_TYPES[qtype]
    if data.numel() % size:
        raise CheckpointError(f"{qtype} data of {data.numel()} bytes is not whole {size}-byte blocks")
    blocks = data.reshape(-1, size)  # (n, bytes per block)
    if blocks.dtype != torch.uint8:
        blocks = blocks.view(torch.uint8)
    return _DECODERS[qtype](blocks).reshape(-1)  # (n * block,)


def _dequantizer(qtype: str):
    def dequant(data: Tensor, scale: Tensor | None, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
        flat = dequantize_blocks(qtype, data)
        if flat.numel() != math.prod(shape):
            raise CheckpointError(f"{qtype} data holds {flat.numel()} values, not the {shape} it claims")
        return flat.reshape(shape).to(dtype)

    return dequant


for _name in QUANT_TYPES:
    register_qtype(_name, _dequantizer(_name))


# ------------------------------------------------------------------------------------------------ reader


def _open(path: Path):
    try:
        from gguf import GGUFReader
    except ModuleNotFoundError as exc:
        raise CheckpointError(
            "reading .gguf files needs the gguf package: pip install gguf", file=str(path)
        ) from exc
    try:
        return GGUFReader(str(path))
    except Exception as exc:  # the reader raises ValueError/struct errors on a bad magic or a truncated file
        raise CheckpointError(f"cannot read GGUF file: {exc}", file=str(path)) from exc


def _string_field(reader, name: str) -> str | None:
    field = reader.get_field(name)
    if field is None:
        return None
    try:
        return bytes(field.parts[field.data[-1]]).decode("utf-8")
    except (IndexError, UnicodeDecodeError, TypeError):
        return None


def _looks_like_wan(names: list[str]) -> bool:
    return any(n.endswith("head.modulation") or ".self_attn." in n for n in names)


def _wan_tensors(reader, path: Path) -> list[tuple[str, object]]:
    """(name without the ComfyUI prefix, ReaderTensor) for each tensor, after checking the architecture."""
    tensors = list(reader.tensors)
    names = [t.name for t in tensors]
    prefixed = any(n.startswith(PREFIX) for n in names)
    keep = [(t.name.removeprefix(PREFIX), t) for t in tensors if not prefixed or t.name.startswith(PREFIX)]
    arch = _string_field(reader, "general.architecture")
    if arch in (
        None,
        "pig",
    ):  # sd.cpp files and city96's placeholder: judge by the tensor names, as city96 does
        if not _looks_like_wan([k for k, _ in keep]):
            raise CheckpointError(
                f"GGUF file names no architecture ({arch!r}) and its tensors are not a Wan transformer's",
                file=str(path),
            )
    elif arch not in WAN_ARCHITECTURES:
        raise CheckpointError(
            unknown_word("GGUF architecture", arch, WAN_ARCHITECTURES)
            + " (this file is not a Wan video model)",
            file=str(path),
        )
    return keep


def _type_name(tensor, path: Path) -> str:
    qtype = getattr(tensor.tensor_type, "name", str(tensor.tensor_type))
    if qtype not in FLOAT_TYPES and qtype not in QUANT_TYPES:
        raise CheckpointError(
            f"{tensor.name}: " + unknown_word("GGUF tensor type", qtype, [*FLOAT_TYPES, *QUANT_TYPES]),
            file=str(path),
        )
    return qtype


def _shape(reader, tensor, path: Path) -> tuple[int, ...]:
    """Torch shape: `comfy.gguf.orig_shape.NAME` where present, else the GGML dims reversed."""
    stored = tuple(int(d) for d in reversed(tensor.shape.tolist()))
    field = reader.get_field(_ORIG_SHAPE + tensor.name)
    if field is None:
        return stored
    try:
        shape = tuple(int(field.parts[i][0]) for i in field.data)
    except (IndexError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{_ORIG_SHAPE}{tensor.name}: not an array of ints", file=str(path)) from exc
    if math.prod(shape) != math.prod(stored) or any(d <= 0 for d in shape):
        raise CheckpointError(
            f"{tensor.name}: original shape {shape} does not hold the {math.prod(stored)} stored values",
            file=str(path),
        )
    return shape


def _torch(array) -> Tensor:
    with (
        warnings.catch_warnings()
    ):  # the reader's arrays are read-only memory maps; copy one tensor at a time
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        import numpy as np

        return torch.from_numpy(np.array(array, copy=True))


def gguf_keys(path: str | Path) -> list[str]:
    """Tensor names (without the `model.diffusion_model.` prefix) of a Wan GGUF file; reads no tensor data."""
    path = Path(path)
    return [name for name, _ in _wan_tensors(_open(path), path)]


def read_gguf(
    path: str | Path, *, device: str | torch.device = "cpu", cast: Cast | None = None
) -> dict[str, Tensor | QuantizedTensor]:
    """Every tensor of a Wan GGUF file by its name (prefix stripped): F32/F16/BF16 as plain tensors (through
    `cast(name, tensor)` when given), block-quantized ones as `QuantizedTensor`s on `device`."""
    path = Path(path)
    reader = _open(path)
    target = torch.device(device)
    out: dict[str, Tensor | QuantizedTensor] = {}
    for name, tensor in _wan_tensors(reader, path):
        qtype, shape = _type_name(tensor, path), _shape(reader, tensor, path)
        raw = _torch(tensor.data)  # F32/F16: shaped floats; the rest: (rows..., bytes per row) uint8
        if raw.numel() * raw.element_size() != gguf_bytes(qtype, math.prod(shape)):
            raise CheckpointError(f"{tensor.name}: stored bytes do not fit {qtype} {shape}", file=str(path))
        if qtype in FLOAT_TYPES:
            value = raw.reshape(-1).view(FLOAT_TYPES[qtype]).reshape(shape)
            out[name] = cast(name, value) if cast is not None else value.to(target)
        else:
            out[name] = QuantizedTensor(qtype, raw.to(target), shape)
    return out
