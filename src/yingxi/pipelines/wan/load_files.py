"""A Wan model made of single files, as ComfyUI and Wan2GP users keep them: one transformer file (or an
A14B high/low-noise pair), and the text encoder, VAE and CLIP image encoder each in a file of its own.

`plan_files` reads headers only (variant, experts, sizes), so capabilities and memory are known before any
weight loads; `load_file_components` then builds the parts. Parts not given are looked up by their ComfyUI
names under `--comfy-root` / $YINGXI_COMFY_ROOT.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from yingxi.errors import InputError, ModelNotFoundError
from yingxi.models import comfy
from yingxi.models.wan.config import WanVariant, get_variant
from yingxi.pipelines.wan.inspect import FileReport, inspect_file, with_expert

__all__ = ["PART_NAMES", "SingleFiles", "is_single_file", "load_file_components", "plan_files"]

# The keyword each part takes (Python API, server settings) -> the CLI flag that sets it.
PART_NAMES = {
    "model_2": "--model-2",
    "text_encoder": "--text-encoder",
    "vae": "--vae",
    "image_encoder": "--image-encoder",
    "tokenizer": "--tokenizer",
    "variant": "--model-variant",
    "comfy_root": "--comfy-root",
}
# ComfyUI's published file names, tried in order when a part is not given and a ComfyUI root is.
DEFAULT_NAMES = {
    "vae": {"2.1": ("wan_2.1_vae",), "2.2": ("wan2.2_vae",)},
    "text_encoder": ("umt5_xxl_fp16", "umt5_xxl_fp8_e4m3fn_scaled", "models_t5_umt5-xxl-enc-bf16"),
    "image_encoder": ("clip_vision_h",),
}


@dataclass(frozen=True)
class SingleFiles:
    """The files of one model and what their headers say."""

    variant: WanVariant
    reports: tuple[FileReport, ...]  # the transformer, then the low-noise expert of an A14B pair
    text_encoder: Path | None
    vae: Path
    image_encoder: Path | None
    tokenizer: Path | None


def is_single_file(name_or_path: str | Path, comfy_root: str | Path | None = None) -> bool:
    """True for a transformer file on disk, or a name that is not a variant and a ComfyUI root may hold."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return True
    if path.exists() or comfy.comfy_root(comfy_root) is None:
        return False
    try:
        get_variant(str(name_or_path))
        return False  # a registered variant name wins
    except InputError:
        return True  # a ComfyUI file name (repo ids of variants are recognised by get_variant)


def _default(part: str, names: tuple[str, ...], root: str | Path | None) -> Path | None:
    if comfy.comfy_root(root) is None:
        return None
    for name in names:
        try:
            return comfy.find_file(name, part, root)
        except InputError:
            continue
    return None


def _experts(first: FileReport, second: FileReport | None) -> tuple[FileReport, ...]:
    variant = first.detection.variant
    if not variant.two_experts:
        if second is not None:
            raise InputError(
                f"{variant.name} has one transformer; --model-2 is for A14B pairs", field="model_2"
            )
        return (first,)
    if second is None:
        raise InputError(
            f"{Path(first.file).name} is one expert of {first.detection.base}, which samples with two; give "
            "both: --model HIGH_NOISE_FILE --model-2 LOW_NOISE_FILE (Python: model_2=...)",
            field="model_2",
        )
    if second.detection.base != first.detection.base or second.detection.config != first.detection.config:
        raise InputError(
            f"--model is {first.detection.base} but --model-2 ({Path(second.file).name}) is "
            f"{second.detection.base} with other shapes; give two experts of one model",
            field="model_2",
        )
    if first.detection.expert == "low" or second.detection.expert == "high":
        raise InputError(
            f"by their names, {Path(first.file).name} is the {first.detection.expert or 'high'}-noise and "
            f"{Path(second.file).name} the {second.detection.expert or 'low'}-noise expert; give the "
            "high-noise file as --model and the low-noise one as --model-2",
            field="model_2",
        )
    return with_expert(first, "high"), with_expert(second, "low")


def plan_files(
    model: str | Path,
    *,
    model_2: str | Path | None = None,
    text_encoder: str | Path | None = None,
    vae: str | Path | None = None,
    image_encoder: str | Path | None = None,
    tokenizer: str | Path | None = None,
    variant: str | None = None,
    comfy_root: str | Path | None = None,
) -> SingleFiles:
    """Find every file (paths, or ComfyUI names under `comfy_root`) and read their headers; no weights."""
    first = inspect_file(
        comfy.resolve_file(model, "model", comfy_root), variant=variant, paired=model_2 is not None
    )
    second = None
    if model_2 is not None:
        path_2 = comfy.resolve_file(model_2, "model", comfy_root)
        second = inspect_file(path_2, variant=variant or first.detection.base, paired=True)
    reports = _experts(first, second)
    found = reports[0].detection.variant

    def part(name: str, given, defaults: tuple[str, ...]) -> Path | None:
        if given is not None:
            return comfy.resolve_file(given, name, comfy_root)
        return _default(name, defaults, comfy_root)

    vae_file = part("vae", vae, DEFAULT_NAMES["vae"][found.vae])
    if vae_file is None:
        raise ModelNotFoundError(
            f"{Path(reports[0].file).name} is a transformer only; give its VAE with --vae FILE (ComfyUI: "
            f"{DEFAULT_NAMES['vae'][found.vae][0]}.safetensors) or --comfy-root DIR"
        )
    clip_file = None
    if found.needs_image_encoder:
        clip_file = part("image_encoder", image_encoder, DEFAULT_NAMES["image_encoder"])
        if clip_file is None:
            raise ModelNotFoundError(
                f"{found.name} conditions on CLIP image tokens; give --image-encoder FILE (ComfyUI: "
                "clip_vision_h.safetensors) or --comfy-root DIR"
            )
    elif image_encoder is not None:
        raise InputError(f"{found.name} takes no CLIP image encoder (--image-encoder)", field="image_encoder")
    text_file = part("text_encoder", text_encoder, DEFAULT_NAMES["text_encoder"])
    tok = Path(tokenizer).expanduser() if tokenizer is not None else None
    return SingleFiles(found, reports, text_file, vae_file, clip_file, tok)


def load_file_components(
    files: SingleFiles,
    *,
    dtype: torch.dtype,
    device: str | torch.device,
    vae_dtype: torch.dtype | str,
    weights: str | None = None,
) -> Mapping[str, object]:
    """The built parts, as keyword arguments of `WanComponents` (the text encoder may be None: a caller
    then passes prompt embeddings). `weights`: the transformers' storage, as `load_transformer`'s."""
    from yingxi.models.wan.image import WanImageEncoder
    from yingxi.models.wan.loading import load_transformer
    from yingxi.models.wan.text import WanTextEncoder
    from yingxi.models.wan.vae_loading import load_vae

    dits = [
        load_transformer(r.file, dtype=dtype, device=device, config=r.detection.config, weights=weights)
        for r in files.reports
    ]
    text = None
    if files.text_encoder is not None:
        text = WanTextEncoder.from_file(
            files.text_encoder, tokenizer=files.tokenizer, dtype=dtype, device=device
        )
    image = None
    if files.image_encoder is not None:
        image = WanImageEncoder.from_file(files.image_encoder, dtype=torch.float32, device=device)
    return dict(
        variant=files.variant,
        transformer=dits[0],
        transformer_2=dits[1] if len(dits) > 1 else None,
        vae=load_vae(files.vae, kind=files.variant.vae, dtype=vae_dtype, device=device),
        text_encoder=text,
        image_encoder=image,
    )
