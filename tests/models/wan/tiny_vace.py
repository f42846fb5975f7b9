"""Tiny random Wan VACE models in the diffusers layout (`WanVACETransformer3DModel`, `WanVACEPipeline`),
beside `tiny.py`'s other kinds; imported by path as `tiny.py` is."""

from __future__ import annotations

from pathlib import Path

import torch
from tiny import _perturb, tiny_dit_config, tiny_scheduler, tiny_text_encoder, tiny_tokenizer, tiny_vae

VACE_LAYERS = [0, 2]  # after main blocks 0 and 2 of 4
NUM_LAYERS = 4


def tiny_vace_config() -> dict:
    """A tiny `WanVACETransformer3DModel` config: the tiny T2V one with 4 layers, 2 of them VACE layers;
    96 context channels (16 inactive + 16 reactive latents + 8*8 mask), as every published VACE."""
    return tiny_dit_config("t2v") | dict(num_layers=NUM_LAYERS, vace_layers=VACE_LAYERS, vace_in_channels=96)


def tiny_vace_transformer(seed: int = 0):
    from diffusers import WanVACETransformer3DModel

    torch.manual_seed(seed)
    # _perturb moves every weight off its init, the zero-initialised before/after projections included
    return _perturb(WanVACETransformer3DModel(**tiny_vace_config()), seed + 1).eval()


def build_tiny_vace_pipeline(seed: int = 0, two_experts: bool = False):
    from diffusers import WanVACEPipeline

    parts = dict(
        tokenizer=tiny_tokenizer(),
        text_encoder=tiny_text_encoder(seed),
        vae=tiny_vae("t2v", seed),
        scheduler=tiny_scheduler(),
        transformer=tiny_vace_transformer(seed),
    )
    if two_experts:
        parts.update(transformer_2=tiny_vace_transformer(seed + 100), boundary_ratio=0.875)
    return WanVACEPipeline(**parts)


def save_tiny_vace(folder: str | Path, seed: int = 0, two_experts: bool = False) -> Path:
    folder = Path(folder)
    build_tiny_vace_pipeline(seed, two_experts).save_pretrained(folder, safe_serialization=True)
    return folder
