"""CLIP ViT-H/14 image tokens for Wan 2.1 I2V / FLF2V: the penultimate layer's hidden states.

Follows diffusers `WanImageToVideoPipeline.encode_image` (Wan-Video/Wan2.1 `wan/modules/clip.py` uses the
same layer), so image embeddings are interchangeable with diffusers'.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from yingxi.errors import ModelNotFoundError
from yingxi.models.loading import parse_dtype


def _processor_class():
    # transformers >= 5 splits CLIPImageProcessor into a torchvision and a PIL backend; prefer the PIL one,
    # which needs no torchvision and is what CLIPImageProcessor falls back to without it.
    try:
        from transformers import CLIPImageProcessorPil

        return CLIPImageProcessorPil
    except ImportError:
        from transformers import CLIPImageProcessor

        return CLIPImageProcessor


class WanImageEncoder:
    """A transformers CLIP vision tower + its image processor; `encode` gives (N, tokens, hidden)."""

    def __init__(self, model: torch.nn.Module, processor: Any):
        self.model = model.eval()
        self.processor = processor

    @classmethod
    def from_pretrained(
        cls, root: str | Path, *, dtype: torch.dtype | str = "fp32", device: str | torch.device = "cpu"
    ) -> WanImageEncoder:
        """From a diffusers-layout root holding `image_encoder/` and `image_processor/`."""
        from transformers import CLIPVisionModel

        root = Path(root)
        for sub in ("image_encoder", "image_processor"):
            if not (root / sub).is_dir():
                raise ModelNotFoundError(
                    f"{root / sub}: folder not found (this Wan variant needs a CLIP encoder)"
                )
        # CLIPVisionModel also reads CLIPVisionModelWithProjection checkpoints (the projection is unused).
        model = CLIPVisionModel.from_pretrained(root / "image_encoder", dtype=parse_dtype(dtype)).to(device)
        processor = _processor_class().from_pretrained(root / "image_processor")
        return cls(model, processor)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @torch.no_grad()
    def encode(self, images: Any | Sequence[Any]) -> Tensor:
        """PIL images / HWC uint8 arrays (N) -> penultimate hidden states (N, 1 + patches, hidden)."""
        images = list(images) if isinstance(images, (list, tuple)) else [images]
        pixels = self.processor(images=images, return_tensors="pt").pixel_values  # (N, 3, S, S)
        pixels = pixels.to(device=self.device, dtype=self.dtype)
        out = self.model(pixel_values=pixels, output_hidden_states=True)
        return out.hidden_states[-2]  # (N, 1 + patches, hidden)
