"""Model CPU offload with the order declared as data: a component sits on the GPU only while it runs.

Wan's parts run one after another (text encoder, image encoder, the transformer(s) for every step, then
the VAE), so holding only the running one on the accelerator lets a 24 GB card run the 5B and 14B
models: the peak is the largest single part plus activations, not their sum.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["OFFLOAD_ORDER", "Placement"]


def _module(component: object) -> nn.Module:
    """The torch module of a component: itself, or the `.model` of an encoder wrapper."""
    return component if isinstance(component, nn.Module) else component.model  # type: ignore[attr-defined]


# The order the parts first run in (the VAE also encodes conditioning frames before sampling);
# `Placement` moves each to the device when its turn comes and the previous one back to the CPU.
OFFLOAD_ORDER = ("text_encoder", "image_encoder", "transformer", "transformer_2", "vae")


class Placement:
    """Where each component lives while a pipeline runs: all on `device`, or each in turn with `offload`."""

    def __init__(
        self, components: Mapping[str, object | None], device: str | torch.device, *, offload: bool
    ) -> None:
        unknown = set(components) - set(OFFLOAD_ORDER)
        if unknown:
            raise ValueError(f"components not in OFFLOAD_ORDER: {sorted(unknown)}")
        self.components = {k: v for k, v in components.items() if v is not None}
        self.modules = {k: _module(v) for k, v in self.components.items()}
        self.device = torch.device(device)
        self.offload = offload and self.device.type != "cpu"
        self.active: str | None = None
        home = torch.device("cpu") if self.offload else self.device
        for module in self.modules.values():
            module.to(home)

    @contextmanager
    def use(self, name: str) -> Iterator[object]:
        """The component `name`, on the device for the duration (the one before it goes back to the CPU)."""
        if self.offload and self.active != name:
            if self.active is not None:
                self.modules[self.active].to("cpu")
            self.modules[name].to(self.device)
            self.active = name
        yield self.components[name]

    def release(self) -> None:
        """Back to the CPU after a run, so the next run (or another model) starts with a free device."""
        if self.offload and self.active is not None:
            self.modules[self.active].to("cpu")
            self.active = None
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    def on_device(self) -> list[str]:
        """Names of the components whose weights are on the device now (for tests and logs)."""
        return [
            name
            for name in OFFLOAD_ORDER
            if name in self.modules
            and any(p.device.type == self.device.type for p in self.modules[name].parameters())
        ]
