"""A shot's conditioning items in pixels and samples, from its plan (director/conditioning.py): reference
images, a reference video (control or source to extend), the previous shot's last frames for an extension,
and the reference audio the shot's sound follows.

Beside render() because it decodes files the plan names, as keyframes.py does for first frames."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from yingxi.backends.base import ClipRequest, Conditioning
from yingxi.director.plan import ShotPlan
from yingxi.errors import InputError
from yingxi.media.image import fit_image, load_image
from yingxi.media.video import read_audio, read_frames, read_video

__all__ = ["PREVIOUS_SHOT", "conditioning_items", "with_previous_frames"]

PREVIOUS_SHOT = "previous shot"  # the name of the "video" item a continued shot extends
AUDIO_RATE = 48_000  # an "audio" item's samples: float32 (S, 2) at this rate


def conditioning_items(p: ShotPlan) -> tuple[Conditioning, ...]:
    """The plan's items, decoded; a continued shot's previous frames are a black placeholder until the
    previous shot exists (with_previous_frames puts them in)."""
    c = p.conditioning
    items = []
    if c.extend_frames:
        blank = np.zeros((c.extend_frames, p.height, p.width, 3), np.uint8)
        items.append(Conditioning("video", blank, frame=0, name=PREVIOUS_SHOT))
    if c.reference_video is not None:
        items.append(_video_item(p))
    for name, path in c.references:
        try:  # all of the reference, bars where its shape differs: identity, not a crop of it
            image = fit_image(load_image(path), p.width, p.height, "contain")
        except InputError as e:
            raise InputError(e.message, shot=p.index, field=f"characters.{name}.image",
                             file=e.file or str(path)) from None  # fmt: skip
        items.append(Conditioning("reference", image, name=name))
    if c.audio is not None:
        items.append(_audio_item(p))
    return tuple(items)


def _audio_item(p: ShotPlan) -> Conditioning:
    """The reference audio the shot's sound follows, cut at the shot's length."""
    path = p.conditioning.audio
    try:
        audio = read_audio(path, AUDIO_RATE, max_seconds=p.num_frames / p.fps)  # (S, 2) float32
    except InputError as e:
        raise InputError(e.message, file=e.file or str(path), field="reference_audio", shot=p.index) from None
    return Conditioning("audio", audio, name="reference audio", sample_rate=AUDIO_RATE)


def _video_item(p: ShotPlan) -> Conditioning:
    """A "control" item: the reference video sampled at the shot's frames (nearest in time, its last frame
    held if it is shorter); a "video" item: its last frames, to extend."""
    c, path = p.conditioning, p.conditioning.reference_video
    try:
        info, frames = read_video(path), read_frames(path)  # Seedance's reference videos are 2-15 s
    except InputError as e:
        raise InputError(e.message, shot=p.index, field="reference_video", file=e.file or str(path)) from None
    if c.reference_video_kind == "control":
        picks = [min(len(frames) - 1, round(k * info.fps / p.fps)) for k in range(p.num_frames)]
    else:
        picks = list(range(max(0, len(frames) - max(1, c.source_frames)), len(frames)))
    video = np.stack([fit_image(frames[i], p.width, p.height) for i in picks])  # (F, H, W, 3)
    return Conditioning(c.reference_video_kind, video, frame=0, name=path.name)


def with_previous_frames(request: ClipRequest, frames: np.ndarray) -> ClipRequest:
    """The request with its previous-shot placeholder replaced by `frames` uint8 (N, H, W, 3)."""
    if frames.shape[1:3] != (request.height, request.width):
        frames = np.stack([fit_image(f, request.width, request.height) for f in frames])
    items = tuple(
        replace(item, media=np.ascontiguousarray(frames)) if item.name == PREVIOUS_SHOT else item
        for item in request.conditioning
    )
    return replace(request, conditioning=items)
