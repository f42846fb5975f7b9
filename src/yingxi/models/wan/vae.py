"""The Wan video VAE (2.1: z=16, 4x8x8; 2.2: z=48, 4x16x16), owning its latent statistics.

`WanVAE.encode(video) -> normalised latents` and `WanVAE.decode(latents) -> video` are what the DiT sees and
produces; normalisation is `(z - mean) / std` as in diffusers' Wan pipelines. Chunking over time follows the
reference exactly (first frame alone, then 4 frames per chunk to encode; one latent frame per chunk to
decode), so outputs match diffusers `AutoencoderKLWan`; optional spatial tiling bounds memory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from yingxi.errors import InputError
from yingxi.models.wan.vae_blocks import CausalConv3d, Decoder3d, Encoder3d, TemporalCache

# Wan 2.1 latent statistics (Wan-Video/Wan2.1 wan/modules/vae.py, diffusers AutoencoderKLWan defaults).
WAN21_LATENTS_MEAN = (
    -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
    0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
)  # fmt: skip
WAN21_LATENTS_STD = (
    2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
    3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160,
)  # fmt: skip
# Wan 2.2 latent statistics (Wan-Video/Wan2.2 wan/modules/vae2_2.py).
WAN22_LATENTS_MEAN = (
    -0.2289, -0.0052, -0.1323, -0.2339, -0.2799, 0.0174, 0.1838, 0.1557, -0.1382, 0.0542, 0.2813, 0.0891,
    0.1570, -0.0098, 0.0375, -0.1825, -0.2246, -0.1207, -0.0698, 0.5109, 0.2665, -0.2108, -0.2158, 0.2502,
    -0.2055, -0.0322, 0.1109, 0.1567, -0.0729, 0.0899, -0.2799, -0.1230, -0.0313, -0.1649, 0.0117, 0.0723,
    -0.2839, -0.2083, -0.0520, 0.3748, 0.0152, 0.1957, 0.1433, -0.2944, 0.3573, -0.0548, -0.1681, -0.0667,
)  # fmt: skip
WAN22_LATENTS_STD = (
    0.4765, 1.0364, 0.4514, 1.1677, 0.5313, 0.4990, 0.4818, 0.5013, 0.8158, 1.0344, 0.5894, 1.0901,
    0.6885, 0.6165, 0.8454, 0.4978, 0.5759, 0.3523, 0.7135, 0.6804, 0.5833, 1.4146, 0.8986, 0.5659,
    0.7069, 0.5338, 0.4889, 0.4917, 0.4069, 0.4999, 0.6866, 0.4093, 0.5709, 0.6065, 0.6415, 0.4944,
    0.5726, 1.2042, 0.5458, 1.6887, 0.3971, 1.0600, 0.3943, 0.5537, 0.5444, 0.4089, 0.7468, 0.7744,
)  # fmt: skip


@dataclass(frozen=True)
class WanVAEConfig:
    """Architecture and latent statistics; field names follow diffusers' `vae/config.json`."""

    base_dim: int = 96  # encoder width of the first stage (2.2: 160)
    decoder_base_dim: int | None = None  # decoder width; None: base_dim (2.2: 256)
    z_dim: int = 16  # latent channels (2.2: 48)
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)  # stage widths as multiples of the base width
    num_res_blocks: int = 2  # residual blocks per encoder stage (decoder stages have one more)
    attn_scales: tuple[float, ...] = ()  # encoder scales with attention after each block (Wan: none)
    temperal_downsample: tuple[bool, ...] = (False, True, True)  # which downsamplers also halve time
    dropout: float = 0.0
    latents_mean: tuple[float, ...] = WAN21_LATENTS_MEAN
    latents_std: tuple[float, ...] = WAN21_LATENTS_STD
    is_residual: bool = False  # Wan 2.2: stages with averaging/duplicating shortcuts
    in_channels: int = 3  # encoder input channels after patchify (2.2: 3 * 2 * 2 = 12)
    out_channels: int = 3  # decoder output channels before unpatchify (2.2: 12)
    patch_size: int | None = None  # Wan 2.2 folds 2x2 pixels into channels before the encoder
    scale_factor_spatial: int = 8  # pixels per latent along H and W (2.2: 16)
    scale_factor_temporal: int = 4  # frames per latent frame after the first

    def __post_init__(self) -> None:
        for name in ("dim_mult", "attn_scales", "temperal_downsample", "latents_mean", "latents_std"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if len(self.latents_mean) != self.z_dim or len(self.latents_std) != self.z_dim:
            raise InputError(
                f"latents_mean/latents_std need {self.z_dim} values (z_dim), got "
                f"{len(self.latents_mean)}/{len(self.latents_std)}",
                field="vae config",
            )
        if len(self.temperal_downsample) != len(self.dim_mult) - 1:
            raise InputError(
                f"temperal_downsample needs {len(self.dim_mult) - 1} entries, got {len(self.temperal_downsample)}",
                field="vae config",
            )
        if any(s <= 0 for s in self.latents_std):
            raise InputError("latents_std must be positive", field="vae config")

    @classmethod
    def from_diffusers(cls, config: Mapping[str, Any]) -> WanVAEConfig:
        """From a diffusers `vae/config.json` dict; bookkeeping keys (`_class_name`, ...) are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in config.items() if k in names}
        for key in ("scale_factor_spatial", "scale_factor_temporal"):
            if kwargs.get(key) is None:
                kwargs.pop(key, None)
        return cls(**kwargs)

    def to_diffusers(self) -> dict[str, Any]:
        """The diffusers `AutoencoderKLWan` constructor arguments (lists, as its config.json holds)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """(z, F, h, w) of the latents for a (4k+1)-frame video of height x width pixels."""
        s, t = self.scale_factor_spatial, self.scale_factor_temporal
        return (self.z_dim, (num_frames - 1) // t + 1, height // s, width // s)

    @property
    def pixel_channels(self) -> int:
        """Channels of the video itself (3), before Wan 2.2's patchify."""
        return self.in_channels // (self.patch_size or 1) ** 2


WAN21_VAE = WanVAEConfig()
WAN22_VAE = WanVAEConfig(
    base_dim=160,
    decoder_base_dim=256,
    z_dim=48,
    latents_mean=WAN22_LATENTS_MEAN,
    latents_std=WAN22_LATENTS_STD,
    is_residual=True,
    in_channels=12,
    out_channels=12,
    patch_size=2,
    scale_factor_spatial=16,
)


@dataclass(frozen=True)
class VAETiling:
    """Runtime choice: encode/decode in overlapping spatial tiles (sizes in pixels, as diffusers' enable_tiling).

    Tiling applies only when the video is larger than one tile. Tiles overlap by min - stride pixels and
    are blended linearly. (For Wan 2.2 diffusers counts encoder tiles in patchified pixels; we match it.)
    """

    tile_sample_min_height: int = 256
    tile_sample_min_width: int = 256
    tile_sample_stride_height: int = 192
    tile_sample_stride_width: int = 192

    def __post_init__(self) -> None:
        for side in ("height", "width"):
            tile, stride = (
                getattr(self, f"tile_sample_min_{side}"),
                getattr(self, f"tile_sample_stride_{side}"),
            )
            if not 0 < stride <= tile:
                raise InputError(
                    f"tile stride must be in 1..tile size ({tile}), got {stride}", field=f"vae tiling {side}"
                )


def patchify(x: Tensor, p: int) -> Tensor:
    """(B, C, F, H, W) -> (B, C*p*p, F, H/p, W/p); channel order (c, pw, ph) as in Wan 2.2."""
    b, c, f, h, w = x.shape
    x = x.view(b, c, f, h // p, p, w // p, p).permute(0, 1, 6, 4, 2, 3, 5)
    return x.reshape(b, c * p * p, f, h // p, w // p)


def unpatchify(x: Tensor, p: int) -> Tensor:
    """Inverse of `patchify`: (B, C*p*p, F, h, w) -> (B, C, F, h*p, w*p)."""
    b, cp, f, h, w = x.shape
    x = x.view(b, cp // (p * p), p, p, f, h, w).permute(0, 1, 4, 5, 3, 6, 2)
    return x.reshape(b, cp // (p * p), f, h * p, w * p)


def _blend_tiles(
    tiles: list[list[Tensor]],
    blend_h: int,
    blend_w: int,
    stride_h: int,
    stride_w: int,
    out_h: int,
    out_w: int,
) -> Tensor:
    """Stitch a grid of overlapping tiles: ramp each tile in linearly over its top and left overlaps."""
    for i, row in enumerate(tiles):
        for j, tile in enumerate(row):  # in place, in order: later tiles blend with blended neighbours
            if i > 0:
                _ramp(tiles[i - 1][j], tile, blend_h, dim=3)
            if j > 0:
                _ramp(row[j - 1], tile, blend_w, dim=4)
    rows = [torch.cat([t[:, :, :, :stride_h, :stride_w] for t in row], dim=4) for row in tiles]
    return torch.cat(rows, dim=3)[:, :, :, :out_h, :out_w]


def _ramp(a: Tensor, b: Tensor, extent: int, dim: int) -> None:
    """b's first `extent` rows (dim 3) or columns (dim 4) := a's last ones * (1 - y/extent) + b's * y/extent."""
    extent = min(a.shape[dim], b.shape[dim], extent)
    if extent <= 0:
        return
    shape = [1] * 5
    shape[dim] = extent
    w = torch.arange(extent, dtype=torch.float64, device=b.device).view(shape) / extent  # y / extent
    w_b, w_a = w.to(b.dtype), (1 - w).to(b.dtype)
    head = b.narrow(dim, 0, extent)
    head.copy_(a.narrow(dim, a.shape[dim] - extent, extent) * w_a + head * w_b)


class WanVAE(nn.Module):
    """Wan video VAE. encode: video in [-1, 1] (B, 3, 1+4k, H, W) -> normalised latents (B, z, 1+k, h, w)."""

    def __init__(self, config: WanVAEConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.encoder = Encoder3d(
            c.in_channels, c.base_dim, c.z_dim * 2, c.dim_mult, c.num_res_blocks, c.attn_scales,
            c.temperal_downsample, c.dropout, c.is_residual,
        )  # fmt: skip
        self.quant_conv = CausalConv3d(c.z_dim * 2, c.z_dim * 2, 1)
        self.post_quant_conv = CausalConv3d(c.z_dim, c.z_dim, 1)
        self.decoder = Decoder3d(
            c.decoder_base_dim or c.base_dim, c.z_dim, c.dim_mult, c.num_res_blocks, c.temperal_downsample[::-1],
            c.dropout, c.out_channels, c.is_residual,
        )  # fmt: skip
        # Statistics as float32 buffers (not in the state dict), built on the CPU even under a meta device.
        std = torch.tensor(c.latents_std, dtype=torch.float32, device="cpu")
        mean = torch.tensor(c.latents_mean, dtype=torch.float32, device="cpu")
        self.register_buffer("latents_mean", mean.view(1, -1, 1, 1, 1), persistent=False)
        self.register_buffer("latents_inv_std", (1.0 / std).view(1, -1, 1, 1, 1), persistent=False)

    @property
    def dtype(self) -> torch.dtype:
        return self.quant_conv.weight.dtype

    # ---- latent statistics ------------------------------------------------------------------------------
    def normalize(self, z: Tensor) -> Tensor:
        """Raw latents -> what the DiT sees: (z - mean) / std, computed as diffusers does (times 1/std)."""
        return (z - self.latents_mean.to(z.dtype)) * self.latents_inv_std.to(z.dtype)

    def denormalize(self, latents: Tensor) -> Tensor:
        """Inverse of `normalize`: latents * std + mean (as latents / (1/std) + mean)."""
        return latents / self.latents_inv_std.to(latents.dtype) + self.latents_mean.to(latents.dtype)

    # ---- public API -------------------------------------------------------------------------------------
    def encode(
        self, video: Tensor, *, generator: torch.Generator | None = None, tiling: VAETiling | None = None
    ) -> Tensor:
        """Video (B, 3, 1+4k, H, W) in [-1, 1] -> normalised latents (B, z, 1+k, H/s, W/s).

        The posterior mean, or a sample from it when a generator is given.
        """
        moments = self.encode_moments(video, tiling=tiling)
        mean, logvar = moments.chunk(2, dim=1)
        z = mean
        if generator is not None:
            std = torch.exp(0.5 * torch.clamp(logvar, -30.0, 20.0))
            noise = torch.randn(mean.shape, generator=generator, device=generator.device, dtype=mean.dtype)
            z = mean + std * noise.to(mean.device)
        return self.normalize(z)

    def decode(self, latents: Tensor, *, tiling: VAETiling | None = None) -> Tensor:
        """Normalised latents (B, z, 1+k, h, w) -> video (B, 3, 1+4k, h*s, w*s) clamped to [-1, 1]."""
        self._check_latents(latents)
        z = self.denormalize(latents.to(self.dtype))
        c = self.config
        if tiling is not None and (
            z.shape[4] > tiling.tile_sample_min_width // c.scale_factor_spatial
            or z.shape[3] > tiling.tile_sample_min_height // c.scale_factor_spatial
        ):
            out = self._decode_tiled(z, tiling)
        else:
            out = self._decode_frames(z)
        if c.patch_size:
            out = unpatchify(out, c.patch_size)
        return out.clamp(-1.0, 1.0)

    def encode_moments(self, video: Tensor, *, tiling: VAETiling | None = None) -> Tensor:
        """Video -> raw posterior moments (B, 2z, 1+k, h, w): mean then log-variance, not normalised."""
        self._check_video(video)
        x = video.to(self.dtype)
        _, _, _, height, width = x.shape
        if self.config.patch_size:
            x = patchify(x, self.config.patch_size)
        if tiling is not None and (
            width > tiling.tile_sample_min_width or height > tiling.tile_sample_min_height
        ):
            return self._encode_tiled(x, tiling)
        return self.quant_conv(self._encode_chunks(x))

    # ---- chunked causal passes --------------------------------------------------------------------------
    def _encode_chunks(self, x: Tensor) -> Tensor:
        """(B, C, 1+4k, H, W) -> encoder output (B, 2z, 1+k, h, w): the first frame alone, then 4 at a time."""
        cache = TemporalCache()
        chunks = [x[:, :, :1]] + [x[:, :, i : i + 4] for i in range(1, x.shape[2], 4)]
        out = []
        for chunk in chunks:
            cache.rewind()
            out.append(self.encoder(chunk, cache))
        return torch.cat(out, dim=2)

    def _decode_frames(self, z: Tensor) -> Tensor:
        """Raw latents (B, z, 1+k, h, w) -> decoder output (B, C_out, 1+4k, H, W), one latent frame at a time."""
        cache = TemporalCache()
        x = self.post_quant_conv(z)
        out = []
        for i in range(x.shape[2]):
            cache.rewind()
            out.append(self.decoder(x[:, :, i : i + 1], cache, first_chunk=i == 0))
        return torch.cat(out, dim=2)

    # ---- spatial tiling (diffusers AutoencoderKLWan.tiled_encode / tiled_decode) ------------------------
    def _check_tiling(self, t: VAETiling) -> None:
        s = self.config.scale_factor_spatial
        if min(t.tile_sample_stride_height, t.tile_sample_stride_width) < s:
            raise InputError(f"tile strides must be at least {s} pixels (one latent)", field="vae tiling")

    def _encode_tiled(self, x: Tensor, t: VAETiling) -> Tensor:
        """Patchified video -> moments, tile by tile; tile sizes count the (patchified) encoder input."""
        self._check_tiling(t)
        c = self.config
        ratio = c.scale_factor_spatial // (c.patch_size or 1)
        _, _, _, height, width = x.shape
        tiles = [
            [
                self.quant_conv(self._encode_chunks(x[:, :, :, i : i + t.tile_sample_min_height,
                                                      j : j + t.tile_sample_min_width]))
                for j in range(0, width, t.tile_sample_stride_width)
            ]
            for i in range(0, height, t.tile_sample_stride_height)
        ]  # fmt: skip
        stride_h, stride_w = t.tile_sample_stride_height // ratio, t.tile_sample_stride_width // ratio
        blend_h = t.tile_sample_min_height // ratio - stride_h
        blend_w = t.tile_sample_min_width // ratio - stride_w
        return _blend_tiles(tiles, blend_h, blend_w, stride_h, stride_w, height // ratio, width // ratio)

    def _decode_tiled(self, z: Tensor, t: VAETiling) -> Tensor:
        """Raw latents -> decoder output (patchified for 2.2), tile by tile, blended in output pixels."""
        self._check_tiling(t)
        c = self.config
        ratio, p = c.scale_factor_spatial, c.patch_size or 1
        _, _, _, height, width = z.shape
        tile_h, tile_w = t.tile_sample_min_height // ratio, t.tile_sample_min_width // ratio
        tiles = [
            [
                self._decode_frames(z[:, :, :, i : i + tile_h, j : j + tile_w])
                for j in range(0, width, t.tile_sample_stride_width // ratio)
            ]
            for i in range(0, height, t.tile_sample_stride_height // ratio)
        ]
        stride_h, stride_w = t.tile_sample_stride_height // p, t.tile_sample_stride_width // p
        blend_h = t.tile_sample_min_height // p - stride_h
        blend_w = t.tile_sample_min_width // p - stride_w
        out_h, out_w = height * ratio // p, width * ratio // p
        return _blend_tiles(tiles, blend_h, blend_w, stride_h, stride_w, out_h, out_w)

    # ---- input checks -----------------------------------------------------------------------------------
    def _check_video(self, video: Tensor) -> None:
        c = self.config
        s, ts = c.scale_factor_spatial, c.scale_factor_temporal
        if video.ndim != 5 or video.shape[1] != c.pixel_channels:
            raise InputError(
                f"expected a video (B, {c.pixel_channels}, F, H, W), got shape {tuple(video.shape)}",
                field="video",
            )
        _, _, f, h, w = video.shape
        if (f - 1) % ts or h % s or w % s:
            raise InputError(
                f"video of {f} frames of {w}x{h}: the Wan VAE needs {ts}k+1 frames and sides divisible by {s}",
                field="video",
            )

    def _check_latents(self, latents: Tensor) -> None:
        z = self.config.z_dim
        if latents.ndim != 5 or latents.shape[1] != z:
            raise InputError(
                f"expected latents (B, {z}, F, h, w), got shape {tuple(latents.shape)}", field="latents"
            )
