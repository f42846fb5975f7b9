"""The one table of backends: name -> how to build it, what options it takes, what it needs.

The CLI's `--backend` names, the server's settings, `/api/v1/health` and the studio's model list all read
this table, so adding a backend is one `register(BackendSpec(...))`. Builders are named by import path
("module:function") and imported only when that backend is built: the animatic never imports torch.

A builder is `build(model: str | None, options: dict[str, Any]) -> Generator`, where `options` holds only
the options the person gave (keys of `OPTIONS`, each one the spec lists in `options`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from yingxi.errors import InputError, unknown_word

__all__ = [
    "OPTIONS",
    "BackendOption",
    "BackendSpec",
    "backend_names",
    "backends_help",
    "build_backend",
    "build_door_backend",
    "capabilities_view",
    "describe",
    "check_options",
    "get_spec",
    "register",
    "unregister",
]


@dataclass(frozen=True)
class BackendOption:
    """A construction option a backend may take (the same name on every backend that takes it)."""

    flag: str  # the CLI flag that sets it
    help: str
    choices: tuple[str, ...] = ()  # accepted values, where they are words


# Every construction option any backend takes; a spec names the ones it takes. A backend with a new kind
# of option adds its row here (one line) and lists it in its spec.
OPTIONS: dict[str, BackendOption] = {
    "model": BackendOption("--model", "a model name or folder"),
    "device": BackendOption("--device", "torch device (default: cuda if present)"),
    "dtype": BackendOption("--dtype", "compute dtype", ("bf16", "fp16", "fp32")),
    "steps": BackendOption("--steps", "sampling steps"),
    "guidance": BackendOption("--guidance", "guidance scale"),
    "offload": BackendOption("--offload", "model or blocks offload", ("none", "model", "blocks")),
    "weights": BackendOption("--weights", "transformer weights on the device", ("bf16", "fp8")),
    "files": BackendOption("--text-encoder", "the other parts of a single-file model {part: path}"),
    "loras": BackendOption("--lora", "LoRA files [(path, strength)]"),
    "loras_2": BackendOption("--lora-2", "LoRA files of the low-noise expert"),
    "preset": BackendOption("--preset", "few-step sampling preset"),
    "schedule": BackendOption("--schedule", "sigma grid", ("wan", "diffusers")),
    "cache": BackendOption("--cache", "step cache: fbcache, magcache or teacache [:threshold]"),
}

Builder = Callable[[str | None, dict[str, Any]], Any]


@dataclass(frozen=True)
class BackendSpec:
    """One backend: its name, how to build it with and without weights, and the options it takes."""

    name: str
    summary: str  # one line for `--help`, /health and the studio
    build: str | Builder  # "module:function" or a callable; weights load on first generate (or at build)
    door: str | Builder | None = None  # built without weights for the API process (checks only); None: build
    options: tuple[str, ...] = ()  # keys of OPTIONS it takes ("model" included where it takes one)
    needs_model: bool = False  # refuse to build without a model
    model_help: str = ""  # what a model is for this backend, for the error when it is missing
    encoder_preset: str = "medium"  # x264 preset its films are encoded with by default
    makes_sound: bool = False  # some of its models return Clip.audio (the editor mixes it)
    # Accepted values of an option where this backend's differ from OPTIONS' (e.g. offload "sequential").
    option_choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [o for o in self.options if o not in OPTIONS]
        if unknown:
            raise ValueError(f"backend {self.name}: unknown option(s) {unknown}; add them to OPTIONS first")


_REGISTRY: dict[str, BackendSpec] = {}


def register(spec: BackendSpec, *, replace: bool = False) -> BackendSpec:
    """Add a backend to the table (a name is registered once unless `replace`)."""
    if spec.name in _REGISTRY and not replace:
        raise ValueError(f'backend "{spec.name}" is already registered')
    _REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a backend from the table (tests, plugins that replace one)."""
    _REGISTRY.pop(name, None)


def backend_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def backends_help() -> str:
    """The names for a --backend help text: "animatic (CPU animatic ...), wan (...)"."""
    return "; ".join(f"{s.name}: {s.summary}" for s in _REGISTRY.values())


def get_spec(name: str, *, field: str = "backend") -> BackendSpec:
    """The spec of `name`; InputError naming the closest registered name otherwise."""
    spec = _REGISTRY.get(str(name).strip().lower())
    if spec is None:
        raise InputError(unknown_word("backend", str(name), _REGISTRY), field=field)
    return spec


def check_options(spec: BackendSpec, options: Mapping[str, Any], *, flags: bool = False) -> dict[str, Any]:
    """The options that were given (not None, not empty), checked against what `spec` takes; InputError
    naming the flags it does not take and the backends that do, or a value outside an option's choices.
    `flags`: errors name the CLI flag (--model) rather than the setting (model)."""
    given = {
        k: v
        for k, v in options.items()
        if v is not None and not (isinstance(v, (list, tuple, dict)) and not v)
    }
    unknown = [k for k in given if k not in OPTIONS]
    if unknown:
        raise InputError(unknown_word("backend option", unknown[0], OPTIONS), field=unknown[0])
    refused = [k for k in given if k not in spec.options]
    if refused:
        flags = [f for k in refused for f in _flags(k, given[k])]
        others = [n for n in _REGISTRY if all(k in _REGISTRY[n].options for k in refused)]
        takes = ", ".join(OPTIONS[k].flag for k in spec.options) if spec.options else "none"
        need = f"need --backend {' or '.join(others)}" if others else "are not all taken by any one backend"
        raise InputError(f"{', '.join(flags)} {need} (the {spec.name} takes {takes})", field=flags[0])
    for k, v in given.items():
        choices = spec.option_choices.get(k, OPTIONS[k].choices)
        if choices and isinstance(v, str) and v not in choices:
            raise InputError(unknown_word(k, v, choices), field=OPTIONS[k].flag if flags else k)
    if spec.needs_model and not given.get("model"):
        raise InputError(f"the {spec.name} backend needs a model: {spec.model_help}",
                         field="--model" if flags else "model")  # fmt: skip
    return given


def _flags(option: str, value: Any) -> list[str]:
    """The CLI flags that gave an option: each single-file part's own (--vae, --model-variant)."""
    if option == "files" and isinstance(value, dict):
        return ["--" + {"variant": "model_variant"}.get(p, p).replace("_", "-") for p in value]
    return [OPTIONS[option].flag]


def _resolve(builder: str | Builder) -> Builder:
    if callable(builder):
        return builder
    module, _, function = builder.partition(":")
    return getattr(importlib.import_module(module), function)


def build_backend(name: str, options: Mapping[str, Any] | None = None, *, flags: bool = False):
    """The backend `name`, built with the given options (weights load as the backend decides).
    `flags`: errors name CLI flags (--backend, --model) rather than settings."""
    spec = get_spec(name, field="--backend" if flags else "backend")
    given = check_options(spec, options or {}, flags=flags)
    return _resolve(spec.build)(given.pop("model", None), given)


def build_door_backend(name: str, options: Mapping[str, Any] | None = None):
    """The backend as the API process needs it: capabilities and `check` only, no weights loaded."""
    spec = get_spec(name)
    given = check_options(spec, options or {})
    return _resolve(spec.door or spec.build)(given.pop("model", None), given)


def describe() -> list[dict[str, Any]]:
    """The table as data (for /health and the studio's model list)."""
    return [{"name": s.name, "summary": s.summary, "needs_model": s.needs_model, "makes_sound": s.makes_sound,
             "options": list(s.options)} for s in _REGISTRY.values()]  # fmt: skip


def capabilities_view(backend: Any) -> dict[str, Any]:
    """What a built backend can shoot, as JSON for /health and the studio (conditionings, sizes, sound)."""
    c = backend.capabilities
    return {"name": backend.name, "conditionings": sorted(c.conditionings),
            "conditioning_kinds": sorted(c.conditioning_kinds), "audio": c.audio,
            "size_multiple": c.size_multiple, "max_pixels": c.max_pixels, "frame_step": c.frame_step,
            "frame_offset": c.frame_offset, "min_frames": c.min_frames, "max_frames": c.max_frames,
            "native_fps": c.native_fps}  # fmt: skip


# ---- the built-in backends -------------------------------------------------------------------------------
register(
    BackendSpec(
        name="animatic",
        summary="CPU animatic: keyframes moved along the camera path, title cards; no weights",
        build="yingxi.backends.animatic:build_animatic",
        encoder_preset="veryfast",
    )
)
register(
    BackendSpec(
        name="wan",
        summary="Wan 2.1 / 2.2 on our own engine (t2v, i2v, flf2v, ti2v)",
        build="yingxi.backends.wan:build_wan",
        door="yingxi.backends.wan:door_wan",
        options=(
            "model",
            "device",
            "dtype",
            "steps",
            "guidance",
            "offload",
            "weights",
            "files",
            "loras",
            "loras_2",
            "preset",
            "schedule",
            "cache",
        ),  # fmt: skip
        needs_model=True,
        model_help="a variant name (see `yingxi models list`), a model folder or a transformer file",
    )
)
