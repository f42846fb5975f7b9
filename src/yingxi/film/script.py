"""YAML/JSON film scripts: the same model as the prompt grammar, with paths relative to the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from yingxi.film.model import Film


def parse_script(data: dict[str, Any], base_dir: Path | None = None, *, source: str | None = None) -> Film:
    raise NotImplementedError


def load_script(path: Path) -> Film:
    raise NotImplementedError
