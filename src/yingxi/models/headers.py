"""What a checkpoint file holds, from its header alone: tensor names, shapes and storage dtypes.

Detection and `yingxi models inspect` run before anything loads, so they never read a weight: a safetensors
file is an 8-byte length and a JSON header; a `.pth` zip opens memory-mapped (shapes and dtypes come from
its pickle, the storages stay on disk); a `.gguf` file's tensor infos come through `yingxi.models.gguf`.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

from yingxi.errors import ModelNotFoundError
from yingxi.models.loading import CheckpointError, checkpoint_files

__all__ = ["TensorInfo", "read_tensor_infos", "storage_name"]

# safetensors header dtype -> our storage names (the names `--dtype`/`--weights` and quant.py use)
_SAFETENSORS_DTYPES = {
    "BF16": "bf16",
    "F16": "fp16",
    "F32": "fp32",
    "F64": "fp64",
    "F8_E4M3": "fp8_e4m3fn",
    "F8_E5M2": "fp8_e5m2",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U8": "uint8",
    "BOOL": "bool",
}
_TORCH_DTYPES = {
    torch.bfloat16: "bf16",
    torch.float16: "fp16",
    torch.float32: "fp32",
    torch.float64: "fp64",
    torch.float8_e4m3fn: "fp8_e4m3fn",
    torch.float8_e5m2: "fp8_e5m2",
    torch.int64: "int64",
    torch.int32: "int32",
    torch.int8: "int8",
    torch.uint8: "uint8",
    torch.bool: "bool",
}
MAX_HEADER = 100 * 2**20  # safetensors' own limit on the JSON header


@dataclass(frozen=True)
class TensorInfo:
    """One stored tensor: its logical shape, storage type ("bf16", "fp8_e4m3fn", a GGUF type such as "Q4_K")
    and the bytes it takes in the file."""

    shape: tuple[int, ...]
    dtype: str
    nbytes: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def storage_name(dtype: torch.dtype) -> str:
    """Our storage name for a torch dtype ("bf16", "fp8_e4m3fn", ...)."""
    return _TORCH_DTYPES.get(dtype, str(dtype).removeprefix("torch."))


def _safetensors_infos(path: Path) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    try:
        with path.open("rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > MAX_HEADER:
                raise ValueError(f"header of {length} bytes")
            header = json.loads(f.read(length))
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"cannot read safetensors header: {exc}", file=str(path)) from exc
    if not isinstance(header, dict):
        raise CheckpointError("safetensors header is not a JSON object", file=str(path))
    meta = header.pop("__metadata__", None) or {}
    infos: dict[str, TensorInfo] = {}
    try:
        for name, entry in header.items():
            start, end = entry["data_offsets"]
            dtype = _SAFETENSORS_DTYPES.get(entry["dtype"], entry["dtype"].lower())
            infos[name] = TensorInfo(tuple(int(s) for s in entry["shape"]), dtype, int(end) - int(start))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"bad safetensors header entry: {exc}", file=str(path)) from exc
    return infos, {str(k): str(v) for k, v in meta.items()}


def _torch_infos(path: Path) -> dict[str, TensorInfo]:
    from yingxi.models.loading import _read_torch  # the same reader (weights_only, mmap) loading uses

    return {
        name: TensorInfo(tuple(t.shape), storage_name(t.dtype), t.numel() * t.element_size())
        for name, t in _read_torch(path).items()
    }


_GGUF_FLOATS = {"F32": "fp32", "F16": "fp16", "BF16": "bf16"}


def _gguf_infos(path: Path) -> dict[str, TensorInfo]:
    """City96/QuantStack GGUF tensor infos (names without the ComfyUI prefix; logical shapes from
    `comfy.gguf.orig_shape.NAME`), through the reader `yingxi.models.gguf` loads with; no data is read."""
    from yingxi.models import gguf

    reader = gguf._open(path)
    infos = {}
    for name, tensor in gguf._wan_tensors(reader, path):
        qtype = gguf._type_name(tensor, path)
        shape = gguf._shape(reader, tensor, path)
        infos[name] = TensorInfo(shape, _GGUF_FLOATS.get(qtype, qtype), int(tensor.n_bytes))
    return infos


def read_tensor_infos(path: str | Path) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """({tensor name: TensorInfo}, safetensors `__metadata__`) of a checkpoint file or shard folder,
    without reading any weight."""
    path = Path(path)
    if not path.exists():
        raise ModelNotFoundError(f"{path}: checkpoint not found")
    if path.suffix == ".gguf":
        return _gguf_infos(path), {}
    infos: dict[str, TensorInfo] = {}
    meta: dict[str, str] = {}
    for file in checkpoint_files(path):
        if file.suffix == ".safetensors":
            part, part_meta = _safetensors_infos(file)
            meta.update(part_meta)
        else:
            part = _torch_infos(file)
        infos.update(part)
    return infos, meta
