"""Seedance 2.0's reference videos and audio clips tied to shots by the prompt's mentions (`@video1` /
`@视频1`, `@audio1` / `@音频1`).

A reference video is a camera move (and motion) to copy: it becomes the reference video of the shots whose
text mentions it (a "control" conditioning item for backends that take one). A reference audio clip is, as
the words of the clause around its mention say: the film's music ("@audio1 as the background music",
"配乐用@音频1"), audio a shot's generated sound follows ("sings to @audio1", "口型对上@音频1": an "audio"
conditioning item), or else a sound effect laid at the start of the shot that mentions it.
Seedance numbers each kind apart, from 1, in the order of its items; so do we (film/references.py).
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from yingxi.errors import InputError
from yingxi.film.model import Film
from yingxi.film.references import mentions

# Words that make a mentioned audio clip the music bed, or the audio a shot's sound is conditioned on.
MUSIC_WORDS = ("music", "bgm", "soundtrack", "score", "配乐", "音乐", "伴奏", "乐曲")
CONDITION_WORDS = ("voice", "lip", "sync", "beat", "rhythm", "tempo", "sing", "timbre", "音色", "口型", "节奏",
                   "卡点", "唱", "嗓音", "对口型", "踩点")  # fmt: skip
CLAUSE_RE = re.compile(r"[^.;!?。；！？\n]+")  # a clause: up to the next full stop or line end


def audio_use(clause: str) -> str:
    """How a clause uses the audio clip it mentions: "music", "conditioning" or "sound"."""
    words = clause.lower()
    if any(w in words for w in MUSIC_WORDS):
        return "music"
    if any(w in words for w in CONDITION_WORDS):
        return "conditioning"
    return "sound"


def _uses(text: str, kind: str) -> list[tuple[int, str]]:
    """(number, how) for each `kind` mention in `text`, `how` read from the clause around it."""
    found = []
    for clause in CLAUSE_RE.findall(text):
        for m in mentions(clause):
            if m.kind == kind:
                found.append((m.number, audio_use(clause) if kind == "audio" else "control"))
    return found


def attach_media(film: Film, videos: list[Path], audios: list[Path]) -> Film:
    """Tie reference video/audio i (1-based, in item order) to the film and the shots that mention it.

    Not mentioned anywhere: in a one-shot film a video is the shot's reference video and an audio clip the
    music (the first such clip; the next ones sound effects at the shot); in a film of several shots the
    first unmentioned clip is the music and anything else is an error naming the item, since nothing says
    which shot it belongs to."""
    single = len(film.shots) == 1
    shots = list(film.shots)
    music: Path | None = film.music  # a music bed given apart (yingxi's role "music") counts as called so
    music_number = 0
    mentioned_videos: set[int] = set()
    mentioned_audio: set[int] = set()
    for k, text in enumerate([film.style] + [s.prompt for s in film.shots]):
        where = "style" if k == 0 else f"shots[{k}].prompt"
        for number, _ in _uses(text, "video"):
            if not 1 <= number <= len(videos):
                continue  # check_mentions has said so already, when the counts were known
            mentioned_videos.add(number)
            targets = range(len(shots)) if k == 0 else [k - 1]
            for i in targets:
                if shots[i].reference_video is None:
                    shots[i] = replace(shots[i], reference_video=videos[number - 1])
                elif k and shots[i].reference_video != videos[number - 1]:
                    raise InputError(f"shot {i + 1} mentions two reference videos; a shot copies the camera "
                                     f"move of one (@video{number} is the second)", field=where, shot=i + 1)  # fmt: skip
        for number, how in _uses(text, "audio"):
            if not 1 <= number <= len(audios):
                continue
            mentioned_audio.add(number)
            clip = audios[number - 1]
            if how == "music" or k == 0:  # a film-wide mention is a bed under the whole film
                if music is not None and music != clip:
                    first = f"@audio{music_number}" if music_number else "the music item"
                    raise InputError(f"{first} and @audio{number} are both called the music; the film has one "
                                     "music bed (the other can be a sound at a shot)", field=where)  # fmt: skip
                music, music_number = clip, number
            elif how == "conditioning":
                shot = shots[k - 1]
                if shot.audio_conditioning not in (None, clip):
                    raise InputError(f"shot {k} follows two audio clips; a shot's sound follows one "
                                     f"(@audio{number} is the second)", field=where, shot=k)  # fmt: skip
                shots[k - 1] = replace(shot, audio_conditioning=clip)
            elif clip not in shots[k - 1].sounds:
                shots[k - 1] = replace(shots[k - 1], sounds=shots[k - 1].sounds + (clip,))
    for number in range(1, len(videos) + 1):
        if number in mentioned_videos:
            continue
        if not single:
            raise InputError(f"reference video {number} is tied to no shot; mention @video{number} in the "
                             "shots whose camera move it shows", field=f"reference_videos[{number}]")  # fmt: skip
        if shots[0].reference_video is None:
            shots[0] = replace(shots[0], reference_video=videos[number - 1])
    for number in range(1, len(audios) + 1):
        if number in mentioned_audio:
            continue
        if music is None:
            music, music_number = audios[number - 1], number
        elif single:
            shots[0] = replace(shots[0], sounds=shots[0].sounds + (audios[number - 1],))
        else:
            raise InputError(f"reference audio {number} is tied to nothing; mention @audio{number} in the shot "
                             "it sounds in, or call it the music", field=f"reference_audio[{number}]")  # fmt: skip
    return replace(film, shots=tuple(shots), music=music,
                   reference_audio=tuple(audios), reference_videos=tuple(videos))  # fmt: skip
