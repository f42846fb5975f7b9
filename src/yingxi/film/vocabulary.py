"""Camera, framing, transition and duration words: one parser each, shared by the prompt grammar
and scripts, so both accept the same words and fail with the same messages."""

from __future__ import annotations

import math
import re

from yingxi.errors import InputError, closest, unknown_word
from yingxi.film.model import (
    FRAMINGS,
    MAX_SHOT_SECONDS,
    MIN_SHOT_SECONDS,
    MOVE_DIRECTIONS,
    PRESETS,
    RATIOS,
    RESOLUTIONS,
    TRANSITION_ALIASES,
    TRANSITIONS,
    Camera,
    CameraMove,
    Transition,
)

FRAMING_ALIASES = {
    "extreme wide shot": "extreme wide", "extreme long shot": "extreme wide", "ews": "extreme wide",
    "wide shot": "wide", "long shot": "wide", "ws": "wide", "full shot": "wide",
    "medium shot": "medium", "mid shot": "medium", "ms": "medium",
    "close up": "close-up", "closeup": "close-up", "close-up shot": "close-up", "cu": "close-up",
    "extreme close up": "extreme close-up", "extreme closeup": "extreme close-up", "ecu": "extreme close-up",
    "大远景": "extreme wide", "远景": "wide", "全景": "wide", "中景": "medium", "近景": "close-up",
    "特写": "close-up", "大特写": "extreme close-up",
}  # fmt: skip
SPEED_WORDS = {"slow": "slow", "slowly": "slow", "gentle": "slow", "fast": "fast", "quick": "fast",
               "quickly": "fast", "rapid": "fast"}  # fmt: skip
STATIC_ALIASES = ("locked", "locked off", "fixed", "still")
CONTINUE_WORDS = ("continue", "continues", "continued", "cont")
NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"  # 4, 4.0, 4., .5
DURATION_RE = re.compile(rf"^{NUMBER}\s*(?:s|sec|secs|second|seconds|秒)$")


def camera_words() -> list[str]:
    """Every camera move as written, e.g. "pan left", "static"."""
    words = []
    for kind, directions in MOVE_DIRECTIONS.items():
        words += [f"{kind} {d}" for d in directions] if directions else [kind]
    return words


def transition_words() -> list[str]:
    return ["cut", "crossfade", "dissolve", "fade", "wipe left", "wipe right"]


def _norm(text: str) -> str:
    return " ".join(text.lower().replace("_", " ").split())


def parse_duration(value: object, *, shot: int | None = None, field: str = "duration") -> float:
    """'4s', '2.5s', 4, 2.5 -> seconds, within the shot limits."""
    if isinstance(value, bool):
        value = str(value)
    if isinstance(value, (int, float)):
        seconds = float(value)
        if not math.isfinite(seconds):
            raise InputError(
                f'"{value}" is not a duration; write seconds like "4s" or "2.5s"', shot=shot, field=field
            )
    else:
        # A header needs the unit ("4s"); a script's field is seconds already, so "4" is read as 4 s.
        m = DURATION_RE.match(_norm(str(value))) or re.fullmatch(NUMBER, _norm(str(value)))
        if not m:
            raise InputError(
                f'"{value}" is not a duration; write seconds like "4s" or "2.5s"', shot=shot, field=field
            )
        seconds = float(m.group(1))
    if not MIN_SHOT_SECONDS <= seconds <= MAX_SHOT_SECONDS:
        raise InputError(
            f"{seconds:g}s is out of range; a shot lasts {MIN_SHOT_SECONDS:g}s to {MAX_SHOT_SECONDS:g}s",
            shot=shot,
            field=field,
        )
    return seconds


def parse_framing(value: str, *, shot: int | None = None, field: str = "framing") -> str:
    word = _norm(value)
    word = FRAMING_ALIASES.get(word, word)
    if word not in FRAMINGS:
        raise InputError(unknown_word("framing", value, FRAMINGS), shot=shot, field=field)
    return word


def parse_camera_move(value: str, *, shot: int | None = None, field: str = "camera") -> CameraMove:
    """'slow pan left', 'pan left slowly', 'dolly-in', 'static', 'handheld' -> CameraMove."""
    words = _norm(value.replace("-", " ")).split()
    speeds = [SPEED_WORDS[w] for w in words if w in SPEED_WORDS]
    words = [w for w in words if w not in SPEED_WORDS]
    if len(set(speeds)) > 1:
        raise InputError(f'"{value}" is both slow and fast; pick one', shot=shot, field=field)
    speed = speeds[0] if speeds else "normal"
    phrase = " ".join(words)
    if phrase in STATIC_ALIASES:
        phrase = "static"
    kind, _, direction = phrase.partition(" ")
    if kind not in MOVE_DIRECTIONS:
        raise InputError(unknown_word("camera move", value, camera_words()), shot=shot, field=field)
    directions = MOVE_DIRECTIONS[kind]
    if not directions:
        if direction:
            raise InputError(f'"{kind}" takes no direction (got "{direction}")', shot=shot, field=field)
        return CameraMove(kind=kind, speed=speed)
    if not direction:
        raise InputError(
            f'"{kind}" needs a direction: {kind} {" or ".join(directions)}', shot=shot, field=field
        )
    if direction not in directions:
        choices = [f"{kind} {d}" for d in directions]
        raise InputError(unknown_word("camera move", f"{kind} {direction}", choices), shot=shot, field=field)
    return CameraMove(kind=kind, direction=direction, speed=speed)


def parse_transition(value: str, *, shot: int | None = None, field: str = "transition") -> Transition:
    """'cut', 'crossfade'/'dissolve', 'fade' (through black), 'wipe left'/'wipe right'."""
    phrase = _norm(value)
    phrase = TRANSITION_ALIASES.get(phrase, phrase)
    kind, _, direction = phrase.partition(" ")
    kind = TRANSITION_ALIASES.get(kind, kind)
    if kind not in TRANSITIONS:
        raise InputError(unknown_word("transition", value, transition_words()), shot=shot, field=field)
    if kind == "wipe":
        direction = direction or "left"
        if direction not in ("left", "right"):
            raise InputError(
                unknown_word("transition", value, ["wipe left", "wipe right"]), shot=shot, field=field
            )
        return Transition(kind="wipe", direction=direction)
    if direction:
        raise InputError(unknown_word("transition", value, transition_words()), shot=shot, field=field)
    return Transition(kind=kind)


def classify_attribute(token: str) -> str | None:
    """Which header attribute a token is ("duration", "framing", "camera", "transition", "continue",
    "seed"), or None if it is none of them."""
    word = _norm(token)
    if DURATION_RE.match(word):
        return "duration"
    if word in CONTINUE_WORDS:
        return "continue"
    if re.fullmatch(r"seed\s*[=:]?\s*\d+", word):
        return "seed"
    if FRAMING_ALIASES.get(word, word) in FRAMINGS:
        return "framing"
    probes = {
        "camera": lambda: parse_camera_move(word),
        "transition": lambda: parse_transition(word),
    }
    for name, probe in probes.items():
        try:
            probe()
            return name
        except InputError:
            continue
    return None


def attribute_vocabulary() -> list[str]:
    """Everything a shot header accepts, for "did you mean" hints."""
    return (
        list(FRAMINGS)
        + camera_words()
        + [f"slow {w}" for w in camera_words() if w not in ("static", "handheld")]
        + transition_words()
        + ["continue", "4s"]
    )


def suggest_attribute(token: str) -> str | None:
    word = _norm(token)
    if re.fullmatch(NUMBER, word):  # a bare number in a header is a duration without its unit
        return f"{word}s"
    words = word.split()
    if words and words[0] in SPEED_WORDS:
        hint = closest(" ".join(words[1:]), camera_words())
        return f"{words[0]} {hint}" if hint else None
    return closest(word, attribute_vocabulary())


def camera_from(framing: str | None, move: CameraMove | None) -> Camera:
    return Camera(framing=framing or "medium", move=move or CameraMove())


def parse_resolution(value: object, *, field: str = "resolution") -> str:
    word = _norm(str(value))
    word = {"480": "480p", "720": "720p", "1080": "1080p", "hd": "720p", "full hd": "1080p"}.get(word, word)
    if word not in RESOLUTIONS:
        raise InputError(unknown_word("resolution", str(value), RESOLUTIONS), field=field)
    return word


def parse_preset(value: object, *, field: str = "preset") -> str | None:
    """A sampling preset name ("lightning", any case), or None for none."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    word = _norm(str(value))
    if not isinstance(value, str) or word not in PRESETS:
        raise InputError(unknown_word("preset", str(value), PRESETS), field=field)
    return word


def parse_ratio(value: object, *, field: str = "ratio") -> str:
    word = _norm(str(value)).replace("/", ":").replace("x", ":").replace("：", ":")
    if word not in RATIOS:
        raise InputError(unknown_word("aspect ratio", str(value), RATIOS), field=field)
    return word


def parse_fps(value: object, *, field: str = "fps") -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InputError(f"fps must be a whole number from 1 to 60, got {value!r}", field=field)
    try:
        fps = float(value)
    except ValueError:
        raise InputError(f"fps must be a whole number from 1 to 60, got {value!r}", field=field) from None
    if not math.isfinite(fps) or fps != int(fps) or not 1 <= fps <= 60:
        raise InputError(f"fps must be a whole number from 1 to 60, got {value!r}", field=field)
    return int(fps)


def parse_seed(value: object, *, shot: int | None = None, field: str = "seed") -> int:
    if isinstance(value, bool):
        raise InputError(f"seed must be a whole number, got {value!r}", shot=shot, field=field)
    try:
        seed = int(str(value).strip())
    except ValueError:
        raise InputError(f"seed must be a whole number, got {value!r}", shot=shot, field=field) from None
    if not 0 <= seed < 2**32:
        raise InputError(f"seed must be from 0 to {2**32 - 1}, got {seed}", shot=shot, field=field)
    return seed


def parse_size(value: object, *, field: str = "size") -> tuple[int, int]:
    """'832x480' -> (832, 480): even sides from 16 to 4096 px (H.264 yuv420p needs even sides)."""
    m = re.fullmatch(r"\s*(\d+)\s*[x×*]\s*(\d+)\s*", str(value).lower())
    if not m:
        raise InputError(f'"{value}" is not a size; write WIDTHxHEIGHT, e.g. 832x480', field=field)
    w, h = int(m.group(1)), int(m.group(2))
    if not (16 <= w <= 4096 and 16 <= h <= 4096) or w % 2 or h % 2:
        raise InputError(f"{w}x{h} is not allowed; each side even, from 16 to 4096 px", field=field)
    return w, h
