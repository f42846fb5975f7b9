"""CLIP ViT-H/14 image tokens for Wan 2.1 I2V / FLF2V: the penultimate layer's hidden states.

Follows diffusers `WanImageToVideoPipeline.encode_image` (Wan-Video/Wan2.1 `wan/modules/clip.py` uses the
same layer), so image embeddings are interchangeable with diffusers'.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from yingxi.errors import ModelNotFoundError
from yingxi.models.loading import CheckpointError, load_module, parse_dtype, read_state_dict, rename_key

CLIP_HEAD_DIM = 80  # open-clip ViT-H/14: 1280 wide, 16 heads (head counts are not in a checkpoint's shapes)
# Wan-Video/Wan2.1 `wan/modules/clip.py` (XLMRobertaCLIP.visual) -> transformers CLIPVisionModel names;
# the fused `to_qkv`, the class token and the position table are reshaped in `_wan_clip_to_hf`.
_VB = r"^visual\.transformer\.(\d+)\."
WAN_CLIP_TO_HF: tuple[tuple[str, str], ...] = (
    (r"^visual\.patch_embedding\.", "embeddings.patch_embedding."),
    (r"^visual\.pre_norm\.", "pre_layrnorm."),
    (_VB + r"norm1\.", r"encoder.layers.\1.layer_norm1."),
    (_VB + r"norm2\.", r"encoder.layers.\1.layer_norm2."),
    (_VB + r"attn\.proj\.", r"encoder.layers.\1.self_attn.out_proj."),
    (_VB + r"mlp\.0\.", r"encoder.layers.\1.mlp.fc1."),
    (_VB + r"mlp\.2\.", r"encoder.layers.\1.mlp.fc2."),
    (r"^visual\.post_norm\.", "post_layernorm."),
)
_QKV = re.compile(r"^visual\.transformer\.(\d+)\.attn\.to_qkv\.(weight|bias)$")


def _wan_clip_to_hf(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """The vision tower of a Wan CLIP state dict under CLIPVisionModel names (the XLM-R text tower, the
    projection head and the logit scale are dropped: Wan uses the penultimate block's tokens only)."""
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if not key.startswith("visual.") or key == "visual.head":
            continue
        if m := _QKV.match(key):
            for name, part in zip("qkv", value.chunk(3, dim=0), strict=True):  # rows: q, then k, then v
                out[f"encoder.layers.{m[1]}.self_attn.{name}_proj.{m[2]}"] = part
        elif key == "visual.cls_embedding":  # (1, 1, D) -> (D,)
            out["embeddings.class_embedding"] = value.reshape(-1)
        elif key == "visual.pos_embedding":  # (1, 1 + patches, D) -> (1 + patches, D)
            out["embeddings.position_embedding.weight"] = value.reshape(value.shape[-2], value.shape[-1])
        else:
            out[rename_key(key, WAN_CLIP_TO_HF)] = value
    return out


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
        """From a diffusers-layout root holding `image_encoder/` and `image_processor/`, or an original Wan
        root holding `models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth`."""
        from transformers import CLIPVisionModel

        root = Path(root)
        originals = sorted(root.glob("models_clip_*.pth")) if root.is_dir() else []
        if not (root / "image_encoder").is_dir() and originals:
            return cls.from_original(originals[0], dtype=dtype, device=device)
        for sub in ("image_encoder", "image_processor"):
            if not (root / sub).is_dir():
                raise ModelNotFoundError(
                    f"{root / sub}: folder not found (this Wan variant needs a CLIP encoder)"
                )
        # CLIPVisionModel also reads CLIPVisionModelWithProjection checkpoints (the projection is unused).
        model = CLIPVisionModel.from_pretrained(root / "image_encoder", dtype=parse_dtype(dtype)).to(device)
        processor = _processor_class().from_pretrained(root / "image_processor")
        return cls(model, processor)

    @classmethod
    def from_original(
        cls,
        checkpoint: str | Path,
        *,
        dtype: torch.dtype | str = "fp32",
        device: str | torch.device = "cpu",
        num_heads: int | None = None,
    ) -> WanImageEncoder:
        """From Wan's own CLIP checkpoint: the same ViT-H/14 the -Diffusers repos ship as `image_encoder/`,
        with the -Diffusers repos' preprocessing (CLIP mean/std, bicubic shortest side + centre crop)."""

        dtype = parse_dtype(dtype)
        # Only the vision tower is cast (and so read): the rest of a .pth stays in its memory map.
        raw = read_state_dict(
            checkpoint,
            cast=lambda k, t: t.to(device=device, dtype=dtype) if k.startswith("visual.") else t,
        )
        state = _wan_clip_to_hf(raw)
        return cls._from_hf_state(state, dtype, device, num_heads, str(checkpoint))

    @classmethod
    def _from_hf_state(cls, state, dtype, device, num_heads, source) -> WanImageEncoder:
        """A CLIPVisionModel whose config is read off a vision-tower state dict (transformers names)."""
        from transformers import CLIPVisionConfig, CLIPVisionModel

        try:
            positions, hidden = state["embeddings.position_embedding.weight"].shape
            patch = state["embeddings.patch_embedding.weight"].shape[-1]
            inter = state["encoder.layers.0.mlp.fc1.weight"].shape[0]
        except KeyError as exc:
            raise CheckpointError(f"not a CLIP vision checkpoint (no {exc})", file=source) from exc
        layers = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.layers."))
        side = math.isqrt(positions - 1) * patch
        config = CLIPVisionConfig(
            hidden_size=hidden,
            intermediate_size=inter,
            num_hidden_layers=layers,
            num_attention_heads=num_heads or hidden // CLIP_HEAD_DIM,
            image_size=side,
            patch_size=patch,
            hidden_act="gelu",  # Wan's ViT-H uses exact GELU (activation="gelu"), not CLIP's quick_gelu
            layer_norm_eps=1e-5,
        )
        with torch.device("meta"):
            prefix = "vision_model." if any(
                k.startswith("vision_model.") for k in CLIPVisionModel(config).state_dict()
            ) else ""  # fmt: skip
        state = {prefix + k: v for k, v in state.items()}
        ids = torch.arange(positions).expand(1, -1)  # (1, 1 + patches), as CLIPVisionEmbeddings builds it
        model = load_module(
            CLIPVisionModel,
            config,
            state,
            dtype=dtype,
            device=device,
            buffers={f"{prefix}embeddings.position_ids": ids},
            source=source,
        )
        processor = _processor_class()(
            size={"shortest_edge": side}, crop_size={"height": side, "width": side}
        )  # CLIP's own mean/std and bicubic resampling are the defaults
        return cls(model, processor)

    @classmethod
    def from_file(
        cls,
        checkpoint: str | Path,
        *,
        dtype: torch.dtype | str = "fp32",
        device: str | torch.device = "cpu",
        num_heads: int | None = None,
    ) -> WanImageEncoder:
        """From one CLIP ViT-H/14 file: ComfyUI's `clip_vision_h.safetensors` (transformers'
        CLIPVisionModelWithProjection names; the projection is unused) or Wan's `models_clip_*.pth`."""

        from yingxi.models.loading import checkpoint_keys

        if any(k.startswith("visual.transformer.") for k in checkpoint_keys(checkpoint)):  # Wan's own .pth
            return cls.from_original(checkpoint, dtype=dtype, device=device, num_heads=num_heads)
        dtype = parse_dtype(dtype)
        raw = read_state_dict(
            checkpoint, cast=lambda _k, t: t.to(device=device, dtype=dtype) if t.is_floating_point() else t
        )
        state = {
            k.removeprefix("vision_model."): v
            for k, v in raw.items()
            if k.startswith("vision_model.") and not k.endswith("position_ids")  # rebuilt by load_module
        }
        return cls._from_hf_state(state, dtype, device, num_heads, str(checkpoint))

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
