"""Load Wan transformers from diffusers folders or original Wan checkpoints.

Diffusers keys are our module names, so they load as they are. Original Wan keys (Wan-Video/Wan2.1
`wan/modules/model.py`; also ComfyUI's `model.diffusion_model.` prefix) go through one declarative regex
table, `ORIGINAL_TO_DIFFUSERS`, the same mapping diffusers' `convert_wan_transformer_to_diffusers` applies.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from yingxi.errors import InputError, ModelNotFoundError, unknown_word
from yingxi.models.fp8 import quantize_fp8
from yingxi.models.loading import (
    CheckpointError,
    Entry,
    cast_by_name,
    checkpoint_keys,
    load_module,
    parse_dtype,
    read_state_dict,
    rename_key,
    rename_keys,
)
from yingxi.models.quant import QuantizedTensor
from yingxi.models.wan.config import WanDiTConfig
from yingxi.models.wan.dit import KEEP_FP32, WanDiT

Layout = Literal["diffusers", "original"]

# A main block or a VACE context block (`vace_blocks.N.`, with the same inside).
_B = r"^((?:vace_)?blocks\.\d+)\."
ORIGINAL_TO_DIFFUSERS: tuple[tuple[str, str], ...] = (
    (r"^model\.diffusion_model\.", ""),  # ComfyUI single-file prefix
    (r"^patch_embedding\.", "patch_embedding."),
    (r"^time_embedding\.0\.", "condition_embedder.time_embedder.linear_1."),
    (r"^time_embedding\.2\.", "condition_embedder.time_embedder.linear_2."),
    (r"^time_projection\.1\.", "condition_embedder.time_proj."),
    (r"^text_embedding\.0\.", "condition_embedder.text_embedder.linear_1."),
    (r"^text_embedding\.2\.", "condition_embedder.text_embedder.linear_2."),
    (r"^img_emb\.proj\.0\.", "condition_embedder.image_embedder.norm1."),
    (r"^img_emb\.proj\.1\.", "condition_embedder.image_embedder.ff.net.0.proj."),
    (r"^img_emb\.proj\.3\.", "condition_embedder.image_embedder.ff.net.2."),
    (r"^img_emb\.proj\.4\.", "condition_embedder.image_embedder.norm2."),
    (r"^img_emb\.emb_pos$", "condition_embedder.image_embedder.pos_embed"),  # FLF2V
    (_B + r"self_attn\.", r"\1.attn1."),
    (_B + r"cross_attn\.", r"\1.attn2."),
    (_B + r"(attn[12])\.q\.", r"\1.\2.to_q."),
    (_B + r"(attn[12])\.k\.", r"\1.\2.to_k."),
    (_B + r"(attn[12])\.v\.", r"\1.\2.to_v."),
    (_B + r"(attn[12])\.o\.", r"\1.\2.to_out.0."),
    (_B + r"attn2\.k_img\.", r"\1.attn2.add_k_proj."),
    (_B + r"attn2\.v_img\.", r"\1.attn2.add_v_proj."),
    (_B + r"attn2\.norm_k_img\.", r"\1.attn2.norm_added_k."),
    # Wan's norm3 is the affine pre-cross-attention norm (diffusers "norm2"); its norm1/norm2 hold no weights.
    (_B + r"norm3\.", r"\1.norm2."),
    (_B + r"ffn\.0\.", r"\1.ffn.net.0.proj."),
    (_B + r"ffn\.2\.", r"\1.ffn.net.2."),
    (_B + r"modulation$", r"\1.scale_shift_table"),
    (_B + r"before_proj\.", r"\1.proj_in."),  # VACE (diffusers' convert_wan_to_diffusers names)
    (_B + r"after_proj\.", r"\1.proj_out."),
    (r"^head\.head\.", "proj_out."),
    (r"^head\.modulation$", "scale_shift_table"),
)

# Keys some published checkpoints carry that no Wan model uses (diffusers ignores the same).
IGNORED_KEYS = (r"\.norm_added_q\.",)

# What `weights="fp8"` quantizes: the blocks' Linears (attention q/k/v/o, image k/v, FFN), as ComfyUI's
# fp8_scaled and LightX2V's fp8 Wan files do; the patch/text/time/image embeddings, norms, modulation
# tables and the head stay in the compute dtype. (For a 14B expert: 13.2 of its 14.3 B weights.)
FP8_LAYERS = re.compile(
    r"^(vace_)?blocks\.\d+\.(attn[12]\.(to_q|to_k|to_v|to_out\.0|add_k_proj|add_v_proj)|ffn\.net\.(0\.proj|2))\.weight$"
)
WEIGHTS = ("bf16", "fp8")  # `weights=`: None keeps each weight as stored


def fp8_layer_shapes(cfg: WanDiTConfig) -> list[tuple[int, int]]:
    """(out, in) of every Linear `weights="fp8"` quantizes (FP8_LAYERS), by arithmetic."""
    d, f = cfg.inner_dim, cfg.ffn_dim
    block = [(d, d)] * 8 + [(f, d), (d, f)]  # self- and cross-attention q/k/v/o, the FFN
    if cfg.added_kv_proj_dim is not None:
        block += [(d, cfg.added_kv_proj_dim)] * 2  # I2V image k/v
    return block * (cfg.num_layers + len(cfg.vace_layers or ()))


def weight_bytes(cfg: WanDiTConfig, dtype: torch.dtype, weights: str | None = None) -> int:
    """Bytes of one transformer's parameters: all in `dtype`, or with `weights="fp8"` the FP8_LAYERS
    weights at one byte plus a float32 scale per output row (a 14B expert: 14.3 GB instead of 28.6)."""
    total = cfg.num_params() * dtype.itemsize
    if weights != "fp8":
        return total
    shapes = fp8_layer_shapes(cfg)
    return total - sum(o * i for o, i in shapes) * (dtype.itemsize - 1) + sum(o for o, _ in shapes) * 4


HEAD_DIM = 128  # every published Wan model; used only when a checkpoint comes without a config


def detect_layout(keys: Iterable[str]) -> Layout:
    """Layout of a checkpoint from its key names (a state dict works too). Original checkpoints name the
    patch conv `patch_embedding` too, so look at the block/head keys."""
    keys = set(keys)
    if any(k.endswith("head.head.weight") for k in keys) or any(".self_attn." in k for k in keys):
        return "original"
    return "diffusers"


def to_diffusers_keys(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Original Wan names -> diffusers/our names (a no-op for diffusers checkpoints)."""
    if detect_layout(state_dict) == "diffusers":
        return dict(state_dict)
    return rename_keys(state_dict, ORIGINAL_TO_DIFFUSERS)


def infer_config(state_dict: Mapping[str, Tensor], *, head_dim: int = HEAD_DIM) -> WanDiTConfig:
    """A config from tensor shapes alone (diffusers names), for bare single-file checkpoints."""
    try:
        patch = state_dict["patch_embedding.weight"]  # (D, C_in, pt, ph, pw)
        d, c_in, *ps = patch.shape
        layers = 1 + max(int(m.group(1)) for k in state_dict if (m := re.match(r"blocks\.(\d+)\.", k)))
        img = state_dict.get("condition_embedder.image_embedder.norm1.weight")
        add_k = state_dict.get("blocks.0.attn2.add_k_proj.weight")
        pos = state_dict.get("condition_embedder.image_embedder.pos_embed")
        return WanDiTConfig(
            patch_size=tuple(ps),
            num_attention_heads=d // head_dim,
            attention_head_dim=head_dim,
            in_channels=c_in,
            out_channels=state_dict["proj_out.weight"].shape[0] // math.prod(ps),
            text_dim=state_dict["condition_embedder.text_embedder.linear_1.weight"].shape[1],
            freq_dim=state_dict["condition_embedder.time_embedder.linear_1.weight"].shape[1],
            ffn_dim=state_dict["blocks.0.ffn.net.0.proj.weight"].shape[0],
            num_layers=layers,
            cross_attn_norm="blocks.0.norm2.weight" in state_dict,
            image_dim=img.shape[0] if img is not None else None,
            added_kv_proj_dim=add_k.shape[1] if add_k is not None else None,
            pos_embed_seq_len=pos.shape[1] if pos is not None else None,
            **infer_vace(state_dict, layers),
        )
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"not a Wan transformer checkpoint (cannot find {exc})") from exc


def infer_vace(state_dict: Mapping[str, Tensor], num_layers: int) -> dict:
    """vace_layers / vace_in_channels from a VACE checkpoint's shapes ({} for other models). The weights do
    not say after which main blocks the hints go: every published VACE spaces its context blocks evenly from
    block 0 (1.3B: 15 over 30 layers, every 2nd; 14B and VACE-Fun A14B: 8 over 40, every 5th)."""
    embed = state_dict.get("vace_patch_embedding.weight")  # (D, Cv, pt, ph, pw)
    if embed is None:
        return {}
    n = 1 + max(int(m.group(1)) for k in state_dict if (m := re.match(r"vace_blocks\.(\d+)\.", k)))
    if num_layers % n:
        raise CheckpointError(
            f"{n} VACE blocks do not space evenly over {num_layers} layers; give the model's config.json "
            "(its vace_layers)"
        )
    return {"vace_layers": tuple(range(0, num_layers, num_layers // n)), "vace_in_channels": embed.shape[1]}


def transformer_class(config: WanDiTConfig) -> type[WanDiT]:
    """WanVACEDiT for a VACE config, WanDiT otherwise."""
    if config.is_vace:
        from yingxi.models.wan.vace import WanVACEDiT

        return WanVACEDiT
    return WanDiT


def _config_from_json(raw: Mapping, state_dict: Mapping[str, Tensor], source: Path) -> WanDiTConfig:
    """A diffusers config, or an original one (dim/num_heads/in_dim) completed from the image-branch shapes."""
    try:
        if "dim" in raw and "num_heads" in raw:
            img = state_dict.get("condition_embedder.image_embedder.norm1.weight")
            pos = state_dict.get("condition_embedder.image_embedder.pos_embed")
            return WanDiTConfig.from_original(
                raw,
                image_dim=img.shape[0] if img is not None else None,
                pos_embed_seq_len=pos.shape[1] if pos is not None else None,
            )
        return WanDiTConfig.from_diffusers(raw)
    except InputError as exc:
        raise CheckpointError(exc.message, file=str(source), field=exc.field) from exc


def _resolve(path: Path) -> tuple[Path, Path | None]:
    """(weights path, config.json or None); a pipeline root resolves to its `transformer/` folder."""
    if not path.exists():
        raise ModelNotFoundError(f"{path}: transformer checkpoint not found")
    if path.is_dir():
        if (path / "model_index.json").is_file() and (path / "transformer").is_dir():
            path = path / "transformer"
        config = path / "config.json"
        return path, config if config.is_file() else None
    config = path.parent / "config.json"
    return path, config if config.is_file() else None


def _weights_cast(weights: str | None, dtype: torch.dtype | str, device: str | torch.device):
    """The per-tensor cast (diffusers names) for a `weights` choice: fp8 quantizes the FP8_LAYERS weights
    from their stored precision as they are read (per output row, e4m3fn), so nothing sits at full width."""
    cast = cast_by_name(dtype, device, KEEP_FP32)
    if weights != "fp8":
        return cast

    def to_fp8(name: str, tensor: Tensor) -> Entry:
        if FP8_LAYERS.match(name) and tensor.is_floating_point():
            return quantize_fp8(tensor.to(device))
        return cast(name, tensor)

    return to_fp8


def _apply_weights(
    state: dict[str, Entry], weights: str | None, dtype: torch.dtype | str
) -> dict[str, Entry]:
    """Entries the reader left quantized, made to fit `weights`: "bf16" dequantizes every one (to float32
    where the reference keeps float32), "fp8" re-quantizes the FP8_LAYERS ones stored in another type."""
    if weights is None:
        return state
    out: dict[str, Entry] = {}
    for key, value in state.items():
        if isinstance(value, QuantizedTensor):
            if weights == "bf16":
                keep = any(part in KEEP_FP32 for part in key.split("."))
                value = value.dequantize(torch.float32 if keep else parse_dtype(dtype))
            elif FP8_LAYERS.match(key) and not value.qtype.startswith("fp8"):
                value = quantize_fp8(value.dequantize(torch.float32))
        out[key] = value
    return out


def load_transformer(
    path: str | Path,
    *,
    dtype: torch.dtype | str = "bf16",
    device: str | torch.device = "cpu",
    config: WanDiTConfig | None = None,
    weights: str | None = None,
    loras: Sequence[tuple[str | Path, float]] = (),
) -> WanDiT:
    """A WanDiT from a diffusers `transformer/` folder (or pipeline root), an original Wan folder
    (config.json with dim/num_heads/... + safetensors shards), or a single .safetensors/.pth file, plain or
    in ComfyUI's / Kijai's fp8 formats.

    Weights are cast to `dtype` except the float32 parts the reference keeps (`KEEP_FP32`). `weights`:
    None keeps each weight as stored (fp8 stays fp8 on the device, dequantized layer by layer); "bf16"
    dequantizes everything to `dtype` at load; "fp8" also quantizes a full-width checkpoint's block Linears
    to fp8 e4m3fn with one scale per output channel (`FP8_LAYERS`; a 14B expert takes ~15 GB, not 28).
    `loras` [(file, strength)] are fused into float weights or run beside quantized ones (`models/wan/lora.py`).
    """
    if weights is not None and weights not in WEIGHTS:
        raise InputError(unknown_word("weights", str(weights), WEIGHTS), field="weights")
    weights_path, config_file = _resolve(Path(path))
    table = ORIGINAL_TO_DIFFUSERS if detect_layout(checkpoint_keys(weights_path)) == "original" else ()
    # Cast each tensor as it is read (by its diffusers name), so a 14B checkpoint stored in fp32 never
    # sits in memory at full width and goes straight to `device`.
    cast = _weights_cast(weights, dtype, device)
    state = rename_keys(read_state_dict(weights_path, cast=lambda k, t: cast(rename_key(k, table), t)), table)
    state = _apply_weights(state, weights, dtype)
    if config is None:
        if config_file is not None:
            try:
                raw = json.loads(config_file.read_text())
            except json.JSONDecodeError as exc:
                raise CheckpointError(f"config.json is not valid JSON: {exc}", file=str(config_file)) from exc
            config = _config_from_json(raw, state, config_file)
        else:
            config = infer_config(state)
    model = load_module(
        transformer_class(config),
        config,
        state,
        dtype=dtype,
        device=device,
        keep_fp32=KEEP_FP32,
        ignore_unexpected=IGNORED_KEYS,
        source=str(weights_path),
    )
    if loras:
        from yingxi.models.wan.lora import set_loras

        set_loras(model, loras)
    return model


def load_transformer_pair(
    root: str | Path,
    *,
    dtype: torch.dtype | str = "bf16",
    device: str | torch.device = "cpu",
    weights: str | None = None,
    loras: Sequence[tuple[str | Path, float]] = (),
    loras_2: Sequence[tuple[str | Path, float]] = (),
) -> tuple[WanDiT, WanDiT | None]:
    """(high-noise, low-noise) experts of a Wan 2.2 A14B model, or (model, None) for single-expert ones.

    Diffusers roots hold `transformer/` (high noise) and `transformer_2/` (low noise); original Wan 2.2
    roots hold `high_noise_model/` and `low_noise_model/`. `loras` go on the first, `loras_2` on the second.
    """
    root = Path(root)
    for high, low in (("transformer", "transformer_2"), ("high_noise_model", "low_noise_model")):
        if (root / high).is_dir():
            first = load_transformer(root / high, dtype=dtype, device=device, weights=weights, loras=loras)
            second = None
            if (root / low).is_dir():
                second = load_transformer(
                    root / low, dtype=dtype, device=device, weights=weights, loras=loras_2
                )
            if loras_2 and second is None:
                raise InputError(
                    f"{root} has one transformer; a low-noise LoRA needs an A14B pair", field="lora-2"
                )
            return first, second
    if loras_2:
        raise InputError(f"{root} has one transformer; a low-noise LoRA needs an A14B pair", field="lora-2")
    return load_transformer(root, dtype=dtype, device=device, weights=weights, loras=loras), None
