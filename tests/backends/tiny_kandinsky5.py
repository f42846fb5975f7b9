"""A tiny random Kandinsky 5 video pipeline in the diffusers folder layout, built offline in a second.

`save_tiny_kandinsky5(folder, kind)` writes what `DiffusionPipeline.from_pretrained` reads for
`Kandinsky5T2VPipeline` (kind "t2v") or `Kandinsky5I2VPipeline` ("i2v"): transformer/, vae/ (a 4-block
HunyuanVideo VAE: 8x in space, 4x in time, as the real one), text_encoder/ (a 2-layer Qwen2.5-VL), tokenizer/,
text_encoder_2/ (a 2-layer CLIP text model) with tokenizer_2/, scheduler/. Sizes follow diffusers' own tiny
test (tests/pipelines/kandinsky5/), whose tokenizers come from the hub. One difference from a published
folder: tokenizer/ is the Qwen2 tokenizer alone, where those hold a Qwen2VLProcessor; for a text prompt the
processor only runs that tokenizer, and its video part needs torchvision, which this environment lacks.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tests.backends.tiny_text import clip_tokenizer, qwen_tokenizer

KINDS = ("t2v", "i2v")
FAST = {"max_sequence_length": 64}  # the template runs past its crop at 128; 64 (not 512) more fit a prompt


def build_tiny_kandinsky5(kind: str = "t2v", seed: int = 0):
    from diffusers import (
        AutoencoderKLHunyuanVideo,
        FlowMatchEulerDiscreteScheduler,
        Kandinsky5I2VPipeline,
        Kandinsky5T2VPipeline,
        Kandinsky5Transformer3DModel,
    )
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
    )

    if kind not in KINDS:
        raise ValueError(f"unknown tiny Kandinsky 5 kind {kind!r}; one of {KINDS}")
    torch.manual_seed(seed + 1)
    vae = AutoencoderKLHunyuanVideo(
        act_fn="silu", block_out_channels=[8, 8, 8, 8], down_block_types=["HunyuanVideoDownBlock3D"] * 4,
        up_block_types=["HunyuanVideoUpBlock3D"] * 4, in_channels=3, latent_channels=4, layers_per_block=1,
        mid_block_add_attention=False, norm_num_groups=4, out_channels=3, scaling_factor=0.476986,
        spatial_compression_ratio=8, temporal_compression_ratio=4,
    )  # fmt: skip
    torch.manual_seed(seed + 2)
    qwen = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=1000, hidden_size=32, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, rope_theta=1e6, bos_token_id=None,
                         eos_token_id=0, pad_token_id=0,
                         rope_scaling={"mrope_section": [2, 2, 4], "rope_type": "default", "type": "default"}),
        vision_config=dict(depth=1, hidden_size=16, intermediate_size=16, num_heads=2, out_hidden_size=32),
        image_token_id=997, video_token_id=998, vision_start_token_id=999, vision_end_token_id=999,
    )  # fmt: skip  # no images ever reach it: the vision ids only need to be in range
    text_encoder = Qwen2_5_VLForConditionalGeneration(qwen).eval()
    torch.manual_seed(seed + 3)
    tokenizer_2 = clip_tokenizer()
    clip = CLIPTextConfig(bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=16, intermediate_size=16,
                          num_attention_heads=2, num_hidden_layers=2, vocab_size=len(tokenizer_2),
                          projection_dim=16, max_position_embeddings=77)  # fmt: skip
    text_encoder_2 = CLIPTextModel(clip).eval()
    torch.manual_seed(seed + 4)
    transformer = Kandinsky5Transformer3DModel(
        in_visual_dim=4, in_text_dim=32, in_text_dim2=16, time_dim=16, out_visual_dim=4, patch_size=(1, 2, 2),
        model_dim=16, ff_dim=32, num_text_blocks=1, num_visual_blocks=2, axes_dims=(4, 2, 2),
        visual_cond=kind == "i2v", attention_type="regular",
    )  # fmt: skip
    fill_zeros(transformer, seed + 5)
    cls = Kandinsky5I2VPipeline if kind == "i2v" else Kandinsky5T2VPipeline
    pipe = cls(transformer=transformer.eval(), vae=vae.eval(), text_encoder=text_encoder, tokenizer=None,
               text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2,
               scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0))  # fmt: skip
    template = pipe.prompt_template.split("{}")  # the template's words: a short token run, as with Qwen's own
    pipe.register_modules(tokenizer=qwen_tokenizer(template, vocab_size=qwen.text_config.vocab_size - 3))
    return pipe


def fill_zeros(module: torch.nn.Module, seed: int) -> None:
    """Random values where the model starts at zero (its adaLN-zero modulations and output layer), so that the
    text, the guidance and the image change what the tiny model predicts, as in a trained one."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=generator) * 0.2)


def save_tiny_kandinsky5(folder: str | Path, kind: str = "t2v", seed: int = 0) -> Path:
    """Write a whole tiny diffusers-layout Kandinsky 5 folder of `kind` and return its path."""
    folder = Path(folder)
    build_tiny_kandinsky5(kind, seed).save_pretrained(folder, safe_serialization=True)
    return folder
