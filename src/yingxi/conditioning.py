"""A shot's Seedance references as its backend's conditioning items (backends/base.py `Conditioning`).

The reference video a shot copies (film/mentions.py) becomes a "control" item: its frames resampled to the
shot's frame count and fitted to its size. The audio a shot's sound follows becomes an "audio" item (float32
(S, 2) at 48 kHz). A backend gets only the kinds its capabilities name; for one that takes no audio the clip
is laid as the shot's sound instead, and a backend that makes no sound ignores `generate_audio`: both with a
note, so the person knows.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from yingxi.backends.base import ClipRequest, Conditioning
from yingxi.director.plan import ShotPlan
from yingxi.errors import InputError
from yingxi.film.model import Film
from yingxi.media.image import fit_image
from yingxi.media.video import read_audio, read_frames

SAMPLE_RATE = 48_000


def heard_references(film: Film, kinds: frozenset[str], backend: str) -> tuple[Film, list[str]]:
    """The film as a backend with conditioning `kinds` can render it, and notes on what changed."""
    notes = []
    if film.generate_audio and "audio" not in kinds:
        notes.append(f"generate_audio: the {backend} backend makes no sound of its own; the film's sound is "
                     "its dialogue, music and reference audio")  # fmt: skip
    shots = list(film.shots)
    for i, shot in enumerate(shots):
        if shot.audio_conditioning is not None and "audio" not in kinds:
            shots[i] = replace(shot, audio_conditioning=None, sounds=(*shot.sounds, shot.audio_conditioning))
            notes.append(f"shot {i + 1}: the {backend} backend takes no audio to follow; "
                         f"{shot.audio_conditioning.name} is laid as the shot's sound instead")  # fmt: skip
        if shot.reference_video is not None and "control" not in kinds:
            notes.append(f"shot {i + 1}: the {backend} backend copies no camera move from a video; "
                         f"{shot.reference_video.name} is not used for this shot")  # fmt: skip
    return replace(film, shots=tuple(shots)), notes


def with_references(request: ClipRequest, film: Film, p: ShotPlan, kinds: frozenset[str]) -> ClipRequest:
    """`request` with the shot's control video and audio conditioning (the kinds the backend takes) and the
    film's generate_audio."""
    shot = film.shots[p.index - 1]
    items = list(request.conditioning)
    if shot.reference_video is not None and "control" in kinds:
        items.append(Conditioning("control", control_frames(shot.reference_video, p), name="reference video"))
    if shot.audio_conditioning is not None and "audio" in kinds:
        try:
            audio = read_audio(shot.audio_conditioning, SAMPLE_RATE, max_seconds=p.num_frames / p.fps)
        except InputError as e:
            raise InputError(e.message, file=e.file, field="reference_audio", shot=p.index) from None
        items.append(Conditioning("audio", audio, name="reference audio", sample_rate=SAMPLE_RATE))
    return replace(request, conditioning=tuple(items), generate_audio=film.generate_audio)


def control_frames(path, p: ShotPlan) -> np.ndarray:
    """uint8 (num_frames, H, W, 3): the video's frames spread evenly over the shot, fitted to its size."""
    try:
        frames = read_frames(path)  # (F, h, w, 3)
    except InputError as e:
        raise InputError(e.message, file=e.file, field="reference_video", shot=p.index) from None
    if len(frames) == 0:
        raise InputError("the reference video holds no frames", file=str(path), field="reference_video",
                         shot=p.index)  # fmt: skip
    picks = np.linspace(0, len(frames) - 1, p.num_frames).round().astype(int)  # (num_frames,)
    return np.stack([fit_image(frames[i], p.width, p.height) for i in picks])
