"""Image to video (and first + last frame to video): the picture rides along on extra input channels.

Wan 2.1 I2V/FLF2V and Wan 2.2 I2V-A14B encode a video that is the given frame(s) with zeros elsewhere,
append a 4-channel mask saying which frames are given, and (Wan 2.1 only) cross-attend to CLIP tokens of
the image(s) (Wan-Video/Wan2.1 `wan/image2video.py`, `wan/first_last_frame2video.py`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from yingxi.pipelines.wan.common import TaskInputs

__all__ = ["frame_mask", "i2v_inputs"]


def frame_mask(num_frames: int, latent_h: int, latent_w: int, *, last: bool, temporal: int = 4) -> Tensor:
    """(1, temporal, f, h, w): 1 on the given frames. The first frame counts `temporal` times so the
    pixel-frame mask folds evenly into latent frames (the causal VAE gives frame 0 a latent of its own)."""
    mask = torch.zeros(1, 1, num_frames, latent_h, latent_w)
    mask[:, :, 0] = 1
    if last:
        mask[:, :, -1] = 1
    first = mask[:, :, :1].repeat_interleave(temporal, dim=2)
    mask = torch.cat([first, mask[:, :, 1:]], dim=2)  # (1, 1, F - 1 + temporal, h, w)
    mask = mask.view(1, -1, temporal, latent_h, latent_w)  # (1, f, temporal, h, w)
    return mask.transpose(1, 2)  # (1, temporal, f, h, w)


def i2v_inputs(
    vae,
    image: Tensor,
    num_frames: int,
    *,
    last_image: Tensor | None = None,
    image_embeds: Tensor | None = None,
) -> TaskInputs:
    """image/last_image (1, 3, H, W) in [-1, 1] -> mask + latents of [image, zeros..., (last_image)]."""
    _, _, height, width = image.shape
    middle = num_frames - 1 - (last_image is not None)
    frames = [image.unsqueeze(2), image.new_zeros(1, 3, middle, height, width)]
    if last_image is not None:
        frames.append(last_image.unsqueeze(2))
    video = torch.cat(frames, dim=2)  # (1, 3, F, H, W)
    latents = vae.encode(video.to(vae.dtype)).float()  # (1, z, f, h, w) normalised posterior mean
    _, _, _, lat_h, lat_w = latents.shape
    mask = frame_mask(
        num_frames, lat_h, lat_w, last=last_image is not None, temporal=vae.config.scale_factor_temporal
    )
    concat = torch.cat([mask.to(latents), latents], dim=1)  # (1, 4 + z, f, h, w)
    return TaskInputs(concat=concat, image_embeds=image_embeds)
