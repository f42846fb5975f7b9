"""The CLI's checks of what a person typed, made before any work: flags that contradict each other, a --ref
name the film does not know, an output that cannot be written; and SIGTERM read as Ctrl-C is."""

from __future__ import annotations

import argparse
import signal
import threading
from importlib import metadata

from yingxi.errors import InputError, unknown_word
from yingxi.film.model import Film

EXIT_TERMINATED = 128 + signal.SIGTERM  # what a shell reports for a process SIGTERM ended


class Terminated(KeyboardInterrupt):
    """SIGTERM (a `kill`, a container stopping): unwinds like Ctrl-C, so partial files are removed."""


def version() -> str:
    """The installed distribution's version, or the source tree's when run from a checkout."""
    try:
        return metadata.version("yingxi")
    except metadata.PackageNotFoundError:
        from yingxi import __version__

        return __version__


def terminate_like_interrupt() -> None:
    """Make SIGTERM raise Terminated in the main thread, as SIGINT raises KeyboardInterrupt."""

    def handler(signum, frame) -> None:
        raise Terminated()

    if threading.current_thread() is threading.main_thread():  # main() called from a thread: leave it be
        signal.signal(signal.SIGTERM, handler)


def refuse_contradicting_size(args: argparse.Namespace) -> None:
    """--size is an exact size: with --resolution or --ratio one of them would be silently ignored."""
    if getattr(args, "size", None):
        given = [flag for flag in ("--resolution", "--ratio") if getattr(args, flag[2:], None) is not None]
        if given:
            raise InputError(
                f"--size gives the exact size, so it cannot be used with {' or '.join(given)}; "
                f"give --size alone, or {' and '.join(given)} without --size",
                field="--size",
            )


def check_ref_name(film: Film, name: str) -> str:
    """The film's spelling of a --ref NAME: one of its characters or speakers (case does not count); any
    other name would add an image nothing uses, so it is an error naming the closest."""
    names = [c.name for c in film.characters]
    names += [n for shot in film.shots for n in shot.featured]
    names = list(dict.fromkeys(names))
    for known in names:
        if known.lower() == name.lower():
            return known
    if not names:
        raise InputError(
            f'no character or speaker is called "{name}": the film has none; name a character in a shot '
            '(a dialogue line "NAME: ..." or a script\'s characters:) to give it a reference image',
            field="--ref",
        )
    raise InputError(unknown_word("character", name, names), field="--ref")
