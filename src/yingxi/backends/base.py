"""What every camera (backend) takes and gives: one shot in, frames out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from yingxi.director.camera import CameraPath
from yingxi.director.capabilities import Capabilities

__all__ = ["CameraPath", "Capabilities", "Clip", "ClipRequest", "Generator", "ShotProgress"]

# Called with the fraction of the current shot done, in [0, 1].
ShotProgress = Callable[[float], None]


@dataclass(frozen=True)
class ClipRequest:
    prompt: str
    width: int
    height: int
    num_frames: int
    fps: float
    seed: int
    negative_prompt: str = ""
    first_frame: np.ndarray | None = None  # uint8 (H, W, 3) at width x height
    last_frame: np.ndarray | None = None  # uint8 (H, W, 3)
    reference_images: tuple[np.ndarray, ...] = ()
    steps: int | None = None  # None: the backend's default
    guidance: float | None = None
    camera: CameraPath | None = None  # the director's motion curve (the animatic applies it)
    title: str = ""  # text for a title card when there is no keyframe
    options: dict[str, Any] = field(default_factory=dict)  # backend-specific, validated by the backend
    cuts: tuple[tuple[int, np.ndarray], ...] = ()  # (frame, uint8 (H, W, 3)): the keyframe from that frame on
    palette: tuple[tuple[int, int, int], ...] = ()  # title-card colours (RGB) from the style's colour words
    preset: str | None = None  # a few-step sampling preset ("lightning"), for backends that have them


@dataclass(frozen=True)
class Clip:
    frames: np.ndarray  # uint8 (F, H, W, 3)
    fps: float
    evaluations: int | None = None  # transformer forward passes it cost (neural backends)
    skipped: int | None = None  # forward passes a step cache skipped (reused a residual) on top of those

    def __post_init__(self) -> None:
        f = self.frames
        if f.dtype != np.uint8 or f.ndim != 4 or f.shape[-1] != 3:
            raise ValueError(f"Clip frames must be uint8 (F, H, W, 3), got {f.dtype} {f.shape}")

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])


class Generator(Protocol):
    name: str

    @property
    def capabilities(self) -> Capabilities: ...

    def generate(self, request: ClipRequest, progress: ShotProgress | None = None) -> Clip: ...
