"""`Runtime`: how to run a model (device, dtype, weight storage, offload, attention, compile, cache, parallel).

One frozen object, built once by the CLI (`yingxi generate/plan`) or the server (its settings) and handed
down through the backend and the loader to the pipeline; nothing below reads flags. Every field is a plain
string (or bool) so it crosses process boundaries as JSON (server -> worker) and is parsed where it is used:
the cache by `pipelines.wan.cache.parse_cache`, the attention kernel by the models' attention module, the
compile mode and the parallel plan by their own modules. Validation is here, once, with `InputError(field=)`.
Importing this module needs no torch (an animatic server never loads it).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from yingxi.errors import InputError, unknown_word

__all__ = ["DTYPES", "OFFLOADS", "WEIGHTS", "Runtime", "runtime_with"]

DTYPES = ("bf16", "fp16", "fp32")  # compute dtypes of the transformers and text encoder
DTYPE_SPELLINGS = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float32": "fp32", "float": "fp32"}
WEIGHTS = ("bf16", "fp8")  # storage on the device: fp8 quantizes block Linears at load, bf16 widens fp8 files
OFFLOADS = ("none", "model", "blocks")
SAMPLERS = ("unipc", "euler")
DEVICE_RE = re.compile(r"^(cpu|meta|mps|cuda|xpu)(:\d+)?$")


@dataclass(frozen=True)
class Runtime:
    """How to run, not what to make: the same shot renders with any Runtime (up to kernel rounding)."""

    device: str | None = None  # torch device ("cuda:1", "cpu"); None: cuda if present, else cpu
    dtype: str | None = (
        None  # bf16 | fp16 | fp32 for transformers + text encoder; None: bf16 on GPU, fp32 on CPU
    )
    vae_dtype: str = "fp32"  # Wan decodes in float32; bf16 halves the VAE's memory at some precision
    weights: str | None = (
        None  # transformer storage: None as stored, "fp8" quantize at load, "bf16" widen fp8
    )
    offload: str = "none"  # "model": each part on the device only while it runs; "blocks": also stream blocks
    attention: str = "auto"  # self-attention kernel; "auto": the best one installed for the card
    cross_attention: str | None = None  # the cross-attention kernel; None: the same as `attention`
    compile: str | None = None  # torch.compile of the transformer blocks (its mode string); None: eager
    cache: str | None = None  # step cache of every shot, "magcache" / "teacache:0.2" / ...; None: every block
    parallel: str | None = None  # shard plan across ranks, "ulysses=4,ring=2,cfg=2"; None: one device
    sampler: str = "unipc"  # "unipc" (Wan's default solver) | "euler"
    batched_guidance: bool | None = None  # cond + uncond as one batch of 2; None: on GPUs, off on the CPU

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        if self.device is not None:
            device = str(self.device).strip().lower()
            if not DEVICE_RE.match(device):
                raise InputError(f'unknown device "{self.device}"; write cpu, cuda or cuda:N', field="device")
            set_("device", device)
        set_("dtype", _dtype(self.dtype, "dtype") if self.dtype is not None else None)
        set_("vae_dtype", _dtype(self.vae_dtype, "vae_dtype"))
        if self.weights is not None:
            set_("weights", _choice(self.weights, WEIGHTS, "weights"))
        offload = {True: "model", False: "none", None: "none"}.get(self.offload, self.offload)  # type: ignore[call-overload]
        set_("offload", _choice(offload, OFFLOADS, "offload"))
        # attention kernels: names checked against what is installed by `check_supported` (needs torch)
        set_("attention", _word(self.attention, "attention"))
        if self.cross_attention is not None:
            set_("cross_attention", _word(self.cross_attention, "cross_attention"))
        set_("sampler", _choice(self.sampler, SAMPLERS, "sampler"))
        for name in ("compile", "parallel"):  # parsed where used; here only emptiness and type
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise InputError(f"{name} is a string, got {value!r}", field=name)
            if value is not None and value.strip().lower() in ("", "none", "off"):
                set_(name, None)
        if self.cache is not None:
            set_("cache", _cache(self.cache))
        if self.batched_guidance is not None and not isinstance(self.batched_guidance, bool):
            raise InputError(
                f"batched_guidance is true, false or None, got {self.batched_guidance!r}",
                field="batched_guidance",
            )

    # ---- resolved forms (these import torch) -------------------------------------------------------------
    @property
    def torch_device(self):
        """The device: the given one, else cuda when present, else cpu."""
        import torch

        if self.device is not None:
            return torch.device(self.device)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    @property
    def torch_dtype(self):
        """The compute dtype: the given one, else bf16 on an accelerator and fp32 on the CPU."""
        import torch

        if self.dtype is None:
            return torch.float32 if self.torch_device.type == "cpu" else torch.bfloat16
        return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[self.dtype]

    @property
    def torch_vae_dtype(self):
        import torch

        return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[self.vae_dtype]

    @property
    def guidance_batched(self) -> bool:
        """Batched guidance as it runs: the given choice, else on for accelerators."""
        if self.batched_guidance is not None:
            return self.batched_guidance
        return self.torch_device.type != "cpu"

    def summary(self) -> str:
        """One line for logs and the CLI: the fields that differ from the defaults."""
        default = Runtime()
        parts = [f"{f.name}={getattr(self, f.name)}" for f in dataclasses.fields(self)
                 if getattr(self, f.name) != getattr(default, f.name)]  # fmt: skip
        return ", ".join(parts) or "defaults"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Runtime:
        """A Runtime from `to_dict`'s data (a worker's settings); an unknown key is an InputError."""
        data = dict(data or {})
        names = {f.name for f in dataclasses.fields(cls)}
        for key in data:
            if key not in names:
                raise InputError(unknown_word("runtime field", key, sorted(names)), field="runtime")
        return cls(**data)


def runtime_with(runtime: Runtime | None, **given: Any) -> Runtime:
    """`runtime` (None: the defaults) with the given non-None fields replacing its own: how the old loose
    keyword arguments (`device=`, `offload=`, `cache=`, ...) of the loader and pipeline become a Runtime."""
    base = runtime if runtime is not None else Runtime()
    if not isinstance(base, Runtime):
        raise InputError(f"runtime must be a Runtime, got {type(base).__name__}", field="runtime")
    changes = {k: _plain(k, v) for k, v in given.items() if v is not None}
    return dataclasses.replace(base, **changes) if changes else base


def _plain(name: str, value: Any) -> Any:
    """torch.device / torch.dtype / CacheSpec values of the old keywords as Runtime's strings."""
    if name in ("dtype", "vae_dtype") and not isinstance(value, str):
        return str(value).removeprefix("torch.")
    if name == "device" and not isinstance(value, str):
        return str(value)
    if name == "cache" and not isinstance(value, str):
        return str(value)  # a CacheSpec: "magcache:0.06"
    if name == "compile" and isinstance(value, bool):
        return "auto" if value else "none"  # --compile as a switch: the compile module's default mode
    return value


def _choice(value: Any, choices: tuple[str, ...], field: str) -> str:
    word = str(value).strip().lower()
    if word not in choices:
        raise InputError(unknown_word(field.replace("_", " "), str(value), choices), field=field)
    return word


def _word(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{field} names a kernel, got {value!r}", field=field)
    return value.strip().lower()


def _dtype(value: Any, field: str) -> str:
    word = str(value).strip().lower().removeprefix("torch.")
    return _choice(DTYPE_SPELLINGS.get(word, word), DTYPES, field)


def _cache(value: Any) -> str | None:
    """The canonical "name:threshold" of a cache, or None for none; names and thresholds as `--cache`."""
    from yingxi.pipelines.wan.cache import parse_cache  # only when a cache is asked for (imports torch)

    spec = parse_cache(str(value), field="cache")
    return str(spec) if spec is not None else None


# ---- what this build can run (checked before any weights load) ----------------------------------------
def check_supported(runtime: Runtime) -> None:
    """InputError now for a field this build cannot honour (an unknown kernel or compile mode, a parallel
    plan that does not parse), rather than a run that quietly ignores it. Whether this card and these
    packages run the kernels is checked where the device is known (`pipelines.wan.speed.check_speed`)."""
    from yingxi.models.attention import canonical_name
    from yingxi.models.compile import parse_compile
    from yingxi.models.parallel.plan import parse_parallel

    for field, name in (("attention", runtime.attention), ("cross_attention", runtime.cross_attention)):
        if name is not None:
            canonical_name(name, field=field)
    if runtime.compile is not None:
        parse_compile(runtime.compile, "cuda", field="compile")  # the name; the device is checked at load
    if runtime.parallel is not None:
        parse_parallel(runtime.parallel, field="parallel")
