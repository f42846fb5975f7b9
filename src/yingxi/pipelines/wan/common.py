"""What every Wan task shares: the conditioning a task hands the sampler, the offload order, and the
shared pipeline helpers (`pipelines/common.py`) the task modules take from here."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from yingxi.pipelines.common import (
    as_uint8_image,
    check_frames,
    check_size,
    image_to_tensor,
    initial_latents,
    latent_shape,
    video_to_uint8,
)

__all__ = [
    "WAN_OFFLOAD_ORDER",
    "WAN_BLOCK_LISTS",
    "WAN_STREAMED",
    "TaskInputs",
    "as_uint8_image",
    "check_frames",
    "check_size",
    "image_to_tensor",
    "initial_latents",
    "join_contexts",
    "latent_shape",
    "video_to_uint8",
]

# The order Wan's parts first run in (the VAE also encodes conditioning frames before sampling); the
# shared `Placement` moves each to the device when its turn comes and the previous one back to the CPU.
WAN_OFFLOAD_ORDER = ("text_encoder", "image_encoder", "transformer", "transformer_2", "vae")
WAN_STREAMED = ("transformer", "transformer_2")  # parts whose block lists are streamed in "blocks" mode
WAN_BLOCK_LISTS = ("blocks", "vace_blocks")  # the DiT's blocks, and a VACE model's context blocks


@dataclass(frozen=True)
class TaskInputs:
    """How a task conditions the transformer beyond the text: built once, applied at every step.

    i2v/flf2v append `concat` (mask + image latents) on channels; TI2V holds the first latent frame at
    the clean `fixed` latents where `keep` is 0 and tells the transformer so with per-token timesteps.
    """

    concat: Tensor | None = None  # (B, 4 + z, f, h, w) mask then VAE latents of the conditioning video
    image_embeds: Tensor | None = None  # (N, 257, 1280) CLIP tokens of the first (and last) frame, Wan 2.1
    fixed: Tensor | None = None  # (B, z, 1, h, w) clean latents of the first frame (TI2V)
    keep: Tensor | None = None  # (1, 1, f, h, w) 1 where the sampled latents are used, 0 where `fixed` is
    control: Tensor | None = None  # (1, 96, f, h, w) VACE context: inactive + reactive latents + mask
    control_scale: Tensor | None = None  # (len(vace_layers),) VACE conditioning scale per layer
    leading: int = 0  # latent frames before the video's (VACE reference images), dropped before decoding

    def model_kwargs(self) -> dict:
        """Extra transformer arguments of the task (the VACE context), {} for the others."""
        if self.control is None:
            return {}
        return {"control_hidden_states": self.control, "control_hidden_states_scale": self.control_scale}

    def hold(self, x: Tensor) -> Tensor:
        """x with the held frames replaced by their clean latents (identity without `fixed`)."""
        if self.fixed is None or self.keep is None:
            return x
        return (1 - self.keep) * self.fixed + self.keep * x

    def model_input(self, x: Tensor) -> Tensor:
        """(B, z, f, h, w) sampler latents -> what the transformer's patch embedding takes."""
        x = self.hold(x)
        if self.concat is None:
            return x
        concat = self.concat.to(x.dtype).expand(x.shape[0], *self.concat.shape[1:])  # batched guidance: 2B
        return torch.cat([x, concat], dim=1)

    def timestep(self, t: Tensor, batch: int, patch: tuple[int, int, int]) -> Tensor:
        """The scheduler timestep as the transformer takes it: (B,) or, per token, (B, f*h*w/patch)."""
        if self.keep is None:
            return t.expand(batch)
        _, ph, pw = patch
        per_token = (self.keep[0, 0, :, ::ph, ::pw] * t).flatten()  # (f * h/ph * w/pw,) 0 for held tokens
        return per_token.unsqueeze(0).expand(batch, -1)


def join_contexts(cond: Tensor, uncond: Tensor) -> Tensor:
    """(1, Lc, E), (1, Lu, E) -> (2, max(Lc, Lu), E), zero-padded: the DiT zero-pads every context to 512
    text tokens anyway, so padding first changes nothing."""
    length = max(cond.shape[1], uncond.shape[1])
    pad = [torch.nn.functional.pad(c, (0, 0, 0, length - c.shape[1])) for c in (cond, uncond)]
    return torch.cat(pad)  # (2, L, E)
