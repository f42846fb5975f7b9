"""Image-conditioned parity with diffusers' WanImageToVideoPipeline on tiny random models (CPU, float32):
Wan 2.1 I2V (CLIP tokens + mask/latent channels), FLF2V (first + last frame) and Wan 2.2 I2V-A14B
(no CLIP, two experts). Tolerance: frames within 1/255 (conftest.FRAME_TOL); 3 UniPC steps, same latents.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import assert_frames_close, random_image, random_latents
from diffusers import WanImageToVideoPipeline
from PIL import Image

import yingxi
from yingxi.errors import InputError
from yingxi.pipelines.wan import WAN_OFFLOAD_ORDER
from yingxi.pipelines.wan.i2v import frame_mask

W, H, F, STEPS = 32, 32, 9, 3
PROMPT, NEGATIVE = "a cat walks on the beach at sunset", "low quality, blurry"


def run_both(folder, *, last=False, **extra):
    ours = yingxi.load_pipeline(folder, schedule="diffusers")
    ref = WanImageToVideoPipeline.from_pretrained(folder)
    image, last_image = random_image(W, H, 1), random_image(W, H, 2)
    latents = random_latents("i2v", W, H, F, seed=5)
    common = dict(
        width=W, height=H, num_frames=F, num_inference_steps=STEPS, guidance_scale=5.0, latents=latents
    )
    frames = ours(prompt=PROMPT, negative_prompt=NEGATIVE, image=image, last_image=last_image if last else None,
                  shift=3.0, **common, **extra)  # fmt: skip
    more = {"last_image": Image.fromarray(last_image)} if last else {}
    theirs = ref(prompt=PROMPT, negative_prompt=NEGATIVE, image=Image.fromarray(image), output_type="np",
                 **common, **more, **extra).frames[0]  # fmt: skip
    return ours, frames, theirs


def test_i2v_with_clip_matches_diffusers(tiny_wan):
    ours, frames, theirs = run_both(tiny_wan("i2v"))
    assert ours.components.image_encoder is not None and ours.variant.tasks == ("i2v",)
    assert frames.shape == (F, H, W, 3)
    assert_frames_close(frames, theirs)


def test_flf2v_matches_diffusers(tiny_wan):
    ours, frames, theirs = run_both(tiny_wan("flf2v"), last=True)
    assert ours.variant.tasks == ("flf2v",)
    assert_frames_close(frames, theirs)


def test_a14b_i2v_matches_diffusers(tiny_wan):
    ours, frames, theirs = run_both(tiny_wan("a14b-i2v"), guidance_scale_2=2.5)
    assert ours.components.image_encoder is None and ours.variant.boundary_ratio == 0.9
    assert_frames_close(frames, theirs)


def test_frame_mask_marks_given_frames():
    mask = frame_mask(9, 2, 2, last=False)  # (1, 4, 3, 2, 2): latent frame 0 holds pixel frame 0 (x4)
    assert mask.shape == (1, 4, 3, 2, 2)
    assert mask[0, :, 0].eq(1).all() and mask[0, :, 1:].eq(0).all()
    both = frame_mask(9, 2, 2, last=True)
    assert both[0, :, 0].eq(1).all() and both[0, :, 1].eq(0).all()
    assert both[0, :3, 2].eq(0).all() and both[0, 3, 2].eq(1).all()  # pixel frame 8 is the last of chunk 2


def test_i2v_inputs_are_checked_and_images_fitted(tiny_wan):
    pipe = yingxi.load_pipeline(tiny_wan("i2v"))
    with pytest.raises(InputError, match="needs a first-frame image") as info:
        pipe(prompt="a cat", width=W, height=H, num_frames=5)
    assert info.value.field == "image"
    with pytest.raises(InputError, match="uint8"):
        pipe(prompt="a cat", image=np.zeros((H, W, 3), np.float32), width=W, height=H, num_frames=5)
    wide = random_image(3 * W, H, 3)  # another aspect: covered and centre-cropped, not refused
    frames = pipe(prompt="a cat", image=Image.fromarray(wide), width=W, height=H, num_frames=5,
                  num_inference_steps=1, seed=0)  # fmt: skip
    assert frames.shape == (5, H, W, 3)


def test_flf2v_needs_the_last_frame(tiny_wan):
    pipe = yingxi.load_pipeline(tiny_wan("flf2v"))
    with pytest.raises(InputError, match="needs a last-frame image"):
        pipe(prompt="a cat", image=random_image(W, H, 0), width=W, height=H, num_frames=5)


def test_components_are_used_in_offload_order(tiny_wan):
    pipe = yingxi.load_pipeline(tiny_wan("a14b-i2v"))
    used, real_use = [], pipe.placement.use

    def recording_use(name):
        if not used or used[-1] != name:
            used.append(name)
        return real_use(name)

    pipe.placement.use = recording_use
    pipe(prompt="a cat", image=random_image(W, H, 0), width=W, height=H, num_frames=5, num_inference_steps=3,
         shift=3.0, seed=0)  # fmt: skip
    # The VAE also encodes the first frame before sampling; otherwise parts run in WAN_OFFLOAD_ORDER.
    assert used == ["text_encoder", "vae", "transformer", "transformer_2", "vae"]
    assert [n for n in WAN_OFFLOAD_ORDER if n in used] == [
        "text_encoder",
        "transformer",
        "transformer_2",
        "vae",
    ]
    assert torch.get_num_threads() == 1
