"""Flow-matching noise schedules with a timestep shift, as Wan's schedulers build them.

Rectified flow (Esser et al. 2024, "Scaling Rectified Flow Transformers", eq. 23) samples along
x_sigma = (1 - sigma) * x0 + sigma * noise; Wan shifts sigmas towards the noisy end with
sigma' = shift * sigma / (1 + (shift - 1) * sigma). Two grids are offered, each value for value:
- "wan": Wan's own samplers (Wan-Video/Wan2.1 `wan/utils/fm_solvers_unipc.py` FlowUniPCMultistepScheduler
  built with shift=1 then `set_timesteps(N, shift=s)`, and `get_sampling_sigmas` in `fm_solvers.py` for
  its other solvers): `linspace(1 - 1/T, 0)` for UniPC, `linspace(1, 0)` otherwise, what the Wan authors
  (and the distillations trained on them) sample with;
- "diffusers": diffusers' UniPCMultistepScheduler(use_flow_sigmas=True) / FlowMatchEulerDiscreteScheduler,
  what diffusers' WanPipeline samples with. Its UniPC grid is `linspace(1, 1/T)`: at 50 steps and shift 5,
  27 of the 50 integer timesteps differ from Wan's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "SCHEDULES",
    "FlowSchedule",
    "ScheduleKind",
    "SolverKind",
    "flow_schedule",
    "flow_sigmas",
    "shift_sigmas",
    "step_list_schedule",
]

SolverKind = Literal["unipc", "euler"]
ScheduleKind = Literal["wan", "diffusers"]
SCHEDULES = ("wan", "diffusers")


def shift_sigmas(sigmas: np.ndarray, shift: float) -> np.ndarray:
    """sigma' = shift * sigma / (1 + (shift - 1) * sigma): more of the steps where the noise is high."""
    return shift * sigmas / (1 + (shift - 1) * sigmas)


@dataclass(frozen=True)
class FlowSchedule:
    """Noise levels and the timesteps the model is conditioned on at each of them."""

    sigmas: Tensor  # (N + 1,) float32, descending, the last one 0
    timesteps: Tensor  # (N,) what the network sees at sigmas[i]: int64 for UniPC, float32 for Euler
    num_train_timesteps: int = 1000

    @property
    def num_steps(self) -> int:
        return int(self.timesteps.shape[0])

    def timestep(self, sigma: Tensor | float) -> Tensor:
        """The model timestep for a sigma of this schedule (nearest level, as k-diffusion's sigma_to_t)."""
        index = int(torch.argmin((self.sigmas[:-1] - float(sigma)).abs()))
        return self.timesteps[index]


def _wan_schedule(num_steps: int, shift: float, num_train_timesteps: int, solver: SolverKind) -> FlowSchedule:
    # Wan's FlowUniPCMultistepScheduler(shift=1): its training table is 1 - linspace(1, 1/T, T)[::-1] in
    # float32, so sigma_max = float32(1 - 1/T) and sigma_min = 0; set_timesteps takes
    # linspace(sigma_max, sigma_min, N + 1)[:-1] in float64, shifts it and truncates sigma * T to int64.
    # Its other solvers take get_sampling_sigmas: linspace(1, 0, N + 1)[:N], shifted (no float32 detour).
    if solver == "unipc":
        table = torch.from_numpy(
            1.0 - np.linspace(1, 1 / num_train_timesteps, num_train_timesteps)[::-1].copy()
        )
        table = table.to(torch.float32)
        sigmas = np.linspace(table[0].item(), table[-1].item(), num_steps + 1).copy()[:-1]
    else:
        sigmas = np.linspace(1, 0, num_steps + 1)[:num_steps]
    sigmas = shift_sigmas(sigmas, shift)
    timesteps = torch.from_numpy(sigmas * num_train_timesteps).to(torch.int64)
    sigmas = torch.from_numpy(np.concatenate([sigmas, [0.0]]).astype(np.float32))
    return FlowSchedule(sigmas, timesteps, num_train_timesteps)


def _unipc_schedule(num_steps: int, shift: float, num_train_timesteps: int) -> FlowSchedule:
    # diffusers UniPCMultistepScheduler(use_flow_sigmas=True, flow_shift=shift).set_timesteps(N):
    # linspace(1, 1/T) in float64, shift, nudge 1.0 down by 1e-6, and truncate sigma * T to integers.
    sigmas = np.linspace(1, 1 / num_train_timesteps, num_steps + 1)[:-1]
    sigmas = shift_sigmas(sigmas, shift)
    if np.fabs(sigmas[0] - 1) < 1e-6:
        sigmas[0] -= 1e-6
    timesteps = torch.from_numpy(sigmas * num_train_timesteps).to(torch.int64)  # truncation, as diffusers
    sigmas = torch.from_numpy(np.concatenate([sigmas, [0.0]]).astype(np.float32))
    return FlowSchedule(sigmas, timesteps, num_train_timesteps)


def _euler_schedule(num_steps: int, shift: float, num_train_timesteps: int) -> FlowSchedule:
    # diffusers FlowMatchEulerDiscreteScheduler(shift=shift).set_timesteps(N): the end points come from the
    # already-shifted float32 training table, and the linspace between them is shifted again (their quirk,
    # kept so the numbers agree).
    table = torch.tensor([float(num_train_timesteps), 1.0], dtype=torch.float32) / num_train_timesteps
    table = shift * table / (1 + (shift - 1) * table)
    sigma_max, sigma_min = table[0].item(), table[1].item()
    t = np.linspace(sigma_max * num_train_timesteps, sigma_min * num_train_timesteps, num_steps)
    sigmas = torch.from_numpy(shift_sigmas(t / num_train_timesteps, shift)).to(torch.float32)
    timesteps = sigmas * num_train_timesteps
    return FlowSchedule(torch.cat([sigmas, torch.zeros(1)]), timesteps, num_train_timesteps)


def flow_schedule(
    num_steps: int,
    shift: float,
    *,
    solver: SolverKind = "unipc",
    schedule: ScheduleKind = "diffusers",
    num_train_timesteps: int = 1000,
) -> FlowSchedule:
    """The schedule `schedule`'s scheduler for `solver` builds for `num_steps` steps with `shift`
    ("wan": Wan's own, which `WanPipeline` uses by default; "diffusers": diffusers' WanPipeline's)."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be at least 1, got {num_steps}")
    if shift <= 0:
        raise ValueError(f"shift must be positive, got {shift}")
    if solver not in ("unipc", "euler"):
        raise ValueError(f'unknown solver "{solver}"; accepted: unipc, euler')
    if schedule == "wan":
        return _wan_schedule(num_steps, shift, num_train_timesteps, solver)
    if schedule != "diffusers":
        raise ValueError(f'unknown schedule "{schedule}"; accepted: wan, diffusers')
    if solver == "unipc":
        return _unipc_schedule(num_steps, shift, num_train_timesteps)
    if solver == "euler":
        return _euler_schedule(num_steps, shift, num_train_timesteps)
    raise ValueError(f'unknown solver "{solver}"; accepted: unipc, euler')


def step_list_schedule(
    step_list: Sequence[int], shift: float, *, num_train_timesteps: int = 1000
) -> FlowSchedule:
    """The schedule a step-distilled Wan samples with: its training steps (`denoising_step_list`, e.g.
    [1000, 750, 500, 250]) picked from the shifted 1000-level table, as LightX2V's
    `lightx2v/models/schedulers/wan/step_distill/scheduler.py` WanStepDistillScheduler.set_denoising_timesteps
    builds it: float32 `linspace(1, 0, T + 1)[:-1]`, shifted, timesteps = sigma * T kept as floats (937.5,
    not 937), level T - step for each step; the last step goes to sigma 0. For [1000, 750, 500, 250] and
    any shift this is also ComfyUI's "simple" scheduler at 4 steps (`comfy/samplers.py` simple_scheduler)."""
    steps = [int(s) for s in step_list]
    if (
        not steps
        or any(not 0 < s <= num_train_timesteps for s in steps)
        or steps != sorted(steps, reverse=True)
    ):
        raise ValueError(f"step_list must descend within 1..{num_train_timesteps}, got {list(step_list)}")
    if shift <= 0:
        raise ValueError(f"shift must be positive, got {shift}")
    table = torch.linspace(1.0, 0.0, num_train_timesteps + 1, dtype=torch.float32)[:-1]  # (T,)
    table = shift * table / (1 + (shift - 1) * table)
    index = torch.tensor([num_train_timesteps - s for s in steps])
    sigmas = table[index]  # (N,)
    return FlowSchedule(
        torch.cat([sigmas, torch.zeros(1)]), sigmas * num_train_timesteps, num_train_timesteps
    )


def flow_sigmas(
    num_steps: int,
    shift: float,
    *,
    solver: SolverKind = "unipc",
    schedule: ScheduleKind = "diffusers",
    num_train_timesteps: int = 1000,
) -> Tensor:
    """(N + 1,) float32 sigmas ending in 0, as `flow_schedule(...).sigmas`."""
    return flow_schedule(
        num_steps, shift, solver=solver, schedule=schedule, num_train_timesteps=num_train_timesteps
    ).sigmas
