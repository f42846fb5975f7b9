"""UMT5-XXL prompt encoder as Wan uses it: 512 tokens, embeddings past each prompt's end set to zero.

Follows diffusers `WanPipeline._get_t5_prompt_embeds` (itself Wan-Video/Wan2.1 `wan/modules/t5.py`
`T5EncoderModel.__call__` + `text2video.py`), so cached embeddings are interchangeable with diffusers'.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from yingxi.errors import ModelNotFoundError
from yingxi.models.loading import parse_dtype
from yingxi.models.wan.config import TEXT_LEN


def clean_prompt(text: str) -> str:
    """Fix mojibake (ftfy, when installed), unescape HTML twice, collapse whitespace — as Wan does."""
    try:
        import ftfy

        text = ftfy.fix_text(text)
    except ImportError:  # ftfy is in the "wan" extra; without it only the mojibake repair is skipped
        pass
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip()


class WanTextEncoder:
    """A transformers `UMT5EncoderModel` + its tokenizer; `encode` gives (B, max_length, d_model)."""

    def __init__(self, model: torch.nn.Module, tokenizer, *, max_length: int = TEXT_LEN):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length

    @classmethod
    def from_pretrained(
        cls,
        root: str | Path,
        *,
        dtype: torch.dtype | str = "bf16",
        device: str | torch.device = "cpu",
        max_length: int = TEXT_LEN,
    ) -> WanTextEncoder:
        """From a diffusers-layout root holding `text_encoder/` and `tokenizer/`."""
        from transformers import AutoTokenizer, UMT5EncoderModel

        root = Path(root)
        for sub in ("text_encoder", "tokenizer"):
            if not (root / sub).is_dir():
                raise ModelNotFoundError(
                    f"{root / sub}: folder not found (expected a diffusers-layout Wan model)"
                )
        model = UMT5EncoderModel.from_pretrained(root / "text_encoder", dtype=parse_dtype(dtype)).to(device)
        tokenizer = AutoTokenizer.from_pretrained(root / "tokenizer")
        return cls(model, tokenizer, max_length=max_length)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dim(self) -> int:
        return int(self.model.config.d_model)

    @torch.no_grad()
    def encode(self, prompts: str | Sequence[str], max_length: int | None = None) -> Tensor:
        """prompts (B strings) -> (B, max_length, d_model) in the encoder's dtype, zero past each prompt."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        length = max_length or self.max_length
        tokens = self.tokenizer(
            [clean_prompt(p) for p in prompts],
            padding="max_length",
            max_length=length,
            truncation=True,
            add_special_tokens=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        ids = tokens.input_ids.to(self.device)  # (B, Lt)
        mask = tokens.attention_mask.to(self.device)  # (B, Lt), ones then zeros
        hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, Lt, d_model)
        keep = mask.gt(0).unsqueeze(-1)  # (B, Lt, 1)
        return torch.where(keep, hidden, torch.zeros((), dtype=hidden.dtype, device=hidden.device))
