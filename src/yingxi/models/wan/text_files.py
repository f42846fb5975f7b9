"""Single-file UMT5 text encoders as ComfyUI and Wan ship them, and where their tokenizer comes from.

ComfyUI's `umt5_xxl_fp16.safetensors` holds transformers' UMT5 names; `umt5_xxl_fp8_e4m3fn_scaled
.safetensors` stores its Linear weights as float8 with one `.scale_weight` each and a `scaled_fp8` marker
(ComfyUI `comfy/ops.py`): a 5.7B-parameter encoder runs once per prompt, so it is dequantized at load.
ComfyUI files may embed the SentencePiece model as a `spiece_model` byte tensor; the tokenizer is taken from
the user's folder, a folder beside the file, that embedded model, or the Hugging Face cache (never the
network), in that order.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from torch import Tensor

from yingxi.errors import ModelNotFoundError
from yingxi.models.loading import CheckpointError, read_state_dict
from yingxi.models.quant import dequantize

__all__ = ["find_tokenizer", "read_umt5_file"]

TOKENIZER_REPOS = ("google/umt5-xxl",)  # the tokenizer every Wan model uses
_BESIDE = ("tokenizer", "google/umt5-xxl", "umt5-xxl", "umt5_xxl_tokenizer")
_FP8 = {torch.float8_e4m3fn: "fp8_e4m3fn", torch.float8_e5m2: "fp8_e5m2"}
SPIECE_KEY = "spiece_model"


def read_umt5_file(
    path: str | Path, *, dtype: torch.dtype, device: str | torch.device = "cpu"
) -> dict[str, Tensor]:
    """The encoder's tensors in `dtype` on `device`: fp8 weights times their `.scale_weight` (dequantized
    through `yingxi.models.quant`), markers and the embedded tokenizer dropped."""
    raw = read_state_dict(path)  # as stored, on the CPU
    out: dict[str, Tensor] = {}
    for key, value in raw.items():
        if key in (SPIECE_KEY, "scaled_fp8") or key.endswith((".scale_weight", ".scale_input")):
            continue
        if value.dtype in _FP8:
            scale = raw.get(key.removesuffix(".weight") + ".scale_weight")
            value = dequantize(_FP8[value.dtype], value, scale, tuple(value.shape), dtype)
        elif not value.is_floating_point():
            raise CheckpointError(f"{key}: unexpected {value.dtype} tensor in a text encoder", file=str(path))
        out[key] = value.to(device=device, dtype=dtype)
    return out


def _embedded_tokenizer(path: Path):
    """A T5 tokenizer from the SentencePiece model a ComfyUI file embeds as `spiece_model`, if any."""
    if path.suffix != ".safetensors":
        return None
    from safetensors import safe_open

    with safe_open(str(path), framework="pt", device="cpu") as f:
        if SPIECE_KEY not in f.keys():
            return None
        blob = f.get_tensor(SPIECE_KEY).to(torch.uint8).numpy().tobytes()
    from transformers import T5Tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "spiece.model"
        model.write_bytes(blob)
        return T5Tokenizer(vocab_file=str(model), extra_ids=0, legacy=False)


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
