"""The CLI's `Runtime`: built once from the flags of `generate`/`plan`, `serve` and `worker`, handed down.

`generate`/`plan` keep their flags where they were (--device, --dtype, --offload, --weights in `cli.py`,
--cache in `cli_sampling.py`); `serve` and `worker` get one block of them here (with --attention,
--cross-attention, --compile), with the LoRA and preset flags the server's wan backend takes too. Flags
other modules add to `generate`/`plan` (--attention, --cross-attention, --compile) or `worker` (--parallel)
are read here when present, so each lands by adding its flag alone.
"""

from __future__ import annotations

import argparse
from typing import Any

from yingxi.errors import InputError
from yingxi.pipelines.runtime import Runtime

__all__ = ["add_runtime_args", "add_server_runtime_args", "runtime_from_args", "server_runtime_fields"]

BATCHED = {"auto": None, "on": True, "off": False}


def add_runtime_args(p: argparse.ArgumentParser) -> None:
    """The Runtime flags `generate`/`plan` did not have before."""
    p.add_argument("--batched-guidance", choices=tuple(BATCHED), default="auto",
                   help="wan: cond and uncond in one batch of 2 (auto: on GPUs, off on the CPU)")  # fmt: skip


def add_server_runtime_args(p: argparse.ArgumentParser) -> None:
    """How `serve`'s and `worker`'s wan backend runs, and what it loads (one block, the same for both)."""
    g = p.add_argument_group("wan runtime (--backend wan)")
    g.add_argument("--device", help="torch device (default: cuda:<worker index> if present, else cpu)")
    g.add_argument("--dtype", choices=("bf16", "fp16", "fp32"), help="compute dtype (default bf16 on GPU)")
    g.add_argument("--weights", choices=("bf16", "fp8"),
                   help="transformer storage: fp8 quantizes at load, bf16 widens an fp8 file (default: as stored)")  # fmt: skip
    g.add_argument("--offload", choices=("none", "model", "blocks"), default="none",
                   help="keep components (model) or also transformer blocks (blocks) off the GPU when idle")  # fmt: skip
    g.add_argument("--cache", metavar="NAME[:THRESHOLD]",
                   help="every shot's step cache (fbcache, magcache, teacache); a request's own `cache` replaces it")  # fmt: skip
    g.add_argument("--no-request-cache", action="store_true",
                   help="refuse a request's own `cache` field (every shot uses --cache)")  # fmt: skip
    g.add_argument("--batched-guidance", choices=tuple(BATCHED), default="auto",
                   help="cond and uncond in one batch of 2 (auto: on GPUs)")  # fmt: skip
    g.add_argument("--attention", default="auto", help="self-attention kernel (auto: the best installed)")
    g.add_argument("--cross-attention", help="cross-attention kernel (default: as --attention)")
    g.add_argument("--compile", nargs="?", const=True, metavar="MODE",
                   help="torch.compile the transformer blocks (MODE: the compile module's; default eager)")  # fmt: skip
    g.add_argument("--lora", action="append", default=[], metavar="FILE[:STRENGTH]",
                   help="a LoRA on the transformer (repeatable; A14B: *low_noise* files on the low-noise expert)")  # fmt: skip
    g.add_argument("--lora-2", action="append", default=[], metavar="FILE[:STRENGTH]",
                   help="a LoRA for the low-noise expert of an A14B pair (repeatable)")  # fmt: skip
    g.add_argument("--preset", metavar="NAME", help="the server's default sampling preset (lightning); "
                   "a request's own `preset` replaces it")  # fmt: skip


def runtime_from_args(args: argparse.Namespace) -> Runtime:
    """The Runtime the flags describe; a bad value is one line naming its flag."""
    fields: dict[str, Any] = {
        "device": getattr(args, "device", None),
        "dtype": getattr(args, "dtype", None),
        "weights": getattr(args, "weights", None),
        "offload": getattr(args, "offload", None) or "none",
        "cache": getattr(args, "cache", None),
        "batched_guidance": BATCHED[getattr(args, "batched_guidance", None) or "auto"],
        "attention": getattr(args, "attention", None) or "auto",  # flags the kernel module adds
        "cross_attention": getattr(args, "cross_attention", None),
        "compile": _compile_flag(getattr(args, "compile", None)),
        "parallel": getattr(args, "parallel", None),
    }
    try:
        return Runtime(**fields)
    except InputError as e:
        raise InputError(e.message, field=f"--{(e.field or 'runtime').replace('_', '-')}") from None


def _compile_flag(value: Any) -> str | None:
    """--compile as a bare switch (True) is the default mode; a string is its mode."""
    if value is True:
        return "default"
    return value or None


def server_runtime_fields(args: argparse.Namespace) -> dict[str, Any]:
    """ServerSettings fields from `serve`/`worker` flags: runtime, loras, loras_2, preset, request_cache.
    Wan-only flags with the animatic are refused (a person who gives them expects neural generation)."""
    from yingxi.backends.registry import get_spec

    spec = get_spec(args.backend, field="--backend")
    if "runtime" not in spec.options:  # the runtime flags are for a backend that takes a Runtime (wan)
        given = {"--device": ("device", args.device), "--dtype": ("dtype", args.dtype),
                 "--weights": ("weights", args.weights),
                 "--offload": ("offload", None if args.offload == "none" else args.offload),
                 "--cache": ("cache", args.cache), "--lora": ("loras", args.lora),
                 "--lora-2": ("loras_2", args.lora_2), "--preset": ("preset", args.preset),
                 "--batched-guidance": ("runtime", None if args.batched_guidance == "auto" else args.batched_guidance),
                 "--attention": ("runtime", None if args.attention == "auto" else args.attention),
                 "--cross-attention": ("runtime", args.cross_attention),
                 "--compile": ("runtime", args.compile)}  # fmt: skip
        refused = [flag for flag, (key, value) in given.items() if value and key not in spec.options]
        if refused:
            raise InputError(
                f"{', '.join(refused)} need --backend wan (the {spec.name} takes none of them)",
                field=refused[0],
            )
        try:  # the device, dtype and offload such a backend takes travel in the settings' Runtime too
            return {"runtime": Runtime(device=args.device, dtype=args.dtype, offload=args.offload or "none")}
        except InputError as e:
            raise InputError(e.message, field=f"--{e.field or 'runtime'}") from None
    from yingxi.cli_sampling import check_loras
    from yingxi.film.vocabulary import parse_preset

    loras, loras_2 = check_loras(args.lora), check_loras(args.lora_2)
    return {
        "runtime": runtime_from_args(args),
        "loras": tuple((str(path), strength) for path, strength in loras),
        "loras_2": tuple((str(path), strength) for path, strength in loras_2) or None,
        "preset": parse_preset(args.preset, field="--preset"),
        "request_cache": not args.no_request_cache,
    }
