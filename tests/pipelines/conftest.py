"""Tiny random Wan folders (built once per session) and the inputs the parity tests share."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models" / "wan"))
from tiny import save_tiny_wan  # noqa: E402

# 1/255 of the [0, 1] range: what two correct implementations may differ by after rounding to uint8
# (ours is rounded; diffusers' output_type="np" is float, so the rounding alone is up to 0.5/255).
FRAME_TOL = 1.0 / 255


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models are faster on one thread than on two cores shared with other work (10x here)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_wan(tmp_path_factory):
    """tiny_wan(kind) -> Path of a saved tiny diffusers-layout folder (see tests/models/wan/tiny.py)."""
    made: dict[str, Path] = {}

    def make(kind: str) -> Path:
        if kind not in made:
            made[kind] = save_tiny_wan(tmp_path_factory.mktemp(f"tiny-{kind}") / kind, kind)
        return made[kind]

    return make


def random_latents(kind: str, width: int, height: int, num_frames: int, seed: int = 0) -> torch.Tensor:
    z, stride = (48, 16) if kind == "ti2v" else (16, 8)
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, z, (num_frames - 1) // 4 + 1, height // stride, width // stride, generator=g)


def random_image(width: int, height: int, seed: int) -> np.ndarray:
    """A smooth random picture (gradients + noise), uint8 (H, W, 3)."""
    g = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(0, 1, width)[None, :, None] * torch.rand(1, 1, 3, generator=g)
    noise = 0.3 * torch.rand(height, width, 3, generator=g)
    return ((ramp + noise).clamp(0, 1) * 255).to(torch.uint8).numpy()


def assert_frames_close(ours: np.ndarray, theirs: np.ndarray) -> None:
    """ours uint8 (F, H, W, 3) vs diffusers float (F, H, W, 3) in [0, 1], within FRAME_TOL."""
    assert ours.dtype == np.uint8 and ours.shape == theirs.shape
    diff = np.abs(ours.astype(np.float64) / 255.0 - theirs.astype(np.float64)).max()
    assert diff <= FRAME_TOL, f"max difference {diff * 255:.3f}/255"
    assert ours.std() > 1.0  # a real picture, not a flat frame
