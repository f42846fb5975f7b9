"""One attention function for the whole model; its kernel is chosen once (as FastVideo/LightX2V do).

`attention(q, k, v)` takes and returns `(B, heads, L, D)`. Backends: "sdpa" (PyTorch
`scaled_dot_product_attention`, the default; it picks flash/memory-efficient kernels itself on GPU) and
"flash" (the `flash-attn` package, if installed; fp16/bf16 only, other dtypes fall back to SDPA).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from yingxi.errors import InputError, unknown_word

AttentionFn = Callable[[Tensor, Tensor, Tensor], Tensor]


def _sdpa(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    return F.scaled_dot_product_attention(q, k, v, dropout_p=0.0, is_causal=False)  # (B, H, Lq, D)


def _flash(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    if q.dtype not in (torch.float16, torch.bfloat16) or not q.is_cuda:
        return _sdpa(q, k, v)
    from flash_attn import flash_attn_func

    out = flash_attn_func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))  # (B, Lq, H, D)
    return out.transpose(1, 2)  # (B, H, Lq, D)


_BACKENDS: dict[str, tuple[AttentionFn, str | None]] = {
    "sdpa": (_sdpa, None),
    "flash": (_flash, "flash_attn"),  # the package it needs
}
_current: str = "sdpa"


def available_attention_backends() -> list[str]:
    """Backends whose packages are importable here."""
    return [
        n for n, (_, pkg) in _BACKENDS.items() if pkg is None or importlib.util.find_spec(pkg) is not None
    ]


def set_attention_backend(name: str) -> None:
    """Choose the kernel every `attention` call uses from now on (a process-wide runtime setting)."""
    global _current
    if name not in _BACKENDS:
        raise InputError(unknown_word("attention backend", name, _BACKENDS), field="attention")
    if name not in available_attention_backends():
        raise InputError(
            f'attention backend "{name}" needs the {_BACKENDS[name][1]} package, which is not installed',
            field="attention",
        )
    _current = name


def get_attention_backend() -> str:
    return _current


def attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Softmax attention without mask or dropout: q (B, H, Lq, D), k/v (B, H, Lk, D) -> (B, H, Lq, D)."""
    return _BACKENDS[_current][0](q, k, v)
