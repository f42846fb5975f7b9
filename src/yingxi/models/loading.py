"""Family-agnostic checkpoint loading: read tensors, rename keys by a regex table, build on meta, assign.

The pattern follows black-forest-labs/flux: the module is constructed on the meta device (no memory, no
random init), then `load_state_dict(..., assign=True)` adopts the checkpoint tensors as parameters.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from yingxi.errors import InputError, ModelNotFoundError
from yingxi.models.fp8 import FP8_DTYPES, gather_quantized, is_quantization_key
from yingxi.models.quant import QuantizedTensor, QuantLinear

M = TypeVar("M", bound=nn.Module)
Cast = Callable[[str, Tensor], Tensor]  # (tensor name, tensor as stored) -> tensor to keep
Entry = Tensor | QuantizedTensor  # what a reader returns per name: a float tensor or a stored quantized one

# Names a person may type for a dtype; the values are what torch wants.
DTYPES: dict[str, torch.dtype] = {
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
    "fp32": torch.float32,
    "float32": torch.float32,
    "float": torch.float32,
}

_TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")


class CheckpointError(InputError):
    """A checkpoint on disk does not fit the model it is loaded into (missing, unexpected or misshapen keys)."""


def parse_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """`torch.bfloat16` or one of "bf16", "fp16", "fp32" (and long spellings) -> a floating torch dtype."""
    if isinstance(dtype, torch.dtype):
        if not dtype.is_floating_point:
            raise InputError(f"dtype must be floating point, got {dtype}", field="dtype")
        return dtype
    key = str(dtype).lower().removeprefix("torch.")
    if key not in DTYPES:
        raise InputError(f'unknown dtype "{dtype}"; accepted: {", ".join(DTYPES)}', field="dtype")
    return DTYPES[key]


def _read_safetensors(path: Path, cast: Cast) -> dict[str, Entry]:
    from safetensors import safe_open

    try:
        handle = safe_open(str(path), framework="pt", device="cpu")
    except Exception as exc:  # safetensors raises its own untyped errors for truncated/corrupt files
        raise CheckpointError(f"cannot read safetensors file: {exc}", file=str(path)) from exc
    with handle as f:
        state, quantized = {}, False
        for key in f.keys():  # one tensor in flight at a time
            tensor = f.get_tensor(key)
            if tensor.dtype in FP8_DTYPES or is_quantization_key(key):  # fp8 and its scales: as stored
                state[key], quantized = tensor, True
            else:
                state[key] = cast(key, tensor)
        metadata = f.metadata() or {}
    if not quantized and "_quantization_metadata" not in metadata:
        return state
    try:  # the ComfyUI / Kijai fp8 formats; their bytes stay on the CPU until `load_module` places them
        return gather_quantized(state, metadata, source=str(path))
    except InputError as exc:
        raise CheckpointError(exc.message, file=str(path)) from exc


def _read_torch(path: Path) -> Mapping[str, Tensor]:
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # pickle/zip errors; weights_only refuses arbitrary code
        raise CheckpointError(f"cannot read torch checkpoint: {exc}", file=str(path)) from exc
    # Some trainers wrap the weights: {"state_dict": {...}} or {"model": {...}}.
    for wrapper in ("state_dict", "model", "module"):
        if isinstance(obj, Mapping) and wrapper in obj and isinstance(obj[wrapper], Mapping):
            obj = obj[wrapper]
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise CheckpointError("expected a flat {name: tensor} state dict", file=str(path))
    return obj


def cast_by_name(
    dtype: torch.dtype | str, device: str | torch.device = "cpu", keep_fp32: Sequence[str] = ()
) -> Cast:
    """A per-tensor cast: floating tensors to `dtype` (float32 where a name component is in `keep_fp32`),
    everything onto `device`. Applied while reading, so a checkpoint never sits in RAM at full width."""
    dtype, device = parse_dtype(dtype), torch.device(device)

    def cast(name: str, tensor: Tensor) -> Tensor:
        if not tensor.is_floating_point():
            return tensor.to(device=device)
        return tensor.to(device=device, dtype=torch.float32 if _matches_fp32(name, keep_fp32) else dtype)

    return cast


def _shards_in_folder(folder: Path) -> list[Path]:
    indexes = sorted(folder.glob("*.safetensors.index.json"))
    if len(indexes) > 1:
        names = ", ".join(p.name for p in indexes)
        raise CheckpointError(f"several shard indexes ({names}); point at one file", file=str(folder))
    if indexes:
        try:
            weight_map = json.loads(indexes[0].read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise CheckpointError(f"bad shard index: {exc}", file=str(indexes[0])) from exc
        shards = [folder / name for name in dict.fromkeys(weight_map.values())]
        missing = [p.name for p in shards if not p.is_file()]
        if missing:
            raise ModelNotFoundError(f"{indexes[0]}: shards listed but not on disk: {', '.join(missing)}")
        return shards
    shards = sorted(folder.glob("*.safetensors"))
    if not shards:
        shards = sorted(p for p in folder.iterdir() if p.suffix in _TORCH_SUFFIXES)
    if not shards:
        raise ModelNotFoundError(f"{folder}: no .safetensors, .pth or .pt weights in this folder")
    return shards


def checkpoint_files(path: str | Path) -> list[Path]:
    """The weight files a checkpoint path stands for (shards listed by an index, or the file itself)."""
    path = Path(path)
    if not path.exists():
        raise ModelNotFoundError(f"{path}: checkpoint not found")
    files = _shards_in_folder(path) if path.is_dir() else [path]
    for file in files:
        if file.suffix not in (".safetensors", ".gguf") and file.suffix not in _TORCH_SUFFIXES:
            raise CheckpointError(
                f'unknown checkpoint format "{file.suffix}"; expected .safetensors, .gguf, .pth or .pt',
                file=str(file),
            )
    return files


def checkpoint_keys(path: str | Path) -> list[str]:
    """Tensor names of a checkpoint without reading the tensors (safetensors headers; .pth via mmap)."""
    from safetensors import safe_open

    keys: list[str] = []
    for file in checkpoint_files(path):
        if file.suffix == ".safetensors":
            try:
                with safe_open(str(file), framework="pt", device="cpu") as f:
                    keys.extend(f.keys())
            except Exception as exc:  # corrupt header
                raise CheckpointError(f"cannot read safetensors file: {exc}", file=str(file)) from exc
        elif file.suffix == ".gguf":  # city96/QuantStack GGUF: names without the ComfyUI prefix
            from yingxi.models.gguf import gguf_keys

            keys.extend(gguf_keys(file))
        else:
            keys.extend(_read_torch(file))
    return keys


def read_state_dict(
    path: str | Path, *, device: str | torch.device = "cpu", cast: Cast | None = None
) -> dict[str, Entry]:
    """All tensors of a checkpoint: a folder (sharded safetensors + index, or single files), a .safetensors
    or .gguf file, or an original `.pth`/`.pt` file (read with `weights_only=True`).

    `cast(name, tensor)` (e.g. `cast_by_name(...)`) is applied to each tensor as it is read; without it
    tensors keep their stored dtype and go to `device`. fp8 weights (ComfyUI's plain, "scaled" and newer
    formats, Kijai's) come back as `QuantizedTensor`s on the CPU, uncast (`yingxi.models.fp8`).
    """
    if cast is None:
        target = torch.device(device)
        cast = lambda _name, t: t.to(device=target)  # noqa: E731
    state: dict[str, Tensor] = {}
    for file in checkpoint_files(path):
        if file.suffix == ".safetensors":
            part = _read_safetensors(file, cast)
        elif file.suffix == ".gguf":  # block-quantized tensors come back as QuantizedTensor, on `device`
            from yingxi.models.gguf import read_gguf

            part = read_gguf(file, device=device, cast=cast)
        else:
            part = {k: cast(k, v) for k, v in _read_torch(file).items()}
        dup = state.keys() & part.keys()
        if dup:
            raise CheckpointError(f"key {sorted(dup)[0]!r} appears in more than one shard", file=str(file))
        state.update(part)
    return state


@functools.lru_cache(maxsize=32)
def _compiled(table: tuple[tuple[str, str], ...]) -> list[tuple[re.Pattern, str]]:
    return [(re.compile(pattern), repl) for pattern, repl in table]


def rename_key(key: str, table: Sequence[tuple[str, str]]) -> str:
    """One key through a `(regex, replacement)` table, in order (`re.sub` semantics)."""
    for pattern, repl in _compiled(tuple(tuple(row) for row in table)):
        key = pattern.sub(repl, key)
    return key


def rename_keys(state_dict: Mapping[str, Tensor], table: Sequence[tuple[str, str]]) -> dict[str, Tensor]:
    """Apply a declarative `(regex, replacement)` table, in order, to every key (`re.sub` semantics)."""
    out: dict[str, Tensor] = {}
    origin: dict[str, str] = {}
    for key, value in state_dict.items():
        new = rename_key(key, table)
        if new in out:
            raise CheckpointError(f"keys {origin[new]!r} and {key!r} both rename to {new!r}")
        out[new] = value
        origin[new] = key
    return out


def _matches_fp32(name: str, keep_fp32: Iterable[str]) -> bool:
    # The same rule as diffusers' `_keep_in_fp32_modules`: a whole dotted component of the name matches.
    parts = name.split(".")
    return any(m in parts for m in keep_fp32)


def _describe(keys: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" (and {len(keys) - limit} more)" if len(keys) > limit else "")


def _shape(value: Entry) -> tuple[int, ...]:
    return tuple(value.shape)


def _quantized_linears(
    module: nn.Module, state: Mapping[str, Entry], keep_fp32: Sequence[str]
) -> dict[str, QuantizedTensor]:
    """{module name: weight} for the quantized weights that stay quantized: those of an `nn.Linear` outside
    the float32 parts (which the reference keeps at full width, so they are dequantized like any other)."""
    out: dict[str, QuantizedTensor] = {}
    for key, value in state.items():
        if not isinstance(value, QuantizedTensor) or not key.endswith(".weight"):
            continue
        owner = key.removesuffix(".weight")
        if isinstance(module.get_submodule(owner), nn.Linear) and not _matches_fp32(key, keep_fp32):
            out[owner] = value
    return out


def _check_quantized(key: str, q: QuantizedTensor, source: str | None) -> None:
    """A stored float8 weight must hold one value per weight; a scale one per tensor or per output row."""
    if q.data.is_floating_point() and tuple(q.data.shape) != tuple(q.shape):
        raise CheckpointError(
            f"{key}: stored data {tuple(q.data.shape)} is not the shape {q.shape}", file=source
        )
    if q.scale is not None and q.scale.numel() not in (1, q.shape[0]):
        raise CheckpointError(
            f"{key}: scale of shape {tuple(q.scale.shape)} fits neither one tensor nor {q.shape[0]} output rows",
            file=source,
        )


def load_module(
    build: Callable[[Any], M],
    config: Any,
    state_dict: Mapping[str, Entry],
    *,
    dtype: torch.dtype | str,
    device: str | torch.device = "cpu",
    strict: bool = True,
    keep_fp32: Sequence[str] = (),
    ignore_unexpected: Sequence[str] = (),
    buffers: Mapping[str, Tensor] | None = None,
    source: str | None = None,
) -> M:
    """Build `build(config)` on the meta device and adopt the (cast, moved) tensors with `assign=True`.

    Floating tensors are cast to `dtype` except those whose name has a component in `keep_fp32`, which stay
    float32 as the reference keeps them. A `QuantizedTensor` under `X.weight` of an `nn.Linear` X replaces
    X by a `QuantLinear` that keeps the stored bytes; any other quantized entry (a conv, a norm, a float32
    part) is dequantized here. `ignore_unexpected` holds regexes for checkpoint keys to drop; `buffers` fills
    the module's non-persistent buffers (e.g. position ids), which meta construction empties.
    Errors name the offending keys and the `source` file.
    """
    dtype = parse_dtype(dtype)
    device = torch.device(device)
    with torch.device("meta"):
        module = build(config)
    expected = module.state_dict()
    ignore = [re.compile(p) for p in ignore_unexpected]
    state = {k: v for k, v in state_dict.items() if not any(p.search(k) for p in ignore)}

    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing and strict:
        raise CheckpointError(f"missing keys for {type(module).__name__}: {_describe(missing)}", file=source)
    if unexpected and strict:
        raise CheckpointError(
            f"unexpected keys for {type(module).__name__}: {_describe(unexpected)}", file=source
        )
    for key, want in expected.items():
        if key in state and _shape(state[key]) != tuple(want.shape):
            got = _shape(state[key])
            raise CheckpointError(
                f"{key}: checkpoint shape {got} does not match model shape {tuple(want.shape)}", file=source
            )
        if key in state and isinstance(state[key], QuantizedTensor):
            _check_quantized(key, state[key], source)

    def target(key: str) -> torch.dtype:
        return torch.float32 if _matches_fp32(key, keep_fp32) else dtype

    quantized = _quantized_linears(module, {k: v for k, v in state.items() if k in expected}, keep_fp32)
    cast: dict[str, Tensor] = {}
    for key, value in state.items():
        if key not in expected or key.removesuffix(".weight") in quantized:
            continue
        if isinstance(value, QuantizedTensor):
            value = value.dequantize(target(key)).to(device)
        elif value.is_floating_point():
            value = value.to(device=device, dtype=target(key))
        else:
            value = value.to(device=device)
        cast[key] = value
    for name, q in quantized.items():  # swap each quantized nn.Linear for a QuantLinear holding its bytes
        bias = cast.pop(f"{name}.bias", None)
        on_device = QuantizedTensor(
            q.qtype, q.data.to(device), q.shape, _to(q.scale, device), _to(q.input_scale, device)
        )
        owner, _, attr = name.rpartition(".")
        setattr(module.get_submodule(owner), attr, QuantLinear.from_quantized(on_device, bias))
    module.load_state_dict(cast, strict=strict and not quantized, assign=True)
    for name, value in (buffers or {}).items():  # non-persistent buffers, which no checkpoint holds
        owner, _, attr = name.rpartition(".")
        setattr(module.get_submodule(owner), attr, value.to(device))

    left_on_meta = [n for n, t in [*module.named_parameters(), *module.named_buffers()] if t.is_meta]
    if left_on_meta:
        raise CheckpointError(
            f"{type(module).__name__} has tensors the checkpoint did not fill: {_describe(left_on_meta)}",
            file=source,
        )
    return module.eval()


def _to(t: Tensor | None, device: torch.device) -> Tensor | None:
    return None if t is None else t.to(device=device, dtype=torch.float32)
