"""Few-step presets: the sampling settings and LoRA files each published Wan distillation was trained for.

One row per (preset, model family), as data. Sources:
- lightx2v's Wan2.1 step+CFG distillations (huggingface.co/lightx2v/Wan2.1-T2V-14B-StepDistill-CfgDistill-
  Lightx2v, .../Wan2.1-I2V-14B-480P-StepDistill-CfgDistill-Lightx2v: `loras/Wan21_*_lightx2v_cfg_step_
  distill_lora_rank64.safetensors`; Kijai/WanVideo_comfy repackages them as `lightx2v_*_cfg_step_distill_
  ..._bf16.safetensors`): 4 steps, shift 5, CFG off (LightX2V's configs: infer_steps 4, sample_shift 5,
  enable_cfg false);
- Wan2.2-Lightning (github.com/ModelTC/Wan2.2-Lightning, huggingface.co/lightx2v/Wan2.2-Lightning:
  `Wan2.2-T2V-A14B-4steps-lora-rank64-Seko-V1.1/{high,low}_noise_model.safetensors`, `Wan2.2-I2V-A14B-4steps-
  lora-rank64-Seko-V1/...`; Comfy-Org's repackaged names `wan2.2_{t2v,i2v}_lightx2v_4steps_lora_v1*_{high,
  low}_noise.safetensors`): 4 steps without CFG, Euler, shift 5, each expert its own LoRA.
- Wan2.2-TI2V-5B and Wan2.1 T2V 1.3B: no 4-step LoRA is published (Wan2.2-Lightning's TI2V-5B item is still
  open; the 5B "Turbo"/FastWan releases are full checkpoints): the preset's sampling applies to a LoRA the
  user gives with --lora, and without one the error says so.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from yingxi.errors import InputError, closest, unknown_word
from yingxi.models.wan.config import WanVariant

__all__ = ["PRESETS", "Preset", "find_preset_loras", "get_preset", "lora_folders", "model_family"]


@dataclass(frozen=True)
class Preset:
    name: str
    family: str  # `model_family` of the models it is for
    sampler: str  # "unipc" | "euler"
    schedule: str  # "wan" | "diffusers": the sigma grid
    steps: int
    shift: float
    guidance: float  # 1: no unconditional pass (CFG distilled away)
    loras: tuple[str, ...] = ()  # file names of its LoRA (the high-noise expert's for A14B); any one will do
    loras_2: tuple[str, ...] = ()  # the low-noise expert's (A14B)
    strength: float = 1.0
    # The timesteps it was distilled on (LightX2V's `denoising_step_list`): sampled as exactly those levels
    # of the shifted table (`samplers.step_list_schedule`) instead of `schedule`'s grid; () for none.
    denoising_step_list: tuple[int, ...] = ()


# Every 4-step distillation samples the same levels: LightX2V's step-distill configs (configs/distill/wan21/
# wan_{t2v,i2v}_distill_lora_4step_cfg.json, configs/distill/wan22/wan_moe_{t2v_distill_lora,i2v_distill_with_
# lora}.json: denoising_step_list [1000, 750, 500, 250], sample_shift 5, enable_cfg false, infer_steps 4) run
# WanStepDistillScheduler / Wan22StepDistillScheduler (lightx2v/models/schedulers/wan/step_distill/
# scheduler.py): the step list indexes the *shifted* float32 table, so sigmas [1, 0.9375, 0.8333, 0.625] and
# float timesteps [1000, 937.5, 833.33, 625] (Wan's integer truncation would give 937 and 833), an Euler
# step x + (sigma_next - sigma) v per level, and for A14B the high-noise expert on steps 0-1
# (boundary_step_index 2; lightx2v/models/runners/wan/wan_distill_runner.py), which Wan's own switch at
# t >= boundary_ratio * 1000 (875 T2V, 900 I2V) also gives for these timesteps. Wan2.2-Lightning's own code
# (github:ModelTC/Wan2.2-Lightning, stored as yliuls/Wan2.2-Lightning: wan/utils/fm_solvers_euler.py
# EulerScheduler, float32 linspace(1000, 0, 5) shifted by 5, float timesteps; wan/text2video.py, the
# high-noise expert where t >= boundary * 1000) gives the same levels, and its authors say the released LoRAs
# expect exactly timesteps [1000, 937.5, 833.33, 625, 0] (github ModelTC/LightX2V-Wan2.2-Lightning issue 3).
# ComfyUI's native workflows (Euler or LCM, "simple" scheduler, ModelSamplingSD3 shift 5, cfg 1, 4 steps,
# the A14B pair split 2+2) sample the same sigmas: comfy/samplers.py simple_scheduler at 4 steps takes
# levels 1000, 750, 500, 250 of comfy/model_sampling.py ModelSamplingDiscreteFlow's shifted table, timestep
# = sigma * 1000 as a float. (LCM, which some ComfyUI users pick, re-noises each step: not modelled here.)
# The lightx2v/Wan2.{1,2}-Distill-Loras file names at the end of each row are those LightX2V's configs load.
_LIGHTNING = dict(
    sampler="euler",
    schedule="wan",
    steps=4,
    shift=5.0,
    guidance=1.0,
    denoising_step_list=(1000, 750, 500, 250),
)
PRESETS: tuple[Preset, ...] = (
    Preset("lightning", "wan2.1-t2v-14b", **_LIGHTNING, loras=(
        "Wan21_T2V_14B_lightx2v_cfg_step_distill_lora_rank64.safetensors",
        "lightx2v_T2V_14B_cfg_step_distill_v2_lora_rank64_bf16.safetensors",
        "Wan21_T2V_14B_lightx2v_cfg_step_distill_lora_rank32.safetensors",
        "wan2.1_t2v_14b_lora_rank64_lightx2v_4step.safetensors",  # lightx2v/Wan2.1-Distill-Loras
    )),
    Preset("lightning", "wan2.1-i2v-14b", **_LIGHTNING, loras=(
        "Wan21_I2V_14B_lightx2v_cfg_step_distill_lora_rank64.safetensors",
        "lightx2v_I2V_14B_480p_cfg_step_distill_rank64_bf16.safetensors",
        "wan2.1_i2v_lora_rank64_lightx2v_4step.safetensors",  # lightx2v/Wan2.1-Distill-Loras
    )),
    Preset("lightning", "wan2.2-t2v-a14b", **_LIGHTNING, loras=(
        "wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise.safetensors",
        "Wan2.2-T2V-A14B-4steps-lora-rank64-Seko-V1.1/high_noise_model.safetensors",
        "wan2.2_t2v_A14b_high_noise_lora_rank64_lightx2v_4step_1217.safetensors",
    ), loras_2=(
        "wan2.2_t2v_lightx2v_4steps_lora_v1.1_low_noise.safetensors",
        "Wan2.2-T2V-A14B-4steps-lora-rank64-Seko-V1.1/low_noise_model.safetensors",
        "wan2.2_t2v_A14b_low_noise_lora_rank64_lightx2v_4step_1217.safetensors",
    )),
    Preset("lightning", "wan2.2-i2v-a14b", **_LIGHTNING, loras=(
        "wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise.safetensors",
        "Wan2.2-I2V-A14B-4steps-lora-rank64-Seko-V1/high_noise_model.safetensors",
        "wan2.2_i2v_A14b_high_noise_lora_rank64_lightx2v_4step_1022.safetensors",
    ), loras_2=(
        "wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise.safetensors",
        "Wan2.2-I2V-A14B-4steps-lora-rank64-Seko-V1/low_noise_model.safetensors",
        "wan2.2_i2v_A14b_low_noise_lora_rank64_lightx2v_4step_1022.safetensors",
    )),
    Preset("lightning", "wan2.2-ti2v-5b", **_LIGHTNING),  # no published LoRA: give one with --lora
    Preset("lightning", "wan2.1-t2v-1.3b", **_LIGHTNING),  # no published LoRA: give one with --lora
    Preset("lightning", "wan2.1-flf2v-14b", **_LIGHTNING),  # no published LoRA: give one with --lora
)  # fmt: skip
PRESET_NAMES = tuple(dict.fromkeys(p.name for p in PRESETS))


def model_family(variant: WanVariant) -> str:
    """The published model a variant is (or is built like): what a distillation was trained on."""
    can = variant.conditionings
    if variant.two_experts:
        return "wan2.2-i2v-a14b" if "i2v" in can else "wan2.2-t2v-a14b"
    if variant.expand_timesteps:
        return "wan2.2-ti2v-5b"
    if "flf2v" in can:
        return "wan2.1-flf2v-14b"
    if "i2v" in can:
        return "wan2.1-i2v-14b"
    return "wan2.1-t2v-1.3b" if variant.dit.inner_dim <= 1536 else "wan2.1-t2v-14b"


def get_preset(name: str, variant: WanVariant, *, field: str = "preset") -> Preset:
    """The row of preset `name` for this model (InputError naming the closest preset otherwise)."""
    key = str(name).strip().lower()
    if key not in PRESET_NAMES:
        raise InputError(unknown_word("preset", str(name), PRESET_NAMES), field=field)
    family = model_family(variant)
    for row in PRESETS:
        if row.name == key and row.family == family:
            return row
    raise InputError(f"preset {key} has no settings for {family} models", field=field)  # pragma: no cover


def lora_folders(comfy_root: str | Path | None = None) -> list[Path]:
    """Where preset LoRAs are looked for: `comfy_root` (or $YINGXI_COMFY_ROOT)/models/loras, and /loras
    for a root that is ComfyUI's models folder itself."""
    root = comfy_root or os.environ.get("YINGXI_COMFY_ROOT")
    if not root:
        return []
    root = Path(root).expanduser()
    return [root / "models" / "loras", root / "loras"]


def _find(names: Sequence[str], folders: Sequence[Path]) -> Path | None:
    """The first of `names` in `folders`: a bare file name also one folder down (ComfyUI users sort LoRAs
    into subfolders), a name with its release folder (lightx2v's layout) only there."""
    for folder in folders:
        for name in names:
            nested = () if "/" in name else sorted(folder.glob(f"*/{name}"))
            for candidate in (folder / name, *nested):
                if candidate.is_file():
                    return candidate
    return None


def find_preset_loras(
    preset: Preset, comfy_root: str | Path | None = None
) -> tuple[list[tuple[Path, float]], list[tuple[Path, float]] | None]:
    """(LoRAs of the model or high-noise expert, low-noise expert's or None) the preset needs, found by
    name in the ComfyUI loras folder; InputError naming the files and where they were looked for."""
    if not preset.loras:
        raise InputError(
            f"preset {preset.name} needs a distillation LoRA, and none is published for {preset.family} "
            "models: give one with --lora FILE (the preset then sets steps, shift, sampler and guidance)",
            field="preset",
        )
    folders = lora_folders(comfy_root)
    found: list[list[tuple[Path, float]]] = []
    for names in (preset.loras, preset.loras_2):
        if not names:
            continue
        path = _find(names, [f for f in folders if f.is_dir()])
        if path is None:
            where = (
                ", ".join(str(f) for f in folders) or "nowhere: no --comfy-root or YINGXI_COMFY_ROOT given"
            )
            present = [p.name for f in folders if f.is_dir() for p in f.rglob("*.safetensors")]
            near = closest(Path(names[0]).name, present)
            hint = f'; closest file there: "{near}"' if near else ""
            raise InputError(
                f"preset {preset.name} for {preset.family} needs {' or '.join(names)}; looked in {where}"
                f"{hint} (or give the file with --lora)",
                field="preset",
            )
        found.append([(path, preset.strength)])
    return found[0], (found[1] if len(found) > 1 else None)
