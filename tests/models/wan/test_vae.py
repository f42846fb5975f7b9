"""Wan 2.1 / 2.2 VAE: parity with diffusers `AutoencoderKLWan` on tiny random weights, loading from the
diffusers and the original Wan layouts, the latent normalisation the Wan pipelines use, and tiling.

Tolerances (CPU, float32): encode runs the same operations in the same order as diffusers, so it matches to
1e-5; decode likewise (observed ~4e-6 after the clamp); tiled encode/decode match diffusers' tiled passes to
1e-5. Stitching is checked exactly on tiles cut from one known tensor.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKLWan
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

from yingxi.errors import InputError, ModelNotFoundError
from yingxi.models.loading import CheckpointError
from yingxi.models.wan.vae import WAN21_VAE, WAN22_VAE, VAETiling, WanVAE, WanVAEConfig, _blend_tiles
from yingxi.models.wan.vae_loading import load_vae, original_rename_table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny import tiny_vae  # noqa: E402

TOL = 1e-5  # max abs error vs diffusers, float32 on CPU

TINY21 = dict(
    base_dim=8,
    z_dim=4,
    dim_mult=[1, 2, 2, 2],  # channel changes exercise conv_shortcut and the 2.1 channel-halving upsamplers
    num_res_blocks=1,
    temperal_downsample=[False, True, True],
    latents_mean=[0.1, -0.2, 0.3, 0.05],
    latents_std=[0.5, 1.5, 2.0, 1.2],
)
TINY22 = dict(
    base_dim=8,
    decoder_base_dim=12,  # the real 2.2 decoder is wider than its encoder (256 vs 160)
    z_dim=8,
    dim_mult=[1, 2, 2, 2],
    num_res_blocks=1,
    temperal_downsample=[False, True, True],
    is_residual=True,
    in_channels=12,
    out_channels=12,
    patch_size=2,
    scale_factor_spatial=16,
    latents_mean=[0.1 * i - 0.3 for i in range(8)],
    latents_std=[0.6 + 0.15 * i for i in range(8)],
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Many small convolutions: on a shared, oversubscribed CPU one thread is ~7x faster than two.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _reference(config: dict, seed: int) -> AutoencoderKLWan:
    """diffusers' VAE with every parameter moved off its init (RMS gammas off 1), so a misnamed key shows."""
    torch.manual_seed(seed)
    ref = AutoencoderKLWan(**config).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return ref


@pytest.fixture(scope="module")
def pair21(tmp_path_factory):
    ref = _reference(TINY21, seed=0)
    folder = tmp_path_factory.mktemp("vae21")
    ref.save_pretrained(folder)
    return ref, load_vae(folder), folder


@pytest.fixture(scope="module")
def pair22(tmp_path_factory):
    ref = _reference(TINY22, seed=1)
    folder = tmp_path_factory.mktemp("vae22")
    ref.save_pretrained(folder)
    return ref, load_vae(folder), folder


def _video(b: int, f: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, f, h, w, generator=g) * 2 - 1


def _stats(ref: AutoencoderKLWan) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, 1/std) shaped (1, z, 1, 1, 1), exactly as WanPipeline / WanImageToVideoPipeline build them."""
    z = ref.config.z_dim
    mean = torch.tensor(ref.config.latents_mean).view(1, z, 1, 1, 1)
    inv_std = 1.0 / torch.tensor(ref.config.latents_std).view(1, z, 1, 1, 1)
    return mean, inv_std


def _check_parity(ref: AutoencoderKLWan, vae: WanVAE, video: torch.Tensor, tiling: VAETiling | None = None):
    if tiling is not None:
        ref.enable_tiling(**vars(tiling))
    else:
        ref.disable_tiling()
    mean, inv_std = _stats(ref)
    with torch.no_grad():
        # encode: WanImageToVideoPipeline.prepare_latents: (mode - mean) * (1 / std)
        expected = (ref.encode(video).latent_dist.mode() - mean) * inv_std
        latents = vae.encode(video, tiling=tiling)
        assert latents.shape == expected.shape
        assert (latents - expected).abs().max().item() <= TOL
        # decode: WanPipeline: latents / (1 / std) + mean, then vae.decode
        expected_video = ref.decode(latents / inv_std + mean).sample
        decoded = vae.decode(latents, tiling=tiling)
    assert decoded.shape == video.shape
    assert (decoded - expected_video).abs().max().item() <= TOL
    assert decoded.abs().max().item() <= 1.0  # clamped
    assert expected_video.std().item() > 0.05  # a real signal, not a constant
    return latents, decoded


def test_wan21_encode_decode_match_diffusers(pair21):
    ref, vae, _ = pair21
    latents, _ = _check_parity(ref, vae, _video(1, 9, 32, 48))
    assert latents.shape == (1, 4, 3, 4, 6)  # 4x8x8 compression, 1 + 8/4 latent frames


def test_wan22_encode_decode_match_diffusers(pair22):
    ref, vae, _ = pair22
    latents, _ = _check_parity(ref, vae, _video(2, 9, 32, 64, seed=1))  # batch of 2 in one pass
    assert latents.shape == (2, 8, 3, 2, 4)  # 4x16x16 compression
    assert (2, *vae.config.latent_shape(9, 32, 64)) == latents.shape


def test_encode_with_generator_samples_like_diffusers(pair21):
    ref, vae, _ = pair21
    video = _video(1, 5, 16, 16, seed=2)
    mean, inv_std = _stats(ref)
    with torch.no_grad():
        moments = ref._encode(video)
        expected = (
            DiagonalGaussianDistribution(moments).sample(torch.Generator().manual_seed(3)) - mean
        ) * inv_std
        got = vae.encode(video, generator=torch.Generator().manual_seed(3))
        mode = vae.encode(video)
    assert (got - expected).abs().max().item() <= TOL
    assert (got - mode).abs().max().item() > 1e-3  # the sample is not the mean


def test_normalisation_round_trip(pair22):
    _, vae, _ = pair22
    z = torch.randn(1, 8, 2, 3, 3)
    latents = vae.normalize(z)
    mean = torch.tensor(TINY22["latents_mean"]).view(1, -1, 1, 1, 1)
    std = torch.tensor(TINY22["latents_std"]).view(1, -1, 1, 1, 1)
    assert torch.allclose(latents, (z - mean) / std, atol=1e-6)
    assert torch.allclose(vae.denormalize(latents), z, atol=1e-6)


@pytest.mark.parametrize("which", ["2.1", "2.2"])
def test_tiled_encode_decode_match_diffusers_tiled(which, pair21, pair22):
    ref, vae, _ = pair21 if which == "2.1" else pair22
    if which == "2.1":  # 48x40 video, latent 6x5: tiles of 3 latents, stride 2 -> a 3x3 grid, ragged edges
        video, tiling = _video(1, 5, 40, 48, seed=4), VAETiling(24, 24, 16, 16)
    else:  # 64x64 video, patchified 32x32: encoder tiles of 32/16 patchified px, decoder tiles of 2 latents
        video, tiling = _video(1, 5, 64, 64, seed=5), VAETiling(32, 32, 16, 16)
    tiled, _ = _check_parity(ref, vae, video, tiling)
    with torch.no_grad():
        untiled = vae.encode(video)
        # a tile as large as the video means no tiling at all: identical to the untiled pass
        big = VAETiling(64, 64, 48, 48)
        assert torch.equal(vae.encode(video, tiling=big), untiled)
        assert torch.equal(vae.decode(untiled, tiling=big), vae.decode(untiled))
    # The tiled pass really ran: with random weights (and the mid block's attention spanning a whole frame)
    # tiles see less context, so tiled and untiled latents differ; with trained weights they are close.
    assert tiled.shape == untiled.shape and not torch.allclose(tiled, untiled, atol=1e-3)


def test_blend_tiles_reassembles_one_tensor_exactly():
    # Tiles cut from one tensor with overlaps: every blend mixes equal values, so stitching must give it back.
    full = torch.randn(1, 2, 3, 37, 29)
    tile, stride = 12, 8
    tiles = [
        [full[:, :, :, i : i + tile, j : j + tile].clone() for j in range(0, 29, stride)]
        for i in range(0, 37, stride)
    ]
    out = _blend_tiles(tiles, tile - stride, tile - stride, stride, stride, 37, 29)
    assert torch.allclose(out, full, atol=1e-6)
    # and with different overlapping content the seam is a linear ramp from the upper to the lower tile
    a, b = torch.zeros(1, 1, 1, 8, 4), torch.ones(1, 1, 1, 8, 4)
    out = _blend_tiles([[a], [b]], 4, 0, 4, 4, 8, 4)
    assert out[0, 0, 0, 4:, 0].tolist() == [0.0, 0.25, 0.5, 0.75]


# ---- original Wan layout --------------------------------------------------------------------------------
_INTERNALS = {"norm1": "residual.0", "conv1": "residual.2", "norm2": "residual.3", "conv2": "residual.6"}


def _to_original(key: str, config: WanVAEConfig) -> str:
    """Our (diffusers) key -> the original Wan module path: written from Wan's vae.py / vae2_2.py structure,
    independently of the rename table under test."""
    n = config.num_res_blocks
    top = {"quant_conv": "conv1", "post_quant_conv": "conv2"}
    parts = key.split(".")
    if parts[0] in top:
        return ".".join([top[parts[0]], *parts[1:]])
    side, rest = parts[0], parts[1:]
    head = {"conv_in": ["conv1"], "norm_out": ["head", "0"], "conv_out": ["head", "2"]}
    if rest[0] in head:
        return ".".join([side, *head[rest[0]], *rest[1:]])
    if rest[0] == "mid_block":
        index = {("resnets", "0"): "0", ("attentions", "0"): "1", ("resnets", "1"): "2"}[(rest[1], rest[2])]
        path, rest = ["middle", index], rest[3:]
    elif config.is_residual:
        stage, kind = rest[1], rest[2]
        inner = "downsamples" if side == "encoder" else "upsamples"
        if kind in ("downsampler", "upsampler"):  # the resampler ends the stage's list
            path, rest = [inner, stage, inner, str(n if side == "encoder" else n + 1)], rest[3:]
        else:
            path, rest = [inner, stage, inner, rest[3]], rest[4:]
    elif side == "encoder":  # 2.1 encoder: flat in both layouts
        path, rest = ["downsamples", rest[1]], rest[2:]
    else:  # 2.1 decoder: flat list, per stage n + 1 residual blocks then the upsampler
        stage = int(rest[1])
        j = n + 1 if rest[2] == "upsamplers" else int(rest[3])
        path, rest = ["upsamples", str(stage * (n + 2) + j)], rest[4:]
    if rest[0] in _INTERNALS:
        rest = [*_INTERNALS[rest[0]].split("."), *rest[1:]]
    elif rest[0] == "conv_shortcut":
        rest = ["shortcut", *rest[1:]]
    return ".".join([side, *path, *rest])


@pytest.mark.parametrize("which", ["2.1", "2.2"])
def test_original_layout_checkpoint_loads_to_same_outputs(which, pair21, pair22, tmp_path):
    ref, vae, _ = pair21 if which == "2.1" else pair22
    config = vae.config
    original = {_to_original(k, config): v for k, v in ref.state_dict().items()}
    assert len(original) == len(ref.state_dict())
    if which == "2.1":
        assert "decoder.upsamples.2.resample.1.weight" in original  # stage 0: blocks 0, 1, upsampler 2
        assert "decoder.upsamples.5.time_conv.weight" in original
    else:
        assert "encoder.downsamples.1.downsamples.1.time_conv.weight" in original
        assert "decoder.upsamples.0.upsamples.2.resample.1.weight" in original
    path = tmp_path / f"Wan{which}_VAE.pth"
    torch.save(original, path)
    loaded = load_vae(path, config=config)
    video = _video(1, 5, 32, 32, seed=6)
    with torch.no_grad():
        assert torch.equal(loaded.encode(video), vae.encode(video))
        latents = vae.encode(video)
        assert torch.equal(loaded.decode(latents), vae.decode(latents))


def test_original_model_root_finds_the_pth_beside_the_transformer_config(pair21, tmp_path):
    # An original Wan root (Wan-AI/Wan2.1-T2V-1.3B): the transformer's config.json and weights next to
    # Wan2.1_VAE.pth. The transformer's config must not be taken for the VAE's.
    ref, vae, _ = pair21
    (tmp_path / "config.json").write_text('{"_class_name": "WanModel", "model_type": "t2v", "dim": 32}')
    torch.save({"patch_embedding.weight": torch.zeros(1)}, tmp_path / "diffusion_pytorch_model.pth")
    torch.save(
        {_to_original(k, vae.config): v for k, v in ref.state_dict().items()}, tmp_path / "Wan2.1_VAE.pth"
    )
    loaded = load_vae(tmp_path, config=vae.config)
    video = _video(1, 5, 32, 32, seed=8)
    with torch.no_grad():
        assert torch.equal(loaded.encode(video), vae.encode(video))


def test_rename_table_agrees_with_diffusers_converter():
    # diffusers' single-file converter hard-codes the real 2.1 layout (2 residual blocks, 4 stages): check
    # our table against it on every key of a narrow model with that layout.
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    config = WanVAEConfig(base_dim=4, z_dim=4, latents_mean=(0.0,) * 4, latents_std=(1.0,) * 4)
    with torch.device("meta"):
        keys = list(WanVAE(config).state_dict())
    original = {_to_original(k, config): torch.zeros(1) for k in keys}
    from yingxi.models.loading import rename_keys

    ours = set(rename_keys(original, original_rename_table(config)))
    assert ours == set(convert_wan_vae_to_diffusers(original)) == set(keys)


def test_presets_match_diffusers_configs():
    with torch.device("meta"):  # the full-size default model, without allocating it
        default = AutoencoderKLWan()
    assert WAN21_VAE == WanVAEConfig.from_diffusers(dict(default.config))
    assert WAN22_VAE.z_dim == 48 and WAN22_VAE.patch_size == 2 and WAN22_VAE.decoder_base_dim == 256
    # diffusers' config.json bookkeeping keys are ignored, lists become tuples
    cfg = WanVAEConfig.from_diffusers({"_class_name": "AutoencoderKLWan", **TINY22, "clip_output": False})
    assert cfg.dim_mult == (1, 2, 2, 2) and cfg.is_residual
    with pytest.raises(InputError, match="latents_mean"):
        WanVAEConfig(z_dim=8)  # 16 default statistics for 8 channels


def test_load_from_pipeline_folder_and_kind_inference(tmp_path):
    # A diffusers pipeline folder (vae/ below it) from the shared tiny checkpoints.
    ref = tiny_vae("ti2v")
    ref.save_pretrained(tmp_path / "vae")
    vae = load_vae(tmp_path, kind="2.2")
    assert vae.config.z_dim == 48 and vae.config.is_residual
    assert vae.latents_mean.flatten().tolist() == pytest.approx(ref.config.latents_mean)
    with torch.no_grad():
        video = _video(1, 1, 32, 32, seed=7)  # a single image: one latent frame
        expected = (ref.encode(video).latent_dist.mode() - _stats(ref)[0]) * _stats(ref)[1]
        assert (vae.encode(video) - expected).abs().max().item() <= TOL
    with pytest.raises(InputError, match="kind 2.1"):
        load_vae(tmp_path, kind="2.1")


def test_bad_inputs_raise_located_errors(pair21, tmp_path):
    _, vae, folder = pair21
    with pytest.raises(InputError, match=re.escape("4k+1 frames")):
        vae.encode(_video(1, 6, 32, 32))
    with pytest.raises(InputError, match="divisible by 8"):
        vae.encode(_video(1, 5, 30, 32))
    with pytest.raises(InputError, match="latents"):
        vae.decode(torch.zeros(1, 3, 2, 4, 4))
    with pytest.raises(InputError, match="vae tiling width"):
        VAETiling(32, 32, 16, 40)
    with pytest.raises(InputError, match="at least 8 pixels"):
        vae.decode(torch.zeros(1, 4, 1, 4, 4), tiling=VAETiling(8, 8, 4, 4))
    with pytest.raises(ModelNotFoundError):
        load_vae(tmp_path / "missing")
    with pytest.raises(ModelNotFoundError, match="Wan2.1_VAE.pth"):
        load_vae(tmp_path)
    with pytest.raises(InputError, match="unknown Wan VAE kind"):
        load_vae(folder, kind="3.0")  # type: ignore[arg-type]
    wrong = {k: v for k, v in vae.state_dict().items() if "decoder" not in k}
    torch.save(wrong, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match="missing keys"):
        load_vae(tmp_path / "partial.pth", config=vae.config)
