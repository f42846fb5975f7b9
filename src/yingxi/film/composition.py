"""Words for how a keyframe is framed: fit (cover/contain/blur), composition of several characters, focus."""

from __future__ import annotations

import math
from typing import Any

from yingxi.errors import InputError, unknown_word
from yingxi.film.model import COMPOSITIONS, FITS

FIT_ALIASES = {"crop": "cover", "fill": "cover", "letterbox": "contain", "bars": "contain", "pillarbox": "contain",
               "blurred": "blur", "blur fill": "blur", "裁切": "cover", "完整": "contain", "模糊": "blur"}  # fmt: skip
COMPOSE_ALIASES = {"two shot": "two-shot", "twoshot": "two-shot", "2-shot": "two-shot", "2 shot": "two-shot",
                   "group": "two-shot", "side by side": "two-shot", "双人": "two-shot", "speakers": "speaker",
                   "who speaks": "speaker", "说话人": "speaker"}  # fmt: skip


def _norm(value: str) -> str:
    return " ".join(value.strip().lower().replace("_", " ").split())


def parse_fit(value: Any, *, shot: int | None = None, field: str = "fit") -> str:
    """'cover' | 'contain' | 'blur' (or an alias such as 'letterbox')."""
    if not isinstance(value, str):
        raise InputError(f"fit is one of {', '.join(FITS)}, got {value!r}", shot=shot, field=field)
    word = FIT_ALIASES.get(_norm(value), _norm(value))
    if word not in FITS:
        raise InputError(unknown_word("fit", value, FITS), shot=shot, field=field)
    return word


def parse_compose(value: Any, *, shot: int | None = None, field: str = "compose") -> str:
    """'two-shot' | 'speaker' (or an alias such as 'two shot')."""
    if not isinstance(value, str):
        raise InputError(
            f"compose is one of {', '.join(COMPOSITIONS)}, got {value!r}", shot=shot, field=field
        )
    word = _norm(value).replace("-", " ")
    word = COMPOSE_ALIASES.get(word, COMPOSE_ALIASES.get(_norm(value), word.replace(" ", "-")))
    if word not in COMPOSITIONS:
        raise InputError(unknown_word("composition", value, COMPOSITIONS), shot=shot, field=field)
    return word


def parse_focus(value: Any, *, shot: int | None = None, field: str = "focus") -> tuple[float, float]:
    """[x, y] as fractions of the keyframe (0..1, from its top-left), e.g. [0.4, 0.3]; also "0.4, 0.3"."""
    if isinstance(value, str):
        value = [v for v in value.replace("，", ",").replace(",", " ").split() if v]
    ok = isinstance(value, (list, tuple)) and len(value) == 2
    try:
        xy = tuple(float(v) for v in value) if ok and not any(isinstance(v, bool) for v in value) else ()
    except (TypeError, ValueError):
        xy = ()
    if len(xy) != 2 or not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in xy):
        raise InputError(
            f"focus is [x, y], fractions of the keyframe from its top-left corner (each 0 to 1), got {value!r}",
            shot=shot,
            field=field,
        )
    return (xy[0], xy[1])
