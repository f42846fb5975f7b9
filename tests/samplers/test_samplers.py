"""Schedules and samplers against the diffusers schedulers Wan pipelines are configured with."""

from __future__ import annotations

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode

from yingxi.samplers import (
    cfg_denoiser,
    expert_denoiser,
    flow_schedule,
    flow_sigmas,
    sample_euler,
    sample_unipc,
)


def unipc_scheduler(shift: float, **kwargs) -> UniPCMultistepScheduler:
    # As the Wan-AI/*-Diffusers scheduler_config.json files configure it.
    return UniPCMultistepScheduler(
        prediction_type="flow_prediction",
        use_flow_sigmas=True,
        flow_shift=shift,
        num_train_timesteps=1000,
        **kwargs,
    )


class LinearModel:
    """A random linear 'network': v = W x + b * t / 1000, mixing channels and reading the timestep."""

    def __init__(self, channels: int, dtype: torch.dtype, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.w = (torch.eye(channels) * 0.5 + 0.2 * torch.randn(channels, channels, generator=g)).to(dtype)
        self.b = torch.randn(1, channels, 1, 1, 1, generator=g).to(dtype)

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # x (B, C, F, H, W)
        return torch.einsum("dc,bcfhw->bdfhw", self.w, x) + self.b * (t.to(x.dtype) / 1000)


@pytest.mark.parametrize("steps", [1, 2, 3, 10, 50])
@pytest.mark.parametrize("shift", [1.0, 3.0, 5.0, 12.0])
def test_unipc_schedule_equals_diffusers(steps, shift):
    ref = unipc_scheduler(shift)
    ref.set_timesteps(steps)
    ours = flow_schedule(steps, shift, solver="unipc")
    # Exact: same float64 construction, same float32 cast, same integer truncation.
    assert torch.equal(ours.sigmas, ref.sigmas)
    assert torch.equal(ours.timesteps, ref.timesteps)
    assert ours.timesteps.dtype == torch.int64
    assert torch.equal(flow_sigmas(steps, shift), ref.sigmas)


@pytest.mark.parametrize("steps", [1, 2, 3, 10, 50])
@pytest.mark.parametrize("shift", [1.0, 3.0, 5.0, 12.0])
def test_euler_schedule_equals_diffusers(steps, shift):
    ref = FlowMatchEulerDiscreteScheduler(shift=shift)
    ref.set_timesteps(steps)
    ours = flow_schedule(steps, shift, solver="euler")
    assert torch.equal(ours.sigmas, ref.sigmas)
    assert torch.equal(ours.timesteps, ref.timesteps)


def test_schedule_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_steps"):
        flow_schedule(0, 3.0)
    with pytest.raises(ValueError, match="shift"):
        flow_schedule(4, 0.0)
    with pytest.raises(ValueError, match="unknown solver"):
        flow_schedule(4, 3.0, solver="heun")


def run_diffusers(scheduler, model, x, steps):
    scheduler.set_timesteps(steps)
    for t in scheduler.timesteps:
        x = scheduler.step(model(x, t), t, x, return_dict=False)[0]
    return x


# Tolerances: float64 runs agree to 1e-12 relative; float32 runs to 1e-6 (one float32 rounding per
# operation, a few operations per step, order and grouping kept as diffusers has them).
TOL = {torch.float64: dict(rtol=1e-12, atol=1e-12), torch.float32: dict(rtol=1e-6, atol=1e-6)}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("steps", [1, 3, 8])
def test_euler_trajectory_matches_diffusers(dtype, steps):
    model = LinearModel(4, dtype)
    x = torch.randn(1, 4, 2, 3, 5, generator=torch.Generator().manual_seed(1), dtype=dtype)
    schedule = flow_schedule(steps, 5.0, solver="euler")
    seen = []
    ours = sample_euler(
        lambda x, s: model(x, schedule.timestep(s)),
        x,
        schedule.sigmas,
        callback=lambda d: seen.append(d["i"]),
    )
    ref = run_diffusers(FlowMatchEulerDiscreteScheduler(shift=5.0), model, x, steps)
    # diffusers' Euler step rounds the sample to float32 even for float64 input, so float32 tolerance here.
    torch.testing.assert_close(ours, ref.to(ours.dtype), **TOL[torch.float32])
    assert seen == list(range(steps))
    assert ours.abs().max() > 0.1  # a real trajectory, not zeros


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "steps, order, variant",
    [(1, 2, "bh2"), (2, 2, "bh2"), (6, 2, "bh2"), (6, 1, "bh2"), (7, 3, "bh2"), (6, 2, "bh1"), (6, 3, "bh1")],
)
def test_unipc_trajectory_matches_diffusers(dtype, steps, order, variant):
    model = LinearModel(4, dtype, seed=2)
    x = torch.randn(1, 4, 2, 3, 5, generator=torch.Generator().manual_seed(3), dtype=dtype)
    schedule = flow_schedule(steps, 3.0, solver="unipc")
    ours_steps, denoised = [], []

    def record(d):
        ours_steps.append(d["x"])
        denoised.append(d["denoised"])

    ours = sample_unipc(
        lambda x, s: model(x, schedule.timestep(s)),
        x,
        schedule.sigmas,
        order=order,
        variant=variant,
        callback=record,
    )
    ref = unipc_scheduler(3.0, solver_order=order, solver_type=variant)
    ref.set_timesteps(steps)
    ref_steps, y = [], x
    for t in ref.timesteps:
        y = ref.step(model(y, t), t, y, return_dict=False)[0]
        ref_steps.append(y)
    # Every step of the trajectory, not only the end. diffusers' bh1 turns the last step (to sigma = 0)
    # into nan (alpha_t * B(h) * 0 with B(h) = -inf); there ours lands on the last x0 estimate.
    compared = steps if variant == "bh2" else steps - 1
    for i in range(compared):
        torch.testing.assert_close(ours_steps[i], ref_steps[i].to(ours.dtype), **TOL[dtype])
    torch.testing.assert_close(ours, denoised[-1], rtol=0, atol=1e-6)
    assert torch.isfinite(ours).all()
    assert ours.abs().max() > 0.1


def test_unipc_differs_from_euler():
    """The corrector and second order really act: UniPC and Euler part ways on a non-trivial model."""
    model = LinearModel(3, torch.float64, seed=5)
    x = torch.randn(1, 3, 1, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    sigmas = flow_sigmas(6, 3.0)
    a = sample_unipc(lambda x, s: model(x, s * 1000), x, sigmas)
    b = sample_euler(lambda x, s: model(x, s * 1000), x, sigmas)
    assert (a - b).abs().max() > 1e-3


def test_cfg_denoiser_combines_and_skips_uncond_at_scale_one():
    calls = []

    def model_fn(x, sigma, cond):
        calls.append(cond)
        return x * cond

    x = torch.ones(2)
    torch.testing.assert_close(
        cfg_denoiser(model_fn, 3.0, 1.0, 5.0)(x, torch.tensor(0.5)), torch.full((2,), 11.0)
    )
    assert calls == [3.0, 1.0]
    calls.clear()
    torch.testing.assert_close(
        cfg_denoiser(model_fn, 3.0, 1.0, 1.0)(x, torch.tensor(0.5)), torch.full((2,), 3.0)
    )
    assert calls == [3.0]  # one pass at scale 1


@pytest.mark.parametrize("steps, shift, ratio", [(10, 12.0, 0.875), (8, 5.0, 0.9), (40, 12.0, 0.875)])
def test_expert_denoiser_switches_where_diffusers_does(steps, shift, ratio):
    ref = unipc_scheduler(shift)
    ref.set_timesteps(steps)
    # diffusers WanPipeline: transformer while t >= boundary_ratio * num_train_timesteps, then transformer_2.
    expected = ["high" if t >= ratio * 1000 else "low" for t in ref.timesteps]
    schedule = flow_schedule(steps, shift)
    used = []

    def expert(name):
        def denoise(x, sigma):
            used.append(name)
            return torch.zeros_like(x)

        return denoise

    denoise = expert_denoiser(
        expert("high"), expert("low"), boundary=ratio * 1000, timestep=schedule.timestep
    )
    sample_unipc(denoise, torch.zeros(1, 1, 1, 1, 1), schedule.sigmas)
    assert used == expected
    assert "high" in used and "low" in used


class _CudaCatRule(TorchDispatchMode):
    """What CUDA refuses and CPU-only runs never show: cat/stack of tensors on two devices."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket in (torch.ops.aten.cat, torch.ops.aten.stack):
            devices = {t.device for t in args[0]}
            if len(devices) > 1:
                raise RuntimeError(f"{func} across devices {sorted(map(str, devices))}")
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("order", [1, 2, 3])
def test_unipc_takes_sigmas_on_an_accelerator(order):
    # Fake tensors on the meta device stand in for a GPU (no data, device rules kept): the pipeline hands
    # the schedule over on the latents' device, and the step coefficients must not mix it with CPU tensors.
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        sigmas = mode.from_tensor(flow_sigmas(6, 5.0).to("meta"))
        x = torch.empty(1, 2, 3, 4, 4, device="meta")
        with _CudaCatRule():
            out = sample_unipc(lambda x, sigma: torch.zeros_like(x), x, sigmas, order=order)
    assert out.device.type == "meta" and out.shape == (1, 2, 3, 4, 4) and out.dtype == torch.float32
