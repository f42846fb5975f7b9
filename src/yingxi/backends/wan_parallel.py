"""A Wan backend whose shots run across the ranks of a plan: rank 0 renders, the other ranks follow.

Rank 0's `ParallelGenerator` sends each shot's `ClipRequest` to every rank before shooting it, so all ranks
run the same pipeline call together (their collectives meet); only rank 0 keeps the frames, edits and
writes. The other ranks sit in `follow` until rank 0 says it is done; then each reports how many
transformer calls it ran, which the summary names.
"""

from __future__ import annotations

from typing import Any

import torch.distributed as dist

from yingxi.backends.base import Clip, ClipRequest, ShotProgress
from yingxi.errors import YingxiError
from yingxi.models.parallel.mesh import Mesh

__all__ = ["ParallelGenerator", "follow"]


def _ready(inner: Any, mesh: Mesh) -> None:
    from yingxi.pipelines.wan.parallel import parallelize

    parallelize(inner.pipeline, mesh)  # once: it is a no-op on a pipeline already set up


def _transformer_calls(inner: Any) -> int:
    """Calls the sharding hooks of this rank's transformers ran (0 before the pipeline loaded)."""
    pipe = getattr(inner, "_pipe", None)
    if pipe is None:
        return 0
    models = (pipe.components.transformer, pipe.components.transformer_2)
    return sum(getattr(m.blocks_hook, "calls", 0) for m in models if m is not None)


def _report(inner: Any, mesh: Mesh) -> list[int] | None:
    """Every rank's transformer calls on rank 0 (None elsewhere)."""
    mine = _transformer_calls(inner)
    if mesh.control is None:
        return [mine]
    box: list[Any] | None = [None] * mesh.plan.world_size if mesh.rank == 0 else None
    dist.gather_object(mine, box, dst=mesh.first_rank, group=mesh.control)
    return box


class ParallelGenerator:
    """Rank 0's backend over a `WanGenerator`: everything but `generate` is the inner backend's."""

    def __init__(self, inner: Any, mesh: Mesh):
        self.inner = inner
        self.mesh = mesh
        self.closed = False

    def __getattr__(self, name: str) -> Any:  # capabilities, check, settings, evaluations, name, ...
        return getattr(self.inner, name)

    def generate(self, request: ClipRequest, progress: ShotProgress | None = None) -> Clip:
        self.inner.check(request)  # bad input stops here, before the other ranks start on it
        self.mesh.broadcast_object(("shot", request))
        _ready(self.inner, self.mesh)
        return self.inner.generate(request, progress)

    def close(self) -> list[int]:
        """Release the other ranks; returns each rank's transformer calls (rank order)."""
        if self.closed:
            return []
        self.closed = True
        self.mesh.broadcast_object(("done", None))
        return _report(self.inner, self.mesh) or []


def follow(inner: Any, mesh: Mesh) -> int:
    """Ranks other than 0: shoot every shot rank 0 sends, until it is done; returns the shots shot. They
    load no text or image encoder (rank 0 encodes for all) where the weights are not loaded yet."""
    if getattr(inner, "_pipe", True) is None:
        inner.encoders = False
    shots = 0
    while True:
        kind, request = mesh.broadcast_object()
        if kind == "done":
            _report(inner, mesh)
            return shots
        _ready(inner, mesh)
        try:
            inner.generate(request)
        except YingxiError:  # rank 0 meets the same error and reports it; wait for its next word
            continue
        shots += 1
