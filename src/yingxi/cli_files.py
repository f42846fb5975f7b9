"""The CLI's single-file flags (`--model FILE --model-2 --text-encoder --vae --image-encoder --tokenizer
--model-variant --comfy-root`) and `yingxi models inspect FILE...`, kept apart from `cli.py`."""

from __future__ import annotations

import argparse
from pathlib import Path

from yingxi.errors import InputError

__all__ = ["add_file_args", "add_inspect_parser", "cmd_inspect", "file_parts"]

PARTS = ("model_2", "text_encoder", "vae", "image_encoder", "tokenizer", "model_variant", "comfy_root")


def add_file_args(p: argparse.ArgumentParser) -> None:
    """The parts of a model given as single files (ComfyUI's or Wan's own)."""
    g = p.add_argument_group("single files (a --model FILE transformer, as ComfyUI and Wan2GP keep them)")
    g.add_argument(
        "--model-2", metavar="LOW_FILE", help="A14B: the low-noise expert (--model is the high-noise one)"
    )
    g.add_argument("--text-encoder", metavar="FILE", help="umt5_xxl_fp16 / umt5_xxl_fp8_e4m3fn_scaled / models_t5_umt5-xxl-enc-bf16.pth")  # fmt: skip
    g.add_argument("--vae", metavar="FILE", help="wan_2.1_vae / wan2.2_vae (.safetensors or .pth)")
    g.add_argument("--image-encoder", metavar="FILE", help="clip_vision_h (Wan 2.1 I2V/FLF2V)")
    g.add_argument("--tokenizer", metavar="DIR", help="UMT5 tokenizer folder (default: beside the text encoder, embedded, or the HF cache)")  # fmt: skip
    g.add_argument("--model-variant", metavar="NAME", help="the variant where shapes cannot tell (e.g. wan2.1-i2v-14b-480p vs -720p)")  # fmt: skip
    g.add_argument("--comfy-root", metavar="DIR", help="find files by name in DIR/models/{diffusion_models,unet,text_encoders,vae,clip_vision,loras} (env YINGXI_COMFY_ROOT)")  # fmt: skip


def file_parts(args: argparse.Namespace) -> dict[str, str]:
    """The given single-file parts as `load_pipeline` keywords (`variant` for --model-variant)."""
    out = {k: getattr(args, k, None) for k in PARTS}
    out["variant"] = out.pop("model_variant")
    return {k: str(v) for k, v in out.items() if v is not None}


def add_inspect_parser(msub) -> None:
    ins = msub.add_parser("inspect", help="what transformer files are and what they need, before loading")
    ins.add_argument("files", nargs="+", help="transformer files (or ComfyUI names with --comfy-root); two = an A14B pair")  # fmt: skip
    ins.add_argument("--dtype", default="bf16", choices=("bf16", "fp16", "fp32"))
    ins.add_argument("--weights", choices=("bf16", "fp8"), help="storage at load (default: as stored)")
    ins.add_argument("--offload", choices=("none", "model", "blocks"), default="none")
    ins.add_argument("--device", help="a CUDA device to compare with (its total memory)")
    ins.add_argument("--vram", type=float, metavar="GiB", help="plan for a card with this much memory")
    ins.add_argument("--model-variant", metavar="NAME", help="the variant where shapes cannot tell")
    ins.add_argument("--comfy-root", metavar="DIR")


def _vram(args: argparse.Namespace) -> int | None:
    if args.vram is not None:
        if args.vram <= 0:
            raise InputError("--vram must be > 0 GiB", field="vram")
        return int(args.vram * 2**30)
    if args.device:
        import torch

        device = torch.device(args.device)
        if device.type == "cuda":
            if not torch.cuda.is_available():
                raise InputError(
                    f"--device {args.device}: no CUDA device here; plan with --vram GiB", field="device"
                )
            return int(torch.cuda.get_device_properties(device).total_memory)
    return None


def cmd_inspect(args: argparse.Namespace) -> int:
    from yingxi.models import comfy
    from yingxi.pipelines.wan.inspect import gib, inspect_file, plan_memory, refuse_if_too_big
    from yingxi.pipelines.wan.load_files import _experts

    if len(args.files) > 2:
        raise InputError(
            "give one transformer file, or two (an A14B high- and low-noise pair)", field="files"
        )
    paths = [comfy.resolve_file(f, "model", args.comfy_root) for f in args.files]
    paired = len(paths) == 2
    reports = [inspect_file(p, variant=args.model_variant, paired=paired) for p in paths]
    if paired:  # checks that they are two experts of one model, high-noise first
        reports = list(_experts(reports[0], reports[1]))
    for r in reports:
        d = r.detection
        print(
            f"{Path(r.file).name}: {r.label} (built like {d.base}; does {', '.join(d.variant.conditionings)})"
        )
        print(
            f"  storage {r.storage}, {r.params:,} parameters ({r.params / 1e9:.2f} B), {gib(r.stored_bytes)} on disk"
        )
    from yingxi.cli_runtime import runtime_from_args

    runtime = runtime_from_args(args)  # the same Runtime `generate` would load these files with
    plan = plan_memory(
        reports, dtype=runtime.dtype, weights=runtime.weights, offload=runtime.offload, vram=_vram(args)
    )
    print("  " + plan.summary())
    refuse_if_too_big(plan, reports[0].detection.variant.name)
    return 0
