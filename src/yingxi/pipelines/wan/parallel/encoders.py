"""Text and image encoders across ranks: job rank 0 encodes, every rank gets its tensor.

Every rank needs the same UMT5 / CLIP embeddings, but only one has to compute them: the other ranks need
not hold the encoders at all (UMT5-XXL is ~11 GB on each GPU; on the CPU, not loading transformers saves a
rank seconds of start-up). The embeddings go over the job's gloo control group, bit for bit.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from yingxi.errors import InputError
from yingxi.models.parallel.mesh import Mesh

__all__ = ["RankZeroEncoder", "share_encoders"]

_MISSING = {"text_encoder": "a text encoder; pass prompt_embeds", "image_encoder": "an image encoder"}


class RankZeroEncoder:
    """`encode` runs `inner` on the job's rank 0 (None elsewhere: not loaded) and broadcasts the result."""

    def __init__(self, inner: Any, mesh: Mesh, name: str):
        self.inner, self.mesh, self.name = inner, mesh, name

    def encode(self, items: list[Any]) -> Tensor:
        if self.mesh.rank == 0:
            out = None if self.inner is None else self.inner.encode(items).cpu()
            self.mesh.broadcast_object(out)  # None: the others raise as this rank does
        else:
            out = self.mesh.broadcast_object()
        if out is None:
            raise InputError(f"this pipeline has no {_MISSING[self.name]}", field="prompt")
        return out


def share_encoders(pipe: Any, mesh: Mesh, names: tuple[str, ...]) -> None:
    """Wrap the pipeline's encoders `names` (once) so that job rank 0 alone runs them."""
    components, placement = pipe.components, pipe.placement
    for name in names:
        inner = getattr(components, name)
        if isinstance(inner, RankZeroEncoder):
            continue
        wrapper = RankZeroEncoder(inner, mesh, name)
        setattr(components, name, wrapper)
        placement.components[name] = wrapper
        if name not in placement.modules:  # a rank that loaded none: nothing to move on and off the device
            placement.modules[name] = nn.Module()
