"""`--video` and `--audio`: the reference videos and audio clips of Seedance's multimodal request, on the
command line. They are numbered in the order given (@video1, @audio1, ...) and go where the film's text says
(film/mentions.py): a shot's camera move to copy or a video it extends; the music bed, a sound at a shot, or
the audio a shot's picture follows ("she sings to the beat of @audio1")."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from yingxi.errors import InputError
from yingxi.film.mentions import attach_media
from yingxi.film.model import Film
from yingxi.film.references import check_mentions

__all__ = ["add_media_args", "with_media"]


def add_media_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--video", action="append", default=[], type=Path, metavar="FILE",
                   help="a reference video, @video1, @video2, ... in order (repeatable): the camera move a "
                        "shot copies, or the clip it extends")  # fmt: skip
    p.add_argument("--audio", action="append", default=[], type=Path, metavar="FILE",
                   help="a reference audio clip, @audio1, ... in order (repeatable): the music, a sound at a "
                        "shot, or the sound a shot's picture follows ('to the beat of @audio1')")  # fmt: skip


def with_media(film: Film, args: argparse.Namespace) -> Film:
    """The film with the reference videos and audio clips tied to its shots; a missing file or a mention
    past the ones given is an InputError naming the flag or the text."""
    videos, audios = list(getattr(args, "video", [])), list(getattr(args, "audio", []))
    for flag, files in (("--video", videos), ("--audio", audios)):
        for i, path in enumerate(files, 1):
            if not path.is_file():
                why = "is a folder, not a file" if path.is_dir() else "file not found"
                raise InputError(f"{why}: {path}", field=_flag_field(f"{flag[2:]}[{i}]"))
    counts = {"video": len(videos), "audio": len(audios)}
    for i, text in enumerate([film.style] + [s.prompt for s in film.shots]):
        check_mentions(text, counts, field="style" if i == 0 else f"shots[{i}].prompt")  # @audio2 of one
    if not videos and not audios:
        return film
    try:
        return attach_media(film, videos, audios)
    except InputError as e:  # "reference_videos[2]" is the API's name for what the CLI calls --video #2
        raise InputError(e.message, field=_flag_field(e.field), shot=e.shot, file=e.file) from None


def _flag_field(field: str | None) -> str | None:
    """The CLI's name for a reference item: "--video (@video2)" for reference_videos[2] or video[2]."""
    match = re.fullmatch(r"(?:reference_)?(video|audio)s?\[(\d+)\]", field or "")
    return f"--{match[1]} (@{match[1]}{match[2]})" if match else field
