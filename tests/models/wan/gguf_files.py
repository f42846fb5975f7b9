"""Write tiny Wan transformers to GGUF the way city96's `tools/convert.py` lays them out, for the loader tests.

Layout: `general.architecture = "wan"`, Wan's original tensor names (optionally under
`model.diffusion_model.`), GGML dimension order (the `gguf` writer reverses numpy's), 1-D tensors, tensors of at
most 1024 values and `time_embedding.*.weight` in F32, a 5-D `patch_embedding` flattened to rows of 256 with
`comfy.gguf.orig_shape.NAME`, the other weights in the chosen type, F16 where that type cannot hold a row.
Types the `gguf` package cannot quantize (the K-quants) get random valid blocks: random bits with small
finite fp16 scales, so the file decides the weights and every test reads its reference from the file.
"""

from __future__ import annotations

import re
from pathlib import Path

import gguf
import numpy as np
import torch
from gguf import GGMLQuantizationType as T
from test_loading import DIFFUSERS_TO_ORIGINAL

from yingxi.models.gguf import QUANTIZATION_THRESHOLD
from yingxi.models.loading import rename_keys

HIGH_PRECISION = ("time_embedding.", ".modulation")  # city96: blacklist entries Wan has; its Wan keys_hiprec
# byte offsets of the fp16 scales in each K-quant block (ggml's block_q*_K structs) and a size for them
K_SCALES = {"Q6_K": (208,), "Q5_K": (0, 2), "Q4_K": (0, 2), "Q3_K": (108,), "Q2_K": (80, 82)}
K_SCALE = {"Q6_K": 4e-4, "Q5_K": 2e-4, "Q4_K": 4e-4, "Q3_K": 2e-3, "Q2_K": 2e-3}


def original_state(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """A diffusers/our Wan transformer's weights under Wan's original names, as float32 numpy arrays."""
    sd = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
    return {k: v.numpy() for k, v in rename_keys(sd, DIFFUSERS_TO_ORIGINAL).items()}


def random_blocks(qtype: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Random valid `qtype` data for a tensor of `shape`: (*shape[:-1], bytes per row) uint8, finite fp16
    scales."""
    block, size = gguf.GGML_QUANT_SIZES[T[qtype]]
    rng = np.random.default_rng(seed)
    rows, cols = int(np.prod(shape[:-1])), shape[-1]
    data = rng.integers(0, 256, (rows * cols // block, size), dtype=np.uint8)
    for at in K_SCALES[qtype]:
        scale = (K_SCALE[qtype] * (0.5 + rng.random((data.shape[0], 1)))).astype(np.float16)
        data[:, at : at + 2] = scale.view(np.uint8)
    return data.reshape(*shape[:-1], cols // block * size)


def stored_type(name: str, array: np.ndarray, qtype: str) -> str:
    """The type city96's converter gives this tensor when asked for `qtype`."""
    if array.ndim == 1 or array.size <= QUANTIZATION_THRESHOLD:
        return "F32"
    if any(x in name for x in HIGH_PRECISION) and not name.endswith(".bias"):
        return "F32"
    if array.ndim == 5:  # stored as rows of 256
        return qtype if array.size % 256 == 0 else "F32"
    block = gguf.GGML_QUANT_SIZES[T[qtype]][0]
    return qtype if array.shape[-1] % block == 0 else "F16"


def write_wan_gguf(
    path: str | Path,
    state: dict[str, np.ndarray],
    qtype: str = "Q8_0",
    *,
    prefix: bool = True,
    reshape_5d: bool = True,
    arch: str | None = "wan",
    types: dict[str, str] | None = None,
) -> dict[str, str]:
    """Write `state` (original Wan names, float32) as a city96-style GGUF; `types` overrides per-name regexes.
    Returns {name: stored type}."""
    writer = gguf.GGUFWriter(str(path), arch=arch or "wan")
    if arch is None:  # sd.cpp-style files: no architecture key
        writer.kv_data[0].pop("general.architecture", None)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    chosen: dict[str, str] = {}
    for i, (name, array) in enumerate(state.items()):
        kind = stored_type(name, array, qtype)
        for pattern, override in (types or {}).items():
            if re.search(pattern, name):
                kind = override
        key = ("model.diffusion_model." if prefix else "") + name
        if array.ndim == 5:  # the patch conv: GGML holds at most 4 dims, so city96 stores it as rows of 256
            if reshape_5d and array.size % 256 == 0:
                writer.add_array(f"comfy.gguf.orig_shape.{key}", [int(d) for d in array.shape])
                array = array.reshape(-1, 256)
            else:
                kind = "F32"
        if kind in K_SCALES:
            data = random_blocks(kind, array.shape, seed=i)
        else:
            data = gguf.quants.quantize(array, T[kind])
        writer.add_tensor(key, data, raw_dtype=T[kind])
        chosen[name] = kind
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return chosen


def reference_state(path: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of a GGUF file dequantized by the `gguf` package's numpy code (our reference), by the
    torch shape (`comfy.gguf.orig_shape` or the GGML dims reversed), names without the ComfyUI prefix."""
    reader = gguf.GGUFReader(str(path))
    out = {}
    for t in reader.tensors:
        field = reader.get_field(f"comfy.gguf.orig_shape.{t.name}")
        shape = [int(d) for d in field.contents()] if field is not None else [int(d) for d in t.shape[::-1]]
        values = gguf.quants.dequantize(np.array(t.data), t.tensor_type).astype(np.float32)
        out[t.name.removeprefix("model.diffusion_model.")] = torch.from_numpy(values.reshape(shape))
    return out
