"""One Wan video across several ranks: sequence-parallel transformer, guidance split, split VAE decode."""

from __future__ import annotations

from typing import TYPE_CHECKING

from yingxi.models.parallel.mesh import Mesh
from yingxi.models.wan.vae import VAETiling
from yingxi.pipelines.wan.parallel.dit import shard_transformer
from yingxi.pipelines.wan.parallel.encoders import RankZeroEncoder, share_encoders
from yingxi.pipelines.wan.parallel.vae import ParallelVAE

if TYPE_CHECKING:
    from yingxi.pipelines.wan.pipeline import WanPipeline

__all__ = ["ParallelVAE", "RankZeroEncoder", "parallelize", "shard_transformer"]


def parallelize(pipe: WanPipeline, mesh: Mesh, *, vae_tiling: VAETiling | None = None) -> WanPipeline:
    """Set `pipe` up (in place, once) to run every call across `mesh`; every rank calls it on its own copy.

    cfg=2 needs cond and uncond in one batch (batched guidance), which each cfg group then halves; the
    sampler, its guidance combination and the latents stay the same on every rank. Job rank 0 alone runs
    the text and image encoders it holds (the others may hold none: `load_pipeline(..., encoders=False)`).
    """
    components = pipe.components
    for name in ("transformer", "transformer_2"):
        model = getattr(components, name)
        if model is not None:
            shard_transformer(model, mesh)
    if not isinstance(components.vae, ParallelVAE):  # the first set-up: every rank of the job is here
        held = [n for n in ("text_encoder", "image_encoder") if getattr(components, n) is not None]
        share_encoders(pipe, mesh, tuple(mesh.broadcast_object(held)))  # the encoders rank 0 holds
        components.vae = ParallelVAE(components.vae, mesh, vae_tiling)
        pipe.placement.components["vae"] = pipe.placement.modules["vae"] = components.vae
    if mesh.plan.cfg > 1:
        pipe.batched_guidance = True
    return pipe
