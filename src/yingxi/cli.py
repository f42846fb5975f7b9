"""`yingxi`: generate, plan, models, serve, keys. Builds the same Film objects as the server."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from yingxi.backends.registry import backends_help, get_spec
from yingxi.cli_checks import (
    EXIT_TERMINATED,
    Terminated,
    check_ref_name,
    refuse_contradicting_size,
    terminate_like_interrupt,
    version,
)
from yingxi.cli_diffusers import add_diffusers_args, pipeline_args
from yingxi.cli_files import add_file_args, add_inspect_parser, cmd_inspect, file_parts
from yingxi.cli_media import add_media_args, with_media
from yingxi.cli_parallel import add_parallel_args, run_generate
from yingxi.cli_runtime import add_runtime_args, runtime_from_args
from yingxi.cli_sampling import X264_PRESETS, add_sampling_args, sampling_preset, wan_options
from yingxi.cli_server import add_server_parsers, cmd_keys, cmd_serve, cmd_worker
from yingxi.cli_speed import add_speed_args, speed_options
from yingxi.errors import InputError, ModelNotFoundError, YingxiError
from yingxi.film.model import RATIOS, RESOLUTIONS, Film
from yingxi.film.references import with_character_image

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    """argparse that fails with one line and exit code 2, like every other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        if "arguments are required: command" in message:  # plain `yingxi`: say what it can do
            message = (
                "give a command: generate, plan, models, serve, worker or keys (yingxi --help says more)"
            )
        raise InputError(message)


def _film_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompt", nargs="?", help="a prompt, or a multi-shot script in the prompt grammar")
    p.add_argument("--script", type=Path, help="a YAML or JSON film script")
    p.add_argument("--image", type=Path, help="first frame of the first shot")
    p.add_argument("--ref", action="append", default=[], metavar="NAME=IMAGE",
                   help="a character's reference image (repeatable)")  # fmt: skip
    add_media_args(p)
    p.add_argument("--resolution", help=f"{', '.join(RESOLUTIONS)} (default 720p, or the script's)")
    p.add_argument("--ratio", help=f"{', '.join(RATIOS)} (default 16:9, or the script's)")
    p.add_argument("--size", help="exact WIDTHxHEIGHT (e.g. 832x480), instead of --resolution and --ratio")
    p.add_argument(
        "--fps", help="frames per second: 1 to 60, or 23.976, 29.97, 59.94 (default 24, or the script's)"
    )
    p.add_argument("--seed", type=int, help="film seed, 0 to 4294967295; each shot's seed derives from it")
    p.add_argument("--duration", type=float, help="seconds, for a plain one-shot prompt (default 5)")
    p.add_argument("--fit", help="how first frames and keyframes meet the frame: cover (crop, the default), "
                   "contain (bars) or blur (blurred fill); overrides the script's film-wide fit")  # fmt: skip
    p.add_argument("--backend", default="animatic", help=f"{backends_help()} (default animatic)")
    p.add_argument(
        "--model", help="Wan variant name (see `yingxi models list`), a model folder or a transformer file"
    )
    p.add_argument("--device", default=None, help="torch device for --backend wan (default: cuda if present)")
    p.add_argument("--dtype", default=None, choices=("bf16", "fp16", "fp32"))
    p.add_argument("--steps", type=int, help="sampling steps for neural backends")
    p.add_argument("--guidance", type=float, help="guidance scale for neural backends")
    p.add_argument("--offload", choices=("none", "model", "blocks"), default="none",
                   help="model: each component on the GPU only while it runs (5B on 24 GB); "
                        "blocks: also stream transformer blocks (14B on 24 GB)")  # fmt: skip
    p.add_argument("--weights", choices=("bf16", "fp8"), default=None,
                   help="transformer weights on the device: fp8 quantizes a bf16/fp16/fp32 checkpoint at load "
                        "(a 14B expert in ~14 GB instead of 28); bf16 widens an fp8 file (default: as stored)")  # fmt: skip
    add_file_args(p)
    add_sampling_args(p)  # --lora, --lora-2, --preset, --schedule
    add_runtime_args(p)  # --batched-guidance (the rest of the Runtime's flags are above)
    add_diffusers_args(p)  # --pipeline-arg
    add_speed_args(p)  # --attention, --cross-attention, --compile


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="yingxi", description="影戏 yingxi: multi-shot films from prompts and scripts")
    parser.add_argument("--version", action="version", version=f"yingxi {version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    gen = sub.add_parser("generate", help="render a film to MP4")
    _film_args(gen)
    gen.add_argument("-o", "--output", type=Path, default=Path("film.mp4"),
                     help="the MP4 to write, with an .srt beside it when there is dialogue (default film.mp4)")  # fmt: skip
    gen.add_argument("--burn-subtitles", action="store_true", help="draw dialogue subtitles onto the picture")
    gen.add_argument("--encoder-preset", choices=X264_PRESETS,
                     help="x264 speed/size trade-off (default: veryfast for the animatic, medium for wan)")  # fmt: skip
    gen.add_argument("--strict-dialogue", action="store_true",
                     help="fail instead of lengthening a shot whose dialogue does not fit")  # fmt: skip
    gen.add_argument("--export", metavar="FORMAT",
                     help="also write the edit for an editor beside the film: otio, edl or fcpxml "
                     "(film.otio and one clip file per shot in film.shots/)")  # fmt: skip
    add_parallel_args(gen)  # --gpus, --parallel

    pl = sub.add_parser("plan", help="print the shot plan without rendering")
    _film_args(pl)
    pl.add_argument("--json", action="store_true", help="print the plan as JSON")

    models = sub.add_parser("models", help="list or download Wan model variants")
    msub = models.add_subparsers(dest="models_command", required=True, parser_class=_Parser)
    msub.add_parser("list", help="variants, sizes, and which are present locally")
    pull = msub.add_parser("pull", help="download a variant from the Hugging Face Hub")
    pull.add_argument("name")
    pull.add_argument("--dest", type=Path)
    add_inspect_parser(msub)

    add_server_parsers(sub, _Parser)
    return parser


def film_from_args(args: argparse.Namespace) -> Film:
    """The Film the arguments describe; CLI flags override the script's settings."""
    from yingxi.film import load_script, parse_prompt
    from yingxi.film.vocabulary import parse_fps, parse_ratio, parse_resolution, parse_seed, parse_size

    if args.script and args.prompt:
        raise InputError("give a prompt or --script, not both")
    if not args.script and not args.prompt:
        raise InputError('give a prompt ("Shot 1 (4s, wide): ...") or --script FILE')
    if args.script and args.duration is not None:
        raise InputError(
            "--duration is for a prompt; a script gives each shot its duration", field="--duration"
        )
    refuse_contradicting_size(args)
    overrides = {}  # the same words, spellings and did-you-mean hints as scripts ("720", "16x9")
    if args.resolution is not None:
        overrides["resolution"] = parse_resolution(args.resolution, field="--resolution")
    if args.ratio is not None:
        overrides["ratio"] = parse_ratio(args.ratio, field="--ratio")
    if args.size:
        overrides["custom_size"] = parse_size(args.size, field="--size")
    if args.fps is not None:
        overrides["fps"] = parse_fps(args.fps, field="--fps")
    if args.seed is not None:
        overrides["seed"] = parse_seed(args.seed, field="--seed")  # the range scripts and the API accept
    if getattr(args, "fit", None) is not None:
        from yingxi.film.composition import parse_fit

        overrides["fit"] = parse_fit(args.fit, field="--fit")
    if sampling_preset(args)[0] is not None:
        overrides["preset"] = sampling_preset(args)[0]
    if args.script:
        film = replace(load_script(args.script), **overrides)
    else:
        film = parse_prompt(args.prompt, default_duration=args.duration, **overrides)
    if args.image:
        _must_exist(args.image, "--image")
        film = film.with_shot(0, replace(film.shots[0], first_frame=args.image))
    for ref in args.ref:
        name, sep, image = (part.strip() for part in ref.partition("="))  # "OLD JIA = jia.png" too
        if not sep or not name or not image:
            raise InputError(f'write --ref as NAME=IMAGE, got "{ref}"', field="--ref")
        name = check_ref_name(film, name)  # a misspelt name would add an image that nothing uses
        path = _must_exist(Path(image), f"--ref {name}")
        film = with_character_image(film, name, path)
    return with_media(film, args)


def _must_exist(path: Path, field: str) -> Path:
    if not path.is_file():
        raise InputError(f"file not found: {path}", field=field)
    return path


def make_backend(args: argparse.Namespace):
    """The backend --backend names (backends/registry.py), built from the flags it takes; a flag it does
    not take is refused (a person who gives --steps expects neural generation, not an animatic). How it
    runs is one Runtime (cli_runtime), built here once."""
    from yingxi.backends.registry import build_backend, check_options

    given = {"model": args.model, "device": args.device, "dtype": args.dtype, "steps": args.steps,
             "guidance": args.guidance, "offload": None if args.offload == "none" else args.offload,
             "weights": args.weights, "files": file_parts(args), "loras": args.lora, "loras_2": args.lora_2,
             "preset": sampling_preset(args)[0], "schedule": args.schedule, "cache": args.cache,
             "batched_guidance": None if args.batched_guidance == "auto" else args.batched_guidance,
             "call": pipeline_args(args.pipeline_arg), "attention": args.attention,
             "cross_attention": args.cross_attention, "compile": args.compile}  # fmt: skip
    spec = get_spec(args.backend, field="--backend")
    check_options(spec, given, flags=True)  # before LoRA paths are looked at
    if "runtime" not in spec.options:
        return build_backend(args.backend, given, flags=True)
    runtime = runtime_from_args(args)  # device, dtype, weights, offload, cache, kernels, compile, parallel
    speed_options(args)  # a misspelt kernel or compile mode names the closest
    runtime_keys = ("device", "dtype", "offload", "weights", "cache", "batched_guidance", "attention",
                    "cross_attention", "compile")  # fmt: skip
    for key in runtime_keys:
        given.pop(key)
    options = wan_options(args) if args.lora or args.lora_2 else {}  # LoRA files found
    given.update({k: options[k] for k in ("loras", "loras_2") if k in options}, runtime=runtime)
    return build_backend(args.backend, given, flags=True)


def cmd_generate(args: argparse.Namespace, backend=None) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from yingxi.media.files import check_writable
    from yingxi.render import PREPARE_SHARE, SHOOT_SHARE, render

    if args.output.suffix.lower() != ".mp4":
        raise InputError(f"the output must be an .mp4 file, got {args.output}", field="--output")
    if args.output.is_dir():  # found now, not after every shot is shot
        raise InputError(f"{args.output} is a folder; name the .mp4 file to write", field="--output")
    check_writable(args.output, field="--output")  # a folder that takes no file: now, not after the render
    if args.export is not None:  # a misspelt format: one line naming the closest, before any work
        from yingxi.editor.export import check_export

        check_export(args.export)
    film = film_from_args(args)
    backend = make_backend(args) if backend is None else backend  # a parallel run's rank 0 brings its own
    console = Console(stderr=True)
    started = time.perf_counter()
    # The bar starts with the first shot: bad input found while preparing stays one line on stderr.
    bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                   TimeElapsedColumn(), console=console, transient=False)  # fmt: skip
    tasks: dict[int, int] = {}

    def on_progress(event) -> None:
        n = event.shot
        if n == 0:
            return
        if not tasks:
            bar.start()
        if n not in tasks:
            label = "editing" if n > event.total_shots else f"shot {n}/{event.total_shots}"
            tasks[n] = bar.add_task(label, total=1.0)
        if n <= event.total_shots:
            share = (event.fraction - PREPARE_SHARE) / SHOOT_SHARE * event.total_shots - (n - 1)
        else:
            share = (event.fraction - PREPARE_SHARE - SHOOT_SHARE) / (1 - PREPARE_SHARE - SHOOT_SHARE)
        share = 1.0 if share > 0.999 else min(max(share, 0.0), 1.0)
        bar.update(tasks[n], completed=share)
        for earlier in (t for m, t in tasks.items() if m < n):  # a phase that moved on is done
            bar.update(earlier, completed=1.0)

    _, encoder_preset, preset_note = sampling_preset(args)
    preset = encoder_preset or get_spec(args.backend, field="--backend").encoder_preset
    if preset_note:
        console.print(f"[yellow]note:[/] {escape(preset_note)}")
    try:
        result = render(film, backend, args.output, on_progress, burn_subtitles=args.burn_subtitles,
                        grow_for_dialogue=not args.strict_dialogue, encoder_preset=preset,
                        export=args.export)  # fmt: skip
    finally:
        if tasks:
            bar.stop()
    for note in result.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)  # "0.5s", not "0." in colour
    print(f"shots: {len(result.plans)}")
    print(f"length: {result.duration:.2f}s ({result.num_frames} frames at {result.fps:g} fps)")
    if result.total_evaluations is not None:
        per = ", ".join(str(n) for n in result.evaluations)
        print(f"transformer evaluations: {result.total_evaluations} (per shot: {per})")
        if any(n is not None for n in result.skipped):
            skipped = [n or 0 for n in result.skipped]
            print(f"skipped by the step cache: {sum(skipped)} (per shot: {', '.join(map(str, skipped))})")
    if getattr(backend, "runtime", None) is not None:  # how the neural backend ran: the non-default fields
        print(f"runtime: {backend.runtime.summary()}")
    for line in getattr(backend, "runtime_notes", list)():  # attention kernels, compile time (wan)
        print(line)
    print(f"output: {result.path}")
    if result.srt_path:
        print(f"subtitles: {result.srt_path}")
    if result.export_path:
        print(f"edit: {result.export_path} ({len(result.export_files)} media files)")
    print(f"time: {time.perf_counter() - started:.1f}s")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from yingxi.render import prepare

    film = film_from_args(args)
    backend = make_backend(args)
    ready = prepare(film, backend)
    film, plans, notes = ready.film, ready.plans, ready.notes
    from yingxi.editor.dialogue import choose_voices  # each speaker's voice and why (issue 8, item 6)

    voices = {c.name: {"voice": c.voice, "why": c.why} for c in choose_voices(film).values()}
    rows = [
        {
            "shot": p.index,
            "seconds": round(p.duration, 3),
            "frames": p.num_frames,
            "fps": p.fps,
            "size": f"{p.width}x{p.height}",
            "framing": p.shot.camera.framing,
            "camera": p.shot.camera.move.words,
            "transition": p.transition.words,
            "keyframe": p.keyframe_words,  # composition (two-shot, speaker), fit and title-card palette
            "conditioning": p.conditioning.words,  # references, extension, reference video, generated sound
            "seed": p.seed,
            "dialogue": [f"{d.character}: {d.line}" for d in p.shot.dialogue],
            "voices": {t.character: t.voice for t in ready.takes[p.index - 1]},
            "prompt": p.prompt,
        }
        for p in plans
    ]
    count = getattr(backend, "evaluations", None)  # transformer passes per shot (neural backends)
    if count is not None:
        for i, row in enumerate(rows):
            request = ready.request(i)
            row["evaluations"] = count(request)
            skips = getattr(backend, "planned_skips", lambda r: None)(request)
            if skips is not None:  # a step cache: planned skips (MagCache) or "at run time"
                row["skipped"] = skips
    if args.json:
        print(
            json.dumps(
                {
                    "duration": sum(p.duration for p in plans),
                    "shots": rows,
                    "voices": voices,
                    "fade_out": film.fade_out,
                    "notes": notes,
                },
                indent=2,
                ensure_ascii=False,
            )
        )
        return 0
    from rich.console import Console
    from rich.markup import escape
    from rich.text import Text

    from yingxi.cli_plan import print_plan

    shots = f"{len(plans)} shot{'s' if len(plans) != 1 else ''}"
    size = f"{plans[0].width}x{plans[0].height} at {plans[0].fps:g} fps"
    title = escape(film.title or "film")  # people's words are text, never rich markup: "[EXIT]"
    columns = ("shot", "seconds", "frames", "framing", "camera", "transition", "keyframe", "seed", "dialogue",
               "prompt") + (("evaluations",) if count is not None else ())  # fmt: skip
    # A terminal's own width; piped, $COLUMNS when set (COLUMNS=80 yingxi plan ... | less), else 200.
    console = Console(width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 200)
    columns += ("skipped",) if any("skipped" in r for r in rows) else ()
    columns += ("conditioning",) if any(r["conditioning"] for r in rows) else ()
    print_plan(console, f"{title}: {shots}, {sum(p.duration for p in plans):.2f}s, {size}", rows, columns)
    for name, v in voices.items():
        console.print(Text(f"voice: {name}: {v['voice']} ({v['why']})"))
    if film.fade_out:
        console.print(Text(f"ending: the film fades out to black over its last {film.fade_out:g}s"))
    for note in notes:
        console.print(Text(f"note: {note}"))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from yingxi.models import hub

    if args.models_command == "inspect":
        return cmd_inspect(args)
    if args.models_command == "list":
        from rich.console import Console
        from rich.table import Table

        table = Table(title="Wan variants")
        for col in ("name", "does", "transformer (bf16)", "default size", "fps", "repo", "local"):
            table.add_column(col, overflow="fold")
        for variant, present, path in hub.list_models():
            experts = ", 2 experts" if variant.two_experts else ""
            size = "{}x{}".format(*variant.default_size)
            table.add_row(variant.name, ", ".join(variant.conditionings), f"{variant.dit_gib_bf16:.1f} GiB{experts}",
                          size, str(variant.fps), variant.repo_id, str(path) if present else "-")  # fmt: skip
        Console(width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 200).print(table)
        return 0
    path = hub.pull(args.name, args.dest)
    print(path)
    return 0


COMMANDS = {
    "generate": cmd_generate,
    "plan": cmd_plan,
    "models": cmd_models,
    "serve": cmd_serve,
    "keys": cmd_keys,
    "worker": cmd_worker,
}


def main(argv: list[str] | None = None) -> int:
    terminate_like_interrupt()
    try:
        args = build_parser().parse_args(argv)
        if args.command == "generate":  # alone, or across --gpus / torchrun ranks
            return run_generate(
                args, sys.argv[1:] if argv is None else list(argv), cmd_generate, make_backend
            )
        if args.command == "worker":
            return cmd_worker(args, sys.argv[1:] if argv is None else list(argv))
        return COMMANDS[args.command](args)
    except YingxiError as e:  # missing weights are bad input too: the person names the model
        print(f"yingxi: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT if isinstance(e, (InputError, ModelNotFoundError)) else 1
    except Terminated:
        print("yingxi: terminated; no output was written", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("yingxi: interrupted; no output was written", file=sys.stderr)
        return 130
    except Exception as e:  # a bug, not bad input: say so in one line; YINGXI_DEBUG=1 shows the traceback
        if os.environ.get("YINGXI_DEBUG"):
            raise
        print(f"yingxi: internal error: {type(e).__name__}: {e} (run with YINGXI_DEBUG=1 for details)",
              file=sys.stderr)  # fmt: skip
        return 1


if __name__ == "__main__":
    sys.exit(main())
