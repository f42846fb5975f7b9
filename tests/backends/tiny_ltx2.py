"""A tiny random LTX-2 pipeline (video + sound) in the diffusers folder layout, built offline in seconds.

`save_tiny_ltx2(folder, kind)` writes what `DiffusionPipeline.from_pretrained` reads for `LTX2Pipeline`
(kind "t2v") or `LTX2ImageToVideoPipeline` ("i2v"): model_index.json, transformer/, vae/, audio_vae/,
vocoder/, connectors/, text_encoder/ (a two-layer Gemma 3 from a config, random weights), tokenizer/ (a
Unigram tokenizer trained here on a few prompts), scheduler/. Sizes follow diffusers' own tiny LTX-2 test
(tests/pipelines/ltx2/test_ltx2.py), except the text encoder, which that test downloads from the hub.
"""

from __future__ import annotations

from pathlib import Path

import torch

VOCAB = 64
PROMPTS = (
    "a cat walks on the beach at sunset",
    "the camera pans left over a quiet city at night",
    "a drum beats while the band plays",
    "rain falls on a red roof",
    "low quality, blurry, static",
)
KINDS = ("t2v", "i2v", "condition")


def tiny_tokenizer():
    """A Unigram tokenizer with Gemma's special tokens (pad 0, eos 1, bos 2, unk 3), BOS-prefixed as Gemma's."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
    trainer = trainers.UnigramTrainer(
        vocab_size=VOCAB, special_tokens=specials, unk_token="<unk>", show_progress=False
    )
    tok.train_from_iterator(list(PROMPTS), trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A <bos> $B", special_tokens=[("<bos>", 2)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", unk_token="<unk>"
    )


def tiny_text_encoder(seed: int = 0):
    """Gemma 3 (the class LTX-2 names) with a 2-layer, 32-wide text tower and a 1-layer vision tower."""
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration
    from transformers.models.gemma3.configuration_gemma3 import Gemma3TextConfig
    from transformers.models.siglip.configuration_siglip import SiglipVisionConfig

    text = Gemma3TextConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=32, num_hidden_layers=2,
                            num_attention_heads=2, num_key_value_heads=1, head_dim=8,
                            max_position_embeddings=64, sliding_window=8, pad_token_id=0, eos_token_id=1,
                            bos_token_id=2)  # fmt: skip
    vision = SiglipVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                num_attention_heads=2, image_size=16, patch_size=8)  # fmt: skip
    cfg = Gemma3Config(text_config=text.to_dict(), vision_config=vision.to_dict(), mm_tokens_per_image=4)
    torch.manual_seed(seed + 1)
    return Gemma3ForConditionalGeneration(cfg).eval()


def build_tiny_ltx2(kind: str = "t2v", seed: int = 0):
    """The diffusers LTX2Pipeline / LTX2ImageToVideoPipeline / LTX2ConditionPipeline with tiny random parts."""
    from diffusers import (
        AutoencoderKLLTX2Audio,
        AutoencoderKLLTX2Video,
        FlowMatchEulerDiscreteScheduler,
        LTX2ConditionPipeline,
        LTX2ImageToVideoPipeline,
        LTX2Pipeline,
        LTX2VideoTransformer3DModel,
    )
    from diffusers.pipelines.ltx2 import LTX2TextConnectors
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder

    if kind not in KINDS:
        raise ValueError(f"unknown tiny LTX-2 kind {kind!r}; one of {KINDS}")
    text_encoder = tiny_text_encoder(seed)
    hidden, layers = (
        text_encoder.config.text_config.hidden_size,
        text_encoder.config.text_config.num_hidden_layers,
    )
    torch.manual_seed(seed + 2)
    transformer = LTX2VideoTransformer3DModel(
        in_channels=4, out_channels=4, patch_size=1, patch_size_t=1, num_attention_heads=2,
        attention_head_dim=8, cross_attention_dim=16, audio_in_channels=4, audio_out_channels=4,
        audio_num_attention_heads=2, audio_attention_head_dim=4, audio_cross_attention_dim=8, num_layers=2,
        qk_norm="rms_norm_across_heads", caption_channels=hidden, rope_double_precision=False,
        rope_type="split",
    )  # fmt: skip
    torch.manual_seed(seed + 3)
    connectors = LTX2TextConnectors(
        caption_channels=hidden, text_proj_in_factor=layers + 1, video_connector_num_attention_heads=4,
        video_connector_attention_head_dim=8, video_connector_num_layers=1,
        video_connector_num_learnable_registers=None, audio_connector_num_attention_heads=4,
        audio_connector_attention_head_dim=8, audio_connector_num_layers=1,
        audio_connector_num_learnable_registers=None, connector_rope_base_seq_len=32, rope_theta=10000.0,
        rope_double_precision=False, causal_temporal_positioning=False, rope_type="split",
    )  # fmt: skip
    torch.manual_seed(seed + 4)
    vae = AutoencoderKLLTX2Video(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8,),
        decoder_block_out_channels=(8,), layers_per_block=(1,), decoder_layers_per_block=(1, 1),
        spatio_temporal_scaling=(True,), decoder_spatio_temporal_scaling=(True,),
        decoder_inject_noise=(False, False), downsample_type=("spatial",), upsample_residual=(False,),
        upsample_factor=(1,), timestep_conditioning=False, patch_size=1, patch_size_t=1,
        encoder_causal=True, decoder_causal=False,
    )  # fmt: skip
    torch.manual_seed(seed + 5)
    audio_vae = AutoencoderKLLTX2Audio(
        base_channels=4, output_channels=2, ch_mult=(1, 2, 4), num_res_blocks=1, attn_resolutions=None,
        in_channels=2, resolution=32, latent_channels=2, norm_type="pixel", causality_axis="height",
        dropout=0.0, mid_block_add_attention=False, sample_rate=16000, mel_hop_length=160, is_causal=True,
        mel_bins=8,
    )  # fmt: skip
    with torch.no_grad():  # per-channel statistics that are not 0 and 1, so normalising them is visible
        n = audio_vae.latents_mean.numel()
        audio_vae.latents_mean.copy_(torch.linspace(-0.5, 0.5, n))
        audio_vae.latents_std.copy_(torch.linspace(0.5, 2.0, n))
    torch.manual_seed(seed + 6)  # upsampling 4 * 4 * 10 = the mel hop: one sample per sample of 16 kHz
    vocoder = LTX2Vocoder(
        in_channels=audio_vae.config.output_channels * audio_vae.config.mel_bins, hidden_channels=32,
        out_channels=2, upsample_kernel_sizes=[8, 8, 20], upsample_factors=[4, 4, 10], resnet_kernel_sizes=[3],
        resnet_dilations=[[1, 3, 5]], leaky_relu_negative_slope=0.1, output_sampling_rate=16000,
    )  # fmt: skip
    cls = {"t2v": LTX2Pipeline, "i2v": LTX2ImageToVideoPipeline, "condition": LTX2ConditionPipeline}[kind]
    return cls(
        transformer=transformer.eval(),
        vae=vae.eval(),
        audio_vae=audio_vae.eval(),
        scheduler=FlowMatchEulerDiscreteScheduler(),
        text_encoder=text_encoder,
        tokenizer=tiny_tokenizer(),
        connectors=connectors.eval(),
        vocoder=vocoder.eval(),
    )


def save_tiny_ltx2(folder: str | Path, kind: str = "t2v", seed: int = 0) -> Path:
    """Write a whole tiny diffusers-layout LTX-2 folder of `kind` and return its path."""
    folder = Path(folder)
    build_tiny_ltx2(kind, seed).save_pretrained(folder, safe_serialization=True)
    return folder
