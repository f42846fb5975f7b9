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
from yingxi.models.loading import (
    CheckpointError,
    cast_by_name,
    load_module,
    parse_dtype,
    read_state_dict,
    rename_keys,
)
from yingxi.models.wan.config import TEXT_LEN

# Wan-Video/Wan2.1 `wan/modules/t5.py` (T5Encoder, shared_pos=False) -> transformers UMT5EncoderModel names.
_WB = r"^blocks\.(\d+)\."
WAN_T5_TO_UMT5: tuple[tuple[str, str], ...] = (
    (r"^token_embedding\.", "shared."),
    (_WB + r"norm1\.", r"encoder.block.\1.layer.0.layer_norm."),
    (_WB + r"attn\.([qkvo])\.", r"encoder.block.\1.layer.0.SelfAttention.\2."),
    (_WB + r"pos_embedding\.embedding\.", r"encoder.block.\1.layer.0.SelfAttention.relative_attention_bias."),
    (_WB + r"norm2\.", r"encoder.block.\1.layer.1.layer_norm."),
    (_WB + r"ffn\.gate\.0\.", r"encoder.block.\1.layer.1.DenseReluDense.wi_0."),
    (_WB + r"ffn\.fc1\.", r"encoder.block.\1.layer.1.DenseReluDense.wi_1."),
    (_WB + r"ffn\.fc2\.", r"encoder.block.\1.layer.1.DenseReluDense.wo."),
    (r"^norm\.", "encoder.final_layer_norm."),
)


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
        """From a diffusers-layout root holding `text_encoder/` and `tokenizer/`, or an original Wan root
        holding `models_t5_umt5-xxl-enc-bf16.pth` and `google/umt5-xxl/`."""
        from transformers import AutoTokenizer, UMT5EncoderModel

        root = Path(root)
        originals = sorted(root.glob("models_t5_*.pth")) if root.is_dir() else []
        if not (root / "text_encoder").is_dir() and originals:
            return cls.from_original(
                originals[0], root / "google" / "umt5-xxl", dtype=dtype, device=device, max_length=max_length
            )
        for sub in ("text_encoder", "tokenizer"):
            if not (root / sub).is_dir():
                raise ModelNotFoundError(
                    f"{root / sub}: folder not found (expected a diffusers-layout Wan model)"
                )
        model = UMT5EncoderModel.from_pretrained(root / "text_encoder", dtype=parse_dtype(dtype)).to(device)
        tokenizer = AutoTokenizer.from_pretrained(root / "tokenizer")
        return cls(model, tokenizer, max_length=max_length)

    @classmethod
    def from_original(
        cls,
        checkpoint: str | Path,
        tokenizer: str | Path,
        *,
        dtype: torch.dtype | str = "bf16",
        device: str | torch.device = "cpu",
        max_length: int = TEXT_LEN,
    ) -> WanTextEncoder:
        """From Wan's own files: `models_t5_umt5-xxl-enc-bf16.pth` and the `google/umt5-xxl` tokenizer
        folder. Wan's T5 encoder is UMT5 (per-layer relative position buckets, gated tanh-GELU FFN)."""
        from transformers import AutoTokenizer

        dtype = parse_dtype(dtype)
        if not Path(tokenizer).is_dir():
            raise ModelNotFoundError(f"{tokenizer}: tokenizer folder not found")
        state = rename_keys(read_state_dict(checkpoint, cast=cast_by_name(dtype, device)), WAN_T5_TO_UMT5)
        return cls._from_umt5_state(
            state, AutoTokenizer.from_pretrained(tokenizer), dtype, device, checkpoint, max_length
        )

    @classmethod
    def _from_umt5_state(cls, state, tokenizer, dtype, device, checkpoint, max_length) -> WanTextEncoder:
        """A UMT5EncoderModel whose config is read off the shapes of a state dict under transformers names."""
        from transformers import UMT5Config, UMT5EncoderModel

        try:
            vocab, dim = state["shared.weight"].shape
            buckets, heads = state[
                "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"
            ].shape
            d_ff = state["encoder.block.0.layer.1.DenseReluDense.wi_1.weight"].shape[0]
        except KeyError as exc:
            raise CheckpointError(
                f"not a UMT5 / Wan T5 encoder checkpoint (no {exc})", file=str(checkpoint)
            ) from exc
        layers = len({k.split(".")[2] for k in state if k.startswith("encoder.block.")})
        config = UMT5Config(
            vocab_size=vocab,
            d_model=dim,
            d_kv=dim // heads,
            d_ff=d_ff,
            num_layers=layers,
            num_heads=heads,
            relative_attention_num_buckets=buckets,
            relative_attention_max_distance=128,  # T5RelativeEmbedding(max_dist=128) in Wan
            feed_forward_proj="gated-gelu",
            dropout_rate=0.0,
            layer_norm_epsilon=1e-6,
        )
        state = dict(state)
        state["encoder.embed_tokens.weight"] = state["shared.weight"]  # tied, as in transformers
        # transformers keeps the FFN output projection in fp32 for fp16 runs (overflow); so do we.
        keep = ("wo",) if dtype == torch.float16 else ()
        model = load_module(
            UMT5EncoderModel,
            config,
            state,
            dtype=dtype,
            device=device,
            keep_fp32=keep,
            source=str(checkpoint),
        )
        return cls(model, tokenizer, max_length=max_length)

    @classmethod
    def from_file(
        cls,
        checkpoint: str | Path,
        *,
        tokenizer: str | Path | None = None,
        dtype: torch.dtype | str = "bf16",
        device: str | torch.device = "cpu",
        max_length: int = TEXT_LEN,
    ) -> WanTextEncoder:
        """From one encoder file: ComfyUI's `umt5_xxl_fp16.safetensors` / `umt5_xxl_fp8_e4m3fn_scaled
        .safetensors` (transformers names; fp8 dequantized at load) or Wan's `models_t5_umt5-xxl-enc-bf16
        .pth`. The tokenizer: `tokenizer`, else a folder beside the file, else the Hugging Face cache."""
        from yingxi.models.wan.text_files import find_tokenizer, read_umt5_file

        dtype = parse_dtype(dtype)
        state = read_umt5_file(checkpoint, dtype=dtype, device=device)
        if "shared.weight" not in state:  # Wan's own names
            state = rename_keys(state, WAN_T5_TO_UMT5)
        return cls._from_umt5_state(
            state, find_tokenizer(checkpoint, tokenizer), dtype, device, checkpoint, max_length
        )

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
