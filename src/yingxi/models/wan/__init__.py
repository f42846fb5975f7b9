"""Wan 2.1 / 2.2 networks: DiT, configs and variant registry, checkpoint loading, text and image encoders.

Only the registry is imported eagerly (it needs no torch), so `yingxi models` works without the "wan"
extra; the torch-backed names below load on first access.
"""

from __future__ import annotations

import importlib
from typing import Any

from yingxi.models.wan.config import VARIANTS, WanDiTConfig, WanVariant, get_variant

_LAZY = {
    "WanDiT": "yingxi.models.wan.dit",
    "Modulation": "yingxi.models.wan.dit",
    "load_transformer": "yingxi.models.wan.loading",
    "load_transformer_pair": "yingxi.models.wan.loading",
    "WanTextEncoder": "yingxi.models.wan.text",
    "WanImageEncoder": "yingxi.models.wan.image",
    "attention": "yingxi.models.attention",
    "set_attention_backend": "yingxi.models.attention",
}

__all__ = ["VARIANTS", "WanDiTConfig", "WanVariant", "get_variant", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
