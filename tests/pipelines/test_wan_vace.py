"""VACE parity with diffusers' WanVACEPipeline on tiny random models (CPU, float32): video extension with a
mask, reference images (letterboxed, prepended as latent frames, dropped from the output), control videos,
per-layer conditioning scales, an A14B-style pair of VACE experts.

Tolerance: frames within 1/255 (conftest.FRAME_TOL); both sides get the same latents, embeddings, schedule.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_frames_close, random_image
from diffusers import WanVACEPipeline as DiffusersVACE
from PIL import Image

import yingxi
from yingxi.errors import InputError
from yingxi.pipelines.wan.common import WAN_BLOCK_LISTS
from yingxi.pipelines.wan.vace import WanVACEPipeline, fold_mask

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models" / "wan"))
from tiny_vace import save_tiny_vace  # noqa: E402

W, H, F = 48, 32, 9  # 3 latent frames of 4 x 6


@pytest.fixture(scope="module")
def vace(tmp_path_factory):
    folder = save_tiny_vace(tmp_path_factory.mktemp("tiny-vace") / "vace")
    return yingxi.load_pipeline(folder, schedule="diffusers"), DiffusersVACE.from_pretrained(folder)


def embeds(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 512, 32, generator=g), torch.randn(1, 512, 32, generator=g)


def latents(refs: int, seed: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 16, (F - 1) // 4 + 1 + refs, H // 8, W // 8, generator=g)


def video(seed: int = 3) -> np.ndarray:
    return np.stack([random_image(W, H, seed + i) for i in range(F)])  # (F, H, W, 3)


def pil(frames) -> list[Image.Image]:
    return [Image.fromarray(f if f.ndim == 3 else np.repeat(f[..., None], 3, axis=-1)) for f in frames]


def run_both(pipes, *, refs=(), source=None, mask=None, scale=1.0, steps=3, **extra):
    ours, ref = pipes
    pe, ne = embeds()
    common = dict(width=W, height=H, num_frames=F, num_inference_steps=steps, guidance_scale=5.0,
                  latents=latents(len(refs)), prompt_embeds=pe, negative_prompt_embeds=ne)  # fmt: skip
    frames = ours(video=source, mask=mask, reference_images=list(refs), conditioning_scale=scale, shift=3.0,
                  **common, **extra)  # fmt: skip
    theirs = ref(
        video=pil(source) if source is not None else None,
        mask=pil(mask) if mask is not None else None,
        reference_images=[Image.fromarray(r) for r in refs] or None,
        conditioning_scale=scale,
        output_type="np",
        **common,
        **extra,
    ).frames[0]
    return frames, theirs


def test_extension_with_a_mask_and_a_reference_matches_diffusers(vace):
    source = video()
    mask = np.full((F, H, W), 255, np.uint8)
    mask[:3] = 0  # keep the first three frames, make the rest
    face = random_image(24, 40, seed=9)  # another aspect ratio: letterboxed on white
    frames, theirs = run_both(vace, refs=[face], source=source, mask=mask, scale=0.7)
    assert frames.shape == (F, H, W, 3)  # the reference frame is not in the output
    assert_frames_close(frames, theirs)


def test_control_video_two_references_and_per_layer_scales_match_diffusers(vace):
    refs = [random_image(W, H, seed=11), random_image(16, 16, seed=12)]
    frames, theirs = run_both(vace, refs=refs, source=video(seed=20), scale=[0.5, 1.5])
    assert_frames_close(frames, theirs)


def test_reference_to_video_from_a_prompt_matches_diffusers(vace):
    ours, ref = vace
    face = random_image(32, 32, seed=5)
    common = dict(
        width=W, height=H, num_frames=F, num_inference_steps=2, guidance_scale=4.0, latents=latents(1)
    )
    prompt = "a red bird flies over green hills"
    frames = ours(prompt=prompt, negative_prompt="blurry", reference_images=[face], shift=3.0, **common)
    theirs = ref(prompt=prompt, negative_prompt="blurry", reference_images=[Image.fromarray(face)],
                 output_type="np", **common).frames[0]  # fmt: skip
    assert_frames_close(frames, theirs)
    plain = ours(prompt=prompt, negative_prompt="blurry", shift=3.0, **(common | {"latents": latents(0)}))
    assert np.abs(plain.astype(int) - frames.astype(int)).mean() > 1  # the reference changes the clip


def test_seed_reproduces_and_progress_is_per_step(vace):
    ours, _ = vace
    pe, ne = embeds()
    steps = []
    args = dict(prompt_embeds=pe, negative_prompt_embeds=ne, width=W, height=H, num_frames=F,
                num_inference_steps=2, reference_images=[random_image(W, H, 1)])  # fmt: skip
    a = ours(seed=4, progress=lambda i, n: steps.append(i), **args)
    b = ours(seed=4, **args)
    assert np.array_equal(a, b) and steps == [1, 2]


def test_bad_inputs_are_input_errors_before_any_work(vace):
    ours, _ = vace
    pe, ne = embeds()
    args = dict(
        prompt_embeds=pe, negative_prompt_embeds=ne, width=W, height=H, num_frames=F, num_inference_steps=1
    )
    cases = [
        (dict(mask=np.zeros((F, H, W), np.uint8)), "mask"),
        (dict(video=video()[:5]), "video"),
        (dict(video=video(), mask=np.zeros((F, 8, 8), np.uint8)), "mask"),
        (dict(video=video()[:, :16]), "video"),
        (dict(video=video(), mask="all of it"), "mask"),
        (dict(video=video(), mask=[np.zeros((H, W)), np.zeros((8, 8))]), "mask"),
        (dict(conditioning_scale=[1.0, 1.0, 1.0]), "conditioning_scale"),
        (dict(image=random_image(W, H, 0)), "image"),
        (dict(reference_images=[np.zeros((8, 8), np.float32)]), "reference_images"),
    ]
    for kwargs, field in cases:
        with pytest.raises(InputError) as err:
            ours(**args, **kwargs)
        assert err.value.field == field, kwargs


def test_mask_folds_8x8_pixels_into_channels_per_latent_cell():
    mask = torch.zeros(1, 1, F, H, W)
    mask[:, :, :, 8:16, 0:8] = 1  # one latent cell (row 1, column 0) to make, in every frame
    mask[:, :, :, 0, 9] = 1  # one pixel of cell (0, 1): channel 0*8 + 1
    folded = fold_mask(mask, temporal=4, spatial=8, patch=2)
    assert folded.shape == (1, 64, 3, 4, 6)
    assert folded[0, :, :, 1, 0].eq(1).all() and folded[0, :, :, 0, 0].eq(0).all()
    assert folded[0, 1, :, 0, 1].eq(1).all() and folded[0, 0, :, 0, 1].eq(0).all()


def test_a_pair_of_vace_experts_matches_diffusers(tmp_path):
    folder = save_tiny_vace(tmp_path / "vace-a14b", two_experts=True)
    ours = yingxi.load_pipeline(folder, schedule="diffusers")
    assert isinstance(ours, WanVACEPipeline) and ours.components.transformer_2 is not None
    assert ours.variant.boundary_ratio == 0.875
    mask = np.full((F, H, W), 255, np.uint8)
    mask[-1] = 0  # the last frame pinned
    frames, theirs = run_both((ours, DiffusersVACE.from_pretrained(folder)), source=video(seed=30), mask=mask,
                              steps=2, guidance_scale_2=3.0)  # fmt: skip
    assert_frames_close(frames, theirs)


def test_blocks_offload_streams_the_context_blocks_too(vace, monkeypatch):
    from yingxi.pipelines import offload
    from yingxi.pipelines.offload import Placement

    copied = []

    def fake_copy(t, device):  # a "device copy" on the CPU: a fresh tensor, counted
        copied.append(t.data_ptr())
        return t.clone()

    monkeypatch.setattr(offload, "_to_device", fake_copy)
    dit = copy.deepcopy(vace[0].components.transformer)  # the hooks stay on this copy
    g = torch.Generator().manual_seed(0)
    x, control, text = (
        torch.randn(1, 16, 3, 4, 6, generator=g),
        torch.randn(1, 96, 3, 4, 6, generator=g),
        embeds()[0],
    )
    t = torch.tensor([500.0])
    with torch.no_grad():
        expected = dit(x, t, text, control_hidden_states=control)
        placement = Placement({"transformer": dit}, torch.device("cpu"), order=["transformer"],
                              streamed=["transformer"], block_lists=WAN_BLOCK_LISTS, offload="blocks",
                              force=True)  # fmt: skip
        with placement.use("transformer") as model:
            got = model(x, t, text, control_hidden_states=control)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    streamed = sum(
        len(list(b.parameters())) + len(list(b.buffers())) for b in [*dit.blocks, *dit.vace_blocks]
    )
    assert len(copied) == streamed  # every main and context block's tensors came in for its forward only


def test_keep_given_ends_the_wholly_kept_latent_frames_as_the_given_frames(vace):
    from yingxi.pipelines.wan.common import video_to_uint8

    ours, _ = vace
    source = video(seed=40)
    mask = np.full((F, H, W), 255, np.uint8)
    mask[:5] = 0  # frames 0..4: latent frames 0 and 1 wholly kept
    mask[6] = 0  # one frame of latent frame 2 (frames 5..8): not wholly kept, so it is sampled
    pe, ne = embeds()
    args = dict(prompt_embeds=pe, negative_prompt_embeds=ne, width=W, height=H, num_frames=F,
                num_inference_steps=2, video=source, mask=mask, latents=latents(0))  # fmt: skip
    held = ours(keep_given=True, **args)
    free = ours(**args)
    vae = ours.components.vae
    x = torch.from_numpy(source[:5].astype(np.float32) / 255.0).permute(3, 0, 1, 2)[None] * 2 - 1
    with torch.no_grad():
        trip = video_to_uint8(vae.decode(vae.encode(x)))  # (5, H, W, 3) the VAE round trip
    assert np.abs(held[:5].astype(int) - trip.astype(int)).max() <= 2
    assert np.abs(free[:5].astype(int) - trip.astype(int)).max() > 20  # diffusers' way: sampled like the rest


def test_step_caches_run_through_the_vace_blocks_seam(vace):
    ours, _ = vace
    pe, ne = embeds()
    args = dict(prompt_embeds=pe, negative_prompt_embeds=ne, width=W, height=H, num_frames=F,
                num_inference_steps=3, seed=2, reference_images=[random_image(W, H, 3)])  # fmt: skip
    plain = ours(**args)
    # First-block cache with a threshold nothing passes: block 0 runs apart from the rest (run_blocks twice,
    # the hints made once), so the frames are those of the plain stack exactly
    same = ours(cache="fbcache:1e-9", **args)
    assert np.array_equal(same, plain) and ours.last_usage["skipped"] == 0
    skipping = ours(cache="fbcache:0.5", **args)
    assert ours.last_usage["skipped"] > 0 and skipping.shape == plain.shape
