"""The built parts of one Wan model, as the pipeline takes them (the loaders build them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from yingxi.models.wan.config import WanVariant

__all__ = ["WanComponents"]


@dataclass
class WanComponents:
    """The built parts of one Wan model; `variant` says what they are and how to sample them."""

    variant: WanVariant
    transformer: nn.Module  # the DiT; for A14B the high-noise expert
    vae: nn.Module  # yingxi.models.wan.vae.WanVAE
    text_encoder: Any = None  # encode(list[str]) -> (B, 512, text_dim); optional with prompt_embeds
    image_encoder: Any = None  # CLIP: encode(list[uint8 (H, W, 3)]) -> (N, 257, image_dim); Wan 2.1 i2v/flf2v
    transformer_2: nn.Module | None = None  # A14B low-noise expert

    def modules(self) -> dict[str, Any]:
        return {
            "text_encoder": self.text_encoder,
            "image_encoder": self.image_encoder,
            "transformer": self.transformer,
            "transformer_2": self.transformer_2,
            "vae": self.vae,
        }
