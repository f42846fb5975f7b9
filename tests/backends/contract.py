"""The contract every backend passes (dramatiq's one suite run against every broker, for cameras).

A backend joins the suite with one `Case` in `tests/backends/test_contract.py`'s CASES: how to build it
(given a tmp folder for any tiny model it saves) and a request it can shoot quickly. Each check below reads
only the Generator protocol (`capabilities`, `check`, `generate`) and the shared contracts of
`backends/base.py`, so it holds for the animatic, tiny Wan, diffusers pipelines and VACE alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from yingxi.backends.base import Clip, ClipRequest, Conditioning, Generator
from yingxi.errors import InputError

KINDS = ("image", "video", "reference", "control", "audio")


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Path], Generator]  # a tmp folder (for tiny models) -> the backend
    request: Callable[[Generator], ClipRequest]  # a small request it can shoot in a second or two
    stochastic: bool = True  # different seeds give different frames


def check_output(gen: Generator, request: ClipRequest, clip: Clip) -> None:
    """Frames uint8 (F, H, W, 3) at the requested size and count, fps the backend's native one (or the
    requested one), audio (when returned) float32 (S, C) in [-1, 1] at a positive rate, about as long."""
    assert isinstance(clip, Clip)
    assert clip.frames.dtype == np.uint8 and clip.frames.shape == (
        request.num_frames, request.height, request.width, 3
    ), clip.frames.shape  # fmt: skip
    fps = gen.capabilities.native_fps or request.fps
    assert clip.fps == pytest.approx(fps)
    if clip.audio is not None:
        a = clip.audio
        assert a.dtype == np.float32 and a.ndim == 2 and 1 <= a.shape[1] <= 8
        assert isinstance(clip.sample_rate, int) and clip.sample_rate > 0
        assert np.isfinite(a).all() and np.abs(a).max() <= 1.0
        seconds = request.num_frames / clip.fps
        assert abs(len(a) / clip.sample_rate - seconds) <= max(0.25 * seconds, 0.1)


def check_progress(values: list[float]) -> None:
    """Progress values in [0, 1], never going back, ending at 1."""
    assert values, "generate reported no progress"
    assert all(0.0 <= v <= 1.0 for v in values), values
    assert all(b >= a for a, b in zip(values, values[1:], strict=False)), values
    assert values[-1] == pytest.approx(1.0)


def excluded_requests(gen: Generator, request: ClipRequest) -> list[tuple[str, ClipRequest]]:
    """Requests its capabilities exclude: a conditioning kind it does not take, sound from a backend that
    makes none, a size off its grid, a frame count it cannot make."""
    caps, out = gen.capabilities, []
    h, w = request.height, request.width
    media = {"image": np.zeros((h, w, 3), np.uint8), "reference": np.zeros((h, w, 3), np.uint8),
             "video": np.zeros((3, h, w, 3), np.uint8), "control": np.zeros((request.num_frames, h, w, 3), np.uint8),
             "audio": np.zeros((1600, 1), np.float32)}  # fmt: skip
    for kind in KINDS:
        if kind not in caps.conditioning_kinds:
            item = Conditioning(kind, media[kind], sample_rate=16000 if kind == "audio" else None)
            out.append((f"conditioning {kind}", replace(request, conditioning=(item,))))
    if not caps.audio:
        out.append(("generate_audio", replace(request, generate_audio=True)))
    if caps.size_multiple > 1:
        out.append(("width", replace(request, width=request.width + 1)))
    if caps.frame_step > 1:
        out.append(("num_frames", replace(request, num_frames=request.num_frames + 1)))
    return out


def run_contract(gen: Generator, request: ClipRequest, stochastic: bool) -> None:
    """Every check, in the order a render meets them."""
    assert isinstance(gen.name, str) and gen.name
    gen.check(request)  # the request itself is fine
    for what, bad in excluded_requests(gen, request):
        seen: list[float] = []
        with pytest.raises(InputError):  # CapabilityError is one: refused before any work
            gen.check(bad)
        with pytest.raises(InputError):  # and generate refuses it too, before reporting any progress
            gen.generate(bad, seen.append)
        assert seen == [], f"{what}: progress reported before the refusal"
    seen = []
    clip = gen.generate(request, seen.append)
    check_output(gen, request, clip)
    check_progress(seen)
    again = gen.generate(request)
    assert np.array_equal(again.frames, clip.frames), "same seed, different frames"
    if clip.audio is not None:
        assert np.array_equal(again.audio, clip.audio), "same seed, different audio"
    if stochastic:
        other = gen.generate(replace(request, seed=request.seed + 1))
        assert not np.array_equal(other.frames, clip.frames), "a different seed gave the same frames"
