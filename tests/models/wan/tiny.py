"""Tiny random Wan checkpoints in the diffusers folder layout, built offline in well under a second.

`save_tiny_wan(folder, kind)` writes what `WanPipeline.from_pretrained` / `WanImageToVideoPipeline
.from_pretrained` read (model_index.json, transformer/, [transformer_2/], vae/, text_encoder/, tokenizer/,
scheduler/, [image_encoder/, image_processor/]), so tests can compare our code against diffusers' own.
Other test folders import it by path:

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models" / "wan"))
    from tiny import save_tiny_wan
"""

from __future__ import annotations

from pathlib import Path

import torch

KINDS = ("t2v", "i2v", "flf2v", "ti2v", "a14b-t2v", "a14b-i2v")

TEXT_DIM = 32  # tiny UMT5 d_model (= transformer text_dim)
IMAGE_DIM = 16  # tiny CLIP hidden size (= transformer image_dim)
IMAGE_SIZE = 32  # CLIP input resolution
IMAGE_TOKENS = (IMAGE_SIZE // 8) ** 2 + 1  # patch 8 -> 16 patches + class token = 17
VOCAB = 64
PROMPTS = (
    "a cat walks on the beach at sunset",
    "the camera pans left over a quiet city at night",
    "two boxers fight on a bright stage",
    "dance monkey",
    "low quality, blurry, static, overexposed",
    "a red bird flies over green hills and blue water",
)
BOUNDARY = {"a14b-t2v": 0.875, "a14b-i2v": 0.9}


def tiny_dit_config(kind: str) -> dict:
    """The diffusers `WanTransformer3DModel` config for a tiny model of `kind` (2 layers, 2 heads x 16)."""
    if kind not in KINDS:
        raise ValueError(f"unknown tiny kind {kind!r}; one of {KINDS}")
    cfg = dict(
        patch_size=[1, 2, 2],
        num_attention_heads=2,
        attention_head_dim=16,
        in_channels=16,
        out_channels=16,
        text_dim=TEXT_DIM,
        freq_dim=32,
        ffn_dim=64,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        eps=1e-6,
        image_dim=None,
        added_kv_proj_dim=None,
        rope_max_seq_len=32,
        pos_embed_seq_len=None,
    )
    if kind in ("i2v", "flf2v"):
        cfg.update(in_channels=36, image_dim=IMAGE_DIM, added_kv_proj_dim=32)
    if kind == "flf2v":
        cfg.update(pos_embed_seq_len=2 * IMAGE_TOKENS)
    if kind == "a14b-i2v":
        cfg.update(in_channels=36)
    if kind == "ti2v":
        cfg.update(in_channels=48, out_channels=48)
    return cfg


def _perturb(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Move every parameter off its init value (norm weights off 1, zero pos_embed off 0) so a wrong
    key mapping shows up as a numeric difference."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            owner = name.rsplit(".", 1)[0].split(".")[-1]
            if "norm" in owner and name.endswith(".weight"):
                p.copy_(1.0 + 0.1 * noise)
            else:
                p.add_(0.02 * noise)
    return module


def tiny_transformer(kind: str, seed: int = 0):
    from diffusers import WanTransformer3DModel

    torch.manual_seed(seed)
    return _perturb(WanTransformer3DModel(**tiny_dit_config(kind)), seed + 1).eval()


def tiny_vae(kind: str, seed: int = 0):
    """Wan 2.1 VAE (z 16, 8x spatial) or, for ti2v, the Wan 2.2 VAE (z 48, patchified, 16x spatial)."""
    from diffusers import AutoencoderKLWan

    gen = torch.Generator().manual_seed(seed + 7)
    z = 48 if kind == "ti2v" else 16
    mean = (0.3 * torch.randn(z, generator=gen)).tolist()  # non-trivial latent statistics on purpose
    std = (1.0 + 0.5 * torch.rand(z, generator=gen)).tolist()
    torch.manual_seed(seed + 2)
    if kind == "ti2v":
        vae = AutoencoderKLWan(
            base_dim=8,
            z_dim=48,
            in_channels=12,
            out_channels=12,
            is_residual=True,
            patch_size=2,
            dim_mult=[1, 1, 1, 1],
            num_res_blocks=1,
            temperal_downsample=[False, True, True],
            latents_mean=mean,
            latents_std=std,
            scale_factor_spatial=16,
            scale_factor_temporal=4,
        )
    else:
        vae = AutoencoderKLWan(
            base_dim=8,
            z_dim=16,
            dim_mult=[1, 1, 1, 1],
            num_res_blocks=1,
            temperal_downsample=[False, True, True],
            latents_mean=mean,
            latents_std=std,
        )
    return vae.eval()


def tiny_tokenizer():
    """A Unigram tokenizer trained offline on a few prompts, with T5's special ids (pad 0, eos 1, unk 2)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=VOCAB, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>", show_progress=False
    )
    tok.train_from_iterator(list(PROMPTS), trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )


def tiny_text_encoder(seed: int = 0):
    from transformers import UMT5Config, UMT5EncoderModel

    cfg = UMT5Config(
        vocab_size=VOCAB,
        d_model=TEXT_DIM,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=32,  # as umt5-xxl (and Wan's T5RelativeEmbedding)
        relative_attention_max_distance=128,
        feed_forward_proj="gated-gelu",  # as umt5-xxl
        dropout_rate=0.0,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    torch.manual_seed(seed + 3)
    return UMT5EncoderModel(cfg).eval()


def tiny_image_encoder(seed: int = 0):
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    cfg = CLIPVisionConfig(
        hidden_size=IMAGE_DIM,
        projection_dim=IMAGE_DIM,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=32,
        image_size=IMAGE_SIZE,
        patch_size=8,
        hidden_act="gelu",  # as open-clip ViT-H/14
    )
    torch.manual_seed(seed + 4)
    encoder = CLIPVisionModel(cfg).eval()  # the class the Wan-AI I2V repos name in model_index.json
    processor = CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    return encoder, processor


def tiny_scheduler(flow_shift: float = 3.0):
    from diffusers import UniPCMultistepScheduler

    # What the Wan-AI *-Diffusers repos ship: UniPC in flow-matching mode with a shifted sigma schedule.
    return UniPCMultistepScheduler(
        prediction_type="flow_prediction",
        use_flow_sigmas=True,
        flow_shift=flow_shift,
        num_train_timesteps=1000,
    )


def build_tiny_pipeline(kind: str = "t2v", seed: int = 0):
    """The diffusers pipeline object (WanPipeline or WanImageToVideoPipeline) with tiny random parts."""
    from diffusers import WanImageToVideoPipeline, WanPipeline

    if kind not in KINDS:
        raise ValueError(f"unknown tiny kind {kind!r}; one of {KINDS}")
    parts = dict(
        tokenizer=tiny_tokenizer(),
        text_encoder=tiny_text_encoder(seed),
        vae=tiny_vae(kind, seed),
        scheduler=tiny_scheduler(),
        transformer=tiny_transformer(kind, seed),
    )
    if kind.startswith("a14b"):
        parts.update(transformer_2=tiny_transformer(kind, seed + 100), boundary_ratio=BOUNDARY[kind])
    if kind in ("i2v", "flf2v"):
        encoder, processor = tiny_image_encoder(seed)
        parts.update(image_encoder=encoder, image_processor=processor)
    if kind in ("i2v", "flf2v", "a14b-i2v"):
        return WanImageToVideoPipeline(**parts)
    return WanPipeline(**parts, expand_timesteps=(kind == "ti2v"))


def save_tiny_wan(folder: str | Path, kind: str = "t2v", seed: int = 0) -> Path:
    """Write a whole tiny diffusers-layout Wan folder of `kind` (see KINDS) and return its path."""
    folder = Path(folder)
    pipe = build_tiny_pipeline(kind, seed)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder
