"""The user's request as plain, frozen data: what to film, never how it is rendered."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

from yingxi.film.limits import MAX_SHOT_SECONDS, MIN_SHOT_SECONDS  # noqa: F401  (re-exported: one limit table)

FRAMINGS = ("extreme wide", "wide", "medium", "close-up", "extreme close-up")
MOVES = ("static", "pan", "tilt", "zoom", "dolly", "truck", "orbit", "crane", "handheld")
# Which directions each move takes; an empty tuple means the move has no direction.
MOVE_DIRECTIONS: dict[str, tuple[str, ...]] = {
    "static": (),
    "pan": ("left", "right"),
    "tilt": ("up", "down"),
    "zoom": ("in", "out"),
    "dolly": ("in", "out"),
    "truck": ("left", "right"),
    "orbit": ("left", "right"),
    "crane": ("up", "down"),
    "handheld": (),
}
FITS = ("cover", "contain", "blur")  # how a keyframe meets the frame: crop, bars, or a blurred fill
COMPOSITIONS = ("two-shot", "speaker")  # several characters: side by side, or whoever speaks
TRANSITIONS = ("cut", "crossfade", "fade", "wipe")
TRANSITION_ALIASES = {"dissolve": "crossfade", "cross-fade": "crossfade", "fade to black": "fade",
                      "fade through black": "fade", "fade from black": "fade"}  # fmt: skip
# Seconds each transition takes out of the two shots it joins (half from each).
TRANSITION_SECONDS = {"cut": 0.0, "crossfade": 0.5, "fade": 0.8, "wipe": 0.5}
RESOLUTIONS = ("480p", "720p", "1080p")
# Few-step sampling presets a film may ask for (the Wan backend keeps a row of settings per model for each).
PRESETS = ("lightning",)
# What a shot's reference video is for: a control video its motion/layout follows, or a source it extends.
REFERENCE_VIDEO_USES = ("control", "extend")
SHOT_AUDIO_USES = (
    "sound",
    "follow",
)  # a script shot's `audio`: laid at the shot, or what its picture follows
RATIOS = ("16:9", "9:16", "1:1", "4:3", "3:4", "21:9")
# Output sizes per resolution and ratio, as Seedance 2.0 documents them (all even, for yuv420p).
SIZES: dict[str, dict[str, tuple[int, int]]] = {
    "480p": {"16:9": (864, 480), "4:3": (736, 544), "1:1": (640, 640), "3:4": (544, 736),
             "9:16": (480, 864), "21:9": (960, 416)},
    "720p": {"16:9": (1280, 720), "4:3": (1112, 834), "1:1": (960, 960), "3:4": (834, 1112),
             "9:16": (720, 1280), "21:9": (1470, 630)},
    "1080p": {"16:9": (1920, 1080), "4:3": (1664, 1248), "1:1": (1440, 1440), "3:4": (1248, 1664),
              "9:16": (1080, 1920), "21:9": (2206, 946)},
}  # fmt: skip
DEFAULT_SHOT_SECONDS = 5.0  # a shot that does not say how long it lasts, in prompts and scripts alike


@dataclass(frozen=True)
class CameraMove:
    kind: str = "static"  # one of MOVES
    direction: str | None = None  # one of MOVE_DIRECTIONS[kind], or None
    speed: str = "normal"  # "slow" | "normal" | "fast"

    @property
    def words(self) -> str:
        """The move as the grammar writes it, e.g. "slow pan left"."""
        parts = [] if self.speed == "normal" else [self.speed]
        parts.append(self.kind)
        if self.direction:
            parts.append(self.direction)
        return " ".join(parts)


@dataclass(frozen=True)
class Camera:
    framing: str = "medium"  # one of FRAMINGS
    move: CameraMove = field(default_factory=CameraMove)


@dataclass(frozen=True)
class Transition:
    """How this shot begins: the cut from the previous shot into it."""

    kind: str = "cut"  # one of TRANSITIONS
    direction: str | None = None  # "left" | "right" for wipes
    seconds: float | None = None  # None: TRANSITION_SECONDS[kind]

    @property
    def duration(self) -> float:
        return TRANSITION_SECONDS[self.kind] if self.seconds is None else self.seconds

    @property
    def words(self) -> str:
        return f"{self.kind} {self.direction}" if self.direction else self.kind


@dataclass(frozen=True)
class DialogueLine:
    character: str
    line: str


@dataclass(frozen=True)
class Character:
    name: str
    description: str = ""
    image: Path | None = None  # reference image: the keyframe of shots that feature this character
    voice: str | None = None  # an espeak-ng voice ("en-us", "en+m3", "zh"); None: one is chosen per character


@dataclass(frozen=True)
class Shot:
    prompt: str
    duration: float = DEFAULT_SHOT_SECONDS
    camera: Camera = field(default_factory=Camera)
    transition: Transition = field(default_factory=Transition)
    dialogue: tuple[DialogueLine, ...] = ()
    characters: tuple[str, ...] = ()  # names featured; dialogue speakers are featured implicitly
    first_frame: Path | None = None
    last_frame: Path | None = None
    continue_previous: bool = False  # carry on from the previous shot's last frame
    seed: int | None = None  # None: derived from the film's seed
    focus: tuple[float, float] | None = None  # (x, y) fractions of the keyframe a closer framing centres on
    compose: str | None = None  # one of COMPOSITIONS for several characters; None: a two-shot
    fit: str | None = None  # one of FITS for this shot's keyframes; None: the film's
    # A video the shot follows (its motion or layout: "control") or extends ("extend"), for backends that can;
    # a Seedance prompt ties one with @video1 (film/mentions.py). Sound effects laid from the shot's start,
    # and audio the shot's generated sound is conditioned on (an "audio" item).
    reference_video: Path | None = None
    reference_video_use: str = "control"  # one of REFERENCE_VIDEO_USES
    sounds: tuple[Path, ...] = ()
    audio_conditioning: Path | None = None

    @property
    def featured(self) -> tuple[str, ...]:
        """Characters in the shot: listed ones first, then speakers, without repeats."""
        names = list(self.characters) + [d.character for d in self.dialogue]
        return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class Film:
    shots: tuple[Shot, ...]
    title: str = ""
    style: str = ""  # text that applies to every shot
    style_image: Path | None = None  # keyframe of last resort before a title card
    characters: tuple[Character, ...] = ()
    fps: int | Fraction = 24  # 23.976 and 29.97 are kept exact: Fraction(24000, 1001), Fraction(30000, 1001)
    resolution: str = "720p"
    ratio: str = "16:9"
    seed: int = 0
    music: Path | None = None
    reference_audio: tuple[Path, ...] = ()
    reference_videos: tuple[Path, ...] = ()  # every reference video, in request order (@video1 first)
    generate_audio: bool = False  # each shot's own sound, from a backend that makes it (Seedance's field)
    custom_size: tuple[int, int] | None = None  # exact (width, height), overriding resolution and ratio
    fade_out: float = 0.0  # seconds over which the film's end fades to black ("fade out"); 0: none
    fit: str = "cover"  # one of FITS: how first frames and keyframes meet the frame
    preset: str | None = None  # one of PRESETS: few-step sampling for neural backends (None: theirs)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.custom_size or SIZES[self.resolution][self.ratio]

    @property
    def duration(self) -> float:
        """Seconds: the sum of shot durations (transitions take their time out of the shots they join)."""
        return sum(s.duration for s in self.shots)

    def character(self, name: str) -> Character | None:
        for c in self.characters:
            if c.name.lower() == name.lower():
                return c
        return None

    def with_shot(self, index: int, shot: Shot) -> Film:
        shots = list(self.shots)
        shots[index] = shot
        return replace(self, shots=tuple(shots))
