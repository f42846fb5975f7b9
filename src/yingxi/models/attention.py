"""Attention kernels behind one function, chosen once at start (as FastVideo and LightX2V do).

Every kernel is an `AttentionFn`: q (B, H, Lq, D), k/v (B, H, Lk, D) -> (B, H, Lq, D), softmax attention
without mask or dropout, scale 1/sqrt(D). Kernels:

- "sdpa": `F.scaled_dot_product_attention`, PyTorch picks the kernel (the default).
- "sdpa-math", "sdpa-flash", "sdpa-efficient", "sdpa-cudnn": SDPA held to one backend by
  `torch.nn.attention.sdpa_kernel` ("sdpa-math" is the reference the others are tested against; on the
  CPU PyTorch has the math and flash kernels only).
- "flash2" (`flash_attn`), "flash3" (`flash_attn_interface`, Hopper), "sage" (`sageattention` 2, 8-bit
  QK): CUDA-only packages, fp16/bf16 only.

`resolve_attention(name, device, dtype)` returns the kernel or an InputError saying what to install or why
this card/dtype cannot run it; `choose_attention(device, dtype)` is what "auto" means.
`attention_with_lse` also returns the log-sum-exp of each query's scores (Ring attention merges blocks
with it).
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.attention import SDPBackend, sdpa_kernel

from yingxi.errors import InputError, unknown_word

__all__ = [
    "KERNELS",
    "AttentionFn",
    "attention",
    "attention_with_lse",
    "available_attention_backends",
    "choose_attention",
    "get_attention_backend",
    "resolve_attention",
    "set_attention_backend",
]

AttentionFn = Callable[[Tensor, Tensor, Tensor], Tensor]
HALF = (torch.float16, torch.bfloat16)


def _sdpa(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    return F.scaled_dot_product_attention(q, k, v, dropout_p=0.0, is_causal=False)  # (B, H, Lq, D)


def _sdpa_with(backend: SDPBackend) -> AttentionFn:
    def fn(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        with sdpa_kernel(backend):
            return F.scaled_dot_product_attention(q, k, v, dropout_p=0.0, is_causal=False)  # (B, H, Lq, D)

    fn.__name__ = f"sdpa_{backend.name.lower()}"
    return fn


def _flash2(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    from flash_attn import flash_attn_func

    out = flash_attn_func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))  # (B, Lq, H, D)
    return out.transpose(1, 2)  # (B, H, Lq, D)


def _flash3(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    from flash_attn_interface import flash_attn_func

    out = flash_attn_func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))  # (B, Lq, H, D)
    if isinstance(out, tuple):  # releases before 3.0.0b2 also return the log-sum-exp
        out = out[0]
    return out.transpose(1, 2)  # (B, H, Lq, D)


def _sage(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    from sageattention import sageattn

    return sageattn(q, k, v, tensor_layout="HND", is_causal=False)  # (B, H, Lq, D)


@dataclass(frozen=True)
class Kernel:
    """One kernel and what it needs: a package (import name, pip name), CUDA, a half dtype, a card."""

    fn: AttentionFn
    what: str  # one line for `--help` and the summary
    module: str | None = None  # import name of the package it needs
    pip: str | None = None  # what to `pip install` for it
    cuda: bool = False
    half: bool = False  # fp16/bf16 only
    min_capability: tuple[int, int] | None = None  # CUDA compute capability, e.g. (9, 0) Hopper
    max_head_dim: int | None = None


# FlashAttention 3 is built from the hopper/ folder of Dao-AILab/flash-attention (no PyPI release)
FLASH3_PIP = '"flash-attn-3 @ git+https://github.com/Dao-AILab/flash-attention.git#subdirectory=hopper"'
KERNELS: dict[str, Kernel] = {
    "sdpa": Kernel(_sdpa, "PyTorch scaled_dot_product_attention, PyTorch picks the kernel"),
    "sdpa-math": Kernel(_sdpa_with(SDPBackend.MATH), "PyTorch SDPA, math kernel (the reference)"),
    "sdpa-flash": Kernel(_sdpa_with(SDPBackend.FLASH_ATTENTION), "PyTorch SDPA, its flash kernel"),
    "sdpa-efficient": Kernel(
        _sdpa_with(SDPBackend.EFFICIENT_ATTENTION), "PyTorch SDPA, memory-efficient kernel", cuda=True
    ),
    "sdpa-cudnn": Kernel(_sdpa_with(SDPBackend.CUDNN_ATTENTION), "PyTorch SDPA, cuDNN kernel", cuda=True),
    "flash2": Kernel(_flash2, "FlashAttention 2", "flash_attn", "flash-attn", True, True, (8, 0), 256),
    "flash3": Kernel(
        _flash3, "FlashAttention 3 (Hopper)", "flash_attn_interface", FLASH3_PIP, True, True, (9, 0), 256
    ),  # fmt: skip
    "sage": Kernel(
        _sage, "SageAttention 2 (8-bit QK)", "sageattention", "sageattention", True, True, (8, 0), 128
    ),  # fmt: skip
}
for _name, _kernel in KERNELS.items():
    _kernel.fn.kernel_name = _name  # type: ignore[attr-defined]  # so a model can say what each module runs
# Other spellings people use for the same kernels.
ALIASES = {
    "math": "sdpa-math",
    "efficient": "sdpa-efficient",
    "mem-efficient": "sdpa-efficient",
    "cudnn": "sdpa-cudnn",
    "flash": "flash2",  # the `flash-attn` package, as before this registry
    "flash-attn": "flash2",
    "flash_attn": "flash2",
    "flash-attn-2": "flash2",
    "flash-attn-3": "flash3",
    "sageattention": "sage",
    "sage2": "sage",
}
# "auto": the first of these this machine can run (flash3 on Hopper; sage, then flash2, on Ampere and
# newer; PyTorch's own SDPA everywhere else, the CPU included).
PREFERENCE = ("flash3", "sage", "flash2", "sdpa")


def _installed(module: str | None) -> bool:
    return module is None or importlib.util.find_spec(module) is not None


def canonical_name(name: str, *, field: str = "attention") -> str:
    """A kernel name or alias -> its registry name; an unknown one is an InputError naming the closest."""
    key = str(name).strip().lower().replace("_", "-")
    key = ALIASES.get(key, key)
    if key not in KERNELS and key != "auto":
        raise InputError(unknown_word("attention kernel", str(name), (*KERNELS, "auto")), field=field)
    return key


def refusal(
    name: str, device: torch.device | str, dtype: torch.dtype, head_dim: int | None = None
) -> str | None:
    """Why kernel `name` cannot run on `device` in `dtype` (what to install, or what the card lacks); None
    when it can."""
    kernel = KERNELS[name]
    device = torch.device(device)
    if not _installed(kernel.module):
        return f'attention kernel "{name}" needs the {kernel.module} package: pip install {kernel.pip}'
    if kernel.cuda and device.type != "cuda":
        return f'attention kernel "{name}" ({kernel.what}) needs a CUDA device, not {device.type}'
    if kernel.half and dtype not in HALF:
        dt = str(dtype).removeprefix("torch.")
        return f'attention kernel "{name}" runs fp16/bf16 only, not {dt} (use --dtype bf16, or "sdpa")'
    if name == "sdpa-flash" and device.type == "cuda" and dtype not in HALF:
        return (
            'attention kernel "sdpa-flash" runs fp16/bf16 on CUDA; use "sdpa" (or "sdpa-efficient") for fp32'
        )
    if kernel.min_capability is not None and device.type == "cuda":
        have = torch.cuda.get_device_capability(device)
        if have < kernel.min_capability:
            need = "{}.{}".format(*kernel.min_capability)
            return (f'attention kernel "{name}" needs a card of compute capability {need} or newer; '
                    f"{torch.cuda.get_device_name(device)} is {have[0]}.{have[1]}")  # fmt: skip
    if head_dim is not None and kernel.max_head_dim is not None and head_dim > kernel.max_head_dim:
        return f'attention kernel "{name}" takes head dims up to {kernel.max_head_dim}, not {head_dim}'
    return None


def _probe(name: str, device: torch.device, dtype: torch.dtype, head_dim: int) -> str | None:
    """Run the kernel once on a small input: PyTorch's SDPA backends say only at call time whether this
    card, driver and build have them (cuDNN attention, the efficient kernel's dtypes)."""
    q = torch.randn(1, 2, 64, head_dim, device=device, dtype=dtype)  # (B, H, L, D)
    try:
        KERNELS[name].fn(q, q, q)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f'attention kernel "{name}" does not run on this {device.type} device in {dtype}: {first}'
    return None


def resolve_attention(
    name: str | None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    *,
    head_dim: int = 64,
    field: str = "attention",
) -> AttentionFn:
    """The kernel `name` ("auto"/None: `choose_attention`) for `device`/`dtype`, or an InputError saying
    what to install or why it cannot run here. The function's registry name is its `.kernel_name`."""
    device = torch.device(device)
    key = canonical_name(name or "auto", field=field)
    if key == "auto":
        key = choose_attention(device, dtype, head_dim=head_dim)
    why = refusal(key, device, dtype, head_dim)
    if why is None and key.startswith("sdpa-"):
        why = _probe(key, device, dtype, head_dim)
    if why is not None:
        raise InputError(why, field=field)
    return KERNELS[key].fn


def choose_attention(device: torch.device | str, dtype: torch.dtype, *, head_dim: int = 64) -> str:
    """The fastest kernel this machine runs for `dtype` (what "auto" means): flash3 on Hopper, SageAttention
    or flash2 on Ampere and newer where installed, else PyTorch's SDPA (always on the CPU)."""
    for name in PREFERENCE:
        if refusal(name, device, dtype, head_dim) is None:
            return name
    return "sdpa"


def kernel_name(fn: AttentionFn) -> str:
    """The registry name of a kernel function, or its Python name for one from elsewhere (a wrapper)."""
    return getattr(fn, "kernel_name", None) or getattr(fn, "__name__", type(fn).__name__)


def attention_with_lse(q: Tensor, k: Tensor, v: Tensor, *, chunk: int = 1024) -> tuple[Tensor, Tensor]:
    """(out (B, H, Lq, D) in q's dtype, lse (B, H, Lq) float32): softmax attention and the log-sum-exp of
    each query's scaled scores, so attention over key blocks can be merged exactly (Ring attention).
    flash-attn computes both on CUDA in fp16/bf16; elsewhere float32 maths, `chunk` queries at a time."""
    if q.is_cuda and q.dtype in HALF and _installed("flash_attn") and q.shape[-1] <= 256:
        from flash_attn import flash_attn_func

        out, lse, _ = flash_attn_func(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), return_attn_probs=True
        )  # (B, Lq, H, D), (B, H, Lq)
        return out.transpose(1, 2), lse.float()
    scale = 1.0 / math.sqrt(q.shape[-1])
    kf, vf = k.float(), v.float()  # (B, H, Lk, D)
    outs, lses = [], []
    for start in range(0, q.shape[2], chunk):
        scores = (q[:, :, start : start + chunk].float() @ kf.transpose(-1, -2)) * scale  # (B, H, c, Lk)
        lse = torch.logsumexp(scores, dim=-1)  # (B, H, c)
        outs.append(torch.exp(scores - lse.unsqueeze(-1)) @ vf)  # (B, H, c, D)
        lses.append(lse)
    return torch.cat(outs, dim=2).to(q.dtype), torch.cat(lses, dim=2)


# ---- the process-wide default (what a module runs unless it was given its own kernel) ------------------
_current: str = "sdpa"


def available_attention_backends(
    device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> list[str]:
    """Kernels whose packages are importable here; with `device` (and `dtype`) only those that can run
    there, as `refusal` judges (the SDPA backends are not probed)."""
    if device is None:
        return [n for n, k in KERNELS.items() if _installed(k.module)]
    dt = dtype if dtype is not None else torch.float32
    return [n for n in KERNELS if refusal(n, device, dt) is None]


def set_attention_backend(name: str) -> None:
    """Make `name` the kernel of every module that has no kernel of its own (a process-wide default).
    Checked only for its package: the device and dtype are known when `resolve_attention` runs."""
    global _current
    key = canonical_name(name)
    if key == "auto":
        raise InputError('the process-wide default takes a kernel name, not "auto"', field="attention")
    kernel = KERNELS[key]
    if not _installed(kernel.module):
        raise InputError(
            f'attention kernel "{key}" needs the {kernel.module} package: pip install {kernel.pip}',
            field="attention",
        )
    _current = key


def get_attention_backend() -> str:
    return _current


def attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Softmax attention with the process-wide default kernel: q (B, H, Lq, D), k/v (B, H, Lk, D) ->
    (B, H, Lq, D). The old "flash" default fell back to SDPA where flash-attn cannot run; so does this."""
    kernel = KERNELS[_current]
    if kernel.cuda and (not q.is_cuda or (kernel.half and q.dtype not in HALF)):
        return _sdpa(q, k, v)
    return kernel.fn(q, k, v)
