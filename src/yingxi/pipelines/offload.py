"""Model CPU offload with the order declared as data: a component sits on the GPU only while it runs.

A pipeline's parts run one after another (Wan: text encoder, image encoder, the transformer(s) for every
step, then the VAE); each family passes its own order (`pipelines/wan/common.py`: WAN_OFFLOAD_ORDER).
Holding only the running part on the accelerator ("model" offload) brings the peak down to the largest
single part: enough for TI2V-5B (10 GB transformer, 11 GB UMT5 in bf16) on a 24 GB card.
A 14B transformer alone is 28 GB in bf16, so "blocks" offload also streams the transformer's blocks:
each block's weights are copied in just before it runs and dropped after (the CPU keeps the only copy,
pinned, packed into 1 GiB buffers), and only the small embedding and head stay resident. A quantized
transformer's blocks travel as stored: a QuantLinear's float8/uint8 `qweight` and its scales are buffers,
packed and copied like the rest, so an fp8 14B streams ~13 GB per step, not 26.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Literal

import torch
from torch import Tensor, nn

__all__ = ["OffloadMode", "Placement", "offload_mode", "pack_", "stream_blocks"]

OffloadMode = Literal["none", "model", "blocks"]


def offload_mode(offload: bool | OffloadMode | None) -> OffloadMode:
    """The mode an `offload` argument names: True is "model", False/None are "none"."""
    mode = {True: "model", False: "none", None: "none"}.get(offload, offload)  # type: ignore[call-overload]
    if mode not in ("none", "model", "blocks"):
        raise ValueError(f'offload must be "none", "model" or "blocks", got {offload!r}')
    return mode


def _module(component: object) -> nn.Module:
    """The torch module of a component: itself, or the `.model` of an encoder wrapper."""
    return component if isinstance(component, nn.Module) else component.model  # type: ignore[attr-defined]


PIN_CHUNK = 1 << 30  # bytes per pinned buffer; a power of two, so torch's pinned allocator adds nothing
_ALIGN = 64  # bytes; every packed tensor starts on this boundary


def _buffer(nbytes: int, pin: bool) -> Tensor:
    if pin:
        try:
            return torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)
        except RuntimeError:  # no CUDA driver, or the host cannot pin this much: plain memory still works
            pass
    return torch.empty(nbytes, dtype=torch.uint8)


def pack_(tensors: list[Tensor], *, pin: bool, chunk: int = PIN_CHUNK) -> list[Tensor]:
    """Move each tensor's data (in place, via `.data`) into a few `chunk`-byte (pinned) buffers, back to
    back; returns the buffers. Each original is freed as its copy takes its place, so the peak is one chunk.

    torch's pinned-memory allocator rounds each allocation up to a power of two, so pinning a 14B model
    tensor by tensor costs 1.5x its blocks (26 GiB take 40 GiB: each 141 MB FFN weight takes 256 MiB);
    packed into 1 GiB chunks, 27 GiB.
    """
    buffers: list[Tensor] = []
    used = 0
    for t in tensors:
        nbytes = t.numel() * t.element_size()
        if not buffers or used + nbytes > buffers[-1].numel():
            buffers.append(_buffer(max(chunk, 1 << max(nbytes - 1, 0).bit_length()), pin))
            used = 0
        view = buffers[-1][used : used + nbytes].view(t.dtype).view(t.shape)
        view.copy_(t.data)
        t.data = view
        used += -(-nbytes // _ALIGN) * _ALIGN
    return buffers


def _to_device(t: Tensor, device: torch.device) -> Tensor:
    return t.to(device, non_blocking=True)  # ordered before the block's kernels on the same stream


def stream_blocks(blocks: nn.ModuleList, device: torch.device, *, pin: bool | None = None) -> list:
    """Hooks that give each block its weights on `device` for its forward only; returns the hook handles.

    The weights' CPU tensors stay the only lasting copy (`.data` is swapped, nothing is copied back); for
    a CUDA device (`pin` None) they move into pinned buffers first, so the copies in can run asynchronously.
    """
    pin = device.type == "cuda" if pin is None else pin
    per_block = [[*block.parameters(), *block.buffers()] for block in blocks]
    if pin:
        pack_([t for tensors in per_block for t in tensors], pin=True)
    handles = []
    for block, tensors in zip(blocks, per_block, strict=True):
        homes = [t.data for t in tensors]

        def load(module, args, tensors=tensors, homes=homes):
            for t, home in zip(tensors, homes, strict=True):
                t.data = _to_device(home, device)

        def drop(module, args, output, tensors=tensors, homes=homes):
            for t, home in zip(tensors, homes, strict=True):
                t.data = home

        handles += [block.register_forward_pre_hook(load), block.register_forward_hook(drop)]
    return handles


class Placement:
    """Where each component lives while a pipeline runs: all on `device` ("none"), each in turn
    ("model", also `True`), or each in turn with the `streamed` parts' blocks streamed ("blocks").

    `order`: the component names in the order they first run; `streamed`: those whose block lists are
    streamed in "blocks" mode (the transformers); `block_lists`: the names of those lists (nn.ModuleList
    children: Wan's `blocks`, and VACE's `vace_blocks` where the model has them). Everything else in a
    streamed component (embeddings, head) moves whole."""

    def __init__(
        self,
        components: Mapping[str, object | None],
        device: str | torch.device,
        *,
        order: Sequence[str],
        streamed: Sequence[str] = (),
        block_lists: Sequence[str] = ("blocks",),
        offload: bool | OffloadMode = False,
        force: bool = False,
    ) -> None:
        self.order = tuple(order)
        unknown = set(components) - set(self.order)
        if unknown:
            raise ValueError(f"components not in the offload order {self.order}: {sorted(unknown)}")
        mode = offload_mode(offload)
        self.components = {k: v for k, v in components.items() if v is not None}
        self.modules = {k: _module(v) for k, v in self.components.items()}
        self.device = torch.device(device)
        # On the CPU there is nothing to save; `force` runs the same moves anyway (tests).
        self.mode: OffloadMode = mode if (self.device.type != "cpu" or force) else "none"
        self.offload = self.mode != "none"
        self.active: str | None = None
        self.block_lists = tuple(block_lists)
        self.streamed = {n for n in streamed if self.mode == "blocks" and self._lists(n)}
        home = torch.device("cpu") if self.offload else self.device
        for name, module in self.modules.items():
            module.to(home)
            for blocks in self._lists(name) if name in self.streamed else ():
                stream_blocks(getattr(module, blocks), self.device)

    def _lists(self, name: str) -> list[str]:
        """The block lists component `name` has, of those named in `block_lists`."""
        module = self.modules.get(name)
        return [b for b in self.block_lists if isinstance(getattr(module, b, None), nn.ModuleList)]

    def _move(self, name: str, device: torch.device | str) -> None:
        module = self.modules[name]
        if name not in self.streamed:
            module.to(device)
            return
        module._apply(lambda t: t.to(device), recurse=False)  # its own parameters (e.g. the head's table)
        for child_name, child in module.named_children():
            if child_name not in self.block_lists:
                child.to(device)

    @contextmanager
    def use(self, name: str) -> Iterator[object]:
        """The component `name`, on the device for the duration (the one before it goes back to the CPU)."""
        if self.offload and self.active != name:
            if self.active is not None:
                self._move(self.active, "cpu")
            self._move(name, self.device)
            self.active = name
        yield self.components[name]

    def release(self) -> None:
        """Back to the CPU after a run, so the next run (or another model) starts with a free device."""
        if self.offload and self.active is not None:
            self._move(self.active, "cpu")
            self.active = None
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    def on_device(self) -> list[str]:
        """Names of the components with weights on the device now (for tests and logs)."""
        return [
            name
            for name in self.order
            if name in self.modules
            and any(p.device.type == self.device.type for p in self.modules[name].parameters())
        ]
