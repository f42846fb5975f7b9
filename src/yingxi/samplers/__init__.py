"""Sampling as pure functions: flow-matching schedules, Euler and UniPC, guidance wrappers."""

from yingxi.samplers.flow import Callback, Denoiser, sample_euler, sample_unipc
from yingxi.samplers.guidance import ConditionalModel, cfg_denoiser, expert_denoiser
from yingxi.samplers.schedules import (
    FlowSchedule,
    flow_schedule,
    flow_sigmas,
    shift_sigmas,
    step_list_schedule,
)

__all__ = [
    "Callback",
    "ConditionalModel",
    "Denoiser",
    "FlowSchedule",
    "cfg_denoiser",
    "expert_denoiser",
    "flow_schedule",
    "flow_sigmas",
    "sample_euler",
    "sample_unipc",
    "shift_sigmas",
    "step_list_schedule",
]
