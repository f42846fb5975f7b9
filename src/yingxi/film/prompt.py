"""The multi-shot prompt grammar (see README): style lines, then `Shot N (attrs): text` blocks."""

from __future__ import annotations

from yingxi.film.model import Film


def parse_prompt(text: str, **film_fields) -> Film:
    """A plain prompt (one shot) or a multi-shot script in the prompt grammar; film_fields
    (fps, resolution, ratio, seed, characters, ...) override the defaults."""
    raise NotImplementedError
