"""What a backend can shoot, declared as data so the director plans within it."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Capabilities:
    """What a backend can shoot, so the director plans within it and APIs reject early."""

    conditionings: frozenset[str] = frozenset({"t2v", "i2v", "flf2v", "references"})
    size_multiple: int = 2  # width and height must be multiples of this
    max_pixels: int | None = None  # width * height limit, if any
    frame_step: int = 1  # legal frame counts are frame_step * k + frame_offset
    frame_offset: int = 0
    min_frames: int = 1
    max_frames: int | None = None
    native_fps: float | None = None  # None: shoots at whatever fps is asked
    # ClipRequest.conditioning kinds it takes ("image", "video", "reference", "control", "audio"); the
    # director turns characters' references, "continue" and reference videos into these where it can.
    conditioning_kinds: frozenset[str] = frozenset()
    audio: bool = False  # it can return the shot's own sound (ClipRequest.generate_audio -> Clip.audio)
    extension_frames: int = 9  # frames of the previous shot a "continue" hands on as a "video" item
    # A backend that picks its own size from the frame's shape (HunyuanVideo-1.5 i2v's buckets): (width,
    # height) asked -> (width, height) it makes, or None where it cannot say.
    size_rule: Callable[[int, int], tuple[int, int] | None] | None = field(default=None, compare=False)

    def legal_frames(self, wanted: int) -> int:
        """The legal frame count nearest to `wanted` (ties go up), within min/max."""
        k = max(0, round((wanted - self.frame_offset) / self.frame_step + 1e-9))
        n = self.frame_step * k + self.frame_offset
        while n < self.min_frames:
            n += self.frame_step
        if self.max_frames is not None:
            while n > self.max_frames:
                n -= self.frame_step
        return n

    def legal_size(self, width: int, height: int) -> tuple[int, int]:
        """The nearest size the backend makes: its own size rule's where it has one, else within max_pixels
        (same aspect ratio), each side a multiple of size_multiple."""
        made = self.size_rule(width, height) if self.size_rule is not None else None
        if made is not None:
            return made
        m = self.size_multiple
        if self.max_pixels is not None and width * height > self.max_pixels:
            scale = math.sqrt(self.max_pixels / (width * height))
            w, h = max(m, math.floor(width * scale / m) * m), max(m, math.floor(height * scale / m) * m)
            return w, h
        return max(m, round(width / m) * m), max(m, round(height / m) * m)
