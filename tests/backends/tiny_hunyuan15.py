"""A tiny random HunyuanVideo-1.5 pipeline in the diffusers folder layout, built offline in a second.

`save_tiny_hunyuan15(folder, kind)` writes what `DiffusionPipeline.from_pretrained` reads for
`HunyuanVideo15Pipeline` (kind "t2v") or `HunyuanVideo15ImageToVideoPipeline` ("i2v"): transformer/, vae/,
text_encoder/ (a 2-layer Qwen2.5-VL text model), tokenizer/ (BPE trained here on the pipeline's own system
message), text_encoder_2/ (a 1-layer T5 encoder) with the byte-level ByT5 tokenizer_2/, guider/, scheduler/,
and for i2v image_encoder/ (a 1-layer SigLIP vision tower) and feature_extractor/. Sizes follow diffusers'
own tiny test (tests/pipelines/hunyuan_video1_5/test_hunyuan_1_5.py), whose Qwen tokenizer and T5 config come
from the hub; the VAE compresses 4x in space and 4x in time (4k+1 frames, as the real one).
"""

from __future__ import annotations

from pathlib import Path

import torch

from tests.backends.tiny_text import qwen_tokenizer

KINDS = ("t2v", "i2v")
TARGET_SIZE = 32  # the i2v pipeline picks its size from buckets of about this many pixels a side


def build_tiny_hunyuan15(kind: str = "t2v", seed: int = 0, guidance: float = 1.0):
    from diffusers import (
        AutoencoderKLHunyuanVideo15,
        FlowMatchEulerDiscreteScheduler,
        HunyuanVideo15ImageToVideoPipeline,
        HunyuanVideo15Pipeline,
        HunyuanVideo15Transformer3DModel,
    )
    from diffusers.guiders import ClassifierFreeGuidance
    from transformers import (
        ByT5Tokenizer,
        Qwen2_5_VLTextConfig,
        Qwen2_5_VLTextModel,
        T5Config,
        T5EncoderModel,
    )

    if kind not in KINDS:
        raise ValueError(f"unknown tiny HunyuanVideo-1.5 kind {kind!r}; one of {KINDS}")
    torch.manual_seed(seed + 1)
    transformer = HunyuanVideo15Transformer3DModel(
        in_channels=9, out_channels=4, num_attention_heads=2, attention_head_dim=8, num_layers=1,
        num_refiner_layers=1, mlp_ratio=2.0, patch_size=1, patch_size_t=1, text_embed_dim=16,
        text_embed_2_dim=16, image_embed_dim=12, rope_axes_dim=(2, 2, 4), target_size=TARGET_SIZE, task_type=kind,
    )  # fmt: skip  # in: 4 latent + 4 condition latent + 1 mask channels
    torch.manual_seed(seed + 2)
    vae = AutoencoderKLHunyuanVideo15(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 16), layers_per_block=1,
        spatial_compression_ratio=4, temporal_compression_ratio=4, downsample_match_channel=False,
        upsample_match_channel=False,
    )  # fmt: skip
    torch.manual_seed(seed + 3)
    qwen = Qwen2_5_VLTextConfig(
        vocab_size=400, hidden_size=16, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, rope_theta=1e6, max_position_embeddings=2048, bos_token_id=None, eos_token_id=0,
        pad_token_id=0, rope_scaling={"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
    )  # fmt: skip
    text_encoder = Qwen2_5_VLTextModel(qwen).eval()
    torch.manual_seed(seed + 4)  # ByT5: 256 bytes + 3 specials + 125 extra ids
    t5 = T5Config(vocab_size=384, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
                  relative_attention_num_buckets=8, decoder_start_token_id=0)  # fmt: skip
    text_encoder_2 = T5EncoderModel(t5).eval()
    parts = dict(transformer=transformer.eval(), vae=vae.eval(), scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
                 text_encoder=text_encoder, tokenizer=None, text_encoder_2=text_encoder_2,
                 tokenizer_2=ByT5Tokenizer(), guider=ClassifierFreeGuidance(guidance_scale=guidance))  # fmt: skip
    if kind == "i2v":
        from transformers import SiglipImageProcessorPil, SiglipVisionConfig, SiglipVisionModel

        torch.manual_seed(seed + 5)
        vision = SiglipVisionConfig(hidden_size=12, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2,
                                    image_size=16, patch_size=8)  # fmt: skip
        parts.update(image_encoder=SiglipVisionModel(vision).eval(),
                     feature_extractor=SiglipImageProcessorPil(size={"height": 16, "width": 16}))  # fmt: skip
        pipe = HunyuanVideo15ImageToVideoPipeline(**parts)
    else:
        pipe = HunyuanVideo15Pipeline(**parts)
    pipe.register_modules(tokenizer=qwen_tokenizer([pipe.system_message], vocab_size=qwen.vocab_size))
    return pipe


def save_tiny_hunyuan15(folder: str | Path, kind: str = "t2v", seed: int = 0, guidance: float = 1.0) -> Path:
    """Write a whole tiny diffusers-layout HunyuanVideo-1.5 folder of `kind` and return its path."""
    folder = Path(folder)
    build_tiny_hunyuan15(kind, seed, guidance).save_pretrained(folder, safe_serialization=True)
    return folder
