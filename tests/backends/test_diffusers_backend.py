"""The diffusers backend on tiny random pipelines the tests save: LTX-2 (t2v, i2v, conditions; with sound) and
Wan through diffusers' WanPipeline. Parity: yingxi's clip is exactly what the pipeline itself returns for the
same seed and arguments (frames equal after the same uint8 conversion, audio within 1e-6)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.backends.tiny_ltx2 import save_tiny_ltx2
from tests.models.wan.tiny import save_tiny_wan
from yingxi.backends.base import ClipRequest, Conditioning
from yingxi.backends.diffusers import DiffusersGenerator, build_diffusers_generator, to_uint8
from yingxi.errors import CapabilityError, InputError, ModelNotFoundError

AUDIO_TOLERANCE = 1e-6  # float32 samples of the same computation; frames: exactly equal as uint8
FAST = dict(
    stg_scale=0.0, modality_scale=1.0, audio_stg_scale=0.0, audio_modality_scale=1.0, max_sequence_length=16
)  # one transformer pass per step, 16 text tokens (not 1024)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    torch.set_num_threads(1)  # tiny models: threads only add overhead on a shared machine
    root = tmp_path_factory.mktemp("pipes")
    made = {kind: save_tiny_ltx2(root / f"ltx2-{kind}", kind) for kind in ("t2v", "i2v", "condition")}
    made.update({f"wan-{kind}": save_tiny_wan(root / f"wan-{kind}", kind) for kind in ("t2v", "flf2v")})
    return made


@pytest.fixture(scope="module")
def pipes(folders):
    """The reference: the same folders loaded by diffusers itself, one pipeline each."""
    from diffusers import DiffusionPipeline

    loaded = {}
    for name, folder in folders.items():
        pipe = DiffusionPipeline.from_pretrained(folder, local_files_only=True)
        pipe.set_progress_bar_config(disable=True)
        loaded[name] = pipe
    return loaded


def request(**kw) -> ClipRequest:
    base = dict(prompt="a drum beats while the band plays", width=32, height=32, num_frames=9, fps=25.0,
                seed=7, steps=2, guidance=1.0)  # fmt: skip
    return ClipRequest(**{**base, **kw})


def image(seed: int, h: int = 32, w: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def reference(pipe, seed: int, **kw):
    out = pipe(generator=torch.Generator("cpu").manual_seed(seed), output_type="np", **kw)
    return to_uint8(np.asarray(out.frames[0])), out


def ltx2_audio(out) -> np.ndarray:
    return out.audio[0].float().numpy().T  # (C, S) -> (S, C)


def test_capabilities_are_read_from_the_class_and_configs(folders):
    t2v, i2v, cond = (build_diffusers_generator(str(folders[k]), {}) for k in ("t2v", "i2v", "condition"))
    assert t2v.capabilities.conditionings == {"t2v", "audio"}
    assert i2v.capabilities.conditionings == {"i2v", "audio"}  # LTX-2 i2v: `image`, required in practice
    assert cond.capabilities.conditionings == {"t2v", "i2v", "flf2v", "conditions", "audio"}
    c = t2v.capabilities
    # tiny VAE: 2x spatial and temporal compression, patch 1; LTX-2's check_inputs wants sides of 32k
    assert (c.size_multiple, c.frame_step, c.frame_offset, c.min_frames) == (32, 2, 1, 3)
    assert c.native_fps is None  # it takes frame_rate: it shoots at the film's rate
    assert c.audio and cond.capabilities.conditioning_kinds == {"image", "video", "audio"}
    assert t2v.capabilities.conditioning_kinds == {"audio"}  # every LTX-2 class follows a reference audio
    wan, wan_flf2v = (build_diffusers_generator(str(folders[k]), {}) for k in ("wan-t2v", "wan-flf2v"))
    assert wan.capabilities.conditionings == {"t2v"}
    assert wan_flf2v.capabilities.conditionings == {"i2v", "flf2v"}  # image + last_image
    w = wan.capabilities
    assert (w.size_multiple, w.frame_step, w.min_frames, w.native_fps) == (
        16,
        4,
        5,
        16.0,
    )  # 8x VAE, 2x2 patch
    assert all(g._pipe is None for g in (t2v, i2v, cond, wan, wan_flf2v))  # no weights loaded to know this


def test_ltx2_t2v_clip_is_the_pipelines_own_frames_and_sound(folders, pipes):
    gen = DiffusersGenerator(str(folders["t2v"]), call=FAST)
    r = request(negative_prompt="low quality, blurry", guidance=3.0, generate_audio=True)
    seen: list[float] = []
    clip = gen.generate(r, seen.append)
    frames, out = reference(pipes["t2v"], 7, prompt=r.prompt, negative_prompt=r.negative_prompt, width=32,
                            height=32, num_frames=9, frame_rate=25.0, num_inference_steps=2, guidance_scale=3.0,
                            **FAST)  # fmt: skip
    assert clip.frames.shape == (9, 32, 32, 3) and np.array_equal(clip.frames, frames)
    want = ltx2_audio(out)
    assert clip.audio.dtype == np.float32 and clip.audio.shape == want.shape and want.shape[1] == 2
    assert np.abs(clip.audio - want).max() <= AUDIO_TOLERANCE
    assert clip.sample_rate == 16000 and clip.fps == 25.0
    assert abs(len(want) / clip.sample_rate - 9 / 25) < 0.05  # the sound lasts as long as the picture
    assert np.sqrt(np.mean(want**2)) > 1e-3  # random weights still make a non-silent sound
    assert clip.evaluations == 2 * 2  # 2 steps, cond + uncond batched: two samples each
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen) and all(0 <= f <= 1 for f in seen)
    assert len(seen) >= 4  # one report per step in between, from callback_on_step_end


def test_ltx2_same_seed_same_clip_other_seed_other_clip(folders):
    gen = DiffusersGenerator(str(folders["t2v"]), call=FAST)
    a, b = (
        gen.generate(request(seed=1, generate_audio=True)),
        gen.generate(request(seed=1, generate_audio=True)),
    )
    c = gen.generate(request(seed=2))
    assert c.audio is None and c.sample_rate is None  # not asked for: the film's own sound stays alone
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.audio, b.audio)
    assert not np.array_equal(a.frames, c.frames)


def test_ltx2_i2v_starts_from_the_first_frame_as_the_pipeline_does(folders, pipes):
    from PIL import Image

    gen = DiffusersGenerator(str(folders["i2v"]), call=FAST)
    first = image(3)
    clip = gen.generate(request(first_frame=first, seed=11, generate_audio=True))
    frames, out = reference(pipes["i2v"], 11, image=Image.fromarray(first), prompt=request().prompt, width=32,
                            height=32, num_frames=9, frame_rate=25.0, num_inference_steps=2, guidance_scale=1.0,
                            **FAST)  # fmt: skip
    assert np.array_equal(clip.frames, frames)
    assert np.abs(clip.audio - ltx2_audio(out)).max() <= AUDIO_TOLERANCE


def test_ltx2_conditions_take_first_last_and_frame_items(folders, pipes):
    from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2VideoCondition
    from PIL import Image

    gen = DiffusersGenerator(str(folders["condition"]), call=FAST)
    first, middle, last = image(1), image(2), image(3)
    video = np.stack([image(4), image(5), image(6)])
    r = request(first_frame=first, last_frame=last, seed=5, generate_audio=True,
                conditioning=(Conditioning("image", middle, frame=4, strength=0.5),
                              Conditioning("video", video, frame=5, strength=0.8)))  # fmt: skip
    clip = gen.generate(r)
    pil = Image.fromarray
    # latent index of pixel frame f with 2x temporal compression: ceil(f / 2); the last frame 8 -> latent 4
    conditions = [LTX2VideoCondition(frames=pil(first), index=0, strength=1.0),
                  LTX2VideoCondition(frames=pil(middle), index=2, strength=0.5),
                  LTX2VideoCondition(frames=[pil(f) for f in video], index=3, strength=0.8),
                  LTX2VideoCondition(frames=pil(last), index=4, strength=1.0)]  # fmt: skip
    frames, out = reference(pipes["condition"], 5, conditions=conditions, prompt=r.prompt, width=32, height=32,
                            num_frames=9, frame_rate=25.0, num_inference_steps=2, guidance_scale=1.0,
                            **FAST)  # fmt: skip
    assert np.array_equal(clip.frames, frames)
    assert np.abs(clip.audio - ltx2_audio(out)).max() <= AUDIO_TOLERANCE
    plain = gen.generate(request(seed=5))
    assert not np.array_equal(plain.frames, clip.frames)  # the conditions did something


def test_wan_through_diffusers_is_wanpipelines_own(folders, pipes):
    gen = DiffusersGenerator(str(folders["wan-t2v"]))
    r = request(prompt="a cat walks on the beach at sunset", num_frames=5, guidance=4.0, seed=9,
                negative_prompt="low quality, blurry, static, overexposed")  # fmt: skip
    clip = gen.generate(r)
    frames, _ = reference(pipes["wan-t2v"], 9, prompt=r.prompt, negative_prompt=r.negative_prompt, width=32,
                          height=32, num_frames=5, num_inference_steps=2, guidance_scale=4.0)  # fmt: skip
    assert np.array_equal(clip.frames, frames)
    assert clip.audio is None and clip.fps == 16.0  # no sound; Wan's own 16 fps, not the asked 25
    assert clip.evaluations == 2 * 2  # WanPipeline: separate cond and uncond passes per step


def test_wan_flf2v_through_diffusers_takes_first_and_last_image(folders, pipes):
    from PIL import Image

    gen = DiffusersGenerator(str(folders["wan-flf2v"]))
    first, last = image(8), image(9)
    r = request(prompt="dance monkey", num_frames=5, first_frame=first, last_frame=last, seed=4)
    clip = gen.generate(r)
    frames, _ = reference(pipes["wan-flf2v"], 4, image=Image.fromarray(first), last_image=Image.fromarray(last),
                          prompt=r.prompt, width=32, height=32, num_frames=5, num_inference_steps=2,
                          guidance_scale=1.0)  # fmt: skip
    assert np.array_equal(clip.frames, frames)


@pytest.mark.parametrize(
    "kind, change, field, words",
    [
        ("t2v", dict(width=48), "width", "multiples of 32"),
        ("t2v", dict(num_frames=8), "num_frames", "2k+1 frames, at least 3, got 8 (nearest: 9)"),
        ("t2v", dict(first_frame=image(0)), "first_frame", "text-to-video only"),
        ("t2v", dict(reference_images=(image(0),)), "reference_images", "cannot follow reference images"),
        ("i2v", dict(), "first_frame", "needs a first frame"),
        ("i2v", dict(first_frame=image(0), last_frame=image(1)), "last_frame", "cannot end on a given last"),
        ("i2v", dict(first_frame=image(0, 16, 16)), "first_frame", "must be uint8 (32, 32, 3)"),
        (
            "wan-t2v",
            dict(conditioning=(Conditioning("audio", np.zeros((10, 2), np.float32), sample_rate=16000),)),
            "conditioning[0]",
            "cannot follow a reference audio",
        ),  # fmt: skip
        (
            "condition",
            dict(conditioning=(Conditioning("audio", np.zeros((10, 2), np.float64), sample_rate=16000),)),
            "conditioning[0]",
            "audio must be float32",
        ),  # fmt: skip
        (
            "condition",
            dict(conditioning=(Conditioning("image", image(0), frame=9),)),
            "conditioning[0]",
            "outside the shot's 9 frames",
        ),
        (
            "condition",
            dict(conditioning=(Conditioning("image", image(0), strength=1.5),)),
            "conditioning[0]",
            "strength must be in [0, 1]",
        ),
        ("t2v", dict(options={"stg_scal": 0.0}), "options", 'did you mean "stg_scale"'),
        ("t2v", dict(options={"num_frames": 9}), "options", "yingxi sets it from the shot"),
        ("t2v", dict(steps=0), "steps", "at least 1"),
        ("t2v", dict(preset="lightning"), "preset", "are Wan's"),
        (
            "condition",
            dict(conditioning=(Conditioning("video", np.stack([image(0)] * 4), frame=6),)),
            "conditioning[0]",
            "4 frames from frame 6 run past the shot's 9",
        ),
        (
            "condition",
            dict(conditioning=(Conditioning("video", image(0)),)),
            "conditioning[0]",
            "uint8 with 4 axes",
        ),
        ("wan-t2v", dict(generate_audio=True), "generate_audio", "makes no sound"),
        ("wan-t2v", dict(conditioning=(Conditioning("image", image(0)),)), "conditioning[0]", "takes none"),
    ],
)
def test_check_refuses_before_any_work(folders, kind, change, field, words):
    gen = build_diffusers_generator(str(folders[kind]), {})
    with pytest.raises(InputError) as e:
        gen.generate(request(**change))
    assert e.value.field == field and words in e.value.message, e.value.message
    assert gen._pipe is None  # refused from the class alone: no weights were loaded


def test_bad_folders_and_options_are_clear_errors(tmp_path, folders):
    with pytest.raises(ModelNotFoundError, match="no model_index.json"):
        build_diffusers_generator(str(tmp_path), {})
    with pytest.raises(InputError, match='did you mean "offload"'):
        build_diffusers_generator(str(folders["t2v"]), {"ofload": "model"})
    with pytest.raises(InputError, match="needs --model"):
        build_diffusers_generator("", {})
    with pytest.raises(CapabilityError, match='did you mean "stg_scale"'):
        build_diffusers_generator(str(folders["t2v"]), {"call": {"stg_scal": 0}})
    with pytest.raises(InputError, match="at least 1"):
        build_diffusers_generator(str(folders["t2v"]), {"steps": 0})
    with pytest.raises(InputError, match="is none"):  # offload wants a GPU; found when loading, not later
        build_diffusers_generator(str(folders["t2v"]), {"offload": "model", "device": "cpu"}).load()


def saved_config_folder(root, pipeline: str, vae_cls, transformer: dict, extra: dict | None = None):
    """A pipeline folder as far as read_traits looks: model_index.json, vae/ and transformer/ configs (a
    real VAE class's own default config; no weights, no other parts)."""
    import json

    from accelerate import init_empty_weights

    folder = root / pipeline
    (folder / "transformer").mkdir(parents=True)
    with init_empty_weights():
        vae_cls().save_config(folder / "vae")
    (folder / "transformer" / "config.json").write_text(json.dumps(transformer))
    index = {"_class_name": pipeline, "vae": ["diffusers", vae_cls.__name__],
             "transformer": ["diffusers", "SomeTransformer"], **(extra or {})}  # fmt: skip
    (folder / "model_index.json").write_text(json.dumps(index))
    return folder


@pytest.mark.parametrize(
    "pipeline, vae, patch, can, multiple, fps",
    [
        ("HunyuanVideo15Pipeline", "AutoencoderKLHunyuanVideo15", {"patch_size": 1, "patch_size_t": 1},
         {"t2v"}, 16, 24.0),  # 16x VAE
        ("HunyuanVideo15ImageToVideoPipeline", "AutoencoderKLHunyuanVideo15", {"patch_size": 1}, {"i2v"}, 16,
         24.0),
        ("Kandinsky5T2VPipeline", "AutoencoderKLHunyuanVideo", {"patch_size": [1, 2, 2]}, {"t2v"}, 16, 24.0),
        ("Kandinsky5I2VPipeline", "AutoencoderKLHunyuanVideo", {"patch_size": [1, 2, 2]}, {"i2v"}, 16, 24.0),
        ("WanPipeline", "AutoencoderKLWan", {"patch_size": [1, 2, 2]}, {"t2v"}, 16, 16.0),
    ],
)  # fmt: skip
def test_other_families_capabilities_from_their_configs(tmp_path, pipeline, vae, patch, can, multiple, fps):
    import diffusers

    folder = saved_config_folder(tmp_path, pipeline, getattr(diffusers, vae), patch)
    gen = build_diffusers_generator(str(folder), {})
    c = gen.capabilities
    assert c.conditionings == can and c.size_multiple == multiple and c.native_fps == fps
    least = 17 if pipeline == "Kandinsky5I2VPipeline" else 5  # its 5 latent frames (normalize_first_frame)
    assert (c.frame_step, c.frame_offset, c.min_frames) == (4, 1, least)  # 4x temporal VAE: 4k+1 frames


def test_wan22_ti2v_through_diffusers_is_24_fps(tmp_path):
    from diffusers import AutoencoderKLWan

    folder = saved_config_folder(tmp_path, "WanPipeline", AutoencoderKLWan, {"patch_size": [1, 2, 2]},
                                 {"expand_timesteps": True})  # fmt: skip
    assert build_diffusers_generator(str(folder), {}).capabilities.native_fps == 24.0


def test_a_class_diffusers_lacks_is_named(tmp_path):
    from diffusers import AutoencoderKLWan

    folder = saved_config_folder(tmp_path, "WanPipelineX", AutoencoderKLWan, {"patch_size": [1, 2, 2]})
    with pytest.raises(ModelNotFoundError, match="'WanPipelineX', which diffusers .* does not have"):
        build_diffusers_generator(str(folder), {})
