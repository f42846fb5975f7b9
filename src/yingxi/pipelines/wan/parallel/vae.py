"""The Wan VAE's decode split across ranks: each rank decodes its share of the spatial tiles, rank 0 blends.

The tiles, their overlap and the linear blend are exactly `WanVAE.decode(latents, tiling=...)`'s (diffusers'
`tiled_decode`), so N ranks give the frames one process gives with the same tiling, bit for bit. A tiled
decode is not the untiled one: the decoder's mid-block attention sees the whole frame and its convolutions
see across tile borders, so tiles differ near their edges (measured in tests/pipelines/test_wan_parallel_vae.py).
Only rank 0 gets the video; the other ranks get zeros of its shape (their frames are never used).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from yingxi.models.parallel.mesh import Mesh
from yingxi.models.wan.vae import VAETiling, WanVAE, _blend_tiles, unpatchify

__all__ = ["ParallelVAE", "decode_tiles_across_ranks"]


def _tile_grid(z: Tensor, vae: WanVAE, t: VAETiling) -> list[list[tuple[int, int]]]:
    """Latent (row, column) origins of the tiles, as `WanVAE._decode_tiled` lays them out."""
    ratio = vae.config.scale_factor_spatial
    _, _, _, height, width = z.shape
    return [
        [(i, j) for j in range(0, width, t.tile_sample_stride_width // ratio)]
        for i in range(0, height, t.tile_sample_stride_height // ratio)
    ]


def decode_tiles_across_ranks(vae: WanVAE, latents: Tensor, tiling: VAETiling, mesh: Mesh) -> Tensor | None:
    """Normalised latents (1, z, f, h, w) -> video (1, 3, F, H, W) in [-1, 1] on rank 0, None elsewhere.

    Tile k is decoded by rank k % plan.vae; the tiles travel to rank 0 over the gloo group as CPU tensors.
    """
    import torch.distributed as dist

    vae._check_latents(latents)
    vae._check_tiling(tiling)
    c = vae.config
    z = vae.denormalize(latents.to(vae.dtype))
    ratio, p = c.scale_factor_spatial, c.patch_size or 1
    tile_h, tile_w = tiling.tile_sample_min_height // ratio, tiling.tile_sample_min_width // ratio
    grid = _tile_grid(z, vae, tiling)
    origins = [o for row in grid for o in row]
    decoders = mesh.plan.vae
    mine = {
        k: vae._decode_frames(z[:, :, :, i : i + tile_h, j : j + tile_w]).cpu()
        for k, (i, j) in enumerate(origins)
        if k % decoders == mesh.rank
    }  # k -> decoder output of tile k
    world = mesh.plan.world_size
    gathered: list[dict[int, Tensor]] | None = [{} for _ in range(world)] if mesh.rank == 0 else None
    if mesh.control is not None:
        dist.gather_object(mine, gathered, dst=mesh.first_rank, group=mesh.control)
    else:
        gathered = [mine]
    if mesh.rank != 0:
        return None
    tiles_by_index = {k: t for part in gathered or [] for k, t in part.items()}
    tiles, k = [], 0
    for row in grid:
        tiles.append([tiles_by_index[k + n].to(latents.device) for n in range(len(row))])
        k += len(row)
    _, _, _, height, width = z.shape
    stride_h, stride_w = tiling.tile_sample_stride_height // p, tiling.tile_sample_stride_width // p
    blend_h, blend_w = (
        tiling.tile_sample_min_height // p - stride_h,
        tiling.tile_sample_min_width // p - stride_w,
    )
    out = _blend_tiles(tiles, blend_h, blend_w, stride_h, stride_w, height * ratio // p, width * ratio // p)
    if c.patch_size:
        out = unpatchify(out, c.patch_size)
    return out.clamp(-1.0, 1.0)


class ParallelVAE(nn.Module):
    """A WanVAE whose `decode` runs once, on rank 0 (plan.vae 1), or tiled across plan.vae ranks."""

    def __init__(self, vae: WanVAE, mesh: Mesh, tiling: VAETiling | None = None):
        super().__init__()
        self.vae = vae
        self.mesh = mesh
        self.tiling = tiling or VAETiling()  # the tiles of a split decode (diffusers' 256 px, stride 192)
        self.config = vae.config

    @property
    def dtype(self) -> torch.dtype:
        return self.vae.dtype

    def encode(self, video: Tensor, **kwargs) -> Tensor:
        return self.vae.encode(video, **kwargs)

    def encode_moments(self, video: Tensor, **kwargs) -> Tensor:
        return self.vae.encode_moments(video, **kwargs)

    def normalize(self, z: Tensor) -> Tensor:
        return self.vae.normalize(z)

    def denormalize(self, latents: Tensor) -> Tensor:
        return self.vae.denormalize(latents)

    def decode(self, latents: Tensor, *, tiling: VAETiling | None = None) -> Tensor:
        """Rank 0: the video (1, 3, F, H, W); other ranks: zeros of that shape, never used."""
        if self.mesh.plan.vae > 1:
            video = decode_tiles_across_ranks(self.vae, latents, tiling or self.tiling, self.mesh)
        else:
            video = self.vae.decode(latents, tiling=tiling) if self.mesh.rank == 0 else None
        if video is not None:
            return video
        c = self.config
        _, _, f, h, w = latents.shape
        s = c.scale_factor_spatial
        return torch.zeros(1, 3, (f - 1) * c.scale_factor_temporal + 1, h * s, w * s, device=latents.device)
