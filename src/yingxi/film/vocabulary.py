"""Camera, framing, transition and duration words: one parser each, shared by the prompt grammar
and scripts, so both accept the same words and fail with the same messages."""

from __future__ import annotations

import math
import re
from fractions import Fraction

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
    # Shot names that imply a size (the shot's composition is the director's business).
    "establishing shot": "extreme wide", "establishing": "extreme wide", "establisher": "extreme wide",
    "two-shot": "medium", "two shot": "medium", "2-shot": "medium",
    "over-the-shoulder": "medium", "over the shoulder": "medium", "over-the-shoulder shot": "medium",
    "over the shoulder shot": "medium", "ots": "medium", "medium close-up": "close-up", "mcu": "close-up",
    "medium wide": "wide", "cowboy shot": "medium",
    "定场镜头": "extreme wide", "建立镜头": "extreme wide", "双人镜头": "medium", "过肩镜头": "medium",
    "过肩": "medium", "中近景": "close-up", "中远景": "wide", "中全景": "wide",
}  # fmt: skip
# Camera moves as filmmakers write them (after speed words are taken off): the phrase each means and the
# speed it implies, None for as written. "whip pan" is a fast pan; a tracking/follow shot moves sideways.
CAMERA_ALIASES: dict[str, tuple[str, str | None]] = {
    "push in": ("dolly in", None), "push": ("dolly in", None), "push forward": ("dolly in", None),
    "pull out": ("dolly out", None), "pull back": ("dolly out", None), "pull away": ("dolly out", None),
    "whip pan": ("pan right", "fast"), "whip pan left": ("pan left", "fast"),
    "whip pan right": ("pan right", "fast"), "swish pan": ("pan right", "fast"),
    "tracking": ("truck right", None), "tracking shot": ("truck right", None), "track": ("truck right", None),
    "tracking left": ("truck left", None), "tracking right": ("truck right", None),
    "track left": ("truck left", None), "track right": ("truck right", None), "follow": ("truck right", None),
    "arc left": ("orbit left", None), "arc right": ("orbit right", None),
    "boom up": ("crane up", None), "boom down": ("crane down", None),
}  # fmt: skip
# Chinese camera words (镜头 dropped): 固定 推 拉 摇 移 跟 升 降 手持 环绕, with 左/右/上/下 where a move has a
# side; a bare 摇/移/跟/环绕 moves the way the eye reads, to the right.
CHINESE_MOVES: dict[str, tuple[str, str | None]] = {
    "固定": ("static", None), "静止": ("static", None), "定": ("static", None), "手持": ("handheld", None),
    "推": ("dolly in", None), "推进": ("dolly in", None), "推近": ("dolly in", None),
    "拉": ("dolly out", None), "拉远": ("dolly out", None), "拉出": ("dolly out", None),
    "升": ("crane up", None), "上升": ("crane up", None), "升起": ("crane up", None),
    "降": ("crane down", None), "下降": ("crane down", None), "降落": ("crane down", None),
    "变焦推": ("zoom in", None), "变焦拉": ("zoom out", None), "甩": ("pan right", "fast"),
}  # fmt: skip
for _zh, _kind in (("摇", "pan"), ("移", "truck"), ("横移", "truck"), ("跟", "truck"), ("跟拍", "truck"),
                   ("环绕", "orbit"), ("甩", "pan")):  # fmt: skip
    _speed = "fast" if _zh == "甩" else None
    CHINESE_MOVES.setdefault(_zh, (f"{_kind} right", _speed))
    for _side, _way in (("左", "left"), ("右", "right")):
        for _form in (
            f"{_side}{_zh}",
            f"向{_side}{_zh}",
            f"往{_side}{_zh}",
            f"{_zh}向{_side}",
            f"{_zh}{_side}",
        ):
            CHINESE_MOVES[_form] = (f"{_kind} {_way}", _speed)
for _side, _way in (("上", "up"), ("下", "down")):
    for _form in (f"{_side}摇", f"向{_side}摇", f"往{_side}摇", f"摇向{_side}", f"摇{_side}"):
        CHINESE_MOVES[_form] = (f"tilt {_way}", None)
CHINESE_SPEEDS = {"缓慢": "slow", "缓缓": "slow", "慢慢": "slow", "慢速": "slow", "慢": "slow", "缓": "slow",
                  "快速": "fast", "急速": "fast", "快": "fast", "急": "fast"}  # fmt: skip
# Transitions beyond cut/crossfade/dissolve/fade/wipe, English and Chinese.
TRANSITION_WORDS: dict[str, str] = {
    "cross dissolve": "crossfade", "cross fade": "crossfade", "mix": "crossfade", "fade in": "fade", "dip to black": "fade",
    "hard cut": "cut", "straight cut": "cut", "smash cut": "cut", "match cut": "cut",
    "叠化": "crossfade", "溶解": "crossfade", "交叉溶解": "crossfade",
    "淡入淡出": "fade", "淡入": "fade", "黑场": "fade", "闪黑": "fade", "切": "cut", "硬切": "cut",
    "直切": "cut", "切换": "cut", "划": "wipe left", "划像": "wipe left", "划变": "wipe left",
    "左划": "wipe left", "向左划": "wipe left", "右划": "wipe right", "向右划": "wipe right",
}  # fmt: skip
# The film's end fading to black: a header attribute of the last shot (a script's `fade_out: true`).
ENDING_WORDS = ("fade out", "fade to black at the end", "淡出", "渐隐")
FADE_OUT_SECONDS = 1.0  # how long the film's closing fade to black lasts
_HAN_RE = re.compile(r"[\u3400-\u9fff]")
SPEED_WORDS = {"slow": "slow", "slowly": "slow", "gentle": "slow", "fast": "fast", "quick": "fast",
               "quickly": "fast", "rapid": "fast"}  # fmt: skip
STATIC_ALIASES = ("locked", "locked off", "fixed", "still")
CONTINUE_WORDS = ("continue", "continues", "continued", "cont")
NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"  # 4, 4.0, 4., .5
DURATION_RE = re.compile(rf"^{NUMBER}\s*(?:s|sec|secs|second|seconds|秒|秒钟)$")


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
        hint = closest(word, list(FRAMINGS) + list(FRAMING_ALIASES))
        did = f' (did you mean "{hint}"?)' if hint else ""
        raise InputError(
            f'unknown framing "{value}"{did}; accepted: {", ".join(FRAMINGS)}, establishing shot, two-shot, '
            "over-the-shoulder, and in Chinese 大远景 远景 全景 中景 近景 特写 大特写",
            shot=shot,
            field=field,
        )
    return word


def _chinese_move(value: str) -> tuple[str, list[str]] | None:
    """'缓慢左摇镜头' -> ('pan left', ['slow']); None when the words are not a Chinese camera move."""
    word = re.sub(r"\s+", "", value)
    word = re.sub(r"(?:镜头|镜)$", "", word)
    speeds = []
    while True:
        prefix = next((p for p in CHINESE_SPEEDS if word.startswith(p) and word != p), None)
        if prefix is None:
            break
        speeds.append(CHINESE_SPEEDS[prefix])
        word = word[len(prefix) :].removeprefix("地")
    if word not in CHINESE_MOVES:
        return None
    phrase, implied = CHINESE_MOVES[word]
    return phrase, speeds + ([implied] if implied else [])


def camera_hints() -> list[str]:
    """Every camera phrase a hint may offer: the canonical ones, the aliases and the Chinese words."""
    return camera_words() + list(CAMERA_ALIASES) + list(CHINESE_MOVES)


def parse_camera_move(value: str, *, shot: int | None = None, field: str = "camera") -> CameraMove:
    """'slow pan left', 'pan left slowly', 'dolly-in', 'static', 'handheld', 'push in', 'whip pan', '缓慢左摇'
    -> CameraMove."""
    chinese = _chinese_move(value) if _HAN_RE.search(value) else None
    if _HAN_RE.search(value) and chinese is None:
        raise InputError(_unknown_move(value), shot=shot, field=field)
    if chinese is not None:
        words, speeds = chinese[0].split(), chinese[1]
    else:
        words = _norm(value.replace("-", " ")).split()
        speeds = [SPEED_WORDS[w] for w in words if w in SPEED_WORDS]
        words = [w for w in words if w not in SPEED_WORDS]
    phrase = " ".join(words)
    if phrase in CAMERA_ALIASES:
        phrase, implied = CAMERA_ALIASES[phrase]
        speeds += [implied] if implied else []
    if len(set(speeds)) > 1:
        raise InputError(f'"{value}" is both slow and fast; pick one', shot=shot, field=field)
    speed = speeds[0] if speeds else "normal"
    if phrase in STATIC_ALIASES:
        phrase = "static"
    kind, _, direction = phrase.partition(" ")
    if kind not in MOVE_DIRECTIONS:
        raise InputError(_unknown_move(value), shot=shot, field=field)
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


def _unknown_move(value: str) -> str:
    hint = closest(_norm(value), camera_hints())
    did = f' (did you mean "{hint}"?)' if hint else ""
    return (
        f'unknown camera move "{value}"{did}; accepted: {", ".join(camera_words())}, push in, pull out, '
        "whip pan, tracking, and in Chinese 固定 推 拉 摇 移 跟 升 降 手持 环绕 (左摇, 上摇, 缓慢推, ...)"
    )


def transition_hints() -> list[str]:
    return transition_words() + list(TRANSITION_ALIASES) + list(TRANSITION_WORDS)


def parse_transition(value: str, *, shot: int | None = None, field: str = "transition") -> Transition:
    """'cut', 'crossfade'/'dissolve', 'fade' (through black), 'wipe left'/'wipe right', and the Chinese
    叠化 淡入淡出 划 切."""
    phrase = _norm(value.replace("-", " ") if not _HAN_RE.search(value) else re.sub(r"\s+", "", value))
    if phrase in ENDING_WORDS:
        raise InputError(
            f'"{value}" ends the film, so it belongs to the last shot: in a prompt, that shot\'s header '
            '(Shot N (..., fade out)); in a script, fade_out: true. Between shots, write "fade" on the shot after',
            shot=shot,
            field=field,
        )
    phrase = TRANSITION_WORDS.get(phrase, phrase)
    phrase = TRANSITION_ALIASES.get(phrase, phrase)
    kind, _, direction = phrase.partition(" ")
    kind = TRANSITION_ALIASES.get(kind, kind)
    if kind not in TRANSITIONS:
        hint = closest(phrase, transition_hints())
        did = f' (did you mean "{hint}"?)' if hint else ""
        raise InputError(
            f'unknown transition "{value}"{did}; accepted: {", ".join(transition_words())}, and in Chinese '
            "切 叠化 淡入淡出 划 (左划, 右划)",
            shot=shot,
            field=field,
        )
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
    if word.replace("-", " ") in ENDING_WORDS:
        return "ending"
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
        + list(FRAMING_ALIASES)
        + camera_hints()
        + [f"slow {w}" for w in camera_words() if w not in ("static", "handheld")]
        + transition_hints()
        + ["continue", "4s", "fade out"]
    )


def suggest_attribute(token: str) -> str | None:
    word = _norm(token)
    if re.fullmatch(NUMBER, word):  # a bare number in a header is a duration without its unit
        return f"{word}s"
    words = word.split()
    if words and words[0] in SPEED_WORDS:
        hint = closest(" ".join(words[1:]), camera_words() + list(CAMERA_ALIASES))
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


# NTSC rates: k * 1000/1001 frames per second, as people write them.
NTSC_RATES = {Fraction(k * 1000, 1001): names for k, names in (
    (24, ("23.976", "23.98", "24000/1001")), (30, ("29.97", "30000/1001")),
    (48, ("47.952", "47.95", "48000/1001")), (60, ("59.94", "60000/1001")),
)}  # fmt: skip
_FPS_HELP = (
    "fps must be a whole number from 1 to 60, or an NTSC rate: 23.976, 29.97, 47.952, 59.94 (or 24000/1001)"
)


def parse_fps(value: object, *, field: str = "fps") -> int | Fraction:
    """24 -> 24; 23.976, "23.98", "24000/1001" -> Fraction(24000, 1001), kept exact down to the encoder's
    time base (a float 23.976 would be 2997/125 there, drifting a frame every ~17 minutes)."""
    if isinstance(value, Fraction) and value in NTSC_RATES:
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Fraction)):
        raise InputError(f"{_FPS_HELP}; got {value!r}", field=field)
    word = str(value).strip()
    for rate, names in NTSC_RATES.items():
        if word in names or (isinstance(value, float) and abs(value - float(names[0])) < 1e-9):
            return rate
    try:
        fps = float(Fraction(word)) if "/" in word else float(word)
    except (ValueError, ZeroDivisionError):
        raise InputError(f"{_FPS_HELP}; got {value!r}", field=field) from None
    if not math.isfinite(fps) or fps != int(fps) or not 1 <= fps <= 60:
        near = min(NTSC_RATES, key=lambda r: abs(float(r) - fps)) if math.isfinite(fps) else None
        did = (
            f' (did you mean "{NTSC_RATES[near][0]}"?)'
            if near is not None and abs(float(near) - fps) < 0.05
            else ""
        )
        raise InputError(f"{_FPS_HELP}; got {value!r}{did}", field=field)
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
