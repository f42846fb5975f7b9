"""The diffusers backend on tiny random HunyuanVideo-1.5 pipelines the tests save (t2v and i2v).

Parity: yingxi's clip is exactly what the pipeline itself returns for the same seed and arguments (frames
equal after the same uint8 conversion). The fixes it needed: the guidance scale lives in a guider component
(not __call__), progress comes without a step callback, and the i2v class picks its own size from the image.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from tests.backends.tiny_hunyuan15 import save_tiny_hunyuan15
from yingxi.backends.base import ClipRequest
from yingxi.backends.diffusers import DiffusersGenerator, build_diffusers_generator, to_uint8
from yingxi.errors import CapabilityError

GLYPH = 'a shop sign reads "OPEN" in the rain'  # quoted text: the ByT5 encoder runs too


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("hunyuan15")
    return {kind: save_tiny_hunyuan15(root / kind, kind) for kind in ("t2v", "i2v")}


@pytest.fixture(scope="module")
def pipes(folders):
    """The reference: the same folders loaded by diffusers itself."""
    from diffusers import DiffusionPipeline

    loaded = {}
    for name, folder in folders.items():
        loaded[name] = DiffusionPipeline.from_pretrained(folder, local_files_only=True)
        loaded[name].set_progress_bar_config(disable=True)
    return loaded


def request(**kw) -> ClipRequest:
    base = dict(prompt=GLYPH, width=32, height=32, num_frames=9, fps=24.0, seed=7, steps=2)
    return ClipRequest(**{**base, **kw})


def reference(pipe, seed: int, guidance: float, **kw) -> np.ndarray:
    """The pipeline's own frames, its guider set to `guidance` the documented way (guider.new)."""
    before, pipe.guider = pipe.guider, pipe.guider.new(guidance_scale=guidance)
    try:
        out = pipe(generator=torch.Generator("cpu").manual_seed(seed), output_type="np", **kw)
    finally:
        pipe.guider = before
    return to_uint8(np.asarray(out.frames[0]))


def image(seed: int, h: int = 32, w: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_capabilities_are_read_without_weights(folders):
    t2v, i2v = (build_diffusers_generator(str(folders[k]), {}) for k in ("t2v", "i2v"))
    assert t2v.capabilities.conditionings == {"t2v"} and i2v.capabilities.conditionings == {"i2v"}
    c = t2v.capabilities  # tiny VAE: 4x in space and time, patch 1
    assert (c.size_multiple, c.frame_step, c.frame_offset, c.min_frames, c.native_fps) == (4, 4, 1, 5, 24.0)
    assert c.max_pixels is None and i2v.capabilities.max_pixels == 32 * 32  # i2v: buckets of ~target_size²
    assert t2v.traits.guider and t2v.traits.takes_guidance  # the scale lives in guider/, not __call__
    assert t2v._pipe is None and i2v._pipe is None


def test_t2v_clip_is_the_pipelines_own_with_the_guidance_on_its_guider(folders, pipes):
    gen = DiffusersGenerator(str(folders["t2v"]))
    seen: list[float] = []
    clip = gen.generate(request(negative_prompt="low quality, blurry", guidance=3.0), seen.append)
    want = reference(pipes["t2v"], 7, 3.0, prompt=GLYPH, negative_prompt="low quality, blurry", width=32,
                     height=32, num_frames=9, num_inference_steps=2)  # fmt: skip
    assert clip.frames.shape == (9, 32, 32, 3) and np.array_equal(clip.frames, want)
    assert clip.fps == 24.0 and clip.audio is None
    assert clip.evaluations == 2 * 2  # guidance 3: the guider's cond and uncond passes, each step
    assert gen.pipeline.guider.guidance_scale == 1.0  # the folder's guider is back after the shot
    unguided = reference(pipes["t2v"], 7, 1.0, prompt=GLYPH, width=32, height=32, num_frames=9,
                         num_inference_steps=2)  # fmt: skip
    assert not np.array_equal(unguided, want)  # the scale reached the sampler
    # progress without a step callback: from the scheduler's step count before each pass, then 1
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen) and all(0 <= f <= 1 for f in seen)
    assert len(set(seen)) == 3  # 0, after the first step, done


def test_backend_guidance_option_reaches_the_guider(folders, pipes):
    gen = build_diffusers_generator(str(folders["t2v"]), {"guidance": 4.0, "steps": 2})
    clip = gen.generate(request(seed=2, steps=None))
    want = reference(pipes["t2v"], 2, 4.0, prompt=GLYPH, width=32, height=32, num_frames=9,
                     num_inference_steps=2)  # fmt: skip
    assert np.array_equal(clip.frames, want) and clip.evaluations == 4


def test_i2v_starts_from_the_first_frame_as_the_pipeline_does(folders, pipes):
    from PIL import Image

    gen = DiffusersGenerator(str(folders["i2v"]))
    first = image(3)
    clip = gen.generate(request(prompt="a cat walks on the beach at sunset", first_frame=first, seed=11))
    want = reference(pipes["i2v"], 11, 1.0, image=Image.fromarray(first), prompt="a cat walks on the beach at "
                     "sunset", num_frames=9, num_inference_steps=2)  # fmt: skip
    assert clip.frames.shape == (9, 32, 32, 3) and np.array_equal(clip.frames, want)
    other = gen.generate(request(prompt="a cat walks on the beach at sunset", first_frame=image(4), seed=11))
    assert not np.array_equal(other.frames, clip.frames)  # the image did something


def test_i2v_size_is_its_bucket_or_refused_before_any_work(folders):
    gen = build_diffusers_generator(str(folders["i2v"]), {})
    assert gen.traits.image_size(32, 32) == (32, 32)
    made = gen.traits.image_size(48, 32)  # a 3:2 frame: the nearest bucket of about 32² pixels
    assert made != (48, 32) and made[0] * made[1] <= 32 * 32
    with pytest.raises(CapabilityError) as e:
        gen.generate(request(width=48, first_frame=image(0, 32, 48)))
    assert e.value.field == "width" and f"would come out {made[0]}x{made[1]}" in e.value.message
    assert gen._pipe is None
    w, h = made
    clip = gen.generate(request(width=w, height=h, first_frame=image(1, h, w)))
    assert clip.frames.shape == (9, h, w, 3)  # the bucket it names is one it makes


def test_the_director_plans_the_i2v_bucket_and_the_film_renders_at_it(folders, tmp_path):
    """A 3:2 film on the i2v class: the plan takes the bucket the class would pick (not a size it refuses),
    and the film renders from the person's first frame (before, the class refused the film's size)."""
    from PIL import Image

    from yingxi.director import plan
    from yingxi.film import parse_prompt
    from yingxi.media.video import read_frames
    from yingxi.render import render

    gen = build_diffusers_generator(str(folders["i2v"]), {"steps": 2})
    made = gen.traits.image_size(24, 24)
    assert made == (32, 32)
    still = tmp_path / "first.png"
    Image.fromarray(image(5, 24, 24)).save(still)
    film = parse_prompt("Shot 1 (0.4s): a cat walks on the beach at sunset.", fps=24)
    film = replace(film, custom_size=(24, 24))
    film = film.with_shot(0, replace(film.shots[0], first_frame=still))
    (p,) = plan(film, gen.capabilities)
    assert (p.width, p.height) == made
    result = render(film, gen, tmp_path / "film.mp4")
    frames = read_frames(result.path)
    assert frames.shape[1:3] == (24, 24) and len(frames) == p.num_frames  # the shot, cut at the film's size
    assert "shot 1: size 24x24 -> 32x32 for this backend" in result.notes
