"""`schedule="wan"` against Wan's own sampler construction; `schedule="diffusers"` against diffusers'.

Wan's package is not installable here, so `wan_reference` rebuilds its grid from the published code:
Wan-Video/Wan2.1 (and Wan2.2) `wan/utils/fm_solvers_unipc.py`, `FlowUniPCMultistepScheduler.__init__`
(num_train_timesteps=1000, shift=1, as `wan/text2video.py` builds it) then `set_timesteps(N, shift=s)`;
and `wan/utils/fm_solvers.py::get_sampling_sigmas` for its other solvers.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from yingxi.samplers.schedules import flow_schedule


def wan_unipc_reference(steps: int, shift: float, T: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    alphas = np.linspace(1, 1 / T, T)[::-1].copy()  # __init__
    table = torch.from_numpy(1.0 - alphas).to(dtype=torch.float32)
    table = 1.0 * table / (1 + (1.0 - 1) * table)  # shift=1 at construction
    sigma_max, sigma_min = table[0].item(), table[-1].item()
    sigmas = np.linspace(sigma_max, sigma_min, steps + 1).copy()[:-1]  # set_timesteps
    sigmas = shift * sigmas / (1 + (shift - 1) * sigmas)
    timesteps = sigmas * T
    sigmas = np.concatenate([sigmas, [0]]).astype(np.float32)
    return torch.from_numpy(sigmas), torch.from_numpy(timesteps).to(dtype=torch.int64)


def wan_sampling_sigmas_reference(steps: int, shift: float, T: int = 1000):
    sigma = np.linspace(1, 0, steps + 1)[:steps]  # get_sampling_sigmas
    sigma = shift * sigma / (1 + (shift - 1) * sigma)
    timesteps = sigma * T  # FlowDPMSolverMultistepScheduler.set_timesteps(sigmas=...)
    sigmas = np.concatenate([sigma, [0]]).astype(np.float32)
    return torch.from_numpy(sigmas), torch.from_numpy(timesteps).to(dtype=torch.int64)


@pytest.mark.parametrize("steps,shift", [(50, 5.0), (40, 12.0), (4, 5.0), (1, 3.0), (30, 1.0)])
def test_wan_unipc_schedule_equals_wans_own(steps, shift):
    sigmas, timesteps = wan_unipc_reference(steps, shift)
    ours = flow_schedule(steps, shift, solver="unipc", schedule="wan")
    assert torch.equal(ours.sigmas, sigmas)  # value for value
    assert torch.equal(ours.timesteps, timesteps)


@pytest.mark.parametrize("steps,shift", [(4, 5.0), (8, 8.0), (50, 3.0)])
def test_wan_euler_schedule_equals_get_sampling_sigmas(steps, shift):
    sigmas, timesteps = wan_sampling_sigmas_reference(steps, shift)
    ours = flow_schedule(steps, shift, solver="euler", schedule="wan")
    assert torch.equal(ours.sigmas, sigmas)
    assert torch.equal(ours.timesteps, timesteps)


@pytest.mark.parametrize("steps,shift", [(50, 5.0), (4, 5.0)])
def test_diffusers_unipc_schedule_equals_diffusers(steps, shift):
    from diffusers import UniPCMultistepScheduler

    ref = UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, num_train_timesteps=1000, flow_shift=shift
    )
    ref.set_timesteps(steps)
    ours = flow_schedule(steps, shift, solver="unipc", schedule="diffusers")
    assert torch.equal(ours.sigmas, ref.sigmas.to(torch.float32))
    assert torch.equal(ours.timesteps, ref.timesteps.to(torch.int64))


def test_the_two_grids_differ_where_the_issue_says():
    """At 50 steps and shift 5, 27 of the 50 integer timesteps differ (so "the same" was wrong)."""
    wan = flow_schedule(50, 5.0, solver="unipc", schedule="wan").timesteps
    diffusers = flow_schedule(50, 5.0, solver="unipc", schedule="diffusers").timesteps
    assert int((wan != diffusers).sum()) == 27
    assert wan[0] == 999 and diffusers[0] == 999  # both start just under T, then part


def test_unknown_schedule_is_refused():
    with pytest.raises(ValueError, match="wan, diffusers"):
        flow_schedule(4, 5.0, schedule="comfy")
