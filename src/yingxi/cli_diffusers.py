"""The CLI's `--backend diffusers` (any diffusers video pipeline folder) and its `--pipeline-arg` flag."""

from __future__ import annotations

import argparse
import json

from yingxi.errors import InputError


def add_diffusers_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pipeline-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="--backend diffusers: a further __call__ argument of the pipeline for every shot, "
                        "VALUE as JSON or text (e.g. stg_scale=0; repeatable)")  # fmt: skip


def pipeline_args(specs: list[str]) -> dict:
    """{"stg_scale": 0.0, ...} from KEY=VALUE flags; VALUE is read as JSON where it parses, else as text."""
    out = {}
    for spec in specs:
        key, sep, value = spec.partition("=")
        if not sep or not key.strip():
            raise InputError(f'write --pipeline-arg as KEY=VALUE, got "{spec}"', field="--pipeline-arg")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def diffusers_backend(args: argparse.Namespace):
    """The diffusers backend the flags describe; Wan-only flags are refused, not ignored."""
    from yingxi.backends.diffusers import build_diffusers_generator
    from yingxi.cli_files import file_parts
    from yingxi.cli_sampling import wan_only_flags

    given = {
        "--weights": args.weights,
        **{f"--{k.replace('_', '-')}": v for k, v in file_parts(args).items()},
    }
    wan_only = [flag for flag, value in given.items() if value is not None] + wan_only_flags(args)
    if wan_only:
        raise InputError(f"{', '.join(wan_only)} need --backend wan (the diffusers backend reads a whole "
                         "pipeline folder and takes none)", field=wan_only[0])  # fmt: skip
    options = dict(device=args.device, dtype=args.dtype, offload=args.offload, steps=args.steps,
                   guidance=args.guidance, call=pipeline_args(args.pipeline_arg))  # fmt: skip
    return build_diffusers_generator(args.model, options)


def refuse_pipeline_args(args: argparse.Namespace) -> None:
    if args.backend != "diffusers" and getattr(args, "pipeline_arg", None):
        raise InputError(f"--pipeline-arg needs --backend diffusers (--backend {args.backend} takes none)",
                         field="--pipeline-arg")  # fmt: skip
