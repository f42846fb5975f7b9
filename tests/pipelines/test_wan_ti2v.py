"""Wan 2.2 TI2V-5B parity (48-channel VAE, 16x stride, per-token timesteps) on a tiny random model:
text only vs diffusers' WanPipeline(expand_timesteps=True); with an image vs WanImageToVideoPipeline
(expand_timesteps=True), whose first latent frame is held at the image's latents. Tolerance: frames
within 1/255 (conftest.FRAME_TOL); 3 UniPC steps, the same latents and prompts.
"""

from __future__ import annotations

import pytest
import torch
from conftest import assert_frames_close, random_image, random_latents
from diffusers import WanImageToVideoPipeline
from diffusers import WanPipeline as DiffusersWanPipeline
from PIL import Image

import yingxi
from yingxi.errors import InputError
from yingxi.pipelines.wan.common import TaskInputs

W, H, F, STEPS = 64, 32, 9, 3
PROMPT, NEGATIVE = "two boxers fight on a bright stage", "static, overexposed"


@pytest.fixture(scope="module")
def folder(tiny_wan):
    return tiny_wan("ti2v")


def common():
    latents = random_latents("ti2v", W, H, F, seed=9)
    return dict(
        width=W, height=H, num_frames=F, num_inference_steps=STEPS, guidance_scale=5.0, latents=latents
    )


def test_ti2v_text_only_matches_diffusers(folder):
    ours = yingxi.load_pipeline(folder, schedule="diffusers")
    assert ours.variant.expand_timesteps and ours.size_multiple == 32
    frames = ours(prompt=PROMPT, negative_prompt=NEGATIVE, shift=3.0, **common())
    ref = DiffusersWanPipeline.from_pretrained(folder)
    theirs = ref(prompt=PROMPT, negative_prompt=NEGATIVE, output_type="np", **common()).frames[0]
    assert frames.shape == (F, H, W, 3)
    assert_frames_close(frames, theirs)


def test_ti2v_with_image_matches_diffusers(folder):
    ours = yingxi.load_pipeline(folder, schedule="diffusers")
    image = random_image(W, H, 4)
    frames = ours(prompt=PROMPT, negative_prompt=NEGATIVE, image=image, shift=3.0, **common())
    ref = WanImageToVideoPipeline.from_pretrained(folder)
    assert ref.config.expand_timesteps
    theirs = ref(prompt=PROMPT, negative_prompt=NEGATIVE, image=Image.fromarray(image), output_type="np",
                 **common()).frames[0]  # fmt: skip
    assert_frames_close(frames, theirs)
    text_only = ours(prompt=PROMPT, negative_prompt=NEGATIVE, shift=3.0, **common())
    assert abs(frames.astype(float) - text_only).mean() > 1.0  # the image really conditions the result


def test_per_token_timesteps_hold_the_first_frame():
    keep = torch.ones(1, 1, 3, 4, 6)
    keep[:, :, 0] = 0
    inputs = TaskInputs(fixed=torch.full((1, 2, 1, 4, 6), 7.0), keep=keep)
    t = inputs.timestep(torch.tensor(900), 1, (1, 2, 2))  # (1, 3 * 2 * 3) tokens
    assert t.shape == (1, 18)
    assert t[0, :6].eq(0).all() and t[0, 6:].eq(900).all()
    x = inputs.model_input(torch.zeros(1, 2, 3, 4, 6))
    assert x[:, :, 0].eq(7).all() and x[:, :, 1:].eq(0).all()


def test_ti2v_sizes_are_multiples_of_32(folder):
    ours = yingxi.load_pipeline(folder, schedule="diffusers")
    with pytest.raises(InputError, match="multiple of 32") as info:
        ours(prompt="a cat", width=48, height=32, num_frames=5)
    assert info.value.field == "width"
