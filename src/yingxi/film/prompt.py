"""The multi-shot prompt grammar.

    Ink-wash style, subdued blue-grey palette.          <- style: lines before the first shot
    Shot 1 (4s, wide, slow pan left): Two men stand...   <- header attributes in any order
    Shot 2 (3s, close-up, static, crossfade): ...
    OLD JIA: "Happy new year."                           <- dialogue inside a shot

Text with no `Shot N` header is a single shot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from yingxi.errors import InputError
from yingxi.film.model import (
    DEFAULT_SHOT_SECONDS,
    MOVE_DIRECTIONS,
    CameraMove,
    DialogueLine,
    Film,
    Shot,
    Transition,
)
from yingxi.film.vocabulary import (
    CAMERA_ALIASES,
    FADE_OUT_SECONDS,
    FRAMING_ALIASES,
    SPEED_WORDS,
    camera_from,
    classify_attribute,
    parse_camera_move,
    parse_duration,
    parse_seed,
    parse_transition,
    suggest_attribute,
)

# Shot numbers: 1, 一, 十二, one; a header is "Shot 1", "镜头1", "镜头一", "第一镜", "第1个镜头".
ENGLISH_NUMBERS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                   "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
                   "twenty")  # fmt: skip
_NUM = rf"(\d+|[一二两三四五六七八九十百零〇]+|{'|'.join(ENGLISH_NUMBERS)})"
_LABEL = rf"(?:(?:shot|镜头)\s*{_NUM}|第\s*{_NUM}\s*个?\s*(?:镜头|镜))"
HEADER_RE = re.compile(rf"^\s*{_LABEL}\s*(?:[(（]([^)）]*)[)）])?\s*[:：]\s*(.*)$", re.IGNORECASE)
# A line that looks meant as a header but is malformed ("Shot 2 - ...", "Shot 2 (4s) text", "第一镜 远景"); a
# sentence that merely starts with "Shot 2 is ..." (or "镜头一转") is shot text.
_PUNCT = r"[(\[（【:：.\-–—,，、]"
LOOSE_HEADER_RE = re.compile(
    rf"^\s*(?:shot\s*{_NUM}\s*(?:$|{_PUNCT})|(?:镜头\s*{_NUM}|第\s*{_NUM}\s*个?\s*(?:镜头|镜))(?:$|\s|{_PUNCT}))",
    re.IGNORECASE,
)
# A header in the middle of a line ("...冰河。镜头二（3秒）：烟花。"): the number, optional attributes, a colon.
INLINE_HEADER_RE = re.compile(
    rf"(?:\bshot\s*(?:\d+|{'|'.join(ENGLISH_NUMBERS)})|镜头\s*{_NUM}|第\s*{_NUM}\s*个?\s*(?:镜头|镜))"
    r"\s*(?:[(（][^)）]*[)）])\s*[:：]|(?:镜头\s*[一二三四五六七八九十\d]+|第\s*[一二三四五六七八九十\d]+\s*个?\s*(?:镜头|镜))\s*[:：]",
    re.IGNORECASE,
)
ATTRIBUTE_SEPARATORS = r"[,，、;；]"
_ZH_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
UNQUOTED_SPEECH_RE = re.compile(r"""^\s*([^:："“「『‘]{1,40}?)\s*[:：]\s*(\S.*)$""")
DIALOGUE_RE = re.compile(r"""^\s*([^:："“「『‘]{1,40}?)\s*[:：]\s*["“「『‘'](.+?)["”」』’']\s*$""")


@dataclass
class _ShotDraft:
    number: int
    attributes: str | None
    lines: list[str] = field(default_factory=list)
    dialogue: list[DialogueLine] = field(default_factory=list)


def parse_prompt(text: str, *, default_duration: float | None = None, **film_fields) -> Film:
    """A plain prompt (one shot) or a multi-shot script; film_fields (fps, resolution, ratio, seed,
    title, characters, style_image, music, ...) are set on the Film as given."""
    if not text or not text.strip():
        raise InputError("the prompt is empty; describe at least one shot", field="prompt")
    default = DEFAULT_SHOT_SECONDS if default_duration is None else parse_duration(default_duration)
    style_lines: list[str] = []
    drafts: list[_ShotDraft] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        header = HEADER_RE.match(line)
        _refuse_inline_header(line[header.start(4) :] if header else line, len(drafts) + (2 if header else 1))
        if header:
            number = shot_number(header.group(1) or header.group(2))
            drafts.append(_ShotDraft(number, header.group(3)))
            if header.group(4).strip():
                drafts[-1].lines.append(header.group(4).strip())
            continue
        if LOOSE_HEADER_RE.match(line):
            raise InputError(
                f'cannot read the shot header "{line[:60]}"; write it as Shot N (4s, wide, pan left): text '
                "(or 镜头N（4秒，远景，左摇）：画面)",
                shot=len(drafts) + 1,
                field="header",
            )
        speech = DIALOGUE_RE.match(line)
        if speech and drafts:
            drafts[-1].dialogue.append(DialogueLine(speech.group(1).strip(), speech.group(2).strip()))
        elif drafts:
            _refuse_unquoted_speech(line, drafts[-1].number)
            drafts[-1].lines.append(line)
        else:
            style_lines.append(line)
    if not drafts:
        return _single_shot(style_lines, default, film_fields)
    _refuse_dialogue_in_style(style_lines)
    for position, draft in enumerate(drafts, start=1):
        if draft.number != position:
            raise InputError(
                f"shots must be numbered 1, 2, 3, ... in order; found Shot {draft.number} where Shot {position} belongs",
                shot=draft.number,
                field="header",
            )
    shots = tuple(_shot_from(d, default) for d in drafts)
    endings = [n for n, d in enumerate(drafts, start=1) if _has_ending(d.attributes or "")]
    if endings and endings != [len(drafts)]:
        raise InputError(
            f'"fade out" ends the film, so it goes on the last shot (Shot {len(drafts)}); between shots, '
            'write "fade" on the shot after',
            shot=endings[0],
            field="transition",
        )
    if endings:
        film_fields = {"fade_out": FADE_OUT_SECONDS, **film_fields}
    return Film(shots=shots, style=" ".join(style_lines), **film_fields)


def _refuse_inline_header(text: str, n: int) -> None:
    """ "镜头一：冰河。镜头二：烟花。" on one line would be one shot whose text holds the second; say so."""
    inline = INLINE_HEADER_RE.search(text)
    if inline and inline.start() > 0:
        raise InputError(
            f'"{inline.group(0).strip()}" starts a shot inside a line; put each shot header at the start of '
            "its own line",
            shot=n,
            field="header",
        )


def shot_number(text: str) -> int:
    """'12', '十二', '一百', 'three' -> the number."""
    word = text.strip().lower()
    if word.isdigit():
        return int(word)
    if word in ENGLISH_NUMBERS:
        return ENGLISH_NUMBERS.index(word) + 1
    if "百" in word:
        hundreds, _, rest = word.partition("百")
        return _ZH_DIGITS.get(hundreds, 1) * 100 + (shot_number(rest.lstrip("零〇")) if rest else 0)
    if "十" in word:
        tens, _, units = word.partition("十")
        return _ZH_DIGITS.get(tens, 1) * 10 + (_ZH_DIGITS.get(units, 0) if units else 0)
    if len(word) > 1 and all(c in _ZH_DIGITS for c in word):  # 一二 written digit by digit
        return int("".join(str(_ZH_DIGITS[c]) for c in word))
    return _ZH_DIGITS[word]


def _has_ending(attributes: str) -> bool:
    return any(
        classify_attribute(t) == "ending" for t in re.split(ATTRIBUTE_SEPARATORS, attributes) if t.strip()
    )


def _refuse_unquoted_speech(line: str, n: int) -> None:
    """`OLD JIA: Happy new year.` (a speaker in capitals, no quotes) would silently become picture
    description; say how to write it. Labels without case ("画面：...") and in lower case stay text."""
    m = UNQUOTED_SPEECH_RE.match(line)
    if not m:
        return
    label, words = m.group(1).strip(), m.group(2).strip()
    if label == label.upper() and any(c.isupper() for c in label) and sum(c.isalpha() for c in label) >= 2:
        raise InputError(
            f'"{line[:60]}" reads as dialogue without quotes; write {label}: "{words[:40]}" '
            "(or, if it is not speech, the label in lower case)",
            shot=n,
            field="dialogue",
        )


def _refuse_dialogue_in_style(style_lines: list[str]) -> None:
    """`OLD JIA: "..."` above Shot 1 would otherwise become style text in every shot's prompt.
    A label in capitals (or without case, as in Chinese) is a speaker; `Palette: "teal"` stays style."""
    for line in style_lines:
        speech = DIALOGUE_RE.match(line)
        if speech and speech.group(1) == speech.group(1).upper():
            raise InputError(
                f'the dialogue line "{line[:60]}" comes before Shot 1; put it under the shot where it is spoken',
                shot=1,
                field="dialogue",
            )


def _single_shot(lines: list[str], duration: float, film_fields: dict) -> Film:
    prompt_lines, dialogue = [], []
    for line in lines:
        speech = DIALOGUE_RE.match(line)
        if speech and prompt_lines:
            dialogue.append(DialogueLine(speech.group(1).strip(), speech.group(2).strip()))
        else:
            prompt_lines.append(line)
    shot = Shot(prompt=" ".join(prompt_lines), duration=duration, dialogue=tuple(dialogue))
    return Film(shots=(shot,), **film_fields)


def _shot_from(draft: _ShotDraft, default_duration: float) -> Shot:
    n = draft.number
    prompt = " ".join(draft.lines).strip()
    if not prompt:
        raise InputError(
            "the shot has no description; write what we see after the colon", shot=n, field="prompt"
        )
    shot = Shot(prompt=prompt, duration=default_duration, dialogue=tuple(draft.dialogue))
    return _apply_attributes(shot, draft.attributes or "", n)


def _apply_attributes(shot: Shot, attributes: str, n: int) -> Shot:
    """Header attributes in any order; each kind at most once."""
    seen: dict[str, str] = {}
    framing: str | None = None
    move: CameraMove | None = None
    transition = Transition()
    speed: str | None = None  # "slow"/"fast" written as an attribute of its own: "pan left, slow"
    for token in (t.strip() for t in re.split(ATTRIBUTE_SEPARATORS, attributes)):
        if not token:
            continue
        kind = "speed" if _norm_word(token) in SPEED_WORDS else classify_attribute(token)
        if kind is None:
            _raise_specific(token, n)
            hint = suggest_attribute(token)
            did = f' (did you mean "{hint}"?)' if hint else ""
            raise InputError(
                f'unknown shot attribute "{token}"{did}; a header takes a duration (4s), a framing '
                "(extreme wide, wide, medium, close-up, extreme close-up), a camera move (static, pan left, "
                "slow dolly in, handheld, ...), a transition (cut, crossfade, fade, wipe left), continue and seed N, "
                "fade out (last shot); in Chinese 远景 特写 固定 推 拉 摇 移 跟 升 降 手持 环绕 叠化 淡入淡出 划",
                shot=n,
                field="header",
            )
        if kind in seen:
            raise InputError(
                f'two {kind} attributes: "{seen[kind]}" and "{token}"; keep one', shot=n, field=kind
            )
        seen[kind] = token
        if kind == "duration":
            shot = replace(shot, duration=parse_duration(token, shot=n))
        elif kind == "framing":
            word = " ".join(token.lower().split())
            framing = FRAMING_ALIASES.get(word, word)
        elif kind == "camera":
            move = parse_camera_move(token, shot=n)
        elif kind == "transition":
            transition = parse_transition(token, shot=n)
        elif kind == "continue":
            if n == 1:
                raise InputError("the first shot has no previous shot to continue", shot=n, field="continue")
            shot = replace(shot, continue_previous=True)
        elif kind == "seed":
            shot = replace(shot, seed=parse_seed(re.sub(r"[^0-9]", "", token), shot=n))
        elif kind == "speed":
            speed = SPEED_WORDS[_norm_word(token)]
        # kind == "ending" ("fade out") is the film's, read in parse_prompt
    if speed is not None:
        move = _with_speed(move, speed, seen, n)
    return replace(shot, camera=camera_from(framing, move), transition=transition)


def _norm_word(token: str) -> str:
    return " ".join(token.lower().split())


def _with_speed(move: CameraMove | None, speed: str, seen: dict[str, str], n: int) -> CameraMove:
    if move is None or move.kind == "static":
        raise InputError(
            f'"{seen["speed"]}" needs a camera move to set the pace of, e.g. "{seen["speed"]} pan left"',
            shot=n,
            field="camera",
        )
    if move.speed not in ("normal", speed):
        raise InputError(
            f'"{seen["camera"]}" and "{seen["speed"]}" give two speeds; pick one', shot=n, field="camera"
        )
    return replace(move, speed=speed)


def _raise_specific(token: str, n: int) -> None:
    """A token that starts like a camera move or transition gets that parser's precise message."""
    words = [w for w in token.lower().replace("-", " ").split() if w not in SPEED_WORDS]
    if words and (words[0] in MOVE_DIRECTIONS or " ".join(words) in CAMERA_ALIASES):
        parse_camera_move(token, shot=n)
    if words and words[0] in ("wipe", "fade", "crossfade", "dissolve", "cut"):
        parse_transition(token, shot=n)
