"""The CLI's speed flags for --backend wan: --attention, --cross-attention, --compile."""

from __future__ import annotations

import argparse

COMPILE_CHOICES = "auto, default, max-autotune-no-cudagraphs, cudagraphs, none"


def add_speed_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--attention", metavar="NAME",
                   help="attention kernel for --backend wan (default auto: flash3 on Hopper, sage or flash2 on "
                        "Ampere+ where installed, else sdpa): sdpa, sdpa-math, sdpa-flash, sdpa-efficient, "
                        "sdpa-cudnn, flash2, flash3, sage")  # fmt: skip
    p.add_argument("--cross-attention", metavar="NAME",
                   help="kernel of the cross-attention to text and image tokens (default: as --attention)")  # fmt: skip
    p.add_argument("--compile", nargs="?", const="auto", metavar="MODE", type=_compile_mode,
                   help="torch.compile the transformer blocks (regional: one graph shared by every block); "
                        f"MODE: {COMPILE_CHOICES} (auto: max-autotune without CUDA graphs on a GPU)")  # fmt: skip


def _compile_mode(value: str) -> str:
    """--compile's optional MODE, checked while parsing: `--compile "Shot 1: ..."` took the prompt."""
    from yingxi.models.compile import COMPILE_MODES

    if value.strip().lower() not in (*COMPILE_MODES, "none", "off") and any(c.isspace() for c in value):
        raise argparse.ArgumentTypeError(f'takes an optional mode ({COMPILE_CHOICES}), not "{value}": write the '
                                         "prompt before --compile, or --compile auto")  # fmt: skip
    return value


def speed_flags(args: argparse.Namespace) -> list[str]:
    """The speed flags given (only the Wan backend takes them)."""
    given = {
        "--attention": args.attention,
        "--cross-attention": args.cross_attention,
        "--compile": args.compile,
    }
    return [flag for flag, value in given.items() if value is not None]


def speed_options(args: argparse.Namespace) -> dict:
    """WanGenerator keyword arguments; a misspelt kernel or mode is refused here, naming the closest."""
    from yingxi.models.attention import canonical_name
    from yingxi.models.compile import parse_compile

    attention = canonical_name(args.attention, field="--attention") if args.attention else "auto"
    cross = canonical_name(args.cross_attention, field="--cross-attention") if args.cross_attention else None
    mode = args.compile
    if mode is not None:
        parse_compile(mode, "cuda", field="--compile")  # the name; the device is checked by the generator
    return dict(attention=attention, cross_attention=cross, compile=mode)
