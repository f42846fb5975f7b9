"""What every camera (backend) takes and gives: one shot in, frames out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from yingxi.director.camera import CameraPath
from yingxi.director.capabilities import Capabilities

__all__ = ["CameraPath", "Capabilities", "Clip", "ClipRequest", "Conditioning", "Generator", "ShotProgress"]

# Called with the fraction of the current shot done, in [0, 1].
ShotProgress = Callable[[float], None]


ConditioningKind = Literal["image", "video", "reference", "control", "audio"]


@dataclass(frozen=True)
class Conditioning:
    """One conditioning item of a shot (in the spirit of LTX-Video's `ConditioningItem`).

    kind "image": one frame pinned at `frame`; "video": frames (e.g. the previous shot's last ones) placed from
    `frame` on, to extend; "reference": an identity/style image that is not a frame of the shot (`name`: the
    character or reference it stands for); "control": a video whose motion or layout the shot follows;
    "audio": a sound clip (float32 (S, C) in [-1, 1] at `sample_rate`) the shot's sound is conditioned on.
    A backend uses the kinds its capabilities name and refuses the rest in `check`, before any work.
    """

    kind: ConditioningKind
    media: np.ndarray  # image uint8 (H, W, 3); video/control uint8 (F, H, W, 3); audio float32 (S, C)
    frame: int = 0  # the shot frame the item applies from
    strength: float = 1.0  # in [0, 1]
    name: str = ""  # e.g. the character a reference image shows, or "@image2"
    sample_rate: int | None = None  # audio only


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
    conditioning: tuple[Conditioning, ...] = ()  # extra conditioning items, for backends that take them
    generate_audio: bool = False  # ask a backend that makes sound (LTX-2) to return the shot's audio too


@dataclass(frozen=True)
class Clip:
    frames: np.ndarray  # uint8 (F, H, W, 3)
    fps: float
    evaluations: int | None = None  # transformer forward passes it cost (neural backends)
    skipped: int | None = None  # forward passes a step cache skipped (reused a residual) on top of those
    audio: np.ndarray | None = None  # float32 (S, C) in [-1, 1]: the shot's own generated sound, if any
    sample_rate: int | None = None  # of `audio`

    def __post_init__(self) -> None:
        f = self.frames
        if f.dtype != np.uint8 or f.ndim != 4 or f.shape[-1] != 3:
            raise ValueError(f"Clip frames must be uint8 (F, H, W, 3), got {f.dtype} {f.shape}")
        a = self.audio
        if a is not None and (a.dtype != np.float32 or a.ndim != 2 or not self.sample_rate):
            raise ValueError(f"Clip audio must be float32 (S, C) with a sample_rate, got {a.dtype} {a.shape}")

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])


class Generator(Protocol):
    """A camera. `check` refuses, before any work, a request `generate` would refuse (a conditioning kind,
    size or frame count its capabilities exclude), so a film fails on its first shot's plan, not its last."""

    name: str

    @property
    def capabilities(self) -> Capabilities: ...

    def check(self, request: ClipRequest) -> None: ...

    def generate(self, request: ClipRequest, progress: ShotProgress | None = None) -> Clip: ...
