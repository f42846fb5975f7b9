"""The shot plan: what each shot needs so any backend can shoot it and the editor can cut it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from yingxi.director.camera import CameraPath, camera_path, camera_phrase
from yingxi.director.capabilities import Capabilities
from yingxi.errors import CapabilityError
from yingxi.film.model import Film, Shot, Transition

# The plan carries no negative prompt of its own: each neural backend has the one its model was sampled
# with (Wan: models.wan.config.WAN_NEGATIVE_PROMPT), and a generic list would only displace it.
DEFAULT_NEGATIVE_PROMPT = ""


# Keyframes the director chose (rather than the user): dropped, with a note, for text-only backends.
# An explicit first_frame is kept, so a backend that cannot use it says so before any work starts.
IMPLICIT_SOURCES = {"continue": "previous shot's last frame", "character": "character's reference image",
                    "style": "style image"}  # fmt: skip
IMAGE_CONDITIONINGS = frozenset({"i2v", "flf2v"})
SENTENCE_ENDS = (".", "!", "?", "…", "。", "！", "？", '"', "”", "」")


@dataclass(frozen=True)
class Keyframe:
    """Where a shot's first picture comes from, in the order the director tries them."""

    source: str  # "first_frame" | "continue" | "character" | "style" | "title"
    path: Path | None = None  # the image, for first_frame / character / style
    character: str | None = None  # whose reference image, for "character"


@dataclass(frozen=True)
class ShotPlan:
    index: int  # 1-based shot number, as people count shots
    shot: Shot
    prompt: str  # full prompt for neural backends: style, characters, shot text, framing and move
    negative_prompt: str
    num_frames: int  # at `fps`
    fps: float
    width: int
    height: int
    seed: int
    camera: CameraPath  # one sample per frame
    camera_phrase: str
    keyframe: Keyframe
    last_frame: Path | None
    notes: tuple[str, ...] = ()  # what the director changed and why (snapped durations, sizes)

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps

    @property
    def transition(self) -> Transition:
        return self.shot.transition


def shot_seed(film_seed: int, index: int) -> int:
    """A per-shot seed that depends only on the film's seed and the shot number (stable across runs)."""
    digest = hashlib.sha256(f"yingxi:{film_seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def _sentence(text: str) -> str:
    """Text ending as a sentence does, once: "Is it late?" stays, "冰河。" gets no extra ".", "Ice" gets one."""
    text = text.strip()
    return text if text.endswith(SENTENCE_ENDS) else f"{text}."


def shot_prompt(film: Film, shot: Shot, phrase: str) -> str:
    parts = [_sentence(shot.prompt)]
    for name in shot.featured:
        character = film.character(name)
        if character and character.description:
            parts.append(_sentence(f"{character.name}: {character.description}"))
    parts.append(_sentence(phrase[0].upper() + phrase[1:]))
    if film.style:
        parts.append(_sentence(film.style))
    return " ".join(parts)


def keyframe_for(film: Film, index: int) -> Keyframe:
    """first_frame; else the previous shot's last frame when continuing; else a featured
    character's reference image; else the style image; else a title card."""
    shot = film.shots[index - 1]
    if shot.first_frame is not None:
        return Keyframe("first_frame", path=shot.first_frame)
    if shot.continue_previous and index > 1:
        return Keyframe("continue")
    for name in shot.featured:
        character = film.character(name)
        if character and character.image is not None:
            return Keyframe("character", path=character.image, character=character.name)
    if film.style_image is not None:
        return Keyframe("style", path=film.style_image)
    return Keyframe("title")


def plan(film: Film, caps: Capabilities | None = None) -> list[ShotPlan]:
    """One ShotPlan per shot, within what the backend can shoot."""
    caps = caps or Capabilities()
    fps = float(caps.native_fps or film.fps)
    width, height = caps.legal_size(*film.size)
    plans = []
    # Frames are counted on the film's running clock, not shot by shot, so rounding does not add up:
    # ten 0.27 s shots at 24 fps are 65 frames (2.71 s), not 10 x 6 = 60 (2.5 s).
    ends, wanted_so_far = 0.0, 0
    for i, shot in enumerate(film.shots, start=1):
        notes = []
        if (width, height) != film.size:
            notes.append(f"size {film.size[0]}x{film.size[1]} -> {width}x{height} for this backend")
        ends += shot.duration
        wanted = max(1, round(ends * fps) - wanted_so_far)
        wanted_so_far += wanted
        if caps.max_frames is not None and wanted > caps.max_frames + caps.frame_step:
            raise CapabilityError(
                f"the shot lasts {shot.duration:g}s, but this backend makes at most {caps.max_frames} frames "
                f"({caps.max_frames / fps:.2f}s at {fps:g} fps) in one shot; split it into shorter shots",
                shot=i,
                field="duration",
            )
        frames = caps.legal_frames(wanted)
        if frames != wanted:
            notes.append(
                f"duration {shot.duration:g}s -> {frames / fps:.2f}s ({frames} frames, the nearest this backend shoots)"
            )
        keyframe = keyframe_for(film, i)
        if keyframe.source in IMPLICIT_SOURCES and not caps.conditionings & IMAGE_CONDITIONINGS:
            notes.append(
                f"the {IMPLICIT_SOURCES[keyframe.source]} is not used: this backend shoots from text only"
            )
            keyframe = Keyframe("title")
        seed = shot.seed if shot.seed is not None else shot_seed(film.seed, i)
        move = shot.camera.move
        phrase = camera_phrase(shot.camera.framing, move.kind, move.direction, move.speed)
        plans.append(
            ShotPlan(
                index=i,
                shot=shot,
                prompt=shot_prompt(film, shot, phrase),
                negative_prompt=DEFAULT_NEGATIVE_PROMPT,
                num_frames=frames,
                fps=fps,
                width=width,
                height=height,
                seed=seed,
                camera=camera_path(move.kind, move.direction, move.speed, frames, seed),
                camera_phrase=phrase,
                keyframe=keyframe,
                last_frame=shot.last_frame,
                notes=tuple(notes),
            )
        )
    return plans
