"""Building blocks of the Wan 2.1 / 2.2 video VAE: causal 3D convolutions run chunk by chunk over time.

Follows Wan-Video/Wan2.1 `wan/modules/vae.py`, Wan2.2 `wan/modules/vae2_2.py` and diffusers
`AutoencoderKLWan`; module and parameter names are diffusers' so its state dict loads as is.
Every block takes `(x, cache)`: `x` is one temporal chunk `(B, C, T, H, W)`, `cache` the `TemporalCache`
that carries the last frames each causal layer saw in the previous chunk (None: no temporal context).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CACHE_T = 2  # frames of history a kernel-3 causal convolution needs


class TemporalCache:
    """Per-call state of chunked causal inference: one slot per cached layer, visited in call order."""

    def __init__(self) -> None:
        self._slots: list[Tensor | None] = []
        self._i = 0

    def rewind(self) -> None:
        """Start the next chunk: layers are visited again from the first."""
        self._i = 0

    def get(self) -> Tensor | None:
        """What the current layer stored in the previous chunk (None in the first chunk)."""
        return self._slots[self._i] if self._i < len(self._slots) else None

    def put(self, history: Tensor) -> None:
        """Store the current layer's history for the next chunk and move on to the next layer."""
        if self._i == len(self._slots):
            self._slots.append(history)
        else:
            self._slots[self._i] = history
        self._i += 1


def _history(x: Tensor, prev: Tensor | None) -> Tensor:
    """The last CACHE_T frames of the stream so far; a one-frame chunk borrows the previous last frame."""
    new = x[:, :, -CACHE_T:].clone()
    if new.shape[2] < CACHE_T and prev is not None:
        filler = prev[:, :, -1:] if prev.shape[2] > 0 else torch.zeros_like(new)
        new = torch.cat([filler, new], dim=2)
    return new


class CausalConv3d(nn.Conv3d):
    """Conv3d padded only towards the past in time, so frame t never sees frame t+1."""

    def __init__(self, in_dim: int, out_dim: int, kernel: int | tuple[int, int, int], **kwargs) -> None:
        super().__init__(in_dim, out_dim, kernel, **kwargs)
        pt, ph, pw = self.padding  # type: ignore[misc]
        self._pad = (pw, pw, ph, ph, 2 * pt, 0)  # F.pad order: W, H, T (all of T before the first frame)
        self.padding = (0, 0, 0)

    def forward(self, x: Tensor, history: Tensor | None = None) -> Tensor:
        pad = list(self._pad)
        if history is not None and pad[4] > 0:
            x = torch.cat([history, x], dim=2)  # real past frames replace zero padding
            pad[4] -= history.shape[2]
        return super().forward(F.pad(x, pad))

    def cached(self, x: Tensor, cache: TemporalCache | None) -> Tensor:
        """Run on one chunk, taking the previous chunk's last frames from `cache` and leaving ours."""
        if cache is None:
            return self(x)
        prev = cache.get()
        cache.put(_history(x, prev))
        return self(x, prev)


class RMSNorm(nn.Module):
    """RMS norm over channels (dim 1), scaled by sqrt(dim) like F.normalize * sqrt(C) in the reference."""

    def __init__(self, dim: int, images: bool = True) -> None:
        super().__init__()
        self.scale = dim**0.5
        self.gamma = nn.Parameter(torch.ones(dim, *((1, 1) if images else (1, 1, 1))))

    def forward(self, x: Tensor) -> Tensor:
        low = x.dtype in (torch.float16, torch.bfloat16)
        normed = F.normalize(x.float() if low else x, dim=1).to(x.dtype)
        return normed * self.scale * self.gamma


class Upsample2x(nn.Module):
    """Nearest-exact 2x spatial upsampling computed in float32 (bf16 interpolation is not exact)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(x.float(), scale_factor=(2.0, 2.0), mode="nearest-exact").type_as(x)


def _per_frame(fn: nn.Module, x: Tensor) -> Tensor:
    """Apply a 2D module to every frame: (B, C, T, H, W) -> (B, C', T, H', W')."""
    b, c, t, h, w = x.shape
    y = fn(x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w))  # (B*T, C', H', W')
    return y.view(b, t, *y.shape[1:]).permute(0, 2, 1, 3, 4)


class Resample(nn.Module):
    """Spatial 2x resampling per frame, plus (in the 3d modes) causal 2x temporal resampling."""

    def __init__(self, dim: int, mode: str, upsample_out_dim: int | None = None) -> None:
        super().__init__()
        self.mode = mode
        out = dim // 2 if upsample_out_dim is None else upsample_out_dim
        if mode in ("upsample2d", "upsample3d"):
            self.resample = nn.Sequential(Upsample2x(), nn.Conv2d(dim, out, 3, padding=1))
        elif mode in ("downsample2d", "downsample3d"):
            self.resample = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(dim, dim, 3, stride=(2, 2)))
        else:
            raise ValueError(f"unknown resample mode {mode!r}")
        if mode == "upsample3d":
            # predicts two output frames per input frame as 2*dim channels
            self.time_conv = CausalConv3d(dim, dim * 2, (3, 1, 1), padding=(1, 0, 0))
        elif mode == "downsample3d":
            self.time_conv = CausalConv3d(dim, dim, (3, 1, 1), stride=(2, 1, 1), padding=(0, 0, 0))

    def forward(self, x: Tensor, cache: TemporalCache | None = None) -> Tensor:
        if self.mode == "upsample3d" and cache is not None:
            x = self._time_up(x, cache)
        x = _per_frame(self.resample, x)
        if self.mode == "downsample3d" and cache is not None:
            x = self._time_down(x, cache)
        return x

    def _time_up(self, x: Tensor, cache: TemporalCache) -> Tensor:
        # The first chunk (first latent frame) is not doubled; later chunks see a zero history before chunk 2.
        prev = cache.get()
        if prev is None:
            cache.put(x[:, :, :0])  # empty history: zeros before the second chunk
            return x
        cache.put(_history(x, prev))
        b, c, t, h, w = x.shape
        x = self.time_conv(x, prev if prev.shape[2] > 0 else None)  # (B, 2C, T, H, W)
        return x.view(b, 2, c, t, h, w).permute(0, 2, 3, 1, 4, 5).reshape(b, c, t * 2, h, w)

    def _time_down(self, x: Tensor, cache: TemporalCache) -> Tensor:
        # The first chunk (first frame) passes through; later chunks are strided over with the last frame before.
        prev = cache.get()
        if prev is None:
            cache.put(x[:, :, -1:].clone())
            return x
        cache.put(x[:, :, -1:].clone())
        return self.time_conv(torch.cat([prev[:, :, -1:], x], dim=2))


class ResidualBlock(nn.Module):
    """Pre-norm residual block of two causal 3x3x3 convolutions."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = RMSNorm(in_dim, images=False)
        self.conv1 = CausalConv3d(in_dim, out_dim, 3, padding=1)
        self.norm2 = RMSNorm(out_dim, images=False)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = CausalConv3d(out_dim, out_dim, 3, padding=1)
        self.conv_shortcut = CausalConv3d(in_dim, out_dim, 1) if in_dim != out_dim else nn.Identity()

    def forward(self, x: Tensor, cache: TemporalCache | None = None) -> Tensor:
        h = self.conv_shortcut(x)
        x = self.conv1.cached(F.silu(self.norm1(x)), cache)
        x = self.conv2.cached(self.dropout(F.silu(self.norm2(x))), cache)
        return x + h


class AttentionBlock(nn.Module):
    """Single-head self-attention over the pixels of each frame (no attention across time)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = RMSNorm(dim)
        self.to_qkv = nn.Conv2d(dim, dim * 3, 1)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: Tensor, cache: TemporalCache | None = None) -> Tensor:
        b, c, t, h, w = x.shape
        y = self.norm(x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w))  # (BT, C, H, W)
        qkv = self.to_qkv(y).reshape(b * t, 1, c * 3, h * w).permute(0, 1, 3, 2)  # (BT, 1, HW, 3C)
        q, k, v = qkv.contiguous().chunk(3, dim=-1)  # each (BT, 1, HW, C)
        y = F.scaled_dot_product_attention(q, k, v)
        y = self.proj(y.squeeze(1).permute(0, 2, 1).reshape(b * t, c, h, w))
        return y.view(b, t, c, h, w).permute(0, 2, 1, 3, 4) + x


class MidBlock(nn.Module):
    """Residual, attention, residual at the lowest resolution."""

    def __init__(self, dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.resnets = nn.ModuleList([ResidualBlock(dim, dim, dropout), ResidualBlock(dim, dim, dropout)])
        self.attentions = nn.ModuleList([AttentionBlock(dim)])

    def forward(self, x: Tensor, cache: TemporalCache | None = None) -> Tensor:
        x = self.resnets[0](x, cache)
        x = self.attentions[0](x)
        return self.resnets[1](x, cache)


class AvgDown3D(nn.Module):
    """Parameter-free shortcut (Wan 2.2): space/time-to-channel, then average channel groups."""

    def __init__(self, in_dim: int, out_dim: int, factor_t: int, factor_s: int = 1) -> None:
        super().__init__()
        self.out_dim, self.factor_t, self.factor_s = out_dim, factor_t, factor_s
        self.factor = factor_t * factor_s * factor_s
        if in_dim * self.factor % out_dim:
            raise ValueError(f"AvgDown3D: {in_dim} channels x {self.factor} not divisible by {out_dim}")
        self.group = in_dim * self.factor // out_dim

    def forward(self, x: Tensor) -> Tensor:
        ft, fs = self.factor_t, self.factor_s
        x = F.pad(x, (0, 0, 0, 0, (ft - x.shape[2] % ft) % ft, 0))  # front-pad time to a multiple of ft
        b, c, t, h, w = x.shape
        x = x.view(b, c, t // ft, ft, h // fs, fs, w // fs, fs).permute(0, 1, 3, 5, 7, 2, 4, 6)
        x = x.reshape(b, self.out_dim, self.group, t // ft, h // fs, w // fs)
        return x.mean(dim=2)  # (B, out, T/ft, H/fs, W/fs)


class DupUp3D(nn.Module):
    """Parameter-free shortcut (Wan 2.2): repeat channels, then channel-to-space/time."""

    def __init__(self, in_dim: int, out_dim: int, factor_t: int, factor_s: int = 1) -> None:
        super().__init__()
        self.out_dim, self.factor_t, self.factor_s = out_dim, factor_t, factor_s
        factor = factor_t * factor_s * factor_s
        if out_dim * factor % in_dim:
            raise ValueError(f"DupUp3D: {out_dim} channels x {factor} not divisible by {in_dim}")
        self.repeats = out_dim * factor // in_dim

    def forward(self, x: Tensor, first_chunk: bool = False) -> Tensor:
        ft, fs = self.factor_t, self.factor_s
        x = x.repeat_interleave(self.repeats, dim=1)
        b, _, t, h, w = x.shape
        x = x.view(b, self.out_dim, ft, fs, fs, t, h, w).permute(0, 1, 5, 2, 6, 3, 7, 4)
        x = x.reshape(b, self.out_dim, t * ft, h * fs, w * fs)
        return x[:, :, ft - 1 :] if first_chunk else x  # the first latent frame stands for one frame


class ResidualDownBlock(nn.Module):
    """Wan 2.2 encoder stage: residual blocks and a downsampler, plus an averaging shortcut."""

    def __init__(
        self, in_dim: int, out_dim: int, dropout: float, num_res_blocks: int, temporal: bool, down: bool
    ) -> None:
        super().__init__()
        self.avg_shortcut = AvgDown3D(
            in_dim, out_dim, factor_t=2 if temporal else 1, factor_s=2 if down else 1
        )
        dims = [in_dim] + [out_dim] * num_res_blocks
        self.resnets = nn.ModuleList(
            ResidualBlock(a, b, dropout) for a, b in zip(dims[:-1], dims[1:], strict=False)
        )
        mode = "downsample3d" if temporal else "downsample2d"
        self.downsampler = Resample(out_dim, mode) if down else None

    def forward(self, x: Tensor, cache: TemporalCache | None = None) -> Tensor:
        shortcut = self.avg_shortcut(x)
        for resnet in self.resnets:
            x = resnet(x, cache)
        if self.downsampler is not None:
            x = self.downsampler(x, cache)
        return x + shortcut


class UpBlock(nn.Module):
    """Wan 2.1 decoder stage: residual blocks, then an optional upsampler that halves the channels."""

    def __init__(
        self, in_dim: int, out_dim: int, num_res_blocks: int, dropout: float, mode: str | None
    ) -> None:
        super().__init__()
        dims = [in_dim] + [out_dim] * (num_res_blocks + 1)
        self.resnets = nn.ModuleList(
            ResidualBlock(a, b, dropout) for a, b in zip(dims[:-1], dims[1:], strict=False)
        )
        self.upsamplers = nn.ModuleList([Resample(out_dim, mode)]) if mode else None

    def forward(self, x: Tensor, cache: TemporalCache | None = None, first_chunk: bool = False) -> Tensor:
        for resnet in self.resnets:
            x = resnet(x, cache)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x, cache)
        return x


class ResidualUpBlock(nn.Module):
    """Wan 2.2 decoder stage: residual blocks and an upsampler, plus a duplicating shortcut."""

    def __init__(
        self, in_dim: int, out_dim: int, num_res_blocks: int, dropout: float, temporal: bool, up: bool
    ) -> None:
        super().__init__()
        self.avg_shortcut = DupUp3D(in_dim, out_dim, 2 if temporal else 1, 2) if up else None
        dims = [in_dim] + [out_dim] * (num_res_blocks + 1)
        self.resnets = nn.ModuleList(
            ResidualBlock(a, b, dropout) for a, b in zip(dims[:-1], dims[1:], strict=False)
        )
        mode = "upsample3d" if temporal else "upsample2d"
        self.upsampler = Resample(out_dim, mode, upsample_out_dim=out_dim) if up else None

    def forward(self, x: Tensor, cache: TemporalCache | None = None, first_chunk: bool = False) -> Tensor:
        shortcut = self.avg_shortcut(x, first_chunk=first_chunk) if self.avg_shortcut is not None else None
        for resnet in self.resnets:
            x = resnet(x, cache)
        if self.upsampler is not None:
            x = self.upsampler(x, cache)
        return x if shortcut is None else x + shortcut


class Encoder3d(nn.Module):
    """Video (B, C_in, 1+4k, H, W) -> moments (B, 2z, 1+k, H/8, W/8), one temporal chunk at a time."""

    def __init__(
        self,
        in_channels: int,
        dim: int,
        z_dim: int,
        dim_mult: tuple[int, ...],
        num_res_blocks: int,
        attn_scales: tuple[float, ...],
        temporal_down: tuple[bool, ...],
        dropout: float,
        is_residual: bool,
    ) -> None:
        super().__init__()
        dims = [dim * u for u in (1, *dim_mult)]
        last = len(dim_mult) - 1
        self.conv_in = CausalConv3d(in_channels, dims[0], 3, padding=1)
        blocks: list[nn.Module] = []
        scale = 1.0
        for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:], strict=False)):
            if is_residual:  # Wan 2.2: one module per stage
                temporal = temporal_down[i] if i != last else False
                blocks.append(
                    ResidualDownBlock(in_dim, out_dim, dropout, num_res_blocks, temporal, i != last)
                )
                continue
            for _ in range(num_res_blocks):  # Wan 2.1: a flat list of blocks
                blocks.append(ResidualBlock(in_dim, out_dim, dropout))
                if scale in attn_scales:
                    blocks.append(AttentionBlock(out_dim))
                in_dim = out_dim
            if i != last:
                blocks.append(Resample(out_dim, "downsample3d" if temporal_down[i] else "downsample2d"))
                scale /= 2.0
        self.down_blocks = nn.ModuleList(blocks)
        self.mid_block = MidBlock(dims[-1], dropout)
        self.norm_out = RMSNorm(dims[-1], images=False)
        self.conv_out = CausalConv3d(dims[-1], z_dim, 3, padding=1)

    def forward(self, x: Tensor, cache: TemporalCache | None = None) -> Tensor:
        x = self.conv_in.cached(x, cache)
        for block in self.down_blocks:
            x = block(x, cache)
        x = self.mid_block(x, cache)
        return self.conv_out.cached(F.silu(self.norm_out(x)), cache)


class Decoder3d(nn.Module):
    """Latents (B, z, 1, h, w) -> frames (B, C_out, 1 or 4, 8h, 8w), one latent frame at a time."""

    def __init__(
        self,
        dim: int,
        z_dim: int,
        dim_mult: tuple[int, ...],
        num_res_blocks: int,
        temporal_up: tuple[bool, ...],
        dropout: float,
        out_channels: int,
        is_residual: bool,
    ) -> None:
        super().__init__()
        dims = [dim * u for u in (dim_mult[-1], *dim_mult[::-1])]
        last = len(dim_mult) - 1
        self.conv_in = CausalConv3d(z_dim, dims[0], 3, padding=1)
        self.mid_block = MidBlock(dims[0], dropout)
        blocks: list[nn.Module] = []
        for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:], strict=False)):
            up = i != last
            temporal = up and temporal_up[i]
            if is_residual:
                blocks.append(ResidualUpBlock(in_dim, out_dim, num_res_blocks, dropout, temporal, up))
            else:
                in_dim = in_dim // 2 if i > 0 else in_dim  # the 2.1 upsampler halved the channels
                mode = ("upsample3d" if temporal else "upsample2d") if up else None
                blocks.append(UpBlock(in_dim, out_dim, num_res_blocks, dropout, mode))
        self.up_blocks = nn.ModuleList(blocks)
        self.norm_out = RMSNorm(dims[-1], images=False)
        self.conv_out = CausalConv3d(dims[-1], out_channels, 3, padding=1)

    def forward(self, x: Tensor, cache: TemporalCache | None = None, first_chunk: bool = False) -> Tensor:
        x = self.conv_in.cached(x, cache)
        x = self.mid_block(x, cache)
        for block in self.up_blocks:
            x = block(x, cache, first_chunk=first_chunk)
        return self.conv_out.cached(F.silu(self.norm_out(x)), cache)
