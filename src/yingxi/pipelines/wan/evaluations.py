"""What a clip costs in transformer forward passes, known before any weights load (`yingxi plan`)."""

from __future__ import annotations

from typing import Literal

from yingxi.models.wan.config import WanVariant
from yingxi.samplers import flow_schedule
from yingxi.samplers.schedules import ScheduleKind

__all__ = ["transformer_evaluations"]

Sampler = Literal["unipc", "euler"]


def transformer_evaluations(
    variant: WanVariant,
    *,
    steps: int,
    guidance: float,
    guidance_2: float | None = None,
    shift: float | None = None,
    sampler: Sampler = "unipc",
    schedule: ScheduleKind = "wan",
    two_experts: bool | None = None,
) -> int:
    """How many transformer forward passes one clip costs: one per step, two where that step's expert
    guides (scale != 1); A14B switches experts where `WanPipeline` does. Needs no weights."""
    two = variant.two_experts if two_experts is None else two_experts
    shift = float(variant.shift if shift is None else shift)
    scale_2 = guidance_2 if guidance_2 is not None else (variant.guidance_scale_2 or guidance)
    if not two:
        return steps * (1 if guidance == 1 else 2)
    plan = flow_schedule(steps, shift, solver=sampler, schedule=schedule)
    boundary = variant.boundary_ratio * plan.num_train_timesteps
    high = sum(1 for sigma in plan.sigmas[:-1] if plan.timestep(sigma) >= boundary)
    return high * (1 if guidance == 1 else 2) + (steps - high) * (1 if scale_2 == 1 else 2)
