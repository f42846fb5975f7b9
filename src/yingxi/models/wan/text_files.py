"""Single-file UMT5 text encoders as ComfyUI and Wan ship them, and where their tokenizer comes from.

ComfyUI's `umt5_xxl_fp16.safetensors` holds transformers' UMT5 names; `umt5_xxl_fp8_e4m3fn_scaled
.safetensors` stores its Linear weights as float8 with one `.scale_weight` each and a `scaled_fp8` marker
(ComfyUI `comfy/ops.py`): a 5.7B-parameter encoder runs once per prompt, so it is dequantized at load.
ComfyUI files may embed the SentencePiece model as a `spiece_model` byte tensor; the tokenizer is taken from
the user's folder, a folder beside the file, that embedded model, or the Hugging Face cache (never the
network), in that order.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from yingxi.errors import ModelNotFoundError
from yingxi.models.loading import CheckpointError, read_state_dict
from yingxi.models.quant import QuantizedTensor, dequantize

__all__ = ["find_tokenizer", "read_umt5_file"]

TOKENIZER_REPOS = ("google/umt5-xxl",)  # the tokenizer every Wan model uses
_BESIDE = ("tokenizer", "google/umt5-xxl", "umt5-xxl", "umt5_xxl_tokenizer")
_FP8 = {torch.float8_e4m3fn: "fp8_e4m3fn", torch.float8_e5m2: "fp8_e5m2"}
SPIECE_KEY = "spiece_model"


def read_umt5_file(
    path: str | Path, *, dtype: torch.dtype, device: str | torch.device = "cpu"
) -> dict[str, Tensor]:
    """The encoder's tensors in `dtype` on `device`: fp8 weights times their `.scale_weight` (dequantized
    through `yingxi.models.quant`, whether the checkpoint reader left them raw or as QuantizedTensors),
    markers and the embedded tokenizer dropped."""
    raw = read_state_dict(path)  # as stored, on the CPU
    out: dict[str, Tensor] = {}
    for key, value in raw.items():
        if key in (SPIECE_KEY, "scaled_fp8") or key.endswith((".scale_weight", ".scale_input")):
            continue
        if isinstance(value, QuantizedTensor):  # read by the fp8-scaled reader: data + scale
            value = value.dequantize(dtype)
        elif value.dtype in _FP8:  # plain float8 storage (or a reader that returns the raw scales)
            scale = raw.get(key.removesuffix(".weight") + ".scale_weight")
            value = dequantize(_FP8[value.dtype], value, scale, tuple(value.shape), dtype)
        elif not value.is_floating_point():
            raise CheckpointError(f"{key}: unexpected {value.dtype} tensor in a text encoder", file=str(path))
        out[key] = value.to(device=device, dtype=dtype)
    return out


class SentencePieceTokenizer:
    """The embedded SentencePiece model, called as `WanTextEncoder.encode` calls a transformers tokenizer:
    pieces + `</s>`, truncated and padded with `<pad>` to `max_length`. ComfyUI tokenizes its umt5 files the
    same way (`SPieceTokenizer`, add_eos=True); converting a 256k-piece model to a fast tokenizer would take
    longer than the encoder's load."""

    def __init__(self, model_proto: bytes) -> None:
        import sentencepiece

        self.sp = sentencepiece.SentencePieceProcessor(model_proto=model_proto)
        self.eos_id, self.pad_id = self.sp.eos_id(), max(self.sp.pad_id(), 0)

    def __call__(self, texts, *, max_length: int, padding="max_length", truncation=True, **_ignored):
        from types import SimpleNamespace

        ids = torch.full((len(texts), max_length), self.pad_id, dtype=torch.long)  # (B, L)
        mask = torch.zeros((len(texts), max_length), dtype=torch.long)  # (B, L)
        for row, text in enumerate(texts):
            pieces = self.sp.encode(text)[: max_length - 1] + [self.eos_id]
            ids[row, : len(pieces)] = torch.tensor(pieces)
            mask[row, : len(pieces)] = 1
        return SimpleNamespace(input_ids=ids, attention_mask=mask)


def _embedded_tokenizer(path: Path) -> SentencePieceTokenizer | None:
    """The tokenizer a ComfyUI file embeds as its `spiece_model` byte tensor, if any."""
    if path.suffix != ".safetensors":
        return None
    from safetensors import safe_open

    with safe_open(str(path), framework="pt", device="cpu") as f:
        if SPIECE_KEY not in f.keys():
            return None
        blob = f.get_tensor(SPIECE_KEY).to(torch.uint8).numpy().tobytes()
    return SentencePieceTokenizer(blob)


def _cached_tokenizer_folder() -> Path | None:
    """google/umt5-xxl's tokenizer in the Hugging Face cache, without touching the network."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None
    for repo in TOKENIZER_REPOS:
        try:
            return Path(snapshot_download(repo, local_files_only=True))
        except Exception:  # not cached (LocalEntryNotFoundError) or a broken cache entry
            continue
    return None


def find_tokenizer(checkpoint: str | Path, tokenizer: str | Path | None = None):
    """The UMT5 tokenizer for an encoder file (see the module docstring for the order)."""
    from transformers import AutoTokenizer

    checkpoint = Path(checkpoint)
    if tokenizer is not None:
        folder = Path(tokenizer).expanduser()
        if not folder.is_dir():
            raise ModelNotFoundError(f"{folder}: tokenizer folder not found (--tokenizer)")
        return AutoTokenizer.from_pretrained(folder)
    for name in _BESIDE:
        if (checkpoint.parent / name).is_dir():
            return AutoTokenizer.from_pretrained(checkpoint.parent / name)
    embedded = _embedded_tokenizer(checkpoint)
    if embedded is not None:
        return embedded
    cached = _cached_tokenizer_folder()
    if cached is not None:
        return AutoTokenizer.from_pretrained(cached)
    raise ModelNotFoundError(
        f"{checkpoint.name}: no UMT5 tokenizer found; give one with --tokenizer DIR (a folder holding "
        f"google/umt5-xxl's tokenizer.json or spiece.model), put it beside the file as "
        f"{checkpoint.parent / 'google' / 'umt5-xxl'}, or have google/umt5-xxl in the Hugging Face cache "
        "(yingxi never downloads it at run time)"
    )
