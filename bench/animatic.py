"""Animatic render speed: a 20 s 720p film, end to end (plan, shoot, edit, encode).

    .venv/bin/python bench/animatic.py [--seconds 20] [--resolution 720p] [--fps 24] [--preset veryfast]

Prints a table: wall time per phase, frames per second and x real time. The reference in the same run is
the encoder alone on the film's own decoded frames (write_mp4, no audio), the floor any animatic can reach.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from yingxi.backends.animatic import AnimaticGenerator
from yingxi.film import parse_prompt
from yingxi.media.video import read_frames, write_mp4
from yingxi.render import render

MOVES = [
    "slow pan left",
    "dolly in",
    "handheld",
    "crane up",
    "orbit right",
    "zoom out",
    "tilt down",
    "truck right",
]
TRANSITIONS = ["cut", "crossfade", "fade", "wipe left"]


def film_text(seconds: float, shots: int) -> str:
    lines = ["Ink-wash style."]
    for i in range(shots):
        move, tr = MOVES[i % len(MOVES)], TRANSITIONS[i % len(TRANSITIONS)]
        lines.append(
            f"Shot {i + 1} ({seconds / shots:g}s, wide, {move}, {tr}): Scene {i + 1} on the frozen river."
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--shots", type=int, default=5)
    ap.add_argument("--resolution", default="720p")
    ap.add_argument("--fps", type=int, default=24)
    ap.add_argument("--preset", default="veryfast", help="x264 preset (the CLI's default for the animatic)")
    args = ap.parse_args()
    keyframe = Path(__file__).resolve().parents[1] / "examples/new-year/river-dusk.png"
    film = parse_prompt(
        film_text(args.seconds, args.shots), fps=args.fps, resolution=args.resolution, style_image=keyframe
    )
    with tempfile.TemporaryDirectory() as tmp:
        phases: dict[str, float] = {}
        state = {"phase": "prepare", "since": time.perf_counter()}

        def on_progress(e) -> None:
            # Time since the last event belongs to the phase that was running until now.
            now = time.perf_counter()
            phases[state["phase"]] = phases.get(state["phase"], 0.0) + now - state["since"]
            state["phase"] = (
                # Shots are encoded as they are shot (render streams), so only the last shot's edit and
                # encode fall in "edit+encode"; the others' are inside "shoot+encode".
                "prepare" if e.shot == 0 else ("edit+encode" if e.shot > e.total_shots else "shoot+encode")
            )
            state["since"] = now

        backend = AnimaticGenerator(workers=min(4, os.cpu_count() or 1))  # as the CLI builds it
        result = render(film, backend, Path(tmp) / "bench.mp4", on_progress, encoder_preset=args.preset)
        w, h = film.size
        frames = read_frames(result.path)  # (F, H, W, 3): the film's own pictures, so x264 does the same work
        t0 = time.perf_counter()
        write_mp4(Path(tmp) / "encode.mp4", iter(frames), fps=film.fps, width=w, height=h, preset=args.preset)
        encode_only = time.perf_counter() - t0
    n, real = result.num_frames, result.duration
    print(f"machine: {platform.machine()} {platform.processor() or ''} | python {platform.python_version()}")
    print(
        f"film: {args.seconds:g}s, {args.shots} shots, {w}x{h} @ {args.fps} fps = {n} frames, x264 {args.preset}\n"
    )
    print(f"| {'what':<28} | {'seconds':>8} | {'frames/s':>9} | {'x real time':>11} |")
    print(f"|{'-' * 30}|{'-' * 10}|{'-' * 11}|{'-' * 13}|")
    for name, secs in (
        [("render (whole film)", result.seconds)]
        + [(f"  {k}", v) for k, v in phases.items()]
        + [("encoder alone (reference)", encode_only)]
    ):
        print(f"| {name:<28} | {secs:8.2f} | {n / secs:9.1f} | {real / secs:11.2f} |")


if __name__ == "__main__":
    main()
