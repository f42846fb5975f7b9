"""Which Wan model a single transformer file is, from its tensor names and shapes alone.

Follows the Wan branch of ComfyUI's `comfy/model_detection.py` (`detect_unet_config`): the width from
`head.modulation`, heads = width // 128, in_dim from `patch_embedding`, `img_emb.*` for a CLIP image
branch, `img_emb.emb_pos` for FLF2V, out_dim 48 for Wan 2.2's TI2V-5B. Shapes cannot tell apart Wan 2.1
I2V 480p from 720p, nor Wan 2.1 T2V 14B from a Wan 2.2 T2V A14B expert: the file name decides
(ComfyUI's names say `480p`, `wan2.2`, `high_noise`, ...), else the user names the variant
(`--model-variant NAME`, `variant=NAME`), and the error says so.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from yingxi.errors import InputError
from yingxi.models.loading import CheckpointError, rename_key
from yingxi.models.wan.config import VARIANTS, WanDiTConfig, WanVariant, get_variant

Expert = Literal["high", "low"]
__all__ = ["Detection", "Expert", "detect", "dit_names", "dit_shapes", "expert_from_name", "is_quant_marker"]

PREFIXES = ("model.diffusion_model.", "diffusion_model.")  # ComfyUI's full-model prefix, and LoRA-style
# Tensors that describe quantized storage rather than model weights (ComfyUI "fp8 scaled", Kijai's files,
# ComfyUI's newer `_quantization_metadata` format).
_QUANT_MARKER = re.compile(r"(^|\.)(scaled_fp8|scale_weight|scale_input|weight_scale|input_scale)$")

# Registered variants whose transformers have the same architecture; detection picks within a family.
_FAMILIES: dict[str, tuple[str, ...]] = {
    "ti2v": ("wan2.2-ti2v-5b",),
    "flf2v": ("wan2.1-flf2v-14b-720p",),
    "i2v-clip": ("wan2.1-i2v-14b-480p", "wan2.1-i2v-14b-720p"),
    "i2v": ("wan2.2-i2v-a14b",),
    "t2v": ("wan2.1-t2v-1.3b", "wan2.1-t2v-14b", "wan2.2-t2v-a14b"),
    "vace": ("wan2.1-vace-1.3b", "wan2.1-vace-14b", "wan2.2-vace-fun-a14b"),  # `vace_patch_embedding`
}
# Per family: the narrow model an unpublished width up to SMALL_WIDTH is taken for, and the wide single one.
_SMALL = {"t2v": ("wan2.1-t2v-1.3b", "wan2.1-t2v-14b"), "vace": ("wan2.1-vace-1.3b", "wan2.1-vace-14b")}
# Wan models yingxi does not run, told by the keys ComfyUI's detection looks for (original names).
UNSUPPORTED = {
    "control_adapter.conv.weight": "Fun Camera / Control",
    "casual_audio_encoder.encoder.final_linear.weight": "S2V (speech to video)",
    "audio_proj.audio_proj_glob_1.layer.bias": "HuMo",
    "face_adapter.fuser_blocks.0.k_norm.weight": "Animate",
    "ref_conv.weight": "Fun InP / reference",
}
SMALL_WIDTH = 1536  # 1.3B's inner dim; wider T2V models are 14B (a hint for unpublished sizes)


def is_quant_marker(name: str) -> bool:
    return bool(_QUANT_MARKER.search(name))


def dit_names(names: Sequence[str]) -> dict[str, str]:
    """{our (diffusers) name: the file's name}: prefix stripped, Wan's original names renamed, quantization
    markers and the keys no Wan model uses dropped."""
    from yingxi.models.wan.loading import IGNORED_KEYS, ORIGINAL_TO_DIFFUSERS, detect_layout

    names = [n for n in names if not is_quant_marker(n)]
    prefix = next((p for p in PREFIXES if any(n.startswith(p) for n in names)), "")
    stripped = {n[len(prefix) :]: n for n in names if n.startswith(prefix)}
    table = ORIGINAL_TO_DIFFUSERS if detect_layout(stripped) == "original" else ()
    out = {rename_key(n, table): old for n, old in stripped.items()}
    return {n: old for n, old in out.items() if not any(re.search(p, n) for p in IGNORED_KEYS)}


def dit_shapes(shapes: Mapping[str, Sequence[int]]) -> dict[str, tuple[int, ...]]:
    """{name: shape} -> the same under our (diffusers) names (see `dit_names`)."""
    return {new: tuple(int(s) for s in shapes[old]) for new, old in dit_names(list(shapes)).items()}


def _config(shapes: Mapping[str, tuple[int, ...]], head_dim: int) -> WanDiTConfig:
    from yingxi.models.wan.loading import infer_config

    if "patch_embedding.weight" not in shapes or "proj_out.weight" not in shapes:
        raise CheckpointError(
            "not a Wan transformer (no patch_embedding.weight and head.head.weight / proj_out.weight)"
        )
    meta = {n: torch.empty(s, device="meta") for n, s in shapes.items()}  # shapes only, no memory
    return infer_config(meta, head_dim=head_dim)


def _family(cfg: WanDiTConfig) -> str:
    if cfg.is_vace:
        return "vace"
    if cfg.in_channels == 48 or cfg.out_channels == 48:
        return "ti2v"
    if cfg.pos_embed_seq_len:
        return "flf2v"
    if cfg.image_dim is not None:
        return "i2v-clip"
    if cfg.in_channels == 36:
        return "i2v"
    return "t2v"


def expert_from_name(name: str) -> Expert | None:
    """ "high"/"low" from a file name such as `wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors`."""
    low = name.lower()
    if re.search(r"high[-_ ]?noise|(^|[-_.])high([-_.]|$)|[-_]hn[-_.]", low):
        return "high"
    if re.search(r"low[-_ ]?noise|(^|[-_.])low([-_.]|$)|[-_]ln[-_.]", low):
        return "low"
    return None


def _version_hint(name: str) -> str | None:
    low = name.lower()
    if re.search(r"wan[-_ ]?2[._]?2|a14b", low) or expert_from_name(low):
        return "2.2"
    if re.search(r"wan[-_ ]?2[._]?1", low):
        return "2.1"
    return None


def _narrow(candidates: tuple[str, ...], cfg: WanDiTConfig, name: str, paired: bool) -> list[str]:
    """The candidates the shapes match exactly (all of the family for unpublished sizes), then the name's
    hints: "480p"/"720p"; "wan2.2", "a14b", "high_noise"/"low_noise" (or a second expert) for 2.2."""
    low = name.lower()
    exact = [c for c in candidates if VARIANTS[c].dit == cfg]
    small, wide = next((pair for pair in _SMALL.values() if pair[0] in candidates), (None, None))
    pool = exact or [c for c in candidates if c != small or cfg.inner_dim <= SMALL_WIDTH]
    if not exact and cfg.inner_dim <= SMALL_WIDTH and small in pool:
        pool = [c for c in pool if c != wide]  # a narrow unpublished T2V/VACE: 1.3B-like or A14B-like
    if len(pool) < 2:
        return pool
    if candidates == _FAMILIES["i2v-clip"]:
        return [c for c in pool if c.rsplit("-", 1)[-1] in low] or pool  # "480p" / "720p"
    version = "2.2" if paired else _version_hint(low)
    if version is None and not exact:
        version = "2.1"  # an unpublished size without hints: the single-expert model
    return [c for c in pool if version and c.startswith(f"wan{version}-")] or pool


@dataclass(frozen=True)
class Detection:
    """What a transformer file is: the variant it samples as (a registered one, or one built like it with
    the file's own config) and, for an A14B expert, which one (None when the name does not say)."""

    variant: WanVariant
    base: str  # the registered variant it is built like
    expert: Expert | None
    config: WanDiTConfig


def detect(
    shapes: Mapping[str, Sequence[int]],
    *,
    name: str = "",
    variant: str | None = None,
    expert: Expert | None = None,
    paired: bool = False,
    head_dim: int = 128,
) -> Detection:
    """Detect the variant of a transformer from `{tensor name: shape}` (any layout, with or without the
    ComfyUI prefix, quantization markers allowed). `name`: the file name, for the hints shapes cannot give;
    `variant`: the user's choice where shapes are ambiguous; `paired`: loaded with a second expert."""
    source = name or None
    bare = {n.removeprefix(p) for n in shapes for p in PREFIXES if n.startswith(p)} | set(shapes)
    for key, kind in UNSUPPORTED.items():
        if key in bare:
            raise CheckpointError(
                f"a Wan {kind} transformer ({key}); yingxi runs Wan 2.1/2.2 T2V, I2V, FLF2V, TI2V and VACE models",
                file=source,
            )
    try:
        cfg = _config(dit_shapes(shapes), head_dim)
    except (CheckpointError, InputError) as exc:
        raise CheckpointError(exc.message, file=source) from exc
    family = _family(cfg)
    candidates = _FAMILIES[family]
    if variant is not None:
        chosen = get_variant(variant)
        if chosen.name not in candidates:
            raise InputError(
                f"{Path(name).name or 'this file'} has the tensors of {' or '.join(candidates)}, "
                f"not {chosen.name}",
                field="model_variant",
                file=source,
            )
        picked = [chosen.name]
    else:
        picked = _narrow(candidates, cfg, Path(name).name, paired)
    if len(picked) > 1:
        raise InputError(
            f"{Path(name).name or 'this file'} could be {' or '.join(picked)} (their tensors have the same "
            f"shapes); say which with --model-variant {picked[0]} (Python: variant={picked[0]!r})",
            field="model_variant",
            file=source,
        )
    base = VARIANTS[picked[0]]
    found = base if cfg == base.dit else dataclasses.replace(base, name=Path(name).stem or base.name, dit=cfg)
    if expert is None and base.two_experts:
        expert = expert_from_name(Path(name).name)
    if expert is not None and not base.two_experts:
        raise InputError(f"{base.name} has one transformer, not a {expert}-noise expert", file=source)
    return Detection(variant=found, base=base.name, expert=expert, config=cfg)
