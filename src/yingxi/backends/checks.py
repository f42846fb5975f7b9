"""Checks every backend's `check` shares: conditioning items and sound that its capabilities exclude,
and items that are not what `Conditioning` says they are, refused before any work."""

from __future__ import annotations

import math

import numpy as np

from yingxi.backends.base import ClipRequest, Conditioning
from yingxi.director.capabilities import Capabilities
from yingxi.errors import CapabilityError, InputError

__all__ = ["check_item", "refuse_unsupported"]

KINDS = ("image", "video", "reference", "control", "audio")


def refuse_unsupported(request: ClipRequest, caps: Capabilities, who: str) -> None:
    """CapabilityError for a conditioning kind, reference images or generated sound `caps` exclude;
    InputError for a malformed item. `who` names the backend or model in the message."""
    for i, item in enumerate(request.conditioning):
        field = f"conditioning[{i}]"
        if not isinstance(item, Conditioning) or item.kind not in KINDS:
            kind = getattr(item, "kind", type(item).__name__)
            raise InputError(f"unknown conditioning kind {kind!r}; kinds: {', '.join(KINDS)}", field=field)
        if item.kind not in caps.conditioning_kinds:
            takes = ", ".join(sorted(caps.conditioning_kinds)) or "none"
            raise CapabilityError(
                f'{who} cannot take "{item.kind}" conditioning (it takes {takes})', field=field
            )
        check_item(item, request, field)
    if request.reference_images and "references" not in caps.conditionings:
        raise CapabilityError(f"{who} cannot follow reference images", field="reference_images")
    if request.generate_audio and not caps.audio:
        raise CapabilityError(f"{who} makes no sound; generate_audio needs a backend that does (LTX-2)",
                              field="generate_audio")  # fmt: skip


def check_steps(request: ClipRequest) -> None:
    """A request's own step count, where it gives one: a whole number of at least 1."""
    steps = request.steps
    if steps is not None and (not isinstance(steps, (int, np.integer)) or steps < 1):
        raise CapabilityError(f"steps must be a whole number of at least 1, got {steps!r}", field="steps")


def check_item(item: Conditioning, request: ClipRequest, field: str) -> None:
    """InputError unless the item's media, frame, strength and rate are what its kind needs."""
    m = item.media
    if not isinstance(m, np.ndarray):
        raise InputError(f"media must be a numpy array, got {type(m).__name__}", field=field)
    if item.kind == "audio":
        if m.dtype != np.float32 or m.ndim != 2 or not m.shape[0]:
            raise InputError(f"audio must be float32 (S, C), got {m.dtype} {m.shape}", field=field)
        if not isinstance(item.sample_rate, int) or item.sample_rate <= 0:
            raise InputError(f"audio needs a positive sample_rate, got {item.sample_rate!r}", field=field)
    else:
        ndim = 3 if item.kind in ("image", "reference") else 4
        if m.dtype != np.uint8 or m.ndim != ndim or m.shape[-1] != 3 or (ndim == 4 and not m.shape[0]):
            want = "(H, W, 3)" if ndim == 3 else "(F, H, W, 3)"
            raise InputError(f"{item.kind} media must be uint8 {want}, got {m.dtype} {m.shape}", field=field)
    n = int(request.num_frames)
    if not isinstance(item.frame, (int, np.integer)) or not 0 <= item.frame < max(n, 1):
        raise InputError(f"frame must be a frame of the shot, 0 to {n - 1}, got {item.frame!r}", field=field)
    if not (
        isinstance(item.strength, (int, float)) and math.isfinite(item.strength) and 0 <= item.strength <= 1
    ):
        raise InputError(f"strength must be in [0, 1], got {item.strength!r}", field=field)
