"""Wan 2.2 TI2V-5B: one model for text and text+image to video.

With an image, the first latent frame is the image's clean latents, held fixed through sampling, and its
tokens get timestep 0 while the rest get t (per-token timesteps; Wan-Video/Wan2.2 `wan/textimage2video.py`,
diffusers' WanImageToVideoPipeline with `expand_timesteps`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from yingxi.pipelines.wan.common import TaskInputs
from yingxi.pipelines.wan.t2v import t2v_inputs

__all__ = ["ti2v_inputs"]


def ti2v_inputs(vae, image: Tensor | None, shape: tuple[int, ...], *, device: torch.device) -> TaskInputs:
    """Text only: per-token timesteps all t. With image (1, 3, H, W): hold latent frame 0 at its latents."""
    if image is None:
        return t2v_inputs(shape, per_token_timesteps=True, device=device)
    _, _, f, h, w = shape
    fixed = vae.encode(image.unsqueeze(2).to(vae.dtype)).float().to(device)  # (1, z, 1, h, w)
    keep = torch.ones(1, 1, f, h, w, device=device)
    keep[:, :, 0] = 0
    return TaskInputs(fixed=fixed, keep=keep)
