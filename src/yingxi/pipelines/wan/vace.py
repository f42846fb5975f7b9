"""Wan VACE: one model for reference-to-video, video extension, frames pinned anywhere and control videos.

The conditioning follows diffusers' `WanVACEPipeline` (the numerical reference) and Wan-Video/Wan2.1
`wan/vace.py`: a source video and a mask (1 = make, 0 = keep) are encoded as two latent videos, the kept
part ("inactive") and the rest ("reactive"); the mask is folded 8x8 onto the latent grid (64 channels);
each reference image is letterboxed on white, encoded on its own and put before the video as one extra
latent frame (with zero reactive latents and mask), and those frames are dropped before decoding.
Together that is the 96-channel context the transformer's VACE blocks read (`models/wan/vace.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from yingxi.errors import InputError
from yingxi.pipelines.wan.common import TaskInputs, as_uint8_image, latent_shape
from yingxi.pipelines.wan.pipeline import WanPipeline

__all__ = [
    "VaceConditions",
    "VaceInputs",
    "WanVACEPipeline",
    "as_mask",
    "as_video",
    "fit_reference",
    "vace_context",
]


@dataclass(frozen=True)
class VaceConditions:
    """One call's VACE inputs, checked and as tensors on the pipeline device."""

    video: Tensor  # (1, 3, F, H, W) in [-1, 1]; zeros (grey) where nothing is given
    mask: Tensor  # (1, 1, F, H, W) in [0, 1]: 1 where frames are made, 0 where `video` is kept
    references: tuple[Tensor, ...]  # each (3, H, W) in [-1, 1], letterboxed on white
    scale: float | Sequence[float]
    keep_given: bool = False  # replace the wholly kept latent frames by the given frames' latents at the end


@dataclass(frozen=True)
class VaceInputs(TaskInputs):
    """TaskInputs of a VACE call; with `kept` the latent frames whose pixels are all kept (mask 0) end as the
    VAE latents of the given frames, so an extended clip starts with exactly the VAE round trip of them."""

    kept: Tensor | None = None  # (1, z, f, h, w) latents of the kept part of the video (the inactive ones)
    kept_frames: Tensor | None = None  # (f,) bool: latent frames wholly kept

    def model_input(self, x: Tensor) -> Tensor:
        return x  # nothing held while sampling: the context carries the given frames

    def hold(self, x: Tensor) -> Tensor:
        if self.kept is None or self.kept_frames is None or not bool(self.kept_frames.any()):
            return x
        n = self.leading
        video = x[:, :, n:].clone()  # (1, z, f, h, w)
        video[:, :, self.kept_frames] = self.kept[:, :, self.kept_frames].to(x.dtype)
        return torch.cat([x[:, :, :n], video], dim=2)  # (1, z, n + f, h, w)


def as_video(video: object, width: int, height: int, *, field: str = "video") -> Tensor:
    """(1, 3, F, height, width) in [-1, 1] from uint8 (F, H, W, 3) or a list of frames (arrays, PIL, or None
    for a frame nothing is known of: grey, 0, as Wan's own `prepare_source` fills missing frames)."""
    frames = list(video) if not isinstance(video, np.ndarray) or video.ndim == 4 else None
    if frames is None or not frames or all(f is None for f in frames):
        raise InputError("expected a video: uint8 (F, H, W, 3) or a list of frames", field=field)
    out = torch.zeros(1, 3, len(frames), height, width)
    for i, frame in enumerate(frames):
        if frame is None:
            continue
        image = as_uint8_image(frame, field=field)
        if image.shape[:2] != (height, width):
            raise InputError(
                f"frame {i} is {image.shape[1]}x{image.shape[0]}, the clip {width}x{height}", field=field
            )
        out[0, :, i] = torch.from_numpy(image.astype(np.float32) / 255.0).permute(2, 0, 1) * 2 - 1
    return out


def as_mask(mask: object, frames: int, width: int, height: int) -> np.ndarray:
    """float32 (F, H, W) in [0, 1] from uint8 (0..255), bool or float masks, (F, H, W) or (F, H, W, C)."""
    if not isinstance(mask, np.ndarray):
        if not isinstance(mask, (list, tuple)) or not mask:
            raise InputError("expected a mask: (F, H, W) array or a list of frames", field="mask")
        try:
            mask = np.stack(
                [np.asarray(m.convert("L")) if hasattr(m, "convert") else np.asarray(m) for m in mask]
            )
        except ValueError as exc:  # frames of different sizes
            raise InputError(f"the mask's frames differ in size ({exc})", field="mask") from exc
    if not (mask.dtype == np.bool_ or np.issubdtype(mask.dtype, np.number)):
        raise InputError(f"the mask must be numbers or booleans, got {mask.dtype}", field="mask")
    m = mask.astype(np.float32) / 255.0 if mask.dtype == np.uint8 else mask.astype(np.float32)
    if m.ndim == 4:
        m = m[..., 0]  # as diffusers: the first channel decides
    if m.shape != (frames, height, width):
        raise InputError(
            f"the mask must be ({frames}, {height}, {width}) like the video, got {mask.shape}", field="mask"
        )
    return np.clip(m, 0.0, 1.0)


def fit_reference(image: np.ndarray, width: int, height: int, device: torch.device) -> Tensor:
    """uint8 (h, w, 3) -> (3, height, width) in [-1, 1]: scaled to fit (bilinear) and centred on white,
    as diffusers' `preprocess_conditions` (and Wan's `prepare_source`) place a reference image."""
    x = torch.from_numpy(image.astype(np.float32) / 255.0).permute(2, 0, 1) * 2 - 1  # (3, h, w)
    h, w = x.shape[-2:]
    scale = min(height / h, width / w)
    nh, nw = int(h * scale), int(w * scale)
    x = F.interpolate(x[None], size=(nh, nw), mode="bilinear", align_corners=False)[0]  # (3, nh, nw)
    canvas = torch.ones(3, height, width)
    top, left = (height - nh) // 2, (width - nw) // 2
    canvas[:, top : top + nh, left : left + nw] = x
    return canvas.to(device)


def fold_mask(mask: Tensor, *, temporal: int, spatial: int, patch: int) -> Tensor:
    """(1, 1, F, H, W) pixel mask -> (1, spatial**2, f, h, w): each latent cell's 8x8 pixels as channels,
    frames resampled to the latent count (nearest-exact, as the reference)."""
    _, _, frames, height, width = mask.shape
    f = (frames + temporal - 1) // temporal
    h, w = height // (spatial * patch) * patch, width // (spatial * patch) * patch
    m = mask[0, 0].view(frames, h, spatial, w, spatial)  # (F, h, s, w, s)
    m = m.permute(2, 4, 0, 1, 3).flatten(0, 1)  # (s*s, F, h, w)
    return F.interpolate(m[None], size=(f, h, w), mode="nearest-exact")  # (1, s*s, f, h, w)


def vace_context(vae, cond: VaceConditions, *, patch: int) -> Tensor:
    """The (1, 2z + s*s, n_ref + f, h, w) VACE context: [inactive, reactive] latents then the folded mask;
    each reference image a leading frame of its latents, zeros and a zero mask. As diffusers, the later
    reference goes first (Wan's own code keeps the given order; the two agree for one reference)."""
    dtype = vae.dtype
    keep = (cond.mask > 0.5).to(cond.video.dtype)  # (1, 1, F, H, W) binary, for splitting the video
    inactive = vae.encode((cond.video * (1 - keep)).to(dtype)).float()  # (1, z, f, h, w)
    reactive = vae.encode((cond.video * keep).to(dtype)).float()  # (1, z, f, h, w)
    latents = torch.cat([inactive, reactive], dim=1)  # (1, 2z, f, h, w)
    for image in cond.references:
        ref = vae.encode(image[None, :, None].to(dtype)).float()  # (1, z, 1, h, w)
        latents = torch.cat(
            [torch.cat([ref, torch.zeros_like(ref)], dim=1), latents], dim=2
        )  # (1, 2z, +1, h, w)
    cfg = vae.config
    mask = fold_mask(
        cond.mask.float(),
        temporal=int(cfg.scale_factor_temporal),
        spatial=int(cfg.scale_factor_spatial),
        patch=patch,
    )  # (1, s*s, f, h, w)
    n = len(cond.references)
    mask = torch.cat(
        [mask.new_zeros(1, mask.shape[1], n, *mask.shape[-2:]), mask], dim=2
    )  # (1, s*s, n + f, h, w)
    return torch.cat([latents, mask.to(latents)], dim=1)  # (1, 2z + s*s, n + f, h, w)


class WanVACEPipeline(WanPipeline):
    """A WanPipeline for VACE models: `pipe(prompt=..., video=..., mask=..., reference_images=...,
    conditioning_scale=...)`; every other argument as `WanPipeline.__call__`. Frames uint8 (F, H, W, 3)."""

    _conditions: VaceConditions | None = None

    @torch.no_grad()
    def __call__(  # type: ignore[override]
        self,
        prompt: str | None = None,
        *,
        video: object = None,
        mask: object = None,
        reference_images: Sequence[object] = (),
        conditioning_scale: float | Sequence[float] = 1.0,
        keep_given: bool = False,
        **kwargs: Any,
    ) -> np.ndarray:
        """`video` (F, H, W, 3) uint8 as the clip (None: nothing given, all grey), `mask` (F, H, W) with 1 (or
        255) where frames are made and 0 where `video` is kept (None: all made; a control video then guides
        the whole clip), `reference_images` identity/style images that are not frames of the clip,
        `conditioning_scale` one number or one per VACE layer. `keep_given`: the latent frames whose pixels are
        all kept end as the given frames' latents (diffusers does not; off for parity), so an extension starts
        with the VAE round trip of the frames it continues."""
        for name in ("image", "last_image"):
            if kwargs.get(name) is not None:
                raise InputError(f"VACE pins frames with video + mask, not {name}", field=name)
        v = self.variant
        width = kwargs.get("width") or v.default_size[0]
        height = kwargs.get("height") or v.default_size[1]
        frames = kwargs.get("num_frames") or v.num_frames
        self.check(width=width, height=height, num_frames=frames)
        self._conditions = self.conditions(
            video, mask, reference_images, conditioning_scale, width, height, frames, keep_given
        )
        try:
            return super().__call__(prompt, **kwargs)
        finally:
            self._conditions = None

    def conditions(
        self, video, mask, references, scale, width: int, height: int, frames: int, keep_given: bool = False
    ) -> VaceConditions:
        """Check and convert one call's VACE inputs (InputError naming the field)."""
        device = self.device
        if video is None:
            if mask is not None:
                raise InputError("a mask needs the video it masks", field="mask")
            pixels = torch.zeros(1, 3, frames, height, width, device=device)
        else:
            pixels = as_video(video, width, height).to(device)  # (1, 3, F, H, W)
            if pixels.shape[2] != frames:
                raise InputError(f"the video has {pixels.shape[2]} frames, the clip {frames}", field="video")
        if mask is None:
            m = torch.ones(1, 1, frames, height, width, device=device)
        else:
            m = torch.from_numpy(as_mask(mask, frames, width, height))[None, None].to(
                device
            )  # (1, 1, F, H, W)
        refs = tuple(
            fit_reference(as_uint8_image(r, field="reference_images"), width, height, device)
            for r in references or ()
        )
        if not isinstance(scale, (int, float)):
            self.components.transformer.context_scales(list(scale), device)  # the count, before any work
        return VaceConditions(video=pixels, mask=m, references=refs, scale=scale, keep_given=keep_given)

    def _latent_shape(self, run) -> tuple[int, ...]:
        base = latent_shape(self.latent_channels, run.num_frames, run.height, run.width,
                            temporal=self.temporal, spatial=self.spatial)  # fmt: skip
        n = len(self._conditions.references) if self._conditions is not None else 0
        return (*base[:2], base[2] + n, *base[3:])  # reference frames first

    def _task_inputs(self, task: str, run, shape: tuple[int, ...]) -> TaskInputs:
        if task != "vace" or self._conditions is None:
            raise InputError(f"{self.variant.name} is not a VACE model", field="model")
        cond = self._conditions
        with self.placement.use("vae") as vae:
            context = vace_context(vae, cond, patch=self.patch[1])  # (1, 96, n + f, h, w)
        scales = self.components.transformer.context_scales(cond.scale, self.device)
        n, z = len(cond.references), self.latent_channels
        kept = kept_frames = None
        if cond.keep_given:
            kept = context[:, :z, n:]  # (1, z, f, h, w) the inactive latents
            made = cond.mask[0, 0].flatten(1).amax(dim=1) > 0.5  # (F,) frames with anything to make
            made = torch.cat([made[:1].repeat(self.temporal), made[1:]])  # frame 0 is a latent frame alone
            kept_frames = ~made.view(-1, self.temporal).any(dim=1)  # (f,)
        return VaceInputs(control=context.to(self.device), control_scale=scales, leading=n, kept=kept,
                          kept_frames=kept_frames)  # fmt: skip
