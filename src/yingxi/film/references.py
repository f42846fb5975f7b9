"""Reference images tied to names: Seedance 2.0's prompt mentions (`@image1`, `@图片1`, `@Image 1`, `@图1`),
and `NAME=file` references, turned into characters that the director uses per shot (a character's image is
the keyframe of the shots that feature them, as `yingxi generate --ref NAME=IMAGE` does).

Seedance numbers reference images by their order among the request's `reference_image` items, from 1; the
same counting holds here. Videos and audio are numbered apart (`@video1`, `@视频1`, `@audio1`, `@音频1`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from yingxi.errors import InputError, unknown_word
from yingxi.film.model import Character, Film

# "@image1", "@Image 1", "@img1", "@图片1", "@图1", "@video2", "@视频2", "@audio1", "@音频1"
MENTION_RE = re.compile(
    r"@\s?(images?|img|图片|图像|图|videos?|视频|audios?|音频)\s?(\d{1,3})", re.IGNORECASE
)
KINDS = {"image": "image", "images": "image", "img": "image", "图片": "image", "图像": "image", "图": "image",
         "video": "video", "videos": "video", "视频": "video", "audio": "audio", "audios": "audio", "音频": "audio"}  # fmt: skip
NOUNS = {"image": "reference image", "video": "reference video", "audio": "reference audio clip"}


@dataclass(frozen=True)
class Mention:
    kind: str  # "image" | "video" | "audio"
    number: int  # 1-based, in the order of that kind's reference items
    text: str  # as written, e.g. "@图片1"


def mentions(text: str) -> list[Mention]:
    """Every mention in `text`, in order."""
    return [
        Mention(KINDS[m.group(1).lower()], int(m.group(2)), m.group(0)) for m in MENTION_RE.finditer(text)
    ]


def check_mentions(text: str, counts: dict[str, int], field: str = "prompt") -> None:
    """An `@image3` with two reference images (any mention past its kind's items) names nothing; kinds not
    in `counts` are not checked."""
    for m in mentions(text):
        have = counts.get(m.kind)
        if have is not None and not 1 <= m.number <= have:
            given = f"{have} {NOUNS[m.kind]}{'s' if have != 1 else ''}" if have else f"no {NOUNS[m.kind]}s"
            raise InputError(
                f'"{m.text}" refers to {NOUNS[m.kind]} {m.number}, but the request has {given} '
                f"(numbered from 1 in the order of its {m.kind} items){closest_mention(m, counts)}",
                field=field,
            )


def closest_mention(m: Mention, counts: dict[str, int]) -> str:
    """'; the closest is @image2': the nearest number of the same kind, else the first item of a kind the
    request has (an "@video1" sent with only images most likely means "@image1")."""
    if counts.get(m.kind):
        return f"; the closest is @{m.kind}{min(max(m.number, 1), counts[m.kind])}"
    for kind in ("image", "video", "audio"):
        if counts.get(kind):
            return f"; the closest is @{kind}{min(max(m.number, 1), counts[kind])}"
    return "; this request has no reference items to mention"


CAPITAL_NAME_RE = re.compile(r"(?:^|(?<=[\s,;:.，；：。]))([A-Z][A-Z0-9'.-]*(?: [A-Z][A-Z0-9'.-]*){0,3})$")


def _bound_names(text: str, known: list[str]) -> dict[int, str]:
    """Names the text gives images: "OLD JIA (@image1)" (a name in capitals, as dialogue speakers are
    written) or "老贾（@图片1）" (a name the film knows: a character or a speaker)."""
    bound: dict[int, str] = {}
    for m in re.finditer(r"[(（]\s*(" + MENTION_RE.pattern + r")\s*[)）]", text, re.IGNORECASE):
        mention = mentions(m.group(1))[0]
        if mention.kind != "image":
            continue
        before = text[: m.start()].rstrip()
        for name in sorted(known, key=len, reverse=True):
            if before.lower().endswith(name.lower()):
                bound.setdefault(mention.number, name)
                break
        else:
            capitals = CAPITAL_NAME_RE.search(before)
            if capitals:
                bound.setdefault(mention.number, capitals.group(1))
    return bound


def _spoken(text: str, names: dict[int, str]) -> str:
    """The text with "NAME (@image1)" read as NAME and "@image1" as its name, for a neural prompt."""
    text = re.sub(r"\s*[(（]\s*(" + MENTION_RE.pattern + r")\s*[)）]",
                  lambda m: "" if _number(m.group(1)) in names else m.group(0), text, flags=re.IGNORECASE)  # fmt: skip
    return MENTION_RE.sub(lambda m: names.get(_number(m.group(0)), m.group(0)), text)


def _number(mention: str) -> int | None:
    found = mentions(mention)
    return found[0].number if found and found[0].kind == "image" else None


def known_names(film: Film) -> list[str]:
    """Characters the film lists and the speakers of its dialogue."""
    names = [c.name for c in film.characters] + [d.character for s in film.shots for d in s.dialogue]
    return list(dict.fromkeys(names))


def with_character_image(film: Film, name: str, image: Path) -> Film:
    """The character `name` (listed or only speaking) with `image` as their reference."""
    known = film.character(name)
    if known is None:
        return replace(film, characters=film.characters + (Character(name=name, image=image),))
    chars = tuple(replace(c, image=image) if c is known else c for c in film.characters)
    return replace(film, characters=chars)


def check_reference_name(film: Film, name: str, field: str) -> str:
    """A `NAME=file` reference must name a character or a speaker of the film: the film's spelling of it."""
    known = known_names(film)
    for k in known:
        if k.lower() == name.lower():
            return k
    if not known:
        raise InputError(
            f'no character or dialogue speaker is named "{name}"; the film has none', field=field
        )
    raise InputError(
        unknown_word("character", name, known) + " (characters and dialogue speakers)", field=field
    )


def attach_references(film: Film, images: list[Path], names: list[str | None], *, single: bool) -> Film:
    """Tie reference image i (1-based, in item order) to a character and to the shots that use it.

    Its name: `names[i-1]` (the request names it), else "NAME (@imageI)" in the text for a NAME the film
    knows, else "@imageI". It is featured in the shots whose text mentions it and in those where its
    character speaks; a one-shot film features every reference. An image neither named nor mentioned is the
    style image (the keyframe of last resort); only one may be, in a film of several shots."""
    texts = [film.style] + [s.prompt for s in film.shots]
    counts = {"image": len(images)}
    for i, text in enumerate(texts):
        check_mentions(text, counts, field="style" if i == 0 else f"shots[{i}].prompt")
    known = known_names(film)
    bound = {}
    for text in texts:
        for number, name in _bound_names(text, known).items():
            bound.setdefault(number, name)
    mentioned = {m.number for t in texts[1:] for m in mentions(t) if m.kind == "image"}
    by_number: dict[int, str] = {}
    loose: list[int] = []
    for i, _ in enumerate(images, start=1):
        given = names[i - 1] if i - 1 < len(names) else None
        if given and bound.get(i) and given.lower() != bound[i].lower():
            raise InputError(f'reference image {i} is named "{given}", but the prompt calls it {bound[i]} '
                             f"(@image{i})", field=f"reference_images[{i}].name")  # fmt: skip
        name = given or bound.get(i)
        if name and (single or i in mentioned):  # used where it is mentioned; the film's spelling if known
            by_number[i] = next((k for k in known if k.lower() == name.lower()), name)
        elif name:  # used only where the character speaks or is listed: so the name must be one of those
            try:
                by_number[i] = check_reference_name(film, name, f"reference_images[{i}].name")
            except InputError as e:
                raise InputError(f"{e.message}; or mention @image{i} in the shots that show {name}",
                                 field=e.field) from None  # fmt: skip
        elif i in mentioned or single:
            by_number[i] = f"@image{i}"
        else:
            loose.append(i)
    if len(loose) > 1 and not single:
        raise InputError(
            f"reference images {', '.join(map(str, loose))} are tied to no character or shot; name each "
            f"(NAME (@image{loose[1]}) in the prompt, or a name beside the image) or mention @image{loose[1]} "
            "in the shots it belongs to",
            field=f"reference_images[{loose[1]}]",
        )
    for i, name in by_number.items():
        film = with_character_image(film, name, images[i - 1])
    shots = []
    for shot in film.shots:
        featured = [by_number[m.number] for m in mentions(shot.prompt) if m.kind == "image"]
        if single:
            featured += list(by_number.values())
        extra = tuple(
            n for n in dict.fromkeys(featured) if n.lower() not in {c.lower() for c in shot.featured}
        )
        shots.append(
            replace(shot, prompt=_spoken(shot.prompt, by_number), characters=shot.characters + extra)
        )
    style_image = images[loose[0] - 1] if loose and film.style_image is None else film.style_image
    return replace(film, shots=tuple(shots), style=_spoken(film.style, by_number), style_image=style_image)
