"""How a Wan pipeline's transformers run fast: their attention kernels and regional compilation.

Chosen once, when the pipeline is built: `apply_speed` resolves the kernels for the device and the
transformers' dtype (`yingxi.models.attention`), gives every block's self- and cross-attention its own
(`WanDiT.set_attention`), and compiles the blocks (`yingxi.models.compile`). `Speed.notes()` is what the
`generate` summary prints: the kernels, and the compile time once the first call has compiled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from yingxi.errors import InputError
from yingxi.models.attention import kernel_name, resolve_attention
from yingxi.models.compile import CUDA_GRAPH_MODES, CompileStats, compile_blocks, parse_compile
from yingxi.pipelines.offload import OffloadMode, offload_mode

__all__ = ["Speed", "apply_speed", "check_speed"]


@dataclass
class Speed:
    """The kernels and compilation a pipeline's transformers run with."""

    attention: str  # self-attention kernel (registry name)
    cross_attention: str
    compile_mode: str | None = None  # the torch.compile mode, None: eager
    compiled: dict[str, CompileStats] = field(default_factory=dict)  # per transformer ("transformer", ...)

    def notes(self) -> list[str]:
        """Summary lines: "attention: flash3 (cross-attention: flash3)", "compile: compiled 1 block graph
        in 14.2 s (...)" (summed over the transformers: an A14B pair shares its graphs)."""
        lines = [f"attention: {self.attention} (cross-attention: {self.cross_attention})"]
        if self.compiled:
            stats = list(self.compiled.values())
            total = CompileStats(
                mode=stats[0].mode,
                blocks=sum(s.blocks for s in stats),
                graphs=sum(s.graphs for s in stats),
                seconds=sum(s.seconds for s in stats),
                calls=sum(s.calls for s in stats),
            )
            lines.append(f"compile: {total.summary()}")
        return lines


def _head_dim(model: nn.Module) -> int:
    cfg = getattr(model, "config", None)
    if cfg is None or not hasattr(cfg, "num_attention_heads"):
        return 64
    return int(cfg.inner_dim // cfg.num_attention_heads)


def check_speed(
    device: torch.device | str,
    dtype: torch.dtype,
    *,
    attention: str | None = "auto",
    cross_attention: str | None = None,
    compile: bool | str | None = None,
    offload: bool | OffloadMode = False,
    head_dim: int = 128,
) -> tuple[str, str, str | None]:
    """(self kernel, cross kernel, compile mode) for `device`/`dtype`, or the InputError saying why not,
    before any weights load. `cross_attention` None: the same choice as `attention`."""
    fn = resolve_attention(attention, device, dtype, head_dim=head_dim, field="attention")
    cross = resolve_attention(
        attention if cross_attention is None else cross_attention,
        device,
        dtype,
        head_dim=head_dim,
        field="cross-attention",
    )
    mode = parse_compile(compile, device)
    if mode in CUDA_GRAPH_MODES and offload_mode(offload) != "none":
        raise InputError(
            "CUDA graphs replay fixed weight addresses, which offloading moves; use --compile without "
            "cudagraphs, or --offload none",
            field="compile",
        )
    return kernel_name(fn), kernel_name(cross), mode


def apply_speed(
    transformers: dict[str, Any],
    device: torch.device | str,
    *,
    attention: str | None = "auto",
    cross_attention: str | None = None,
    compile: bool | str | None = None,
    offload: bool | OffloadMode = False,
) -> Speed:
    """Give each transformer ({"transformer": dit, "transformer_2": dit or None}) its kernels and compile
    its blocks; the dtype the kernels must take is the transformer's own."""
    models = {name: m for name, m in transformers.items() if m is not None}
    first = next(iter(models.values()))
    dtype = getattr(first, "dtype", torch.float32)
    names = check_speed(device, dtype, attention=attention, cross_attention=cross_attention,
                        compile=compile, offload=offload, head_dim=_head_dim(first))  # fmt: skip
    self_name, cross_name, mode = names
    speed = Speed(self_name, cross_name, mode)
    self_fn = resolve_attention(self_name, device, dtype, head_dim=_head_dim(first))
    cross_fn = resolve_attention(cross_name, device, dtype, head_dim=_head_dim(first))
    for name, model in models.items():
        if not hasattr(model, "set_attention"):
            if attention in (None, "auto") and cross_attention is None and mode is None:
                continue  # a foreign transformer run as it is
            raise InputError(f"{type(model).__name__} takes no attention kernel or compile; it needs a WanDiT",
                             field="attention")  # fmt: skip
        model.set_attention(self_attention=self_fn, cross_attention=cross_fn)
        if mode is not None:
            speed.compiled[name] = compile_blocks(model, mode)
    return speed
