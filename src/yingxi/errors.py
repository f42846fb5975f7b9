"""Typed errors that carry the location a person needs to fix their input."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class YingxiError(Exception):
    """Base class: every message is meant to be shown to a person as-is."""


class InputError(YingxiError):
    """Bad user input; `where` names the shot, field or file (e.g. "shot 2, camera")."""

    def __init__(
        self, message: str, *, shot: int | None = None, field: str | None = None, file: str | None = None
    ):
        self.message = message
        self.shot = shot
        self.field = field
        self.file = file
        super().__init__(str(self))

    @property
    def where(self) -> str:
        parts = []
        if self.file:
            parts.append(str(self.file))
        if self.shot is not None:
            parts.append(f"shot {self.shot}")
        if self.field:
            parts.append(self.field)
        return ", ".join(parts)

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class CapabilityError(InputError):
    """The chosen backend or model cannot do what was asked (found before any work starts)."""


class ModelNotFoundError(YingxiError):
    """Weights are not on disk (and cannot be downloaded here)."""


class RenderError(YingxiError):
    """Something failed while rendering; the output file was not written."""


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The closest accepted word, for "did you mean" hints; case does not count, the hint keeps it."""
    by_lower = {c.lower(): c for c in choices}
    matches = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.5)
    return by_lower[matches[0]] if matches else None


def unknown_word(kind: str, word: str, choices: Iterable[str]) -> str:
    """'unknown camera move "pan leftt" (did you mean "pan left"?); accepted: a, b, c'."""
    choices = list(choices)
    hint = closest(word, choices)
    did = f' (did you mean "{hint}"?)' if hint else ""
    return f'unknown {kind} "{word}"{did}; accepted: {", ".join(choices)}'
