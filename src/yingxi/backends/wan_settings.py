"""What a Wan shot samples with (`ShotSettings`), how an A14B pair's LoRAs split, and the early check of the
kernels and compile mode: the parts of `backends/wan.py` that need no generator."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yingxi.errors import InputError
from yingxi.models.wan.config import WanVariant

__all__ = ["ShotSettings", "check_speed_now", "split_lora_pair"]


def check_speed_now(runtime: Any) -> None:
    """The kernels and compile mode `load_pipeline` will take on this machine, or InputError now."""
    from yingxi.pipelines.wan.speed import check_speed

    check_speed(runtime.torch_device, runtime.torch_dtype, offload=runtime.offload, attention=runtime.attention,
                cross_attention=runtime.cross_attention, compile=runtime.compile)  # fmt: skip


@dataclass(frozen=True)
class ShotSettings:
    """What a shot samples with once presets and flags are combined (None: the variant's default)."""

    steps: int | None
    guidance: float | None
    guidance_2: float | None  # the low-noise expert's (A14B)
    shift: float | None
    sampler: str
    schedule: str
    loras: tuple  # (((file, strength), ...), low-noise expert's or None: the same)
    step_list: tuple[int, ...] = ()  # the preset's distillation timesteps (used when the steps match)

    def step_list_for(self, steps: int | None) -> tuple[int, ...] | None:
        """The distillation's timesteps if this shot samples that many steps (a --steps override of the
        preset falls back to the schedule's grid)."""
        if self.step_list and (steps is None or int(steps) == len(self.step_list)):
            return self.step_list
        return None


LOW_NOISE = re.compile(r"low[_-]?noise", re.IGNORECASE)


def split_lora_pair(
    variant: WanVariant,
    loras: Sequence[tuple[str | Path, float]],
    loras_2: Sequence[tuple[str | Path, float]] | None,
) -> tuple[list, list | None]:
    """(LoRAs for the model or high-noise expert, low-noise expert's or None: the same). Without explicit
    `loras_2`, an A14B pair's files named *low_noise* (Lightning, most Wan 2.2 trainers) go on the
    low-noise expert and the rest on the high-noise one."""
    loras = list(loras)
    if loras_2 is not None and len(loras_2):
        if not variant.two_experts:
            raise InputError(
                f"{variant.name} has one transformer; --lora-2 is for the low-noise expert of an A14B pair",
                field="--lora-2",
            )
        return loras, list(loras_2)
    if variant.two_experts:
        low = [lora for lora in loras if LOW_NOISE.search(Path(lora[0]).name)]
        if low:
            return [lora for lora in loras if lora not in low], low
    return loras, None
