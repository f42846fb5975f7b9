"""The CLI's LoRA and sampling flags: --lora, --lora-2, --preset, --schedule (and --preset's x264 past)."""

from __future__ import annotations

import argparse

from yingxi.errors import InputError
from yingxi.film.model import PRESETS

# x264's speed/size presets, which `yingxi generate --preset` took before it named sampling presets.
X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)


def add_sampling_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lora", action="append", default=[], metavar="FILE[:STRENGTH]",
                   help="a LoRA .safetensors (repeatable; default strength 1); on an A14B pair, files named "
                        "*low_noise* go on the low-noise expert, the rest on the high-noise one")  # fmt: skip
    p.add_argument("--lora-2", action="append", default=[], metavar="FILE[:STRENGTH]",
                   help="a LoRA for the low-noise expert of an A14B pair (repeatable)")  # fmt: skip
    p.add_argument("--preset", metavar="NAME",
                   help=f"few-step sampling preset: {', '.join(PRESETS)} (4 steps, no CFG, the distillation's "
                        "sampler, shift and LoRA files, found in --comfy-root's loras folder or given by --lora)")  # fmt: skip
    p.add_argument("--cache", metavar="NAME[:THRESHOLD]",
                   help="training-free step cache for --backend wan: fbcache (first-block cache, 0.05), "
                        "magcache (0.06) or teacache (0.1), or none; reused steps are counted in the summary")  # fmt: skip
    p.add_argument("--schedule", choices=("wan", "diffusers"),
                   help="sigma grid: wan (Wan's own samplers, the default) or diffusers (diffusers' WanPipeline)")  # fmt: skip


def sampling_preset(args: argparse.Namespace) -> tuple[str | None, str | None, str | None]:
    """(sampling preset, x264 preset, note): an x264 name on --preset still picks the encoder preset."""
    preset = args.preset.strip().lower() if args.preset else None
    encoder = getattr(args, "encoder_preset", None)
    if preset in X264_PRESETS:
        note = (f"--preset {preset} is an x264 preset: write --encoder-preset {preset} (--preset now names "
                f"sampling presets: {', '.join(PRESETS)})")  # fmt: skip
        return None, encoder or preset, note
    if preset is not None and preset not in PRESETS:
        from yingxi.errors import unknown_word

        raise InputError(unknown_word("preset", args.preset, PRESETS + X264_PRESETS), field="--preset")
    return preset, encoder, None


def wan_options(args: argparse.Namespace) -> dict:
    """WanGenerator keyword arguments from the flags."""
    from yingxi.models.lora import parse_lora_spec

    loras = [parse_lora_spec(spec) for spec in args.lora]
    loras_2 = [parse_lora_spec(spec) for spec in args.lora_2]
    for path, _ in loras + loras_2:
        if not path.is_file():
            raise InputError(f"LoRA file not found: {path}", field="--lora")
    return dict(
        loras=loras,
        loras_2=loras_2 or None,
        preset=sampling_preset(args)[0],
        schedule=args.schedule or "wan",
        comfy_root=getattr(args, "comfy_root", None),  # the single-file flags' --comfy-root, where present
        cache=_cache_flag(args),
    )


def _cache_flag(args: argparse.Namespace):
    from yingxi.pipelines.wan.cache import parse_cache

    return parse_cache(getattr(args, "cache", None), field="--cache")
