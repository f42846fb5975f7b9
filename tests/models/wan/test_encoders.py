"""UMT5 prompt embeddings and CLIP image tokens against diffusers' Wan pipelines on tiny folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import WanImageToVideoPipeline, WanPipeline
from PIL import Image
from tiny import IMAGE_DIM, IMAGE_TOKENS, TEXT_DIM, save_tiny_wan

from yingxi.errors import ModelNotFoundError
from yingxi.models.loading import CheckpointError
from yingxi.models.wan.image import WanImageEncoder
from yingxi.models.wan.text import WanTextEncoder, clean_prompt

PROMPTS = [
    "a cat walks on the beach at sunset",
    "  two boxers   fight\n on a bright stage &amp;amp; dance monkey ",
]


@pytest.fixture(scope="module")
def i2v_folder(tmp_path_factory) -> Path:
    return save_tiny_wan(tmp_path_factory.mktemp("tiny_wan_enc") / "i2v", "i2v")


def image(seed: int, size=(40, 28)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def test_clean_prompt_like_wan():
    assert clean_prompt("  a &amp;amp; b\n\t c  ") == "a & b c"


def test_text_embeddings_equal_diffusers(i2v_folder):
    ours = WanTextEncoder.from_pretrained(i2v_folder, dtype="fp32")
    pipe = WanPipeline.from_pretrained(i2v_folder)  # WanPipeline ignores the image parts
    with torch.no_grad():  # as inside the pipeline's __call__ (autograd mode changes CPU SDPA rounding)
        want = pipe._get_t5_prompt_embeds(PROMPTS, max_sequence_length=512, device=torch.device("cpu"))
        pos, neg = pipe.encode_prompt(
            "a red bird", "blurry", max_sequence_length=512, device=torch.device("cpu")
        )
    got = ours.encode(PROMPTS)
    assert got.shape == want.shape == (2, 512, TEXT_DIM)
    assert torch.equal(got, want)  # same model, same tokens, same trimming: bit-identical
    assert torch.equal(ours.encode(["a red bird"]), pos)
    assert torch.equal(ours.encode("blurry"), neg)


def test_text_embeddings_are_zero_past_each_prompt(i2v_folder):
    ours = WanTextEncoder.from_pretrained(i2v_folder, dtype="fp32")
    ids = ours.tokenizer(clean_prompt(PROMPTS[0])).input_ids  # includes </s>
    emb = ours.encode(PROMPTS)
    n = len(ids)
    assert emb[0, :n].abs().sum(-1).min().item() > 0  # every real token has an embedding
    assert torch.count_nonzero(emb[0, n:]) == 0
    short = ours.encode(PROMPTS, max_length=4)  # truncation keeps the first tokens
    assert short.shape == (2, 4, TEXT_DIM) and torch.count_nonzero(short) == short.numel()


def test_text_encoder_bf16(i2v_folder):
    ours = WanTextEncoder.from_pretrained(i2v_folder, dtype="bf16")
    ref = WanTextEncoder.from_pretrained(i2v_folder, dtype="fp32").encode(PROMPTS)
    got = ours.encode(PROMPTS)
    assert got.dtype == torch.bfloat16
    # bf16 weights and activations through 2 layers: within 5% of the fp32 embeddings' magnitude
    assert (got.float() - ref).abs().max().item() <= 0.05 * ref.abs().max().item()


def test_image_tokens_equal_diffusers(i2v_folder):
    ours = WanImageEncoder.from_pretrained(i2v_folder)
    pipe = WanImageToVideoPipeline.from_pretrained(i2v_folder)
    first, last = image(1), image(2)
    with torch.no_grad():
        want = pipe.encode_image(first, device=torch.device("cpu"))
        want_pair = pipe.encode_image([first, last], device=torch.device("cpu"))
    got = ours.encode(first)
    assert got.shape == want.shape == (1, IMAGE_TOKENS, IMAGE_DIM)
    assert torch.equal(got, want)
    pair = ours.encode([first, last])  # FLF2V: both frames, as diffusers' pipeline encodes them
    assert torch.equal(pair, want_pair)
    assert not torch.equal(pair[0], pair[1])
    arr = np.asarray(first)  # HWC uint8 arrays are accepted too
    assert torch.equal(ours.encode(arr), got)


def test_missing_encoder_folders(tmp_path):
    with pytest.raises(ModelNotFoundError, match="image_encoder"):
        WanImageEncoder.from_pretrained(tmp_path)
    with pytest.raises(ModelNotFoundError, match="text_encoder"):
        WanTextEncoder.from_pretrained(tmp_path)


# transformers UMT5 names -> Wan-Video/Wan2.1 wan/modules/t5.py names (written independently of the loader).
UMT5_TO_WAN_T5 = (
    (r"^shared\.", "token_embedding."),
    (r"^encoder\.block\.(\d+)\.layer\.0\.layer_norm\.", r"blocks.\1.norm1."),
    (
        r"^encoder\.block\.(\d+)\.layer\.0\.SelfAttention\.relative_attention_bias\.",
        r"blocks.\1.pos_embedding.embedding.",
    ),
    (r"^encoder\.block\.(\d+)\.layer\.0\.SelfAttention\.", r"blocks.\1.attn."),
    (r"^encoder\.block\.(\d+)\.layer\.1\.layer_norm\.", r"blocks.\1.norm2."),
    (r"^encoder\.block\.(\d+)\.layer\.1\.DenseReluDense\.wi_0\.", r"blocks.\1.ffn.gate.0."),
    (r"^encoder\.block\.(\d+)\.layer\.1\.DenseReluDense\.wi_1\.", r"blocks.\1.ffn.fc1."),
    (r"^encoder\.block\.(\d+)\.layer\.1\.DenseReluDense\.wo\.", r"blocks.\1.ffn.fc2."),
    (r"^encoder\.final_layer_norm\.", "norm."),
)


def test_original_wan_t5_checkpoint(tmp_path, i2v_folder):
    """Wan's own layout: models_t5_umt5-xxl-enc-bf16.pth + google/umt5-xxl/ tokenizer in the model root."""
    from yingxi.models.loading import read_state_dict, rename_keys

    hf = read_state_dict(i2v_folder / "text_encoder")
    hf.pop("encoder.embed_tokens.weight", None)  # tied to shared.weight; Wan stores it once
    wan = rename_keys(hf, UMT5_TO_WAN_T5)
    assert all(k.startswith(("token_embedding.", "blocks.", "norm.")) for k in wan)
    torch.save(wan, tmp_path / "models_t5_umt5-xxl-enc-bf16.pth")
    shutil.copytree(i2v_folder / "tokenizer", tmp_path / "google" / "umt5-xxl")

    ours = WanTextEncoder.from_pretrained(tmp_path, dtype="fp32")
    ref = WanTextEncoder.from_pretrained(i2v_folder, dtype="fp32")
    assert ours.dim == ref.dim == TEXT_DIM
    got, want = ours.encode(PROMPTS), ref.encode(PROMPTS)
    # same weights through the same transformers UMT5 code; only buffer alignment may differ
    assert (got - want).abs().max().item() <= 1e-5
    half = WanTextEncoder.from_pretrained(tmp_path, dtype="fp16")
    kinds = {n: p.dtype for n, p in half.model.named_parameters()}
    assert (
        kinds["encoder.block.0.layer.1.DenseReluDense.wo.weight"] == torch.float32
    )  # as transformers keeps it
    assert kinds["encoder.block.0.layer.0.SelfAttention.q.weight"] == torch.float16
    del wan["norm.weight"]
    torch.save(wan, tmp_path / "models_t5_umt5-xxl-enc-bf16.pth")
    with pytest.raises(CheckpointError, match="encoder.final_layer_norm.weight"):
        WanTextEncoder.from_pretrained(tmp_path, dtype="fp32")


def _hf_clip_to_wan(state: dict) -> dict:
    """CLIPVisionModel names -> Wan's `wan/modules/clip.py` (written from Wan's module, independently of
    WAN_CLIP_TO_HF): fused q/k/v rows, (1, 1, D) class token, (1, N, D) positions, under `visual.`."""
    state = {k.removeprefix("vision_model."): v for k, v in state.items()}
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if key == "embeddings.class_embedding":
            out["visual.cls_embedding"] = value.reshape(1, 1, -1)
        elif key == "embeddings.position_embedding.weight":
            out["visual.pos_embedding"] = value.unsqueeze(0)
        elif key == "embeddings.patch_embedding.weight":
            out["visual.patch_embedding.weight"] = value
        elif parts[0] in ("pre_layrnorm", "post_layernorm"):
            out[f"visual.{'pre_norm' if parts[0] == 'pre_layrnorm' else 'post_norm'}.{parts[1]}"] = value
        elif parts[0] == "encoder" and parts[3] == "self_attn" and parts[4] in ("q_proj", "k_proj", "v_proj"):
            continue  # fused below
        elif parts[0] == "encoder":
            i, rest = parts[2], ".".join(parts[3:])
            for ours, wan in (("layer_norm1", "norm1"), ("layer_norm2", "norm2"), ("self_attn.out_proj", "attn.proj"),
                              ("mlp.fc1", "mlp.0"), ("mlp.fc2", "mlp.2")):  # fmt: skip
                if rest.startswith(ours + "."):
                    out[f"visual.transformer.{i}.{wan}{rest[len(ours) :]}"] = value
    layers = {k.split(".")[2] for k in state if k.startswith("encoder.layers.")}
    for i in layers:
        for kind in ("weight", "bias"):
            qkv = [state[f"encoder.layers.{i}.self_attn.{n}_proj.{kind}"] for n in "qkv"]
            out[f"visual.transformer.{i}.attn.to_qkv.{kind}"] = torch.cat(qkv, dim=0)
    return out


def test_original_wan_clip_checkpoint(tmp_path, i2v_folder, monkeypatch):
    """Wan's own layout: models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth, vision and text towers."""
    from yingxi.models.loading import read_state_dict

    hf = read_state_dict(i2v_folder / "image_encoder")
    wan = _hf_clip_to_wan(hf)
    layers = len({k for k in hf if ".q_proj.weight" in k})
    assert len(wan) == len(hf) - 4 * layers  # per layer, 6 q/k/v tensors fused into 2
    # what Wan's checkpoint holds besides: the projection head, the XLM-R text tower, the logit scale
    wan |= {"visual.head": torch.randn(IMAGE_DIM, 8), "textual.head.0.weight": torch.randn(4, 4)}
    wan["log_scale"] = torch.tensor(2.6)
    path = tmp_path / "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth"
    torch.save(wan, path)

    ours = WanImageEncoder.from_original(path, num_heads=2)  # the tiny tower's head count
    ref = WanImageEncoder.from_pretrained(i2v_folder)
    first, last = image(1), image(2)
    # same weights through the same transformers CLIP code and the same preprocessing
    assert (ours.encode([first, last]) - ref.encode([first, last])).abs().max().item() <= 1e-6

    calls = []
    monkeypatch.setattr(
        WanImageEncoder,
        "from_original",
        classmethod(lambda cls, p, **kw: calls.append(Path(p).name) or "built"),
    )
    assert WanImageEncoder.from_pretrained(tmp_path) == "built"  # a Wan root holding the .pth
    assert calls == [path.name]
