"""The CLI's `--pipeline-arg` flag: further __call__ arguments for `--backend diffusers` (registry option "call")."""

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
