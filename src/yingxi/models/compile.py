"""Regional `torch.compile`: each repeated transformer block is compiled, and all of them share one graph.

A DiT is N identical blocks, so compiling one block's forward and reusing that code for the other N-1 (as
diffusers' `compile_repeated_blocks` does) keeps compile time to seconds where compiling the whole model
takes minutes; the blocks are >95% of a forward. Only `forward` is compiled: the module's hooks (block
offload) and everything between the blocks (step caches, embed, head) stay eager. `CompileStats` times the
calls that compiled, so the time is reported once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from yingxi.errors import InputError, unknown_word

__all__ = ["COMPILE_MODES", "CompileStats", "compile_blocks", "parse_compile", "uncompile_blocks"]

# Our names -> torch.compile modes. "auto": max-autotune without CUDA graphs on a GPU, inductor's default
# on the CPU (whose autotuning only lengthens compiles); "cudagraphs": max-autotune with CUDA graphs.
COMPILE_MODES = {
    "auto": None,
    "default": "default",
    "max-autotune-no-cudagraphs": "max-autotune-no-cudagraphs",
    "cudagraphs": "max-autotune",
    "max-autotune": "max-autotune",
    "reduce-overhead": "reduce-overhead",
}
CUDA_GRAPH_MODES = ("max-autotune", "reduce-overhead")


def parse_compile(
    value: bool | str | None, device: torch.device | str = "cpu", *, field: str = "compile"
) -> str | None:
    """True/"auto"/"cudagraphs"/a torch mode -> the torch.compile mode for `device`; None/False/"none" ->
    None (eager). CUDA graphs on a non-CUDA device, or an unknown name, is an InputError."""
    if value is None or value is False:
        return None
    text = "auto" if value is True else str(value).strip().lower()
    if text in ("", "none", "off", "no", "false", "eager"):
        return None
    if text in ("on", "yes", "true"):
        text = "auto"
    if text not in COMPILE_MODES:
        raise InputError(unknown_word("compile mode", str(value), (*COMPILE_MODES, "none")), field=field)
    device = torch.device(device)
    mode = COMPILE_MODES[text] or ("max-autotune-no-cudagraphs" if device.type == "cuda" else "default")
    if mode in CUDA_GRAPH_MODES and device.type != "cuda":
        raise InputError(f'compile "{text}" records CUDA graphs, which need a CUDA device, not {device.type}',
                         field=field)  # fmt: skip
    return mode


def _graphs() -> int:
    """Graphs dynamo has compiled in this process so far."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


@dataclass
class CompileStats:
    """What regional compilation of one model did: its mode, blocks, and the graphs and seconds it took."""

    mode: str
    blocks: int
    graphs: int = 0  # graphs compiled on the blocks' calls (one per block kind / input layout)
    seconds: float = 0.0  # wall time of the calls that compiled (compile + that call's own run)
    calls: int = 0

    def summary(self) -> str:
        graphs = f"{self.graphs} block graph{'s' if self.graphs != 1 else ''}"
        if not self.calls:
            return f"{self.blocks} blocks to compile ({self.mode}) on the first call"
        if not self.graphs:
            return f"nothing compiled: {self.blocks} blocks reuse graphs compiled earlier in this process ({self.mode})"
        return f"compiled {graphs} in {self.seconds:.1f} s ({self.mode}; {self.blocks} blocks share them)"


@dataclass
class _TimedForward:
    """A block's compiled forward that adds, to `stats`, the time of each call on which dynamo compiled."""

    compiled: Callable[..., Any]
    stats: CompileStats
    eager: Callable[..., Any] = field(repr=False)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        before, started = _graphs(), time.perf_counter()
        out = self.compiled(*args, **kwargs)
        self.stats.calls += 1
        new = _graphs() - before
        if new:
            self.stats.graphs += new
            self.stats.seconds += time.perf_counter() - started
        return out


def _blocks(model: nn.Module) -> nn.ModuleList:
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, nn.ModuleList) or not len(blocks):
        raise InputError(f"{type(model).__name__} has no blocks to compile", field="compile")
    return blocks


def compile_blocks(
    model: nn.Module,
    mode: str = "max-autotune-no-cudagraphs",
    *,
    dynamic: bool | None = None,
    backend: str = "inductor",
) -> CompileStats:
    """Compile the forward of every block in `model.blocks` with one shared code object (dynamo caches by
    code, and blocks of one class differ only in their weights, which are graph inputs), so the first call
    compiles once per block kind and input layout and the other blocks reuse it. Returns the stats, also
    kept as `model.compile_stats`; a model already compiled keeps its first compilation. `backend`: torch's
    ("aot_eager" traces and checks the graphs without generating code)."""
    if mode not in COMPILE_MODES.values():
        raise InputError(unknown_word("torch.compile mode", str(mode), [m for m in COMPILE_MODES.values() if m]),
                         field="compile")  # fmt: skip
    existing = getattr(model, "compile_stats", None)
    if isinstance(existing, CompileStats):
        return existing
    blocks = _blocks(model)
    stats = CompileStats(mode=mode if backend == "inductor" else backend, blocks=len(blocks))
    for block in blocks:
        eager = block.forward
        options = dict(mode=mode) if backend == "inductor" else {}  # modes are inductor's
        compiled = torch.compile(eager, backend=backend, dynamic=dynamic, **options)
        # an instance attribute: nn.Module.__call__ still runs the hooks (eagerly), then this
        block.forward = _TimedForward(compiled, stats, eager)
    model.compile_stats = stats
    return stats


def uncompile_blocks(model: nn.Module) -> None:
    """Back to eager blocks (the compiled code stays in dynamo's cache for a later `compile_blocks`)."""
    for block in _blocks(model):
        if isinstance(block.__dict__.get("forward"), _TimedForward):
            del block.forward
    model.__dict__.pop("compile_stats", None)
