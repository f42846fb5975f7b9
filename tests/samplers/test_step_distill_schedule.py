"""The lightning preset samples exactly the levels its distillations were trained on: our
`step_list_schedule` against LightX2V's and ComfyUI's constructions, reproduced here from their published
code (neither package installs here), value for value; the Euler step and the A14B expert split likewise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from yingxi.models.wan.config import VARIANTS
from yingxi.pipelines.wan.pipeline import transformer_evaluations
from yingxi.pipelines.wan.presets import PRESETS, get_preset
from yingxi.samplers import expert_denoiser, flow_schedule, sample_euler, step_list_schedule

LIGHTNING_STEPS = [1000, 750, 500, 250]


def lightx2v_schedule(step_list, shift, num_train_timesteps=1000):
    """LightX2V (github:ModelTC/LightX2V) lightx2v/models/schedulers/wan/step_distill/scheduler.py,
    WanStepDistillScheduler.__init__ (sigma_max 1, sigma_min 0) and set_denoising_timesteps."""
    sigma_max, sigma_min = 1.0, 0.0
    sigma_start = sigma_min + (sigma_max - sigma_min)
    sigmas = torch.linspace(sigma_start, sigma_min, num_train_timesteps + 1)[:-1]
    sigmas = shift * sigmas / (1 + (shift - 1) * sigmas)
    timesteps = sigmas * num_train_timesteps
    index = [num_train_timesteps - x for x in step_list]
    return sigmas[index], timesteps[index]


def lightx2v_sample(velocity, latents, sigmas):
    """The same file, WanStepDistillScheduler.step_post over every step (float32 latents)."""
    for i in range(len(sigmas)):
        flow_pred = velocity(latents, sigmas[i]).to(torch.float32)
        sigma = sigmas[i].item()
        x = latents.to(torch.float32) - sigma * flow_pred
        if i < len(sigmas) - 1:
            x = x + flow_pred * sigmas[i + 1].item()
        latents = x
    return latents


def lightning_euler(steps, shift, num_train_timesteps=1000):
    """Wan2.2-Lightning (github:ModelTC/Wan2.2-Lightning, stored as yliuls/Wan2.2-Lightning)
    wan/utils/fm_solvers_euler.py: get_timesteps (float32 linspace(T, 0, N + 1)), EulerScheduler.set_shift
    (sigmas = timestep_shift(t / T), timesteps = sigmas * T); wan/text2video.py samples timesteps[:-1] and
    takes the high-noise expert where t >= boundary * T."""
    timesteps = torch.from_numpy(np.linspace(num_train_timesteps, 0, steps + 1, dtype=np.float32))
    sigmas = timesteps / num_train_timesteps
    sigmas = shift * sigmas / (1 + (shift - 1) * sigmas)
    return sigmas, sigmas * num_train_timesteps


def comfy_simple(shift, steps, timesteps=1000, multiplier=1000):
    """ComfyUI (github:Comfy-Org/ComfyUI) comfy/model_sampling.py ModelSamplingDiscreteFlow.set_parameters
    (with time_snr_shift) and comfy/samplers.py simple_scheduler; timestep() is sigma * multiplier."""
    t = torch.arange(1, timesteps + 1, 1) / timesteps * multiplier
    table = (
        t / multiplier if shift == 1.0 else shift * (t / multiplier) / (1 + (shift - 1) * (t / multiplier))
    )
    ss = len(table) / steps
    sigs = [float(table[-(1 + int(x * ss))]) for x in range(steps)] + [0.0]
    return torch.FloatTensor(sigs)


@pytest.mark.parametrize("shift", [5.0, 3.0, 8.0, 1.0])
@pytest.mark.parametrize("steps", [LIGHTNING_STEPS, [1000, 500], [1000, 875, 750, 500, 250, 125]])
def test_step_list_schedule_is_lightx2v_value_for_value(shift, steps):
    ours = step_list_schedule(steps, shift)
    sigmas, timesteps = lightx2v_schedule(steps, shift)
    assert torch.equal(ours.sigmas[:-1], sigmas) and ours.sigmas[-1] == 0
    assert ours.timesteps.dtype == torch.float32 and torch.equal(ours.timesteps, timesteps)


def test_lightning_levels_and_why_the_wan_grid_was_not_them():
    ours = step_list_schedule(LIGHTNING_STEPS, 5.0)
    assert ours.sigmas.tolist() == pytest.approx([1.0, 0.9375, 5 / 6, 0.625, 0.0], abs=1e-7)
    assert ours.timesteps.tolist() == pytest.approx([1000.0, 937.5, 2500 / 3, 625.0], abs=1e-4)
    # Wan's own grid truncates the timesteps to integers: the same sigmas, other time embeddings
    wan = flow_schedule(4, 5.0, solver="euler", schedule="wan")
    assert torch.allclose(wan.sigmas, ours.sigmas) and wan.timesteps.tolist() == [1000, 937, 833, 625]


@pytest.mark.parametrize("shift", [5.0, 3.0, 1.0])
def test_wan22_lightning_euler_scheduler_samples_the_same_levels(shift):
    ours = step_list_schedule(LIGHTNING_STEPS, shift)
    sigmas, timesteps = lightning_euler(4, shift)
    assert torch.allclose(ours.sigmas, sigmas, rtol=0, atol=1e-7)
    assert torch.allclose(ours.timesteps, timesteps[:-1], rtol=0, atol=1e-4)
    for name in ("wan2.2-t2v-a14b", "wan2.2-i2v-a14b") if shift == 5 else ():  # boundary 0.875 / 0.9
        boundary = VARIANTS[name].boundary_ratio * 1000
        assert [t >= boundary for t in timesteps[:-1].tolist()] == [True, True, False, False]


@pytest.mark.parametrize("shift", [5.0, 3.0, 1.0])
def test_comfyui_simple_scheduler_at_4_steps_samples_the_same_sigmas(shift):
    # what ComfyUI users run the lightx2v LoRAs with: Euler/LCM, "simple", ModelSamplingSD3 shift, 4 steps
    ours = step_list_schedule(LIGHTNING_STEPS, shift)
    assert torch.allclose(ours.sigmas, comfy_simple(shift, 4), rtol=0, atol=1e-7)
    assert torch.allclose(ours.timesteps, comfy_simple(shift, 4)[:-1] * 1000, rtol=0, atol=1e-4)


def test_euler_on_the_levels_is_lightx2v_step_post():
    g = torch.Generator().manual_seed(0)
    weights = torch.randn(4, 4, generator=g)
    x = torch.randn(1, 4, 3, 3, generator=g)

    def velocity(latents, sigma):  # some sigma-dependent nonlinear field
        return torch.tanh(torch.einsum("oc,bchw->bohw", weights, latents)) * (1 + float(sigma))

    sched = step_list_schedule(LIGHTNING_STEPS, 5.0)
    ref = lightx2v_sample(velocity, x.clone(), lightx2v_schedule(LIGHTNING_STEPS, 5.0)[0])
    ours = sample_euler(velocity, x.clone(), sched.sigmas)
    assert torch.allclose(
        ours, ref, rtol=0, atol=1e-6
    )  # (a - s v) + s' v vs a + (s' - s) v: float32 rounding


@pytest.mark.parametrize("name", ["wan2.2-t2v-a14b", "wan2.2-i2v-a14b"])
def test_a14b_expert_split_is_lightx2v_boundary_step_index_2(name):
    # LightX2V's configs/distill/wan22/*: boundary_step_index 2; lightx2v/models/runners/wan/wan_distill_runner.py
    # MultiDistillModelStruct runs the high-noise model while step_index < boundary_step_index
    variant = VARIANTS[name]
    row = get_preset("lightning", variant)
    sched = step_list_schedule(row.denoising_step_list, row.shift)
    seen = []
    denoise = expert_denoiser(
        lambda x, s: seen.append("high") or x, lambda x, s: seen.append("low") or x,
        boundary=variant.boundary_ratio * 1000, timestep=sched.timestep,
    )  # fmt: skip
    for sigma in sched.sigmas[:-1]:
        denoise(torch.zeros(1), sigma)
    assert seen == ["high", "high", "low", "low"]
    evaluations = transformer_evaluations(
        variant, steps=4, guidance=3.0, guidance_2=1.0, shift=row.shift, sampler="euler",
        denoising_step_list=row.denoising_step_list,
    )  # fmt: skip
    assert evaluations == 2 * 2 + 2  # the plan counts the same split: two guided high-noise steps


def test_every_lightning_row_carries_lightx2v_step_list():
    for row in PRESETS:
        assert row.denoising_step_list == tuple(LIGHTNING_STEPS) and row.steps == len(row.denoising_step_list)
        assert (row.sampler, row.shift, row.guidance) == ("euler", 5.0, 1.0)


@pytest.mark.parametrize("bad", [[], [1000, 1001], [250, 500], [0]])
def test_bad_step_lists_are_refused(bad):
    with pytest.raises(ValueError):
        step_list_schedule(bad, 5.0)
    assert np.isfinite(step_list_schedule([1000], 5.0).timesteps.numpy()).all()
