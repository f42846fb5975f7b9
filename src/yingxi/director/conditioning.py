"""Which conditioning items a shot gets, within what the backend takes (Capabilities.conditioning_kinds):

- characters' reference images -> "reference" items named for the character (identity without making the
  reference the first frame), where the backend takes references; else they stay the keyframe;
- `continue` -> a "video" item of the previous shot's last frames at frame 0 (video extension), where the
  backend takes video conditioning; else the previous last frame is the first frame;
- a shot's reference video -> a "control" item (its motion or layout) or a "video" item to extend, as the
  script says (`reference_video: {file, use: control | extend}`);
- `generate_audio` where the film asks for sound and the backend makes it;
- a reference audio the prompt ties to a shot's sound (film/mentions.py) -> an "audio" item the backend's sound
  follows, where it takes one; else the clip is laid as the shot's sound effect, with a note.
The items' pixels are decoded at render time (render.py); the plan holds paths and counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from yingxi.director.capabilities import Capabilities
from yingxi.film.model import Film, Shot

__all__ = ["ShotConditioning", "shot_conditioning"]

VIDEO_KIND = {"control": "control", "extend": "video"}  # the script's word -> the Conditioning kind


@dataclass(frozen=True)
class ShotConditioning:
    references: tuple[tuple[str, Path], ...] = ()  # (character name, image): "reference" items
    extend_frames: int = 0  # a continued shot: this many of the previous shot's last frames as a "video" item
    reference_video: Path | None = None  # decoded to a "control" or "video" item
    reference_video_kind: str | None = None  # "control" | "video"
    source_frames: int = 0  # a "video" reference video: this many of its last frames are extended
    generate_audio: bool = False  # ask the backend for the shot's own sound
    audio: Path | None = None  # a reference audio the backend's sound follows: an "audio" item
    sounds: tuple[Path, ...] = ()  # sound effects the editor lays at the shot (the script's, and a reference
    # audio the backend cannot follow)

    @property
    def sounding(self) -> bool:
        """The backend returns this shot's sound: generated, or the audio it followed (held as it is)."""
        return self.generate_audio or self.audio is not None

    @property
    def words(self) -> str:
        """What the plan shows: 'references OLD JIA, XIAO LI; extends 9 frames; control clip.mp4; sound'."""
        parts = []
        if self.references:
            parts.append("references " + ", ".join(name for name, _ in self.references))
        if self.extend_frames:
            parts.append(f"extends the previous shot's last {self.extend_frames} frames")
        if self.reference_video is not None:
            parts.append(f"{self.reference_video_kind} {self.reference_video.name}")
        if self.generate_audio:
            parts.append("generated sound")
        if self.audio is not None:
            parts.append(f"sound follows {self.audio.name}")
        return "; ".join(parts)


def shot_conditioning(
    film: Film, shot: Shot, keyframe_source: str, caps: Capabilities, notes: list[str]
) -> ShotConditioning:
    """The items shot `shot` gets, given where the director's keyframe for it comes from ("continue",
    "character", ...); `notes` get what the backend cannot take."""
    kinds = caps.conditioning_kinds
    references: tuple[tuple[str, Path], ...] = ()
    if "reference" in kinds:
        cast = [film.character(n) for n in shot.featured]
        references = tuple((c.name, c.image) for c in cast if c is not None and c.image is not None)
    extend = caps.extension_frames if keyframe_source == "continue" and "video" in kinds else 0
    video, video_kind = None, None
    if shot.reference_video is not None:
        wanted = VIDEO_KIND.get(shot.reference_video_use, "control")
        if wanted in kinds:
            video, video_kind = shot.reference_video, wanted
        else:
            notes.append(f"the reference video {shot.reference_video.name} is not used: this backend takes no "
                         f"{wanted} conditioning")  # fmt: skip
    sound = film.generate_audio and caps.audio
    if film.generate_audio and not caps.audio and shot is film.shots[0]:  # said once, for the film
        notes.append("no generated sound: this backend makes none (dialogue and music are mixed as usual)")
    source = caps.extension_frames if video_kind == "video" else 0
    audio, sounds = shot.audio_conditioning, shot.sounds
    if audio is not None and "audio" not in kinds:
        notes.append(
            f"this backend takes no audio to follow; {audio.name} is laid as the shot's sound instead"
        )
        audio, sounds = None, (*sounds, audio)
    return ShotConditioning(references, extend, video, video_kind, source, sound, audio, sounds)
