"""Load the Wan VAE from a diffusers folder (`vae/`) or an original `Wan2.1_VAE.pth` / `Wan2.2_VAE.pth`.

Our module names are diffusers', so a diffusers state dict loads as is; the original Wan layout is renamed
by the declarative regex tables below (the same mapping as diffusers' `convert_wan_to_diffusers.py`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from yingxi.errors import InputError, ModelNotFoundError
from yingxi.models.loading import CheckpointError, load_module, read_state_dict, rename_keys
from yingxi.models.wan.vae import WAN21_VAE, WAN22_VAE, WanVAE, WanVAEConfig

VAEKind = Literal["2.1", "2.2"]
PRESETS: dict[str, WanVAEConfig] = {"2.1": WAN21_VAE, "2.2": WAN22_VAE}
ORIGINAL_FILES = {"2.1": "Wan2.1_VAE.pth", "2.2": "Wan2.2_VAE.pth"}

# Original Wan names -> ours, for both versions; applied in order with re.sub.
_COMMON_TABLE: list[tuple[str, str]] = [
    (r"^conv1\.", "quant_conv."),
    (r"^conv2\.", "post_quant_conv."),
    (r"^(en|de)coder\.conv1\.", r"\1coder.conv_in."),
    (r"^(en|de)coder\.head\.0\.", r"\1coder.norm_out."),
    (r"^(en|de)coder\.head\.2\.", r"\1coder.conv_out."),
    (r"^(en|de)coder\.middle\.0\.", r"\1coder.mid_block.resnets.0."),
    (r"^(en|de)coder\.middle\.1\.", r"\1coder.mid_block.attentions.0."),
    (r"^(en|de)coder\.middle\.2\.", r"\1coder.mid_block.resnets.1."),
]
# Inside a residual block: nn.Sequential(norm, SiLU, conv, norm, SiLU, Dropout, conv) and a shortcut.
_RESIDUAL_TABLE: list[tuple[str, str]] = [
    (r"\.residual\.0\.", ".norm1."),
    (r"\.residual\.2\.", ".conv1."),
    (r"\.residual\.3\.", ".norm2."),
    (r"\.residual\.6\.", ".conv2."),
    (r"\.shortcut\.", ".conv_shortcut."),
]
# Wan 2.2: each stage is a module whose `downsamples`/`upsamples` list ends with the resampler.
_WAN22_STAGES: list[tuple[str, str]] = [
    (r"^encoder\.downsamples\.(\d+)\.downsamples\.\d+\.(resample|time_conv)\.", r"encoder.down_blocks.\1.downsampler.\2."),
    (r"^encoder\.downsamples\.(\d+)\.downsamples\.(\d+)\.", r"encoder.down_blocks.\1.resnets.\2."),
    (r"^decoder\.upsamples\.(\d+)\.upsamples\.\d+\.(resample|time_conv)\.", r"decoder.up_blocks.\1.upsampler.\2."),
    (r"^decoder\.upsamples\.(\d+)\.upsamples\.(\d+)\.", r"decoder.up_blocks.\1.resnets.\2."),
]  # fmt: skip


def original_rename_table(config: WanVAEConfig) -> list[tuple[str, str]]:
    """The regex table that renames an original Wan VAE state dict to ours, for this architecture."""
    if config.is_residual:
        stages = _WAN22_STAGES
    else:
        # Wan 2.1: the encoder list is flat in both layouts; the decoder's flat list holds, per stage,
        # num_res_blocks + 1 residual blocks and then the upsampler (absent after the last stage).
        per_stage = config.num_res_blocks + 2
        stages = [(r"^encoder\.downsamples\.", "encoder.down_blocks.")]
        for i in range(len(config.dim_mult)):
            for j in range(config.num_res_blocks + 1):
                stages.append(
                    (rf"^decoder\.upsamples\.{i * per_stage + j}\.", f"decoder.up_blocks.{i}.resnets.{j}.")
                )
            stages.append((rf"^decoder\.upsamples\.{i * per_stage + per_stage - 1}\.", f"decoder.up_blocks.{i}.upsamplers.0."))  # fmt: skip
    return [*_COMMON_TABLE, *stages, *_RESIDUAL_TABLE]


def _is_original(state: dict[str, Tensor]) -> bool:
    return "encoder.conv1.weight" in state


def _preset_for(state: dict[str, Tensor], kind: str | None, source: str) -> WanVAEConfig:
    """The architecture of a checkpoint without config.json: from `kind` or its latent width."""
    if kind is not None:
        return PRESETS[kind]
    weight = state.get("conv2.weight", state.get("post_quant_conv.weight"))  # (z, z, 1, 1, 1)
    z = None if weight is None else weight.shape[0]
    for preset in PRESETS.values():
        if preset.z_dim == z:
            return preset
    raise CheckpointError(
        f"cannot tell the Wan VAE version (latent channels {z}); pass kind='2.1' or '2.2' or a config",
        file=source,
    )


def _is_vae_config(path: Path) -> bool:
    """A diffusers `AutoencoderKLWan` config.json (not, e.g., the transformer config beside Wan2.1_VAE.pth)."""
    if not path.is_file():
        return False
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"config.json is not valid JSON: {exc}", file=str(path)) from exc
    return isinstance(raw, dict) and (raw.get("_class_name") == "AutoencoderKLWan" or "z_dim" in raw)


def _find(path: Path, kind: str | None) -> tuple[Path, Path | None]:
    """(weights path, diffusers config.json or None) for a file, a diffusers `vae/` folder, a diffusers pipeline
    folder or an original Wan model folder holding `Wan2.x_VAE.pth`."""
    if not path.exists():
        raise ModelNotFoundError(f"{path}: Wan VAE checkpoint not found")
    if path.is_file():
        return path, None
    for folder in (path / "vae", path):
        # An original Wan root also holds a config.json, the transformer's: only a VAE config counts.
        if _is_vae_config(folder / "config.json"):
            return folder, folder / "config.json"
    names = [ORIGINAL_FILES[kind]] if kind else list(ORIGINAL_FILES.values())
    found = [path / n for n in names if (path / n).is_file()]
    if len(found) == 1:
        return found[0], None
    if found:
        raise InputError(f"{path} holds both {' and '.join(names)}; pass kind='2.1' or '2.2'", field="kind")
    raise ModelNotFoundError(
        f"{path}: no diffusers vae/config.json and no {' or '.join(names)} in this folder"
    )


def load_vae(
    path: str | Path,
    *,
    kind: VAEKind | None = None,
    config: WanVAEConfig | None = None,
    dtype: torch.dtype | str = torch.float32,
    device: str | torch.device = "cpu",
) -> WanVAE:
    """Load a Wan VAE: a diffusers `vae/` folder (or the pipeline folder above it), an original
    `Wan2.1_VAE.pth` / `Wan2.2_VAE.pth` (or the model folder holding it), or one weights file in either layout.

    The architecture comes from `config`, else the folder's config.json, else the preset for `kind`
    (inferred from the checkpoint when None). Built on the meta device, then the tensors are assigned.
    """
    if kind is not None and kind not in PRESETS:
        raise InputError(f'unknown Wan VAE kind "{kind}"; accepted: {", ".join(PRESETS)}', field="kind")
    weights, config_file = _find(Path(path), kind)
    source = str(weights)
    if config is None and config_file is not None:
        try:
            config = WanVAEConfig.from_diffusers(json.loads(config_file.read_text()))
        except (json.JSONDecodeError, TypeError) as exc:
            raise CheckpointError(f"bad VAE config: {exc}", file=str(config_file)) from exc
    state = read_state_dict(weights)
    if config is None:
        config = _preset_for(state, kind, source)
    if kind is not None and config.is_residual != (kind == "2.2"):
        raise InputError(
            f"kind {kind} does not match the checkpoint's architecture (is_residual={config.is_residual})",
            field="kind",
            file=source,
        )
    if _is_original(state):
        state = rename_keys(state, original_rename_table(config))
    vae = load_module(WanVAE, config, state, dtype=dtype, device=device, source=source)
    return vae.to(device)  # the latent statistics buffers (not in the checkpoint) follow the weights
