"""Checkpoint reading, key renaming, the original Wan layout, loading errors, configs and the registry."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from tiny import TEXT_DIM, save_tiny_wan, tiny_dit_config

from yingxi.errors import InputError, ModelNotFoundError
from yingxi.models.loading import (
    CheckpointError,
    cast_by_name,
    checkpoint_keys,
    load_module,
    parse_dtype,
    read_state_dict,
    rename_keys,
)
from yingxi.models.wan.config import VARIANTS, WanDiTConfig, get_variant
from yingxi.models.wan.dit import KEEP_FP32, WanDiT
from yingxi.models.wan.loading import (
    detect_layout,
    infer_config,
    load_transformer,
    load_transformer_pair,
    to_diffusers_keys,
)

# diffusers -> original Wan names, written independently of ORIGINAL_TO_DIFFUSERS (after Wan-Video/Wan2.1
# wan/modules/model.py): the test converts tiny diffusers checkpoints back to what Wan-AI publishes.
DIFFUSERS_TO_ORIGINAL = (
    (r"^condition_embedder\.time_embedder\.linear_1\.", "time_embedding.0."),
    (r"^condition_embedder\.time_embedder\.linear_2\.", "time_embedding.2."),
    (r"^condition_embedder\.time_proj\.", "time_projection.1."),
    (r"^condition_embedder\.text_embedder\.linear_1\.", "text_embedding.0."),
    (r"^condition_embedder\.text_embedder\.linear_2\.", "text_embedding.2."),
    (r"^condition_embedder\.image_embedder\.norm1\.", "img_emb.proj.0."),
    (r"^condition_embedder\.image_embedder\.ff\.net\.0\.proj\.", "img_emb.proj.1."),
    (r"^condition_embedder\.image_embedder\.ff\.net\.2\.", "img_emb.proj.3."),
    (r"^condition_embedder\.image_embedder\.norm2\.", "img_emb.proj.4."),
    (r"^condition_embedder\.image_embedder\.pos_embed$", "img_emb.emb_pos"),
    (r"\.attn1\.", ".self_attn."),
    (r"\.attn2\.", ".cross_attn."),
    (r"\.to_q\.", ".q."),
    (r"\.to_k\.", ".k."),
    (r"\.to_v\.", ".v."),
    (r"\.to_out\.0\.", ".o."),
    (r"\.add_k_proj\.", ".k_img."),
    (r"\.add_v_proj\.", ".v_img."),
    (r"\.norm_added_k\.", ".norm_k_img."),
    (r"^((?:vace_)?blocks\.\d+)\.norm2\.", r"\1.norm3."),
    (r"\.ffn\.net\.0\.proj\.", ".ffn.0."),
    (r"\.ffn\.net\.2\.", ".ffn.2."),
    (r"^((?:vace_)?blocks\.\d+)\.scale_shift_table$", r"\1.modulation"),
    (r"^(vace_blocks\.\d+)\.proj_in\.", r"\1.before_proj."),  # VACE (Wan2.1 wan/modules/vace_model.py)
    (r"^(vace_blocks\.\d+)\.proj_out\.", r"\1.after_proj."),
    (r"^proj_out\.", "head.head."),
    (r"^scale_shift_table$", "head.modulation"),
)
# Same weights, same maths; CPU kernels may still round differently with differently aligned buffers
# (observed 3.6e-7), so fp32 comparisons allow 1e-5 absolute.
FP32_TOL = 1e-5
ORIGINAL_KEY = re.compile(
    r"^(patch_embedding|time_embedding|time_projection|text_embedding|img_emb|head)\.|"
    r"^blocks\.\d+\.(self_attn|cross_attn)\.(q|k|v|o|norm_q|norm_k|k_img|v_img|norm_k_img)\.|"
    r"^blocks\.\d+\.(norm3|ffn\.[02])\.|^blocks\.\d+\.modulation$"
)


def original_config(kind: str) -> dict:
    c = tiny_dit_config(kind)
    d = c["num_attention_heads"] * c["attention_head_dim"]
    model_type = {"t2v": "t2v", "i2v": "i2v", "flf2v": "flf2v", "ti2v": "ti2v", "a14b-i2v": "i2v"}[kind]
    return {
        "_class_name": "WanModel",
        "model_type": model_type,
        "dim": d,
        "ffn_dim": c["ffn_dim"],
        "freq_dim": c["freq_dim"],
        "num_heads": c["num_attention_heads"],
        "num_layers": c["num_layers"],
        "in_dim": c["in_channels"],
        "out_dim": c["out_channels"],
        "text_len": 512,
        "text_dim": c["text_dim"],  # Wan's code fixes 4096; tiny models need the field
        "eps": 1e-6,
    }


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("tiny_wan_loading")
    return {k: save_tiny_wan(base / k, k) for k in ("t2v", "flf2v", "a14b-i2v")}


def sample(cfg: WanDiTConfig, with_image: bool):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, cfg.in_channels, 2, 4, 6, generator=g)
    text = torch.randn(1, 16, TEXT_DIM, generator=g)
    text = torch.cat([text, text.new_zeros(1, 512 - 16, TEXT_DIM)], dim=1)  # padded to 512, as Wan's DiT pads
    img = torch.randn(1, cfg.pos_embed_seq_len or 17, cfg.image_dim, generator=g) if with_image else None
    return x, torch.tensor([640.0]), text, img


def out(model: WanDiT, inputs) -> torch.Tensor:
    with torch.no_grad():
        return model(*inputs)


# --- reading and renaming ---------------------------------------------------------------------------


def test_read_state_dict_formats_agree(tmp_path, folders):
    ref = read_state_dict(folders["t2v"] / "transformer")
    assert ref and all(isinstance(v, torch.Tensor) for v in ref.values())
    keys = sorted(ref)
    half = len(keys) // 2
    shards = tmp_path / "sharded"
    shards.mkdir()
    weight_map = {}
    for i, part in enumerate((keys[:half], keys[half:])):
        name = f"diffusion_pytorch_model-0000{i + 1}-of-00002.safetensors"
        save_file({k: ref[k].contiguous() for k in part}, str(shards / name))
        weight_map.update(dict.fromkeys(part, name))
    index = {"metadata": {}, "weight_map": weight_map}
    (shards / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index))
    torch.save(ref, tmp_path / "model.pth")
    save_file(ref, str(tmp_path / "single.safetensors"))
    for source in (shards, tmp_path / "model.pth", tmp_path / "single.safetensors"):
        got = read_state_dict(source)
        assert got.keys() == ref.keys(), source
        assert all(torch.equal(got[k], ref[k]) for k in ref), source
        assert sorted(checkpoint_keys(source)) == keys, source


def test_cast_while_reading(folders):
    cast = cast_by_name("bf16", "cpu", KEEP_FP32)
    got = read_state_dict(folders["t2v"] / "transformer", cast=cast)
    ref = read_state_dict(folders["t2v"] / "transformer")
    assert got["blocks.0.ffn.net.2.weight"].dtype == torch.bfloat16
    assert got["blocks.0.scale_shift_table"].dtype == torch.float32
    assert got["condition_embedder.time_embedder.linear_2.bias"].dtype == torch.float32
    assert torch.equal(got["blocks.0.ffn.net.2.weight"], ref["blocks.0.ffn.net.2.weight"].bfloat16())


def test_read_state_dict_errors(tmp_path):
    with pytest.raises(ModelNotFoundError, match="not found"):
        read_state_dict(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelNotFoundError, match="no .safetensors"):
        read_state_dict(empty)
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="broken.safetensors"):
        read_state_dict(bad)
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "m.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "m-1.safetensors"}}))
    with pytest.raises(ModelNotFoundError, match="m-1.safetensors"):
        read_state_dict(shards)


def test_rename_keys_applies_table_in_order_and_rejects_collisions():
    sd = {"blocks.0.self_attn.q.weight": torch.zeros(1), "head.head.bias": torch.ones(1)}
    table = ((r"self_attn", "attn1"), (r"attn1\.q", "attn1.to_q"), (r"^head\.head\.", "proj_out."))
    assert set(rename_keys(sd, table)) == {"blocks.0.attn1.to_q.weight", "proj_out.bias"}
    with pytest.raises(CheckpointError, match="both rename to"):
        rename_keys({"a.x": torch.zeros(1), "b.x": torch.zeros(1)}, ((r"^[ab]\.", ""),))


# --- original Wan layout ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["t2v", "flf2v", "a14b-i2v"])
@pytest.mark.parametrize("fmt", ["safetensors", "pth"])
def test_original_layout_loads_to_same_outputs(tmp_path, folders, kind, fmt):
    diffusers_sd = read_state_dict(folders[kind] / "transformer")
    original = rename_keys(diffusers_sd, DIFFUSERS_TO_ORIGINAL)
    assert all(ORIGINAL_KEY.match(k) for k in original), [k for k in original if not ORIGINAL_KEY.match(k)]
    assert detect_layout(original) == "original" and detect_layout(diffusers_sd) == "diffusers"
    assert to_diffusers_keys(original).keys() == diffusers_sd.keys()

    folder = tmp_path / "original"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(original_config(kind)))
    if fmt == "pth":
        torch.save(original, folder / "wan_dit.pth")
    else:
        save_file(original, str(folder / "diffusion_pytorch_model.safetensors"))

    ours = load_transformer(folder, dtype="fp32")
    ref = load_transformer(folders[kind], dtype="fp32")
    assert replace(ours.config, rope_max_seq_len=32) == ref.config  # Wan's config has no RoPE table size
    inputs = sample(ours.config, with_image=ours.config.image_dim is not None)
    assert (out(ours, inputs) - out(ref, inputs)).abs().max().item() <= FP32_TOL


def test_comfy_prefixed_single_file_with_inferred_config(tmp_path, folders):
    sd = rename_keys(read_state_dict(folders["flf2v"] / "transformer"), DIFFUSERS_TO_ORIGINAL)
    save_file(
        {f"model.diffusion_model.{k}": v for k, v in sd.items()}, str(tmp_path / "wan_flf2v.safetensors")
    )
    state = to_diffusers_keys(read_state_dict(tmp_path / "wan_flf2v.safetensors"))
    cfg = infer_config(state, head_dim=16)
    assert replace(cfg, rope_max_seq_len=32) == WanDiTConfig.from_diffusers(tiny_dit_config("flf2v"))
    ours = load_transformer(tmp_path / "wan_flf2v.safetensors", dtype="fp32", config=cfg)
    ref = load_transformer(folders["flf2v"], dtype="fp32")
    inputs = sample(cfg, with_image=True)
    assert (out(ours, inputs) - out(ref, inputs)).abs().max().item() <= FP32_TOL


def test_original_a14b_pair_layout(tmp_path, folders):
    sd = rename_keys(read_state_dict(folders["a14b-i2v"] / "transformer"), DIFFUSERS_TO_ORIGINAL)
    sd2 = {k: v + 0.01 for k, v in sd.items()}
    for sub, state in (("high_noise_model", sd), ("low_noise_model", sd2)):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "config.json").write_text(json.dumps(original_config("a14b-i2v")))
        save_file(state, str(tmp_path / sub / "diffusion_pytorch_model.safetensors"))
    high, low = load_transformer_pair(tmp_path, dtype="fp32")
    assert low is not None and high.config.in_channels == 36 and high.config.image_dim is None
    assert torch.equal(high.proj_out.weight, sd["head.head.weight"])
    assert torch.equal(low.proj_out.weight, sd2["head.head.weight"])


# --- loading errors and dtypes ------------------------------------------------------------------------


def test_missing_key_is_named(folders):
    sd = read_state_dict(folders["t2v"] / "transformer")
    cfg = WanDiTConfig.from_diffusers(tiny_dit_config("t2v"))
    del sd["blocks.1.attn2.to_k.weight"]
    with pytest.raises(CheckpointError, match=r"missing keys for WanDiT: blocks\.1\.attn2\.to_k\.weight"):
        load_module(WanDiT, cfg, sd, dtype="fp32", source="ckpt.safetensors")


def test_unexpected_key_and_wrong_shape_are_named(folders):
    sd = read_state_dict(folders["t2v"] / "transformer")
    cfg = WanDiTConfig.from_diffusers(tiny_dit_config("t2v"))
    with pytest.raises(CheckpointError, match="unexpected keys for WanDiT: blocks.9.extra"):
        load_module(WanDiT, cfg, {**sd, "blocks.9.extra": torch.zeros(1)}, dtype="fp32")
    sd["proj_out.weight"] = torch.zeros(3, 32)
    with pytest.raises(CheckpointError, match=r"proj_out\.weight: checkpoint shape \(3, 32\) does not match"):
        load_module(WanDiT, cfg, sd, dtype="fp32", source="x.safetensors")
    try:
        load_module(WanDiT, cfg, sd, dtype="fp32", source="x.safetensors")
    except CheckpointError as exc:
        assert exc.file == "x.safetensors" and str(exc).startswith("x.safetensors: ")


def test_wrong_config_for_checkpoint_names_the_key(tmp_path, folders):
    cfg = WanDiTConfig.from_diffusers({**tiny_dit_config("t2v"), "ffn_dim": 48})
    with pytest.raises(CheckpointError, match=r"ffn\.net\.0\.proj\.weight: checkpoint shape \(64, 32\)"):
        load_transformer(folders["t2v"], dtype="fp32", config=cfg)


@pytest.mark.parametrize("dtype,torch_dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_half_dtypes_keep_reference_fp32_parts(folders, dtype, torch_dtype):
    model = load_transformer(folders["flf2v"], dtype=dtype)
    kinds = {name: p.dtype for name, p in model.named_parameters()}
    assert kinds["blocks.0.attn1.to_q.weight"] == torch_dtype
    assert kinds["condition_embedder.time_proj.weight"] == torch_dtype
    for kept in (
        "blocks.0.scale_shift_table",
        "scale_shift_table",
        "condition_embedder.time_embedder.linear_1.weight",
        "blocks.1.norm2.weight",
        "condition_embedder.image_embedder.norm1.weight",
    ):
        assert kinds[kept] == torch.float32, kept
    assert not any(n for n, p in model.named_parameters() if p.is_meta)
    ref = load_transformer(folders["flf2v"], dtype="fp32")
    inputs = sample(model.config, with_image=True)
    got, want = out(model, inputs), out(ref, inputs)
    assert got.dtype == torch_dtype
    # half precision weights/activations: within 3% of the output's magnitude of the fp32 result
    assert (got.float() - want).abs().max().item() <= 0.03 * want.abs().max().item()


def test_parse_dtype():
    assert parse_dtype("bf16") is torch.bfloat16 and parse_dtype("torch.float16") is torch.float16
    with pytest.raises(InputError, match='unknown dtype "int8"'):
        parse_dtype("int8")


# --- configs and the registry -------------------------------------------------------------------------


def test_config_roundtrip_and_original(folders):
    raw = json.loads((folders["flf2v"] / "transformer" / "config.json").read_text())
    cfg = WanDiTConfig.from_diffusers(raw)  # ignores _class_name / _diffusers_version
    assert cfg.patch_size == (1, 2, 2) and cfg.pos_embed_seq_len == 34 and cfg.inner_dim == 32
    assert WanDiTConfig.from_diffusers(cfg.to_diffusers()) == cfg
    orig = WanDiTConfig.from_original(
        {"dim": 5120, "num_heads": 40, "in_dim": 36, "out_dim": 16, "ffn_dim": 13824, "num_layers": 40},
        image_dim=1280,
    )
    assert orig == get_variant("wan2.1-i2v-14b-480p").dit
    with pytest.raises(InputError, match="lacks 'ffn_dim'"):
        WanDiTConfig.from_original({"dim": 64, "num_heads": 2, "in_dim": 16, "out_dim": 16, "num_layers": 1})


def test_registry_names_and_errors():
    assert set(VARIANTS) == {
        "wan2.1-t2v-1.3b",
        "wan2.1-t2v-14b",
        "wan2.1-i2v-14b-480p",
        "wan2.1-i2v-14b-720p",
        "wan2.1-flf2v-14b-720p",
        "wan2.2-ti2v-5b",
        "wan2.2-t2v-a14b",
        "wan2.2-i2v-a14b",
        "wan2.1-vace-1.3b",
        "wan2.1-vace-14b",
        "wan2.2-vace-fun-a14b",
    }
    assert get_variant("WAN2.1-T2V-1.3B").name == "wan2.1-t2v-1.3b"
    assert get_variant("Wan-AI/Wan2.1-FLF2V-14B-720P-diffusers").name == "wan2.1-flf2v-14b-720p"
    assert (
        get_variant("Wan-AI/Wan2.2-I2V-A14B").name == "wan2.2-i2v-a14b"
    )  # the original (non-diffusers) repo
    with pytest.raises(InputError, match='did you mean "wan2.2-ti2v-5b"') as err:
        get_variant("wan2.2-ti2v-5")
    assert err.value.field == "model"


def test_registry_defaults_follow_wan():
    for v in VARIANTS.values():
        # alibaba-pai's VACE-Fun A14B is in diffusers' layout only as a diffusers maintainer's conversion
        assert v.repo_id.startswith("Wan-AI/") or v.name == "wan2.2-vace-fun-a14b"
        assert (v.num_frames - 1) % 4 == 0 and v.num_frames <= v.max_frames
        assert all(w % v.size_multiple == 0 and h % v.size_multiple == 0 for w, h in v.sizes)
        assert v.two_experts == (v.guidance_scale_2 is not None)
        assert v.needs_image_encoder == (v.dit.image_dim is not None)
    t2v_a14b, i2v_a14b, ti2v = (
        get_variant(n) for n in ("wan2.2-t2v-a14b", "wan2.2-i2v-a14b", "wan2.2-ti2v-5b")
    )
    assert (t2v_a14b.boundary_ratio, t2v_a14b.shift, t2v_a14b.guidance_scale, t2v_a14b.guidance_scale_2) == (
        0.875,
        12.0,
        4.0,
        3.0,
    )
    assert (i2v_a14b.boundary_ratio, i2v_a14b.fps, i2v_a14b.dit.in_channels) == (0.9, 16, 36)
    assert (ti2v.fps, ti2v.num_frames, ti2v.size_multiple, ti2v.vae, ti2v.default_size) == (
        24,
        121,
        32,
        "2.2",
        (1280, 704),
    )
    assert ti2v.conditionings == ("t2v", "i2v") and ti2v.expand_timesteps
    assert get_variant("wan2.1-flf2v-14b-720p").dit.pos_embed_seq_len == 514
    assert get_variant("wan2.1-i2v-14b-480p").default_size == (832, 480)


def test_param_counts_match_diffusers_models():
    from diffusers import WanTransformer3DModel

    for name in ("wan2.1-t2v-1.3b", "wan2.1-flf2v-14b-720p", "wan2.2-ti2v-5b"):
        v = get_variant(name)
        with torch.device("meta"):
            ref = WanTransformer3DModel(**v.dit.to_diffusers())
            ours = WanDiT(v.dit)
        n = sum(p.numel() for p in ref.parameters())
        assert v.dit_params == n == sum(p.numel() for p in ours.parameters())
    assert round(get_variant("wan2.1-t2v-1.3b").dit_params / 1e9, 2) == 1.42
    assert round(get_variant("wan2.2-ti2v-5b").dit_params / 1e9, 2) == 5.0


def test_keep_fp32_names_match_diffusers():
    from diffusers import WanTransformer3DModel

    assert set(KEEP_FP32) == set(WanTransformer3DModel._keep_in_fp32_modules) - {
        "rope"
    }  # our RoPE has no weights
