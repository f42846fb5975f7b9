"""Wan's LoRA names: every spelling published Wan LoRAs use, matched to our (diffusers) module names.

Formats, as diffusers' `lora_state_dict` tells them apart and `_convert_non_diffusers_wan_lora_to_diffusers`
/ `_convert_musubi_wan_lora_to_diffusers` (diffusers/loaders/lora_conversion_utils.py) read them:
- Wan-native / lightx2v / Wan2.2-Lightning: `diffusion_model.blocks.0.self_attn.q.lora_down.weight` (or
  `lora_A`/`lora_B`), `.alpha`, `.diff`, `.diff_b`, `head.head.diff`;
- kohya / musubi-tuner: `lora_unet_blocks_0_self_attn_q.lora_down.weight` (Wan's names, dots as `_`);
- diffusers / PEFT: `transformer.blocks.0.attn1.to_q.lora_A.weight` (our names).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from torch import Tensor, nn

from yingxi.models.lora import LoraPatch, apply_loras, lora_patches, read_lora
from yingxi.models.quant import QuantLinear

__all__ = ["DIFFUSERS_TO_ORIGINAL", "load_lora", "set_loras", "wan_lora_names"]

PREFIXES = ("model.diffusion_model.", "diffusion_model.", "base_model.model.", "transformer.", "lora_unet_")

_B = r"^((?:vace_)?blocks\.\d+)\."  # a main block or a VACE context block
# Our module (and parameter) names -> Wan's original ones: the inverse of `ORIGINAL_TO_DIFFUSERS`, which
# kohya-style keys need (they flatten Wan's names, so the dots cannot be read back without knowing them).
DIFFUSERS_TO_ORIGINAL: tuple[tuple[str, str], ...] = (
    (r"^condition_embedder\.time_embedder\.linear_1", "time_embedding.0"),
    (r"^condition_embedder\.time_embedder\.linear_2", "time_embedding.2"),
    (r"^condition_embedder\.time_proj", "time_projection.1"),
    (r"^condition_embedder\.text_embedder\.linear_1", "text_embedding.0"),
    (r"^condition_embedder\.text_embedder\.linear_2", "text_embedding.2"),
    (r"^condition_embedder\.image_embedder\.norm1", "img_emb.proj.0"),
    (r"^condition_embedder\.image_embedder\.ff\.net\.0\.proj", "img_emb.proj.1"),
    (r"^condition_embedder\.image_embedder\.ff\.net\.2", "img_emb.proj.3"),
    (r"^condition_embedder\.image_embedder\.norm2", "img_emb.proj.4"),
    (r"^condition_embedder\.image_embedder\.pos_embed$", "img_emb.emb_pos"),
    (_B + r"attn1\.", r"\1.self_attn."),
    (_B + r"attn2\.", r"\1.cross_attn."),
    (_B + r"(self_attn|cross_attn)\.to_q$", r"\1.\2.q"),
    (_B + r"(self_attn|cross_attn)\.to_k$", r"\1.\2.k"),
    (_B + r"(self_attn|cross_attn)\.to_v$", r"\1.\2.v"),
    (_B + r"(self_attn|cross_attn)\.to_out\.0$", r"\1.\2.o"),
    (_B + r"cross_attn\.add_k_proj$", r"\1.cross_attn.k_img"),
    (_B + r"cross_attn\.add_v_proj$", r"\1.cross_attn.v_img"),
    (_B + r"cross_attn\.norm_added_k$", r"\1.cross_attn.norm_k_img"),
    (_B + r"norm2$", r"\1.norm3"),
    (_B + r"ffn\.net\.0\.proj$", r"\1.ffn.0"),
    (_B + r"ffn\.net\.2$", r"\1.ffn.2"),
    (_B + r"scale_shift_table$", r"\1.modulation"),
    (_B + r"proj_in$", r"\1.before_proj"),  # VACE
    (_B + r"proj_out$", r"\1.after_proj"),
    (r"^proj_out$", "head.head"),
    (r"^scale_shift_table$", "head.modulation"),
)

# Layers only some Wan models have (Wan 2.1 I2V/FLF2V's image branch): a LoRA trained with them still
# applies to a model without them (a Wan 2.1 I2V LoRA on Wan 2.2), so their keys are skipped, not an error.
_OPTIONAL_LAYER = re.compile(
    r"k_img|v_img|norm_k_img|img_emb|add_k_proj|add_v_proj|norm_added_k|image_embedder"
)
# Norm differences the trainers store as zeros (diffusers drops them too) for norms that hold no weights here.
_WEIGHTLESS_NORM = re.compile(r"(^|[._])norm[12]?$")


def _targets(model: nn.Module) -> dict[str, str]:
    """{our name: what it is} for every module with its own weights and every bare parameter (modulation)."""
    names: dict[str, str] = {}
    for name, module in model.named_modules():
        own = dict(module.named_parameters(recurse=False))
        if name and (own or isinstance(module, QuantLinear)):
            names[name] = "module"
        for pname in own:
            if pname not in ("weight", "bias"):
                names[f"{name}.{pname}" if name else pname] = "parameter"
    return names


def wan_lora_names(model: nn.Module, *, original: bool) -> dict[str, str]:
    """{every spelling a Wan LoRA may use for a layer: our module or parameter name}: Wan's own names
    (`original`, dotted or kohya-flattened) or ours (diffusers'). One or the other, never mixed: Wan's
    `norm2` holds no weights while ours is Wan's `norm3`."""
    aliases: dict[str, str] = {}
    for ours in _targets(model):
        spelling = ours
        if original:
            for pattern, repl in DIFFUSERS_TO_ORIGINAL:
                spelling = re.sub(pattern, repl, spelling)
        aliases[spelling] = ours
        aliases[spelling.replace(".", "_")] = ours
    return aliases


# Names only Wan's original layout uses (kohya-flattened too); diffusers-format files use ours.
_ORIGINAL_NAMES = re.compile(
    r"self_attn|cross_attn|ffn[._]\d|head[._]head|time_embedding|text_embedding|modulation|before_proj|after_proj"
)


def _strip(raw: str) -> str:
    for prefix in PREFIXES:
        if raw.startswith(prefix):
            return raw[len(prefix) :]
    return raw


def load_lora(path: str | Path, model: nn.Module) -> dict[str, LoraPatch]:
    """The patches of one Wan LoRA file, by our module names (errors name the file and the key)."""
    state: Mapping[str, Tensor] = read_lora(path)
    original = any(_ORIGINAL_NAMES.search(_strip(k)) for k in state)
    aliases = wan_lora_names(model, original=original)

    def resolve(raw: str) -> str | None:
        return aliases.get(_strip(raw))

    def skippable(raw: str) -> bool:
        name = _strip(raw)
        return bool(_OPTIONAL_LAYER.search(name) or _WEIGHTLESS_NORM.search(name))

    known = sorted(k for k in aliases if "." in k or "_" not in k)  # the dotted spellings
    return lora_patches(state, resolve, skippable=skippable, known=known, file=str(path))


def set_loras(model: nn.Module, loras: Sequence[tuple[str | Path, float]]) -> None:
    """Make `loras` [(file, strength)] the model's LoRAs, replacing any before (none: the base again)."""
    apply_loras(model, [(load_lora(path, model), float(strength)) for path, strength in loras])
