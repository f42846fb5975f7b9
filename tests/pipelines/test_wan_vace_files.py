"""A VACE transformer as ComfyUI users have it (one file, Wan's original names with the
`model.diffusion_model.` prefix) beside its text encoder and VAE files: detected as VACE by its keys, it
gives the frames of the diffusers folder of the same weights."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from conftest import random_image
from test_single_files import _write_files, tiny_vae_preset  # noqa: F401  (the fixture is used by name)

import yingxi
from yingxi.pipelines.wan.vace import WanVACEPipeline

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models" / "wan"))
from tiny_vace import build_tiny_vace_pipeline, tiny_vace_config  # noqa: E402


def test_vace_single_file_gives_the_frames_of_the_folder(tmp_path):
    from diffusers import WanVACETransformer3DModel

    pipe = build_tiny_vace_pipeline()
    torch.manual_seed(0)  # heads 128 wide: detection reads the head count as width // 128, as ComfyUI's
    dit = WanVACETransformer3DModel(
        **tiny_vace_config() | dict(num_attention_heads=1, attention_head_dim=128)
    )
    with torch.no_grad():
        for p in dit.parameters():
            p.add_(0.02 * torch.randn(p.shape))
    pipe.register_modules(transformer=dit.eval())
    pipe.save_pretrained(tmp_path / "folder", safe_serialization=True)
    files = _write_files(
        pipe, "t2v", tmp_path / "comfy", names={"model": "wan2.1_vace_1.3B_fp16.safetensors"}
    )

    ref = yingxi.load_pipeline(tmp_path / "folder")
    ours = yingxi.load_pipeline(files["model"], vae=files["vae"], text_encoder=files["text_encoder"])
    assert isinstance(ours, WanVACEPipeline) and ours.variant.tasks == ("vace",)
    assert ours.components.transformer.config.vace_layers == (0, 2)
    g = torch.Generator().manual_seed(0)
    args = dict(width=32, height=32, num_frames=5, num_inference_steps=2, guidance_scale=3.0, shift=3.0,
                reference_images=[random_image(32, 32, seed=1)],
                latents=torch.randn(1, 16, 3, 4, 4, generator=g))  # fmt: skip
    a, b = (
        ref("a cat walks on the beach at sunset", **args),
        ours("a cat walks on the beach at sunset", **args),
    )
    assert a.shape == b.shape == (5, 32, 32, 3) and a.std() > 1.0
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1  # uint8 rounding of fp32-equal outputs
