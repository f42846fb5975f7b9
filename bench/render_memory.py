"""Peak memory of a whole render: does it grow with the film's length?

    .venv/bin/python bench/render_memory.py [--seconds 60 600] [--resolution 1080p] [--shot-seconds 5]

Each film (the animatic, the demo's painted keyframe, shots of --shot-seconds with every transition kind)
is rendered in a fresh subprocess; its peak RSS is the child's VmHWM (/proc/self/status). The reference in the
same table is what one shot's clip and the film's sound track hold: the floor a render that keeps one clip
and the whole-film audio in memory can reach.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MOVES = ["slow pan left", "dolly in", "handheld", "crane up", "orbit right", "zoom out", "static"]
TRANSITIONS = ["cut", "crossfade", "fade", "wipe left", "wipe right"]


def film_text(seconds: float, shot_seconds: float) -> str:
    shots = max(1, round(seconds / shot_seconds))
    lines = ["Ink-wash style."]
    for i in range(shots):
        move, tr = MOVES[i % len(MOVES)], TRANSITIONS[i % len(TRANSITIONS)]
        lines.append(f"Shot {i + 1} ({seconds / shots:g}s, wide, {move}, {tr}): Scene {i + 1} on the river.")
    return "\n".join(lines)


def child(args: argparse.Namespace) -> None:
    """Render one film here and print what it was as JSON (the parent measures the memory)."""
    from yingxi.backends.animatic import AnimaticGenerator
    from yingxi.film import parse_prompt
    from yingxi.render import render

    keyframe = Path(__file__).resolve().parents[1] / "examples/new-year/river-dusk.png"
    text = film_text(args.child, args.shot_seconds)
    film = parse_prompt(text, fps=args.fps, resolution=args.resolution, style_image=keyframe)
    with tempfile.TemporaryDirectory() as tmp:
        result = render(film, AnimaticGenerator(workers=2), Path(tmp) / "m.mp4", encoder_preset=args.preset)
    w, h = film.size
    hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))  # Linux; KiB
    info = {"frames": result.num_frames, "width": w, "height": h, "seconds": result.seconds}
    print(json.dumps({**info, "vm_hwm_kib": int(hwm.split()[1])}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, nargs="+", default=[60.0])
    ap.add_argument("--resolution", default="1080p")
    ap.add_argument("--shot-seconds", type=float, default=5.0)
    ap.add_argument("--fps", type=int, default=24)
    ap.add_argument("--preset", default="veryfast")
    ap.add_argument("--child", type=float, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        return child(args)
    print(f"machine: {platform.machine()} {platform.processor() or ''} | python {platform.python_version()}")
    print("| film | frames | render s | peak RSS MiB | one clip MiB (ref) | sound track MiB (ref) |")
    print("|---|---|---|---|---|---|")
    for seconds in args.seconds:
        cmd = [sys.executable, __file__, "--child", str(seconds), "--resolution", args.resolution]
        cmd += ["--shot-seconds", str(args.shot_seconds), "--fps", str(args.fps), "--preset", args.preset]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        wall = time.perf_counter() - t0
        info = json.loads(out.strip().splitlines()[-1])
        # The child's own high-water mark (VmHWM starts afresh at exec); getrusage's children figure agrees
        # here (this parent is small) but is the largest child so far, and carries a big parent's over exec.
        peak = info.get("vm_hwm_kib") or resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        clip = info["width"] * info["height"] * 3 * args.shot_seconds * args.fps / 2**20
        sound = seconds * 48000 * 2 * 4 / 2**20
        print(
            f"| {seconds:g} s {info['width']}x{info['height']} | {info['frames']} | {wall:.1f} | "
            f"{peak / 1024:.0f} | {clip:.0f} | {sound:.0f} |"
        )


if __name__ == "__main__":
    main()
