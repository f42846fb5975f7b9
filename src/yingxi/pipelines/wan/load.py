"""Build a `WanPipeline` from disk: a registered variant name (found by `yingxi.models.hub`) or a folder.

Loading is here, apart from the pipeline, so the pipeline only ever sees built components. The folder is
the diffusers layout the Wan-AI `*-Diffusers` repos use (model_index.json, transformer/[, transformer_2/],
vae/, text_encoder/, tokenizer/[, image_encoder/, image_processor/], scheduler/) or Wan's original one
(config.json + weights, Wan2.x_VAE.pth, models_t5_*.pth, google/umt5-xxl/; A14B: high_noise_model/,
low_noise_model/; Wan 2.1 I2V/FLF2V: models_clip_*.pth).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch

from yingxi.errors import InputError, ModelNotFoundError
from yingxi.models import hub
from yingxi.models.wan.config import CLIP_TOKENS, VARIANTS, WanDiTConfig, WanVariant, get_variant
from yingxi.pipelines.offload import OffloadMode, offload_mode
from yingxi.pipelines.runtime import Runtime, check_supported, runtime_with
from yingxi.pipelines.wan.inspect import FileReport, plan_memory, refuse_if_too_big
from yingxi.pipelines.wan.load_files import PART_NAMES
from yingxi.pipelines.wan.pipeline import WanComponents, WanPipeline
from yingxi.samplers.schedules import ScheduleKind

__all__ = ["check_fits", "find", "load_pipeline", "resolve", "variant_for_folder"]


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc}", file=str(path)) from exc


CLIP_DIM = 1280  # width of the CLIP ViT-H/14 tokens every Wan 2.1 I2V/FLF2V cross-attends to


def _diffusers_base(folder: Path, index: dict) -> tuple[str, WanDiTConfig, dict]:
    """(registered variant it is built like, its transformer config, the folder's own sampling settings)."""
    dit_json = _read_json(folder / "transformer" / "config.json") or _read_json(
        folder / "transformer_2" / "config.json"
    )
    if not dit_json:
        raise ModelNotFoundError(f"{folder}: no transformer/config.json")
    dit = WanDiTConfig.from_diffusers(dit_json)
    z_dim = _read_json(folder / "vae" / "config.json").get("z_dim", 16)
    two = index.get("boundary_ratio") is not None or (folder / "transformer_2").is_dir()
    if dit.is_vace:
        base = _vace_base(dit, two)
    elif index.get("expand_timesteps") or z_dim == 48:
        base = "wan2.2-ti2v-5b"
    elif two:
        base = "wan2.2-i2v-a14b" if dit.in_channels > 16 else "wan2.2-t2v-a14b"
    elif dit.pos_embed_seq_len:
        base = "wan2.1-flf2v-14b-720p"
    elif dit.in_channels > 16:
        base = "wan2.1-i2v-14b-720p" if "720" in str(folder) else "wan2.1-i2v-14b-480p"
    else:
        base = "wan2.1-t2v-1.3b" if dit.inner_dim <= 1536 else "wan2.1-t2v-14b"
    own: dict = {}
    shift = _read_json(folder / "scheduler" / "scheduler_config.json").get("flow_shift")
    if shift:
        own["shift"] = float(shift)
    if two and index.get("boundary_ratio") is not None:
        own["boundary_ratio"] = float(index["boundary_ratio"])
    if VARIANTS[base].needs_image_encoder and not (folder / "image_encoder").is_dir():
        own["needs_image_encoder"] = False
    return base, dit, own


def _vace_base(dit: WanDiTConfig, two: bool) -> str:
    """The VACE variant a config is built like: an expert pair is Wan 2.2 Fun, else 1.3B or 14B by width."""
    if two:
        return "wan2.2-vace-fun-a14b"
    return "wan2.1-vace-1.3b" if dit.inner_dim <= 1536 else "wan2.1-vace-14b"


def _original_base(folder: Path, raw: dict) -> tuple[str, WanDiTConfig, dict]:
    """As `_diffusers_base` for Wan's own layout: config.json (dim, num_heads, model_type, ...) beside the
    weights, Wan2.x_VAE.pth and models_t5_*.pth; Wan 2.2 A14B keeps its experts in high/low_noise_model/."""
    two = (folder / "high_noise_model").is_dir()
    model_type = raw.get("model_type", "t2v")
    clip = model_type in ("i2v", "flf2v") and not two  # Wan 2.1 I2V/FLF2V; Wan 2.2's I2V has no CLIP
    if clip and not any(folder.glob("models_clip_*.pth")):
        raise ModelNotFoundError(
            f"{folder}: Wan 2.1 {model_type} conditions on its CLIP image encoder, "
            "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth, which is not in this folder"
        )
    try:
        dit = WanDiTConfig.from_original(
            raw,
            image_dim=CLIP_DIM if clip else None,
            pos_embed_seq_len=2 * CLIP_TOKENS if model_type == "flf2v" else None,
        )
    except InputError as exc:
        raise ModelNotFoundError(f"{folder}: not a Wan model config.json ({exc.message})") from exc
    if dit.is_vace:
        base = _vace_base(dit, two)
    elif model_type == "ti2v" or dit.in_channels == 48:
        base = "wan2.2-ti2v-5b"
    elif two:
        base = "wan2.2-i2v-a14b" if dit.in_channels > 16 else "wan2.2-t2v-a14b"
    elif model_type == "flf2v":
        base = "wan2.1-flf2v-14b-720p"
    elif clip:
        base = "wan2.1-i2v-14b-720p" if "720" in str(folder) else "wan2.1-i2v-14b-480p"
    else:
        base = "wan2.1-t2v-1.3b" if dit.inner_dim <= 1536 else "wan2.1-t2v-14b"
    return base, dit, {}


def pipeline_class(variant: WanVariant) -> type[WanPipeline]:
    """WanVACEPipeline for a VACE model (video, mask, reference images), WanPipeline otherwise."""
    if "vace" in variant.tasks:
        from yingxi.pipelines.wan.vace import WanVACEPipeline

        return WanVACEPipeline
    return WanPipeline


def variant_for_folder(folder: str | Path) -> WanVariant:
    """The registered variant a model folder (diffusers or Wan's original layout) is built like, with the
    folder's own transformer config and, for unregistered diffusers folders, its shift and boundary."""
    folder = Path(folder)
    index = _read_json(folder / "model_index.json")
    original = _read_json(
        (folder / "high_noise_model" if (folder / "high_noise_model").is_dir() else folder) / "config.json"
    )
    if index:
        base, dit, own = _diffusers_base(folder, index)
    elif "dim" in original and "num_heads" in original:
        base, dit, own = _original_base(folder, original)
    else:
        raise ModelNotFoundError(
            f"{folder} is not a Wan model folder (needs model_index.json and transformer/config.json, or "
            "Wan's original config.json with dim and num_heads)"
        )
    variant = VARIANTS[base]
    if dit == variant.dit:
        return variant  # a published checkpoint: keep the authors' sampling defaults
    return dataclasses.replace(variant, name=folder.name, dit=dit, **own)


def find(name_or_path: str | Path, **files: Any) -> tuple[WanVariant, Path | None]:
    """(variant, folder or file, or None when its weights are not here) for a variant name, the Hugging Face
    repo id of one, a folder on disk, or a single transformer file (`files`: its other parts, see
    `load_files.PART_NAMES`). Reads no weights, so capabilities can be known before any download."""
    from yingxi.pipelines.wan.load_files import is_single_file, plan_files

    path = Path(name_or_path).expanduser()
    if is_single_file(name_or_path, files.get("comfy_root")):
        return plan_files(name_or_path, **files).variant, path
    if any(v is not None for v in files.values()):
        given = ", ".join(PART_NAMES[k] for k, v in files.items() if v is not None)
        raise InputError(f"{given}: only for a model given as single files (--model FILE)", field="model")
    if path.is_dir():
        return variant_for_folder(path), path
    text = str(name_or_path).strip()
    if not ("/" in text or "\\" in text or text.startswith(".")):
        return (variant := get_variant(text)), hub.local_path(variant)  # InputError names the closest
    try:
        variant = get_variant(text)  # a repo id, of the -Diffusers repo or the original-layout one
    except InputError:
        raise ModelNotFoundError(
            f"{text}: no such folder (and not a Wan variant name or repo: {', '.join(VARIANTS)})"
        ) from None
    return variant, hub.local_path(variant)


def resolve(name_or_path: str | Path, **files: Any) -> tuple[WanVariant, Path]:
    """As `find`, but the weights must be here: ModelNotFoundError says where to put them otherwise."""
    variant, folder = find(name_or_path, **files)
    if folder is None:
        raise ModelNotFoundError(
            f"the weights of {variant.name} are not on this machine; {hub.where_to_put(variant)}"
        )
    return variant, folder


def _device_memory(device: torch.device) -> int | None:
    """Total bytes of an accelerator's memory, or None where it is not known (CPU)."""
    if device.type != "cuda":
        return None
    return int(torch.cuda.get_device_properties(device).total_memory)


def check_fits(
    variant: WanVariant,
    dtype: torch.dtype,
    offload: bool | OffloadMode,
    total: int | None,
    weights: str | None = None,
    *,
    files: Sequence[FileReport] = (),
) -> None:
    """InputError, before any weights load, when the transformer weights alone cannot fit `total` bytes of
    device memory in this offload mode (a 14B model is 26 GiB in bf16: a 24 GB card needs "blocks").
    `files`: the headers of single transformer files, counted as stored (fp8, GGUF) or as `weights` says."""
    from yingxi.models.wan.loading import weight_bytes

    if files:
        plan = plan_memory(files, dtype=dtype, weights=weights, offload=offload, vram=total)
        refuse_if_too_big(plan, files[0].detection.variant.name)
        return
    mode = offload_mode(offload)
    if total is None or mode == "blocks":
        return
    one = weight_bytes(variant.dit, dtype, weights)  # weights="fp8": the block Linears at 1 byte each
    resident = one * (2 if variant.two_experts and mode == "none" else 1)  # "model": one expert at a time
    if resident <= total:
        return
    gib = lambda n: f"{n / 2**30:.1f} GiB"  # noqa: E731
    raise InputError(
        f"{variant.name}'s transformer weights take {gib(resident)} in "
        f"{'fp8' if weights == 'fp8' else str(dtype).removeprefix('torch.')} "
        f"with offload {mode!r}, more than the {gib(total)} this device has; load it with offload='blocks' "
        f"(CLI: --offload blocks), which keeps only one block on the device at a time",
        field="offload",
    )


def load_pipeline(
    name_or_path: str | Path,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    *,
    runtime: Runtime | None = None,
    schedule: ScheduleKind = "wan",
    loras: Sequence[tuple[str | Path, float]] = (),
    loras_2: Sequence[tuple[str | Path, float]] | None = None,
    offload: bool | OffloadMode | None = None,
    sampler: Literal["unipc", "euler"] | None = None,
    vae_dtype: torch.dtype | str | None = None,
    weights: str | None = None,
    cache: str | None = None,
    batched_guidance: bool | None = None,
    attention: str | None = None,
    cross_attention: str | None = None,
    compile: bool | str | None = None,
    encoders: bool = True,
    **files: Any,
) -> WanPipeline:
    """A ready WanPipeline.

    runtime: how to run it (`pipelines.runtime.Runtime`): device, dtype (of the transformers and text
    encoder; default bf16 on GPU, fp32 on CPU; the VAE and CLIP stay float32 as Wan runs them), weights
    (None as stored; "fp8" quantizes a bf16/fp16/fp32 checkpoint's block Linears at load, a 14B expert in
    ~14 GB; "bf16" widens an fp8 one), offload ("model": each part on the device only while it runs;
    "blocks": also stream the blocks, a 14B model on a 24 GB card; see `offload.py`), the step cache of
    every call ("fbcache" / "magcache" / "teacache" [":threshold"], `cache.py`), batched guidance, sampler,
    attention kernels and compile. The loose keywords (device=, dtype=, offload=, ...) replace its fields.
    schedule: "wan" (Wan's own sigma grid, the default) or "diffusers". loras: [(file, strength)] on the
    transformer (A14B: the high-noise expert); loras_2 on the low-noise expert (None: the same as loras).
    `name_or_path` may be one transformer file (or a ComfyUI name); `files` then name its other parts:
    model_2 (A14B low-noise expert), text_encoder, vae, image_encoder, tokenizer, variant, comfy_root.
    The loose keywords (device, dtype, offload, sampler, vae_dtype, weights, cache, batched_guidance,
    attention, cross_attention, compile) replace `runtime`'s fields; attention / cross_attention name the
    kernels (`yingxi.models.attention`; "auto": the best this card runs), compile "auto"/"cudagraphs"/a
    mode compiles the blocks (`models.compile`). encoders False loads no text or image encoder: a parallel job's rank other than 0, which gets the embeddings from rank 0.
    """
    runtime = runtime_with(runtime, device=device, dtype=dtype, offload=offload, sampler=sampler,
                           vae_dtype=vae_dtype, weights=weights, cache=cache, batched_guidance=batched_guidance,
                           attention=attention, cross_attention=cross_attention, compile=compile)  # fmt: skip
    from yingxi.models.wan.image import WanImageEncoder
    from yingxi.models.wan.loading import load_transformer_pair
    from yingxi.models.wan.text import WanTextEncoder
    from yingxi.models.wan.vae_loading import load_vae
    from yingxi.pipelines.wan.load_files import is_single_file, load_file_components, plan_files
    from yingxi.pipelines.wan.speed import check_speed

    check_supported(runtime)  # a kernel, compile or plan this build cannot run: before any weights load
    device, dtype, vae_dtype = runtime.torch_device, runtime.torch_dtype, runtime.torch_vae_dtype
    offload, weights = runtime.offload, runtime.weights
    check_speed(device, dtype, offload=offload, attention=runtime.attention,
                cross_attention=runtime.cross_attention, compile=runtime.compile)  # fmt: skip
    home = "cpu" if offload != "none" else device
    if is_single_file(name_or_path, files.get("comfy_root")):
        single = plan_files(name_or_path, **files)
        if not encoders:
            single = dataclasses.replace(single, text_encoder=None, image_encoder=None)
        check_fits(single.variant, dtype, offload, _device_memory(device), weights, files=single.reports)
        parts = load_file_components(single, dtype=dtype, device=home, vae_dtype=vae_dtype, weights=weights)
        pipe = pipeline_class(single.variant)(WanComponents(**parts), runtime=runtime, schedule=schedule)
        if loras or loras_2:
            pipe.set_loras(loras, loras_2)
        return pipe
    variant, folder = resolve(name_or_path, **files)
    check_fits(variant, dtype, offload, _device_memory(device), weights)
    if loras_2 and not variant.two_experts:
        raise InputError(f"{variant.name} has one transformer; --lora-2 needs an A14B pair", field="lora-2")
    pair_loras = loras if loras_2 is None else loras_2
    transformer, transformer_2 = load_transformer_pair(
        folder, dtype=dtype, device=home, weights=weights, loras=loras,
        loras_2=pair_loras if variant.two_experts else (),
    )  # fmt: skip
    vae = load_vae(folder, dtype=vae_dtype, device=home)
    text_encoder = None
    if encoders and ((folder / "text_encoder").is_dir() or any(folder.glob("models_t5_*.pth"))):
        text_encoder = WanTextEncoder.from_pretrained(folder, dtype=dtype, device=home)
    image_encoder = None
    if encoders and variant.needs_image_encoder:
        image_encoder = WanImageEncoder.from_pretrained(folder, dtype=torch.float32, device=home)
    components = WanComponents(
        variant=variant,
        transformer=transformer,
        vae=vae,
        text_encoder=text_encoder,
        image_encoder=image_encoder,
        transformer_2=transformer_2,
    )
    return pipeline_class(variant)(components, runtime=runtime, schedule=schedule)
