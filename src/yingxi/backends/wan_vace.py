"""A shot's conditioning items as Wan VACE inputs (`pipelines/wan/vace.py`), checked before any work.

- `reference` (and `ClipRequest.reference_images`): identity/style images, never a frame of the shot;
- `video` at frame k: those frames kept (mask 0) from k on, the rest made: video extension when k = 0;
- `image` at frame k (and `first_frame` / `last_frame`): that one frame kept;
- `control`: a video (depth, pose, layout, ...) the made frames follow, with its strength as VACE's
  conditioning scale.
A frame is either kept or guided by a control, not both; `audio` is not something Wan takes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from yingxi.backends.base import ClipRequest, Conditioning
from yingxi.errors import CapabilityError, InputError

__all__ = ["VACE_KINDS", "VaceArgs", "vace_args"]

VACE_KINDS = frozenset({"reference", "video", "image", "control"})


@dataclass(frozen=True)
class VaceArgs:
    """What `WanVACEPipeline` takes for one shot."""

    video: list[np.ndarray | None] | None  # per frame: uint8 (H, W, 3), or None where nothing is given
    mask: np.ndarray | None  # uint8 (F, H, W): 255 where the frame is made, 0 where `video` is kept
    reference_images: list[np.ndarray]
    conditioning_scale: float


def _frames(item: Conditioning, index: int, request: ClipRequest) -> np.ndarray:
    """The item's media as uint8 (n, H, W, 3) at the shot's size; errors name the item."""
    media = item.media
    if isinstance(media, np.ndarray) and media.ndim == 3 and item.kind == "image":
        media = media[None]
    where = f"conditioning[{index}] ({item.kind})"
    want = (request.height, request.width)
    if (
        not isinstance(media, np.ndarray)
        or media.dtype != np.uint8
        or media.ndim != 4
        or media.shape[-1] != 3
    ):
        got = f"{media.dtype} {media.shape}" if isinstance(media, np.ndarray) else type(media).__name__
        raise InputError(f"{where} must be uint8 frames (F, H, W, 3), got {got}", field="conditioning")
    if media.shape[1:3] != want:
        raise InputError(
            f"{where} is {media.shape[2]}x{media.shape[1]}, the shot {request.width}x{request.height}",
            field="conditioning",
        )
    if not 0 <= item.frame or item.frame + len(media) > request.num_frames:
        raise InputError(
            f"{where} covers frames {item.frame}..{item.frame + len(media) - 1}, outside the shot's "
            f"0..{request.num_frames - 1}",
            field="conditioning",
        )
    return media


def vace_args(request: ClipRequest, model: str) -> VaceArgs:
    """The VACE inputs of a request, or CapabilityError/InputError naming the item it cannot take."""
    n = request.num_frames
    video: list[np.ndarray | None] = [None] * n
    kept = np.zeros(n, bool)
    guided = np.zeros(n, bool)
    refs = [np.asarray(r) for r in request.reference_images]
    scales: set[float] = set()
    items = list(enumerate(request.conditioning))
    pinned = [(request.first_frame, 0, "first_frame"), (request.last_frame, n - 1, "last_frame")]
    for image, frame, name in pinned:
        if image is not None:
            items.append((name, Conditioning("image", image, frame=frame)))
    for index, item in items:
        where = f"conditioning[{index}] ({item.kind})" if isinstance(index, int) else index
        if item.kind not in VACE_KINDS:
            raise CapabilityError(
                f"{where}: {model} takes reference images, videos to extend, pinned frames and control "
                f"videos, not {item.kind}",
                field="conditioning",
            )
        if not 0.0 <= float(item.strength) <= 1.0:
            raise InputError(
                f"{where}: strength must be in [0, 1], got {item.strength}", field="conditioning"
            )
        if item.kind == "reference":
            refs.append(item.media)
            continue
        if item.kind != "control" and item.strength != 1.0:
            raise CapabilityError(
                f"{where}: {model} keeps given frames exactly (strength 1); a strength applies to control "
                "videos only",
                field="conditioning",
            )
        frames = _frames(item, index if isinstance(index, int) else 0, request)
        span = slice(item.frame, item.frame + len(frames))
        if kept[span].any() or guided[span].any():
            raise CapabilityError(
                f"{where} overlaps another item at frames {item.frame}..{span.stop - 1}: a frame is either "
                "kept or guided by one control video",
                field="conditioning",
            )
        (guided if item.kind == "control" else kept)[span] = True
        if item.kind == "control":
            scales.add(float(item.strength))
        video[span] = list(frames)
    if len(scales) > 1:
        raise CapabilityError(
            f"{model} has one conditioning scale per shot; the control videos ask for {sorted(scales)}",
            field="conditioning",
        )
    for i, ref in enumerate(refs):
        if not isinstance(ref, np.ndarray) or ref.dtype != np.uint8 or ref.ndim != 3 or ref.shape[-1] != 3:
            raise InputError(f"reference image {i} must be uint8 (H, W, 3)", field="conditioning")
    if not (kept.any() or guided.any()):
        return VaceArgs(None, None, refs, 1.0)
    mask = np.where(kept, 0, 255).astype(np.uint8)[:, None, None]  # (F, 1, 1)
    mask = np.broadcast_to(mask, (n, request.height, request.width)).copy()  # (F, H, W)
    return VaceArgs(video, mask, refs, scales.pop() if scales else 1.0)
