"""Moved: the attention kernels are shared by every family, in `yingxi.models.attention`."""

from yingxi.models.attention import (
    AttentionFn,
    attention,
    available_attention_backends,
    get_attention_backend,
    set_attention_backend,
)

__all__ = [
    "AttentionFn",
    "attention",
    "available_attention_backends",
    "get_attention_backend",
    "set_attention_backend",
]
