"""WanGenerator over a tiny random VACE model: ClipRequest.conditioning items as reference-to-video, video
extension, pinned frames and control videos, checked on the frames; refusals before any work.

Extension tolerance: the kept frames of the output equal the VAE round trip of the given frames within
2/255 (the same latents decoded; the causal decoder's first frames depend on the first latents only).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models" / "wan"))
from tiny_vace import save_tiny_vace  # noqa: E402

from yingxi.backends.base import ClipRequest, Conditioning  # noqa: E402
from yingxi.backends.wan import WanGenerator  # noqa: E402
from yingxi.errors import CapabilityError, InputError  # noqa: E402
from yingxi.pipelines.wan.common import video_to_uint8  # noqa: E402

W, H, F = 48, 32, 9
ROUND_TRIP_TOL = 2  # /255


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    folder = save_tiny_vace(tmp_path_factory.mktemp("vace-backend") / "vace")
    return WanGenerator(folder, device="cpu", steps=2)


@pytest.fixture(scope="module")
def plain(gen) -> np.ndarray:
    """The shot without conditioning items (and the 'previous shot' the extension continues)."""
    return gen.generate(request()).frames


def request(*items: Conditioning, **kw) -> ClipRequest:
    # guidance 1: one transformer pass per step, the tests need no more
    args = dict(prompt="a woman walks through a market", width=W, height=H, num_frames=F, fps=16, seed=5,
                guidance=1.0)  # fmt: skip
    return ClipRequest(**(args | kw), conditioning=tuple(items))


def frames(seed: int, n: int = F) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, H, W, 3), dtype=np.uint8)


def round_trip(gen: WanGenerator, video: np.ndarray) -> np.ndarray:
    vae = gen.pipeline.components.vae
    x = (
        torch.from_numpy(video.astype(np.float32) / 255.0).permute(3, 0, 1, 2)[None] * 2 - 1
    )  # (1, 3, n, H, W)
    with torch.no_grad():
        return video_to_uint8(vae.decode(vae.encode(x)))


def diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


def test_capabilities_name_the_conditioning_kinds(gen):
    caps = gen.capabilities
    assert caps.conditioning_kinds == {"reference", "video", "image", "control"}
    assert caps.conditionings == {"t2v", "i2v", "flf2v", "references"}
    assert WanGenerator("wan2.1-vace-14b").capabilities.conditioning_kinds == caps.conditioning_kinds
    assert WanGenerator("wan2.1-t2v-1.3b").capabilities.conditioning_kinds == frozenset()


def test_extension_keeps_the_given_frames_and_makes_the_rest(gen, plain):
    tail = plain[-5:]  # the previous shot's last five frames: two latent frames
    seen = []
    clip = gen.generate(request(Conditioning("video", tail, frame=0)), seen.append)
    assert clip.frames.shape == (F, H, W, 3) and seen[-1] == 1.0
    assert diff(clip.frames[:5], round_trip(gen, tail)) <= ROUND_TRIP_TOL
    assert diff(plain[:5], round_trip(gen, tail)) > 20  # without the item nothing ties the shots together
    assert np.abs(clip.frames[5:].astype(int) - plain[5:].astype(int)).mean() > 1  # the rest is new, guided


def test_a_pinned_first_frame_and_an_image_item(gen):
    first = frames(7, 1)[0]
    clip = gen.generate(request(first_frame=first))
    assert diff(clip.frames[:1], round_trip(gen, first[None])) <= ROUND_TRIP_TOL
    same = gen.generate(request(Conditioning("image", first, frame=0)))
    assert np.array_equal(same.frames, clip.frames)  # first_frame is the image item at frame 0


def test_reference_images_change_the_shot_but_are_not_its_frames(gen, plain):
    face = np.random.default_rng(3).integers(0, 256, (40, 24, 3), dtype=np.uint8)
    clip = gen.generate(request(Conditioning("reference", face, name="Mei"))).frames
    assert clip.shape == plain.shape == (F, H, W, 3)  # the reference's latent frame is dropped
    assert np.abs(clip.astype(int) - plain.astype(int)).mean() > 1
    old_field = gen.generate(request(reference_images=(face,))).frames
    assert np.array_equal(old_field, clip)  # ClipRequest.reference_images means the same


def test_control_video_follows_its_strength(gen, plain):
    depth = frames(11)
    guided = gen.generate(request(Conditioning("control", depth, strength=1.0))).frames
    half = gen.generate(request(Conditioning("control", depth, strength=0.5))).frames
    off = gen.generate(request(Conditioning("control", depth, strength=0.0))).frames
    off_other = gen.generate(request(Conditioning("control", frames(12), strength=0.0))).frames
    assert np.array_equal(off, off_other)  # scale 0: the control adds nothing
    assert not np.array_equal(guided, half) and not np.array_equal(guided, plain)


@pytest.mark.parametrize(
    "items, kw, error, words",
    [
        ((Conditioning("audio", np.zeros((100, 1), np.float32), sample_rate=16000),), {}, CapabilityError,
         "not audio"),
        ((Conditioning("video", frames(1, 5)), Conditioning("control", frames(2))), {}, CapabilityError,
         "overlaps"),
        ((Conditioning("control", frames(1, 4), strength=0.5), Conditioning("control", frames(2, 4), frame=5)),
         {}, CapabilityError, "one conditioning scale"),
        ((Conditioning("video", frames(1, 5), strength=0.5),), {}, CapabilityError, "strength 1"),
        ((Conditioning("video", frames(1, 5), frame=6),), {}, InputError, "outside the shot"),
        ((Conditioning("image", np.zeros((16, 16, 3), np.uint8), frame=2),), {}, InputError, "the shot 48x32"),
        ((Conditioning("control", frames(1).astype(np.float32)),), {}, InputError, "uint8 frames"),
        ((Conditioning("reference", np.zeros((8, 8), np.uint8)),), {}, InputError, "uint8 (H, W, 3)"),
        ((Conditioning("image", frames(1, 1)[0]),), dict(first_frame=frames(2, 1)[0]), CapabilityError,
         "overlaps"),
    ],
)  # fmt: skip
def test_mixes_it_cannot_do_are_refused_before_any_work(gen, items, kw, error, words):
    with pytest.raises(error) as info:
        gen.check(request(*items, **kw))
    assert info.value.field == "conditioning" and words in str(info.value)


def test_a_plain_wan_model_refuses_conditioning_items():
    gen = WanGenerator("wan2.1-t2v-1.3b")
    with pytest.raises(CapabilityError, match='cannot take "reference"') as info:
        gen.check(request(Conditioning("reference", np.zeros((8, 8, 3), np.uint8))))
    assert info.value.field == "conditioning[0]"
