"""The diffusers backend on tiny random Kandinsky 5 video pipelines the tests save (t2v and i2v).

Parity: yingxi's clip is exactly what the pipeline itself returns for the same seed and arguments (frames
equal after the same uint8 conversion). The fixes it needed: Kandinsky5I2VPipeline's own minimum of 5 latent
frames (fewer give NaN frames), NaN frames refused rather than cast, a published folder's tokenizer that
needs a package this environment lacks named in one clear error, and the pipeline's own check_inputs
refusing an option as an InputError, not a traceback.
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from tests.backends.tiny_kandinsky5 import FAST, save_tiny_kandinsky5
from yingxi.backends.base import ClipRequest
from yingxi.backends.diffusers import DiffusersGenerator, build_diffusers_generator, to_uint8
from yingxi.errors import CapabilityError, InputError, ModelNotFoundError, RenderError


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("kandinsky5")
    return {kind: save_tiny_kandinsky5(root / kind, kind) for kind in ("t2v", "i2v")}


@pytest.fixture(scope="module")
def pipes(folders):
    from diffusers import DiffusionPipeline

    loaded = {}
    for name, folder in folders.items():
        loaded[name] = DiffusionPipeline.from_pretrained(folder, local_files_only=True)
        loaded[name].set_progress_bar_config(disable=True)
    return loaded


def request(**kw) -> ClipRequest:
    base = dict(prompt="a cat walks on the beach at sunset", width=32, height=32, num_frames=9, fps=24.0, seed=7,
                steps=2, guidance=1.0)  # fmt: skip
    return ClipRequest(**{**base, **kw})


def reference(pipe, seed: int, **kw) -> np.ndarray:
    out = pipe(generator=torch.Generator("cpu").manual_seed(seed), output_type="np", **FAST, **kw)
    return np.asarray(out.frames[0])


def image(seed: int, h: int = 32, w: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_capabilities_are_read_without_weights(folders):
    t2v, i2v = (build_diffusers_generator(str(folders[k]), {}) for k in ("t2v", "i2v"))
    assert t2v.capabilities.conditionings == {"t2v"} and i2v.capabilities.conditionings == {"i2v"}
    c = t2v.capabilities  # 8x VAE and a 2x2 patch; check_inputs wants sides of 16k; 4x in time
    assert (c.size_multiple, c.frame_step, c.frame_offset, c.min_frames, c.native_fps) == (16, 4, 1, 5, 24.0)
    assert i2v.capabilities.min_frames == 17  # 5 latent frames: normalize_first_frame's own need
    assert t2v._pipe is None and i2v._pipe is None


def test_t2v_clip_is_the_pipelines_own(folders, pipes):
    gen = DiffusersGenerator(str(folders["t2v"]), call=FAST)
    seen: list[float] = []
    clip = gen.generate(request(negative_prompt="low quality, blurry", guidance=3.0), seen.append)
    want = to_uint8(reference(pipes["t2v"], 7, prompt=request().prompt, negative_prompt="low quality, blurry",
                              width=32, height=32, num_frames=9, num_inference_steps=2, guidance_scale=3.0))  # fmt: skip
    assert clip.frames.shape == (9, 32, 32, 3) and np.array_equal(clip.frames, want)
    assert clip.fps == 24.0 and clip.audio is None
    assert clip.evaluations == 2 * 2  # guidance 3: a cond and an uncond pass each step
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen) and len(seen) >= 4  # step callback
    other = gen.generate(request(prompt="rain falls on a red roof", negative_prompt="low quality, blurry",
                                 guidance=3.0))  # fmt: skip
    assert not np.array_equal(other.frames, clip.frames)  # the prompt reaches the model past the template


def test_i2v_starts_from_the_first_frame_as_the_pipeline_does(folders, pipes):
    from PIL import Image

    gen = DiffusersGenerator(str(folders["i2v"]), call=FAST)
    first = image(3)
    clip = gen.generate(request(num_frames=17, first_frame=first, seed=11))
    want = to_uint8(reference(pipes["i2v"], 11, image=Image.fromarray(first), prompt=request().prompt, width=32,
                              height=32, num_frames=17, num_inference_steps=2, guidance_scale=1.0))  # fmt: skip
    assert clip.frames.shape == (17, 32, 32, 3) and np.array_equal(clip.frames, want)


def test_i2v_under_five_latent_frames_is_refused_where_the_pipeline_makes_nan(folders, pipes):
    from PIL import Image

    gen = build_diffusers_generator(str(folders["i2v"]), {})
    with pytest.raises(CapabilityError) as e:
        gen.generate(request(first_frame=image(0)))
    assert e.value.field == "num_frames" and "at least 17, got 9 (nearest: 17)" in e.value.message
    assert gen._pipe is None
    with pytest.warns(UserWarning, match="degrees of freedom"):
        raw = reference(pipes["i2v"], 0, image=Image.fromarray(image(0)), prompt="x", width=32, height=32,
                        num_frames=9, num_inference_steps=1, guidance_scale=1.0)  # fmt: skip
    assert np.isnan(raw).all()  # what the rule keeps a film from


def test_nan_frames_are_a_render_error_not_a_clip(folders):
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(folders["t2v"], local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    with torch.no_grad():
        next(pipe.vae.decoder.parameters()).fill_(float("nan"))  # a broken checkpoint, say
    with pytest.raises(RenderError, match="not numbers"):
        DiffusersGenerator(pipe, call=FAST).generate(request(steps=1))


@pytest.mark.skipif(
    importlib.util.find_spec("torchvision") is not None, reason="torchvision is installed here"
)
def test_a_published_folders_processor_without_torchvision_is_one_clear_error(folders, tmp_path):
    """Published Kandinsky 5 folders keep a Qwen2VLProcessor in tokenizer/; its video part needs torchvision."""
    import shutil

    folder = shutil.copytree(folders["t2v"], tmp_path / "published")
    index = json.loads((folder / "model_index.json").read_text())
    index["tokenizer"] = ["transformers", "Qwen2VLProcessor"]
    (folder / "model_index.json").write_text(json.dumps(index))
    from transformers import Qwen2VLImageProcessorPil

    Qwen2VLImageProcessorPil().save_pretrained(folder / "tokenizer")  # its image part, as published
    (folder / "tokenizer" / "processor_config.json").write_text(
        json.dumps({"processor_class": "Qwen2VLProcessor"})
    )
    (folder / "tokenizer" / "video_preprocessor_config.json").write_text(
        json.dumps({"video_processor_type": "Qwen2VLVideoProcessor", "processor_class": "Qwen2VLProcessor"})
    )
    gen = build_diffusers_generator(str(folder), {})
    assert gen.capabilities.conditionings == {"t2v"}  # its abilities are still read
    with pytest.raises(ModelNotFoundError, match="needs a package that is not installed.*Torchvision"):
        gen.load()


def test_the_pipelines_own_refusal_of_an_option_is_an_input_error(folders):
    gen = DiffusersGenerator(str(folders["t2v"]))
    with pytest.raises(InputError) as e:
        gen.generate(request(options={"max_sequence_length": 2000}))
    assert e.value.field == "options" and "max_sequence_length must be less than 1024" in e.value.message
