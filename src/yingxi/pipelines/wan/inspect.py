"""What a transformer file is and what it will cost, before anything loads (`yingxi models inspect`).

One code path for real files (their headers, via `yingxi.models.headers`) and for full-size meta-device
builds (the tests): `{name: TensorInfo}` -> `FileReport` (variant, expert, storage type, parameter count,
stored bytes) -> `plan_memory` (bytes on the device and in host memory for a dtype, a weight storage and an
offload mode, and whether that fits a card).
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from yingxi.errors import InputError
from yingxi.models.headers import TensorInfo, read_tensor_infos
from yingxi.models.loading import _matches_fp32, parse_dtype
from yingxi.models.wan.detect import Detection, Expert, detect, dit_names
from yingxi.models.wan.dit import KEEP_FP32
from yingxi.models.wan.loading import FP8_LAYERS
from yingxi.pipelines.offload import OffloadMode, offload_mode

__all__ = ["FileReport", "MemoryPlan", "inspect_file", "inspect_shapes", "meta_infos", "plan_memory"]

FLOATS = ("bf16", "fp16", "fp32", "fp64")
FP8 = ("fp8_e4m3fn", "fp8_e5m2")
WEIGHTS = ("bf16", "fp8")  # --weights: dequantize everything / quantize Linear weights to fp8 at load
_BLOCK = re.compile(r"^((?:vace_)?blocks\.\d+)\.")  # a main block or a VACE context block
GIB = 2**30


def gib(n: int | float) -> str:
    """Bytes as a person reads them: GiB, or MiB below a tenth of one (tiny test models)."""
    return f"{n / GIB:.2f} GiB" if n >= GIB / 10 else f"{n / 2**20:.2f} MiB"


@dataclass(frozen=True)
class FileReport:
    """One transformer file as its header describes it; `tensors` are under our (diffusers) names."""

    file: str
    detection: Detection
    storage: str  # "bf16", "fp16", "fp8_e4m3fn scaled", "GGUF Q4_K", ...
    params: int
    stored_bytes: int
    tensors: Mapping[str, TensorInfo]

    @property
    def label(self) -> str:
        d = self.detection
        return d.variant.name + (f" ({d.expert}-noise expert)" if d.expert else "")


def _storage(infos: Mapping[str, TensorInfo], metadata: Mapping[str, str]) -> str:
    """The storage type of the Linear weights (the bulk of a transformer), as a person would name it."""
    weights = [i for n, i in infos.items() if n.endswith(".weight") and len(i.shape) == 2]
    quantized = [i for i in weights if i.dtype not in FLOATS]  # what stays small takes precedence
    by_bytes: Counter[str] = Counter()
    for info in quantized or weights or infos.values():
        by_bytes[info.dtype] += info.nbytes
    main = by_bytes.most_common(1)[0][0] if by_bytes else "empty"
    if main in FP8:
        if any(n.endswith("scaled_fp8") for n in infos):
            return f"{main} scaled"  # ComfyUI "fp8 scaled" (and Kijai's *_scaled_KJ files)
        if "_quantization_metadata" in metadata or any(n.endswith(".weight_scale") for n in infos):
            return f"{main} scaled (quantization metadata)"
        return main
    if main not in FLOATS and main.upper() == main:
        return f"GGUF {main}"
    return main


def inspect_shapes(
    infos: Mapping[str, TensorInfo],
    *,
    file: str = "",
    metadata: Mapping[str, str] | None = None,
    variant: str | None = None,
    expert: Expert | None = None,
    paired: bool = False,
) -> FileReport:
    """A FileReport from tensor infos alone (a file's header, or a meta-device state dict)."""
    detection = detect(
        {n: i.shape for n, i in infos.items()}, name=file, variant=variant, expert=expert, paired=paired
    )
    tensors = {new: infos[old] for new, old in dit_names(list(infos)).items()}
    return FileReport(
        file=file,
        detection=detection,
        storage=_storage(infos, metadata or {}),
        params=sum(i.numel for i in tensors.values()),
        stored_bytes=sum(i.nbytes for i in infos.values()),
        tensors=tensors,
    )


def inspect_file(
    path: str | Path, *, variant: str | None = None, expert: Expert | None = None, paired: bool = False
) -> FileReport:
    """A FileReport from a file's header (no weight is read)."""
    infos, metadata = read_tensor_infos(path)
    return inspect_shapes(
        infos, file=str(path), metadata=metadata, variant=variant, expert=expert, paired=paired
    )


def meta_infos(state_dict: Mapping[str, torch.Tensor], dtype: str = "bf16") -> dict[str, TensorInfo]:
    """TensorInfos of a (meta-device) state dict as if stored in `dtype`: what a full-size file would hold."""
    size = parse_dtype(dtype).itemsize
    return {n: TensorInfo(tuple(t.shape), dtype, t.numel() * size) for n, t in state_dict.items()}


def _tensor_bytes(name: str, info: TensorInfo, dtype: torch.dtype, weights: str | None) -> int:
    """Bytes of one tensor once `load_transformer` has loaded it with this dtype and weight storage."""
    if _matches_fp32(name, KEEP_FP32):
        return info.numel * 4
    quantized = info.dtype not in FLOATS
    if weights == "fp8" and FP8_LAYERS.match(name) and not info.dtype.startswith("fp8"):
        return info.numel + info.shape[0] * 4  # one byte each + a float32 scale per output row
    linear = name.endswith(".weight") and len(info.shape) == 2  # nn.Linear: kept quantized in a QuantLinear
    if quantized and linear and weights != "bf16":
        return info.nbytes + (4 if info.dtype.startswith("fp8") else 0)  # + fp8's float32 scale
    return info.numel * dtype.itemsize  # float, or dequantized at load (convolutions, norms, "bf16")


@dataclass(frozen=True)
class MemoryPlan:
    """Bytes of the transformer weights for one way of loading them."""

    dtype: str
    weights: str  # "as stored", "bf16", "fp8"
    offload: OffloadMode
    device_bytes: int  # resident on the accelerator at the peak
    host_bytes: int  # held in host memory (offload keeps the only full copy there)
    vram: int | None  # the card's bytes, when known
    per_expert: tuple[int, ...]

    @property
    def fits(self) -> bool | None:
        return None if self.vram is None else self.device_bytes <= self.vram

    def summary(self) -> str:
        card = "" if self.vram is None else f" of {gib(self.vram)}"
        verdict = {None: "no card to compare with", True: "fits", False: "does NOT fit"}[self.fits]
        return (
            f"dtype {self.dtype}, weights {self.weights}, offload {self.offload}: device {gib(self.device_bytes)}"
            f"{card} ({verdict}), host {gib(self.host_bytes)}"
        )


def plan_memory(
    reports: Sequence[FileReport],
    *,
    dtype: torch.dtype | str = "bf16",
    weights: str | None = None,
    offload: bool | OffloadMode = "none",
    vram: int | None = None,
) -> MemoryPlan:
    """Device and host bytes of these transformer(s) (one, or an A14B pair) loaded this way."""
    if weights is not None and weights not in WEIGHTS:
        raise InputError(f'unknown weights "{weights}"; accepted: {", ".join(WEIGHTS)}', field="weights")
    dtype, mode = parse_dtype(dtype), offload_mode(offload)
    totals, streamed = [], []
    for report in reports:
        per = {n: _tensor_bytes(n, i, dtype, weights) for n, i in report.tensors.items()}
        blocks: dict[str, int] = {}
        for name, size in per.items():
            if m := _BLOCK.match(name):
                blocks[m[1]] = blocks.get(m[1], 0) + size
        totals.append(sum(per.values()))
        # "blocks": the embeddings and head stay resident; one block at a time is copied in.
        streamed.append(sum(per.values()) - sum(blocks.values()) + max(blocks.values(), default=0))
    device = {"none": sum(totals), "model": max(totals), "blocks": max(streamed)}[mode]
    return MemoryPlan(
        dtype=str(dtype).removeprefix("torch."),
        weights=weights or "as stored",
        offload=mode,
        device_bytes=device,
        host_bytes=0 if mode == "none" else sum(totals),
        vram=vram,
        per_expert=tuple(totals),
    )


def refuse_if_too_big(plan: MemoryPlan, what: str) -> None:
    """InputError with the numbers when the plan cannot fit its card, naming the modes that would."""
    if plan.fits is not False:
        return
    hint = (
        "load it with offload='blocks' (CLI: --offload blocks), which keeps one block on the device at a time"
        if plan.offload != "blocks"
        else "use smaller weights (--weights fp8, or a GGUF file) or a card with more memory"
    )
    raise InputError(
        f"{what}'s transformer weights take {gib(plan.device_bytes)} on the device in {plan.dtype} "
        f"(weights {plan.weights}, offload {plan.offload!r}), more than the {gib(plan.vram or 0)} this "
        f"device has; {hint}",
        field="offload",
    )


def with_expert(report: FileReport, expert: Expert) -> FileReport:
    return dataclasses.replace(report, detection=dataclasses.replace(report.detection, expert=expert))
