"""A shot's Seedance reference audio as its backend's conditioning item (backends/base.py `Conditioning`).

The audio a shot's sound follows (film/mentions.py) becomes an "audio" item (float32 (S, 2) at 48 kHz) for a
backend whose `Capabilities.conditioning_kinds` name "audio"; for one that takes none the clip is laid as the
shot's sound instead, with a note, so the person knows. (Reference videos and character references become
items through the director: director/conditioning.py, conditioning_items.py.)
"""

from __future__ import annotations

from dataclasses import replace

from yingxi.backends.base import ClipRequest, Conditioning
from yingxi.director.plan import ShotPlan
from yingxi.errors import InputError
from yingxi.film.model import Film
from yingxi.media.video import read_audio

SAMPLE_RATE = 48_000


def heard_references(film: Film, kinds: frozenset[str], backend: str) -> tuple[Film, list[str]]:
    """The film as a backend taking conditioning `kinds` can render it, and notes on what changed."""
    notes = []
    shots = list(film.shots)
    for i, shot in enumerate(shots):
        if shot.audio_conditioning is not None and "audio" not in kinds:
            shots[i] = replace(shot, audio_conditioning=None, sounds=(*shot.sounds, shot.audio_conditioning))
            notes.append(f"shot {i + 1}: the {backend} backend takes no audio to follow; "
                         f"{shot.audio_conditioning.name} is laid as the shot's sound instead")  # fmt: skip
    return replace(film, shots=tuple(shots)), notes


def with_audio_conditioning(
    request: ClipRequest, film: Film, p: ShotPlan, kinds: frozenset[str]
) -> ClipRequest:
    """`request` with the shot's audio conditioning item, where the backend takes one."""
    shot = film.shots[p.index - 1]
    if shot.audio_conditioning is None or "audio" not in kinds:
        return request
    try:
        audio = read_audio(shot.audio_conditioning, SAMPLE_RATE, max_seconds=p.num_frames / p.fps)
    except InputError as e:
        raise InputError(e.message, file=e.file, field="reference_audio", shot=p.index) from None
    item = Conditioning("audio", audio, name="reference audio", sample_rate=SAMPLE_RATE)
    return replace(request, conditioning=(*request.conditioning, item))
