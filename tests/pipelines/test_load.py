"""load_pipeline: names, repo ids and folders; what a folder is recognised as; clear errors when absent."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
import torch
from conftest import random_image
from safetensors.torch import save_file
from test_encoders import UMT5_TO_WAN_T5, _hf_clip_to_wan
from test_loading import DIFFUSERS_TO_ORIGINAL, original_config
from test_vae import _to_original as _vae_to_original

import yingxi
from yingxi.errors import InputError, ModelNotFoundError
from yingxi.models.hub import is_model_folder
from yingxi.models.loading import read_state_dict, rename_keys
from yingxi.models.wan import image as image_module
from yingxi.models.wan import loading as wan_loading
from yingxi.models.wan.config import VARIANTS
from yingxi.models.wan.vae import WanVAEConfig
from yingxi.models.wan.vae_loading import PRESETS
from yingxi.pipelines.wan import WanPipeline, load
from yingxi.pipelines.wan.load import check_fits, variant_for_folder


@pytest.fixture
def no_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("YINGXI_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    return tmp_path


@pytest.mark.parametrize(
    "kind, tasks, two_experts, clip, multiple",
    [
        ("t2v", ("t2v",), False, False, 16),
        ("i2v", ("i2v",), False, True, 16),
        ("flf2v", ("flf2v",), False, True, 16),
        ("ti2v", ("ti2v",), False, False, 32),
        ("a14b-t2v", ("t2v",), True, False, 16),
        ("a14b-i2v", ("i2v",), True, False, 16),
    ],
)
def test_folder_is_recognised_and_built(tiny_wan, kind, tasks, two_experts, clip, multiple):
    folder = tiny_wan(kind)
    variant = variant_for_folder(folder)
    assert variant.tasks == tasks and variant.two_experts == two_experts
    assert variant.needs_image_encoder == clip
    assert variant.shift == 3.0  # the folder's scheduler_config.json flow_shift, not the published default
    assert variant.dit.num_layers == 2  # the folder's own transformer config
    pipe = yingxi.load_pipeline(folder)
    assert isinstance(pipe, WanPipeline) and pipe.size_multiple == multiple
    assert (pipe.components.transformer_2 is not None) == two_experts
    assert (pipe.components.image_encoder is not None) == clip
    assert pipe.components.text_encoder is not None


def test_missing_weights_say_where_to_put_them(no_caches):
    with pytest.raises(ModelNotFoundError) as info:
        yingxi.load_pipeline("wan2.1-t2v-1.3b")
    message = str(info.value)
    assert "wan2.1-t2v-1.3b are not on this machine" in message
    assert str(no_caches / "models" / "wan2.1-t2v-1.3b") in message
    assert "yingxi models pull wan2.1-t2v-1.3b" in message


def test_unknown_names_and_missing_folders(no_caches):
    with pytest.raises(InputError, match='did you mean "wan2.2-ti2v-5b"'):
        yingxi.load_pipeline("wan2.2-ti2v-5")
    with pytest.raises(ModelNotFoundError, match="no such folder"):
        yingxi.load_pipeline(str(no_caches / "nowhere" / "model"))


def test_name_and_repo_id_find_a_folder_in_yingxi_models(no_caches, tiny_wan):
    shutil.copytree(tiny_wan("t2v"), no_caches / "models" / "wan2.1-t2v-1.3b")
    for name in ("wan2.1-t2v-1.3b", "Wan-AI/Wan2.1-T2V-1.3B-Diffusers", "Wan-AI/Wan2.1-T2V-1.3B"):
        pipe = yingxi.load_pipeline(name)
        assert pipe.variant.name == "wan2.1-t2v-1.3b"  # the published defaults (steps, shift, fps)
        assert pipe.components.transformer.config.num_layers == 2  # the weights on disk


def _write_original_layout(diffusers: Path, dest: Path, kind: str) -> WanVAEConfig:
    """Wan's own layout of a tiny diffusers folder (the renames are the tests' own, written independently
    of the loaders'); returns the VAE architecture, which original roots do not record."""
    experts = [("transformer", dest)]
    if kind.startswith("a14b"):
        experts = [("transformer", dest / "high_noise_model"), ("transformer_2", dest / "low_noise_model")]
    for sub, out in experts:
        out.mkdir(parents=True, exist_ok=True)
        state = rename_keys(read_state_dict(diffusers / sub), DIFFUSERS_TO_ORIGINAL)
        save_file(state, str(out / "diffusion_pytorch_model.safetensors"))
        (out / "config.json").write_text(json.dumps(original_config(kind)))
    vae = WanVAEConfig.from_diffusers(json.loads((diffusers / "vae" / "config.json").read_text()))
    state = {_vae_to_original(k, vae): v for k, v in read_state_dict(diffusers / "vae").items()}
    torch.save(state, dest / ("Wan2.2_VAE.pth" if vae.is_residual else "Wan2.1_VAE.pth"))
    t5 = read_state_dict(diffusers / "text_encoder")
    t5.pop("encoder.embed_tokens.weight", None)  # tied to shared.weight; Wan stores it once
    torch.save(rename_keys(t5, UMT5_TO_WAN_T5), dest / "models_t5_umt5-xxl-enc-bf16.pth")
    shutil.copytree(diffusers / "tokenizer", dest / "google" / "umt5-xxl")
    if (diffusers / "image_encoder").is_dir():  # Wan 2.1 I2V/FLF2V: the CLIP with its text tower
        clip = _hf_clip_to_wan(read_state_dict(diffusers / "image_encoder"))
        clip["textual.head.0.weight"] = torch.zeros(4, 4)
        torch.save(clip, dest / "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth")
    return vae


@pytest.mark.parametrize("kind, image", [("t2v", 0), ("ti2v", 1), ("a14b-i2v", 1), ("i2v", 1), ("flf2v", 2)])
def test_original_layout_folder_makes_the_same_video(tiny_wan, tmp_path, monkeypatch, kind, image):
    diffusers = tiny_wan(kind)
    original = tmp_path / "Wan-original"
    vae = _write_original_layout(diffusers, original, kind)
    # A real Wan2.x_VAE.pth is the preset architecture and a real CLIP has 80-wide heads; the tiny ones
    # are not, so they stand in.
    monkeypatch.setitem(PRESETS, "2.2" if vae.is_residual else "2.1", vae)
    monkeypatch.setattr(image_module, "CLIP_HEAD_DIM", 8)
    assert is_model_folder(original)
    ours, ref = yingxi.load_pipeline(original), yingxi.load_pipeline(diffusers)
    assert ours.variant.tasks == ref.variant.tasks and ours.variant.two_experts == ref.variant.two_experts
    assert (ours.components.transformer_2 is not None) == kind.startswith("a14b")
    w, h = (64, 32) if kind == "ti2v" else (48, 32)
    args = dict(
        prompt="a red kite", width=w, height=h, num_frames=5, num_inference_steps=2, shift=3.0, seed=1
    )
    if image:
        args["image"] = random_image(w, h, seed=2)
    if image == 2:
        args["last_image"] = random_image(w, h, seed=3)
    got, want = ours(**args), ref(**args)
    assert got.shape == (5, h, w, 3) and got.std() > 1.0
    # Same weights through the same code, read from differently laid out files: identical up to float
    # summation order, i.e. at most one uint8 level.
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


def test_original_wan21_i2v_folder_without_its_clip_says_so(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(original_config("i2v")))
    (tmp_path / "Wan2.1_VAE.pth").write_bytes(b"")
    with pytest.raises(ModelNotFoundError, match="models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth"):
        variant_for_folder(tmp_path)


def test_check_fits_asks_for_block_offload_before_a_14b_meets_a_24gb_card():
    bf16, card_24gb, h100 = torch.bfloat16, 24 * 10**9, 80 * 2**30
    t2v_14b, a14b = VARIANTS["wan2.1-t2v-14b"], VARIANTS["wan2.2-t2v-a14b"]
    for offload in (False, "none", True, "model"):  # 26.6 GiB of bf16 weights resident either way
        with pytest.raises(InputError, match=r"26\.6 GiB in bfloat16 .*offload='blocks'") as info:
            check_fits(t2v_14b, bf16, offload, card_24gb)
        assert info.value.field == "offload"
    check_fits(t2v_14b, bf16, "blocks", card_24gb)
    check_fits(VARIANTS["wan2.2-ti2v-5b"], bf16, False, card_24gb)  # 9.3 GiB
    check_fits(t2v_14b, torch.float32, False, None)  # CPU: nothing to check against
    check_fits(a14b, bf16, False, h100)  # both experts: 53.2 GiB
    with pytest.raises(InputError, match=r"106\.5 GiB in float32"):
        check_fits(a14b, torch.float32, False, h100)
    check_fits(a14b, torch.float32, "model", h100)  # one expert at a time: 53.2 GiB


def _never(*args, **kwargs):
    raise AssertionError("weights were read")


def test_load_pipeline_refuses_a_model_too_big_for_the_device_before_reading_it(tiny_wan, monkeypatch):
    monkeypatch.setattr(load, "_device_memory", lambda device: 1000)  # smaller than even the tiny weights
    monkeypatch.setattr(wan_loading, "load_transformer_pair", _never)
    with pytest.raises(InputError, match="offload='blocks'"):
        yingxi.load_pipeline(tiny_wan("t2v"), device="cuda")
