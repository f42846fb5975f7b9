"""What a clip costs in transformer forward passes, known before any weights load (`yingxi plan`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from yingxi.errors import InputError
from yingxi.models.wan.config import WanVariant
from yingxi.samplers import FlowSchedule, flow_schedule, step_list_schedule
from yingxi.samplers.schedules import ScheduleKind

__all__ = ["check_step_list", "sampling_schedule", "transformer_evaluations"]

Sampler = Literal["unipc", "euler"]


def check_step_list(step_list: Sequence[int], steps: int) -> None:
    """InputError unless `step_list` is empty or `steps` descending timesteps in 1..1000."""
    if step_list and (
        steps != len(step_list)
        or any(not 0 < t <= 1000 for t in step_list)
        or list(step_list) != sorted(step_list, reverse=True)
    ):
        raise InputError(
            f"denoising_step_list must be {steps} descending timesteps in 1..1000, got {list(step_list)}",
            field="denoising_step_list",
        )


def sampling_schedule(
    steps: int, shift: float, sampler: Sampler, schedule: ScheduleKind, step_list: Sequence[int] = ()
) -> FlowSchedule:
    """The sigma grid of a run: a distillation's own step list where it has one, else `schedule`'s."""
    if step_list:
        return step_list_schedule(step_list, shift)
    return flow_schedule(steps, shift, solver=sampler, schedule=schedule)


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
    denoising_step_list: Sequence[int] | None = None,
) -> int:
    """How many transformer forward passes one clip costs: one per step, two where that step's expert
    guides (scale != 1); A14B switches experts where `WanPipeline` does. Needs no weights."""
    two = variant.two_experts if two_experts is None else two_experts
    shift = float(variant.shift if shift is None else shift)
    scale_2 = guidance_2 if guidance_2 is not None else (variant.guidance_scale_2 or guidance)
    if not two:
        return steps * (1 if guidance == 1 else 2)
    plan = sampling_schedule(steps, shift, sampler, schedule, tuple(denoising_step_list or ()))
    boundary = variant.boundary_ratio * plan.num_train_timesteps
    high = sum(1 for sigma in plan.sigmas[:-1] if plan.timestep(sigma) >= boundary)
    return high * (1 if guidance == 1 else 2) + (steps - high) * (1 if scale_2 == 1 else 2)
