"""What each gloo rank of tests/pipelines/test_wan_parallel.py runs (importable by name for spawn)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from yingxi.models.parallel.mesh import Mesh
from yingxi.models.parallel.plan import parse_parallel
from yingxi.pipelines.wan.load import load_pipeline
from yingxi.pipelines.wan.parallel import parallelize


class LatentRecorder(nn.Module):
    """A VAE in front of the pipeline's own that remembers the latents it is asked to decode."""

    def __init__(self, vae: nn.Module):
        super().__init__()
        self.inner = vae
        self.config = vae.config
        self.latents: Tensor | None = None

    @property
    def dtype(self) -> torch.dtype:
        return self.inner.dtype

    def encode(self, video: Tensor, **kwargs) -> Tensor:
        return self.inner.encode(video, **kwargs)

    def decode(self, latents: Tensor, **kwargs) -> Tensor:
        self.latents = latents.detach().clone()
        return self.inner.decode(latents, **kwargs)


def record_latents(pipe) -> LatentRecorder:
    recorder = LatentRecorder(pipe.components.vae)
    pipe.components.vae = pipe.placement.components["vae"] = pipe.placement.modules["vae"] = recorder
    return recorder


def run_case(folder: Path, call: dict, mesh: Mesh | None = None, tiling=None) -> tuple[Tensor, object, dict]:
    """One pipeline call, across `mesh` (None: this process alone) -> latents, frames, usage. Job rank 0
    alone loads the text and image encoders: the others get their embeddings from it."""
    pipe = load_pipeline(folder, device="cpu", encoders=mesh is None or mesh.rank == 0)
    if mesh is not None:
        parallelize(pipe, mesh, vae_tiling=tiling)
    recorder = record_latents(pipe)
    frames = pipe(**call)
    return recorder.latents, frames, dict(pipe.last_usage)


def run_cases(rank: int, world: int, cases: list[tuple], out: Path) -> None:
    """Each case (name, folder, call, plan, first_rank, VAE tiling) on ranks [first_rank, first_rank + plan's)."""
    torch.set_num_threads(1)
    results = {}
    for name, folder, call, plan_text, first, tiling in cases:
        plan = parse_parallel(plan_text)
        if first <= rank < first + plan.world_size:
            mesh = Mesh.build(plan, first_rank=first, world_size=plan.world_size)
            results[name] = (mesh.rank, *run_case(folder, call, mesh, tiling))
    torch.save(results, out / f"rank{rank}.pt")
