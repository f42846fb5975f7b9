"""WanGenerator: honest capabilities per variant, early CapabilityErrors, and real clips from tiny models."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models" / "wan"))
from tiny import save_tiny_wan  # noqa: E402

import yingxi  # noqa: E402
from yingxi.backends.base import Clip, ClipRequest  # noqa: E402
from yingxi.backends.wan import WanGenerator  # noqa: E402
from yingxi.errors import CapabilityError, InputError, ModelNotFoundError  # noqa: E402

W = H = 32


@pytest.fixture(autouse=True)
def one_thread(monkeypatch, tmp_path):
    """One thread (tiny models run 10x faster than on two shared cores) and no real model caches."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("YINGXI_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-wan")
    return {kind: save_tiny_wan(root / kind, kind) for kind in ("t2v", "ti2v")}


def request(**kw) -> ClipRequest:
    args = dict(prompt="a cat walks on the beach", width=W, height=H, num_frames=9, fps=16, seed=3, steps=2)
    return ClipRequest(**(args | kw))


@pytest.mark.parametrize(
    "name, conditionings, multiple, max_frames, fps",
    [
        ("wan2.1-t2v-1.3b", {"t2v"}, 16, 81, 16),
        ("wan2.1-i2v-14b-480p", {"i2v"}, 16, 81, 16),
        ("wan2.1-flf2v-14b-720p", {"flf2v"}, 16, 81, 16),
        ("wan2.2-ti2v-5b", {"t2v", "i2v"}, 32, 121, 24),
        ("wan2.2-t2v-a14b", {"t2v"}, 16, 81, 16),
        ("wan2.2-i2v-a14b", {"i2v"}, 16, 81, 16),
    ],
)
def test_capabilities_come_from_the_variant_without_weights(name, conditionings, multiple, max_frames, fps):
    caps = WanGenerator(name).capabilities  # nothing on disk: capabilities need no weights
    assert caps.conditionings == frozenset(conditionings)
    assert (caps.size_multiple, caps.frame_step, caps.frame_offset) == (multiple, 4, 1)
    assert (caps.max_frames, caps.native_fps) == (max_frames, fps)
    # The director snaps a 2 s shot to a legal length, and a long one to the longest.
    assert caps.legal_frames(2 * fps) == (33 if fps == 16 else 49)
    assert caps.legal_frames(1000) == max_frames
    assert caps.legal_size(830, 478) == (832, 480)


def test_clip_of_nine_frames_from_a_tiny_t2v_model(folders):
    gen = WanGenerator(yingxi.load_pipeline(folders["t2v"]))
    seen = []
    clip = gen.generate(request(), seen.append)
    assert isinstance(clip, Clip) and clip.frames.shape == (9, H, W, 3) and clip.frames.dtype == np.uint8
    assert clip.fps == 16.0
    assert seen == pytest.approx([0.475, 0.95, 1.0])
    assert clip.frames.std() > 1.0
    again = gen.generate(request())
    assert np.array_equal(again.frames, clip.frames)  # the shot's seed fixes the clip
    other = gen.generate(request(seed=4))
    assert not np.array_equal(other.frames, clip.frames)


def test_ti2v_takes_a_first_frame(folders):
    gen = WanGenerator(folders["ti2v"], device="cpu")  # a folder: loaded on first use
    assert gen.capabilities.size_multiple == 32 and gen.capabilities.conditionings == {"t2v", "i2v"}
    first = np.random.default_rng(0).integers(0, 256, (H, 64, 3), dtype=np.uint8)
    clip = gen.generate(request(width=64, first_frame=first, steps=1))
    assert clip.frames.shape == (9, H, 64, 3) and clip.fps == 24.0


def test_variant_name_finds_weights_in_yingxi_models(folders, tmp_path):
    shutil.copytree(folders["t2v"], tmp_path / "models" / "wan2.1-t2v-1.3b")
    gen = WanGenerator("wan2.1-t2v-1.3b", device="cpu")
    gen.check(request())
    gen.check(request(width=864, height=480))  # a 480p film's size: a little over the trained 832x480
    with pytest.raises(CapabilityError, match="larger than wan2.1-t2v-1.3b makes.*lower resolution"):
        gen.check(request(width=1280, height=720))
    clip = gen.generate(request(steps=1))
    assert clip.frames.shape == (9, H, W, 3)


def test_from_pretrained_checks_weights_and_loads_lazily(folders, tmp_path):
    with pytest.raises(ModelNotFoundError, match="yingxi models pull wan2.1-t2v-1.3b"):
        WanGenerator.from_pretrained("wan2.1-t2v-1.3b")
    gen = WanGenerator.from_pretrained(folders["t2v"], device="cpu", steps=1, guidance=1.0)
    assert gen._pipe is None  # nothing in memory until it is needed
    assert gen.load()._pipe is not None and gen.pipeline.device.type == "cpu"
    assert gen.generate(request(steps=None)).frames.shape == (9, H, W, 3)


def test_missing_weights_are_reported_before_work(tmp_path):
    gen = WanGenerator("wan2.2-t2v-a14b")
    with pytest.raises(ModelNotFoundError, match="yingxi models pull wan2.2-t2v-a14b") as info:
        gen.check(request())
    assert str(tmp_path / "models" / "wan2.2-t2v-a14b") in str(info.value)


def test_t2v_variant_refuses_a_reference_image_naming_who_can(folders):
    gen = WanGenerator(yingxi.load_pipeline(folders["t2v"]))
    image = np.zeros((H, W, 3), np.uint8)
    with pytest.raises(CapabilityError, match="text-to-video only.*wan2.2-ti2v-5b") as info:
        gen.check(request(first_frame=image))
    assert info.value.field == "first_frame"
    with pytest.raises(CapabilityError, match="last frame.*wan2.1-flf2v-14b-720p"):
        gen.check(request(last_frame=image))
    with pytest.raises(CapabilityError, match="reference images"):
        gen.check(request(reference_images=(image,)))


@pytest.mark.parametrize(
    "change, field, words",
    [
        (dict(num_frames=10), "num_frames", "4k+1 frames from 5 to 81, got 10 (nearest: 9)"),
        (dict(num_frames=85), "num_frames", "(nearest: 81)"),
        (dict(width=40), "width", "multiples of 16"),
        (dict(width=1280, height=1280), "width", "larger than"),
        (dict(steps=0), "steps", "at least 1"),
        (dict(guidance=0.5), "guidance", "at least 1"),
        (dict(options={"shfit": 3}), "options", "unknown Wan option(s) shfit; accepted: shift"),
        (dict(options={"shift": -1}), "options", "shift must be a number > 0"),
        (dict(options={"guidance_2": 3.0}), "options", "two-expert"),
    ],
)
def test_wrong_requests_raise_capability_errors(folders, change, field, words):
    gen = WanGenerator(yingxi.load_pipeline(folders["t2v"]))
    with pytest.raises(CapabilityError) as info:
        gen.check(request(**change))
    assert info.value.field == field and words in str(info.value)


def test_i2v_variant_needs_a_first_frame_and_frames_must_match_the_shot():
    gen = WanGenerator("wan2.1-i2v-14b-480p")
    with pytest.raises(CapabilityError, match="needs a first frame.*wan2.1-t2v-1.3b"):
        gen.check(request())
    with pytest.raises(InputError, match=r"uint8 \(32, 32, 3\)"):
        gen.check(request(first_frame=np.zeros((16, 16, 3), np.uint8)))
    flf = WanGenerator("wan2.1-flf2v-14b-720p")
    with pytest.raises(CapabilityError, match="needs a last frame"):
        flf.check(request(first_frame=np.zeros((H, W, 3), np.uint8)))


def test_a14b_accepts_the_low_noise_guidance_option():
    gen = WanGenerator("wan2.2-t2v-a14b")
    gen._folder = Path(".")  # pretend the weights are here: only the option check is under test
    gen.check(request(options={"guidance_2": 2.0, "shift": 8}))
    assert gen.variant.two_experts
