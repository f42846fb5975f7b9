"""The backend contract (tests/backends/contract.py) on every backend we ship.

To add a backend: one `Case` in CASES (a builder from a tmp folder, e.g. a tiny pipeline it saves, and a
small request), as the diffusers cases below.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from tests.backends.contract import Case, run_contract
from yingxi.backends.base import ClipRequest
from yingxi.backends.registry import build_backend

TINY_WAN = Path(__file__).resolve().parents[1] / "models" / "wan"


def small_request(width: int, height: int, frames: int, fps: float, **kw) -> ClipRequest:
    args = dict(prompt="a cat walks on the beach", width=width, height=height, num_frames=frames, fps=fps,
                seed=3)  # fmt: skip
    return ClipRequest(**(args | kw))


def gradient(width: int, height: int) -> np.ndarray:
    """A first frame with something in it: uint8 (H, W, 3)."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None, None]
    return np.broadcast_to((x + y) / 2, (height, width, 3)).astype(np.uint8)


def tiny_wan(kind: str):
    """A builder of the wan backend over a tiny random Wan folder of `kind`, saved in the test's tmp."""

    def build(tmp: Path):
        sys.path.insert(0, str(TINY_WAN))
        from tiny import save_tiny_wan

        folder = save_tiny_wan(tmp / kind, kind)
        return build_backend("wan", {"model": str(folder), "steps": 2, "device": "cpu"})

    return build


LTX2_FAST = {"stg_scale": 0.0, "modality_scale": 1.0, "max_sequence_length": 16}  # tiny: 1 pass a step


def tiny_diffusers(kind: str):
    """A builder of the diffusers backend over a tiny random pipeline folder: LTX-2 (t2v, condition), Wan,
    HunyuanVideo-1.5 or Kandinsky 5."""

    def build(tmp: Path):
        if kind.startswith("wan-"):
            sys.path.insert(0, str(TINY_WAN))
            from tiny import save_tiny_wan

            return build_backend("diffusers", {"model": str(save_tiny_wan(tmp / kind, kind[4:])), "steps": 2})
        if kind.startswith("hunyuan15-"):
            from tests.backends.tiny_hunyuan15 import save_tiny_hunyuan15

            folder = save_tiny_hunyuan15(tmp / kind, kind[10:])
            return build_backend("diffusers", {"model": str(folder), "steps": 2})
        if kind.startswith("kandinsky5-"):
            from tests.backends.tiny_kandinsky5 import FAST, save_tiny_kandinsky5

            folder = save_tiny_kandinsky5(tmp / kind, kind[11:])
            return build_backend("diffusers", {"model": str(folder), "steps": 2, "call": FAST})
        from tests.backends.tiny_ltx2 import save_tiny_ltx2

        folder = save_tiny_ltx2(tmp / kind, kind)
        return build_backend("diffusers", {"model": str(folder), "steps": 2, "call": LTX2_FAST})

    return build


def tiny_vace(tmp: Path):
    """The wan backend over a tiny random VACE folder (tests/models/wan/tiny_vace.py)."""
    sys.path.insert(0, str(TINY_WAN))
    from tiny_vace import save_tiny_vace

    return build_backend("wan", {"model": str(save_tiny_vace(tmp / "vace")), "steps": 2, "device": "cpu"})


def vace_request(gen) -> ClipRequest:
    from yingxi.backends.base import Conditioning

    face = gradient(24, 40)  # a reference of another shape: letterboxed, never a frame of the shot
    return small_request(48, 32, 9, 16, conditioning=(Conditioning("reference", face, name="Mei"),))


def tone_item():
    """A reference audio: half a second of 660 Hz at 48 kHz, stereo (the director's "audio" item)."""
    from tests.backends.test_diffusers_audio import item, tone

    return item(tone(660.0))


def sounding(tmp: Path):
    from tests.e2e.test_render_conditioning import Sounding  # a test camera: the contract's audio checks

    return Sounding()


CASES = [
    Case("animatic", lambda tmp: build_backend("animatic"), lambda gen: small_request(48, 32, 6, 12)),
    Case("wan-tiny-t2v", tiny_wan("t2v"), lambda gen: small_request(32, 32, 9, 16)),
    Case(
        "wan-tiny-ti2v-image",
        tiny_wan("ti2v"),
        lambda gen: small_request(32, 32, 9, 24, first_frame=gradient(32, 32)),
    ),  # fmt: skip
    Case("wan-tiny-vace-reference", tiny_vace, vace_request),
    Case("sounding-test-camera", sounding, lambda gen: small_request(48, 32, 6, 12)),
    Case(
        "diffusers-ltx2", tiny_diffusers("t2v"), lambda gen: small_request(32, 32, 9, 24, generate_audio=True)
    ),
    Case(
        "diffusers-ltx2-follows-audio",
        tiny_diffusers("t2v"),
        lambda gen: small_request(32, 32, 9, 24, conditioning=(tone_item(),)),
    ),  # fmt: skip
    Case(
        "diffusers-ltx2-conditions",
        tiny_diffusers("condition"),
        lambda gen: small_request(32, 32, 9, 24, first_frame=gradient(32, 32)),
    ),  # fmt: skip
    Case("diffusers-wan-t2v", tiny_diffusers("wan-t2v"), lambda gen: small_request(32, 32, 5, 16)),
    Case(
        "diffusers-hunyuan15-t2v", tiny_diffusers("hunyuan15-t2v"), lambda gen: small_request(32, 32, 9, 24)
    ),
    Case(
        "diffusers-hunyuan15-i2v",
        tiny_diffusers("hunyuan15-i2v"),
        lambda gen: small_request(32, 32, 9, 24, first_frame=gradient(32, 32)),
    ),  # fmt: skip
    Case(
        "diffusers-kandinsky5-t2v", tiny_diffusers("kandinsky5-t2v"), lambda gen: small_request(32, 32, 5, 24)
    ),
    Case(
        "diffusers-kandinsky5-i2v",
        tiny_diffusers("kandinsky5-i2v"),
        lambda gen: small_request(32, 32, 17, 24, first_frame=gradient(32, 32)),
    ),  # fmt: skip  # 17 frames: its own minimum of 5 latent frames
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_backend_contract(case: Case, tmp_path):
    gen = case.build(tmp_path)
    run_contract(gen, case.request(gen), case.stochastic)
