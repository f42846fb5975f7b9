"""Text-to-video parity with diffusers' WanPipeline on tiny random models (CPU, float32).

Tolerance: frames within 1/255 (see conftest.FRAME_TOL); both sides run the same schedule, the same
latents and the same prompt embeddings, 3 UniPC steps.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from conftest import assert_frames_close, random_latents
from diffusers import WanPipeline as DiffusersWanPipeline

import yingxi
from yingxi.errors import CapabilityError, InputError
from yingxi.pipelines.wan import WanPipeline, load_pipeline

W, H, F, STEPS = 32, 32, 5, 3


@pytest.fixture(scope="module")
def t2v(tiny_wan):
    folder = tiny_wan("t2v")
    return yingxi.load_pipeline(folder, schedule="diffusers"), DiffusersWanPipeline.from_pretrained(folder)


def test_t2v_from_embeddings_matches_diffusers(t2v):
    ours, ref = t2v
    g = torch.Generator().manual_seed(1)
    pe, ne = torch.randn(1, 512, 32, generator=g), torch.randn(1, 512, 32, generator=g)
    latents = random_latents("t2v", W, H, F)
    common = dict(
        width=W, height=H, num_frames=F, num_inference_steps=STEPS, guidance_scale=5.0, latents=latents
    )
    steps = []
    frames = ours(
        prompt_embeds=pe,
        negative_prompt_embeds=ne,
        shift=3.0,
        progress=lambda i, n: steps.append((i, n)),
        **common,
    )
    theirs = ref(prompt_embeds=pe, negative_prompt_embeds=ne, output_type="np", **common).frames[0]
    assert frames.shape == (F, H, W, 3)
    assert_frames_close(frames, theirs)
    assert steps == [(1, STEPS), (2, STEPS), (3, STEPS)]


def test_t2v_from_prompt_matches_diffusers_and_seed_is_reproducible(t2v):
    ours, ref = t2v
    latents = random_latents("t2v", W, H, F, seed=3)
    common = dict(width=W, height=H, num_frames=F, num_inference_steps=2, guidance_scale=4.0)
    prompt, negative = "a red bird flies over green hills", "blurry, static"
    frames = ours(prompt=prompt, negative_prompt=negative, latents=latents, shift=3.0, **common)
    theirs = ref(prompt=prompt, negative_prompt=negative, latents=latents, output_type="np", **common).frames[
        0
    ]
    assert_frames_close(frames, theirs)
    a = ours(prompt=prompt, seed=7, **common)
    b = ours(prompt=prompt, seed=7, **common)
    c = ours(prompt=prompt, seed=8, **common)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_guidance_one_skips_the_negative_pass(t2v):
    ours, _ = t2v
    calls = []
    hook = ours.components.transformer.register_forward_hook(lambda *a: calls.append(1))
    try:
        ours(prompt_embeds=torch.zeros(1, 512, 32), width=W, height=H, num_frames=F, num_inference_steps=2,
             guidance_scale=1.0, seed=0)  # fmt: skip
    finally:
        hook.remove()
    assert len(calls) == 2  # one pass per step, no negative prompt needed


def test_embeds_only_pipeline_asks_for_negative_embeds_when_guided(t2v):
    ours, _ = t2v
    bare = WanPipeline(dataclasses.replace(ours.components, text_encoder=None))
    common = dict(width=W, height=H, num_frames=F, num_inference_steps=1, seed=0, guidance_scale=5.0)
    with pytest.raises(InputError, match="pass negative_prompt_embeds") as info:
        bare(prompt_embeds=torch.ones(1, 512, 32), **common)
    assert info.value.field == "negative_prompt_embeds"
    frames = bare(
        prompt_embeds=torch.ones(1, 512, 32), negative_prompt_embeds=torch.zeros(1, 512, 32), **common
    )
    assert frames.shape == (F, H, W, 3)


@pytest.mark.parametrize(
    "kwargs, field, words",
    [
        (dict(width=40), "width", "multiple of 16"),
        (dict(height=0), "height", "multiple of 16"),
        (dict(num_frames=6), "num_frames", "4k+1"),
        (dict(num_frames=85), "num_frames", "at most 81"),
        (dict(num_inference_steps=0), "num_inference_steps", "at least 1"),
        (dict(guidance_scale=0.5), "guidance_scale", "at least 1"),
        (dict(guidance_scale_2=3.0), "guidance_scale_2", "two-expert"),
        (dict(prompt_embeds=torch.zeros(1, 512, 32)), "prompt", "exactly one"),
        (dict(latents=torch.zeros(1, 16, 1, 4, 4)), "latents", "must have shape (1, 16, 2, 4, 4)"),
    ],
)
def test_bad_requests_raise_input_errors_naming_the_field(t2v, kwargs, field, words):
    ours, _ = t2v
    args = dict(prompt="a cat", width=W, height=H, num_frames=F, num_inference_steps=1) | kwargs
    with pytest.raises(InputError) as info:
        ours(**args)
    assert info.value.field == field and words in str(info.value)


def test_t2v_model_refuses_images_with_a_capability_error(t2v):
    ours, _ = t2v
    image = np.zeros((H, W, 3), np.uint8)
    with pytest.raises(CapabilityError, match="text-to-video only.*wan2.2-ti2v-5b"):
        ours(prompt="a cat", image=image, width=W, height=H, num_frames=F)
    with pytest.raises(CapabilityError, match="last frame"):
        ours(prompt="a cat", last_image=image, width=W, height=H, num_frames=F)


def test_a14b_switches_experts_as_diffusers(tiny_wan):
    folder = tiny_wan("a14b-t2v")
    ours = yingxi.load_pipeline(folder, schedule="diffusers")
    ref = DiffusersWanPipeline.from_pretrained(folder)
    assert isinstance(ours, WanPipeline) and ours.variant.boundary_ratio == 0.875
    assert ours.components.transformer_2 is not None
    used = []
    hooks = [
        ours.components.transformer.register_forward_hook(lambda *a: used.append("high")),
        ours.components.transformer_2.register_forward_hook(lambda *a: used.append("low")),
    ]
    g = torch.Generator().manual_seed(2)
    pe, ne = torch.randn(1, 512, 32, generator=g), torch.randn(1, 512, 32, generator=g)
    latents = random_latents("t2v", W, H, F, seed=4)
    common = dict(
        width=W, height=H, num_frames=F, num_inference_steps=STEPS, guidance_scale=4.0, latents=latents
    )
    try:
        frames = ours(prompt_embeds=pe, negative_prompt_embeds=ne, guidance_scale_2=2.0, shift=3.0, **common)
    finally:
        for h in hooks:
            h.remove()
    theirs = ref(
        prompt_embeds=pe, negative_prompt_embeds=ne, guidance_scale_2=2.0, output_type="np", **common
    )
    assert_frames_close(frames, theirs.frames[0])
    # shift 3, 3 steps: t = 999, 857, 600 against the boundary 875: high once, then low (x2 passes for CFG)
    assert used == ["high", "high", "low", "low", "low", "low"]


def test_euler_sampler_matches_diffusers_flow_match_euler(tiny_wan):
    from diffusers import FlowMatchEulerDiscreteScheduler

    folder = tiny_wan("t2v")
    ours = load_pipeline(folder, sampler="euler", schedule="diffusers")
    ref = DiffusersWanPipeline.from_pretrained(folder)
    ref.scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    g = torch.Generator().manual_seed(6)
    pe, ne = torch.randn(1, 512, 32, generator=g), torch.randn(1, 512, 32, generator=g)
    latents = random_latents("t2v", W, H, F, seed=6)
    common = dict(
        width=W, height=H, num_frames=F, num_inference_steps=STEPS, guidance_scale=5.0, latents=latents
    )
    frames = ours(prompt_embeds=pe, negative_prompt_embeds=ne, shift=3.0, **common)
    theirs = ref(prompt_embeds=pe, negative_prompt_embeds=ne, output_type="np", **common).frames[0]
    assert_frames_close(frames, theirs)


def test_guidance_combines_bf16_velocities_in_float32(tiny_wan, monkeypatch):
    from yingxi.pipelines.wan import pipeline as module
    from yingxi.samplers import sample_unipc

    pipe = yingxi.load_pipeline(tiny_wan("t2v"), dtype="bf16")
    assert pipe.components.transformer.dtype == torch.bfloat16
    seen = []

    def spy(denoise, x, sigmas, **kw):
        def watched(x, sigma):
            v = denoise(x, sigma)  # the guided velocity: v_uncond + scale * (v_cond - v_uncond)
            seen.append(v.dtype)
            return v

        return sample_unipc(watched, x, sigmas, **kw)

    monkeypatch.setattr(module, "sample_unipc", spy)
    frames = pipe(prompt="a cat", width=W, height=H, num_frames=F, num_inference_steps=2, guidance_scale=5.0)
    assert seen == [torch.float32, torch.float32] and frames.shape == (F, H, W, 3)
