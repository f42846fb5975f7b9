"""Guidance as wrappers: each takes denoisers or a conditional model and builds a plain denoiser."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from yingxi.samplers.flow import Denoiser

__all__ = ["ConditionalModel", "cfg_denoiser", "expert_denoiser"]

# model_fn(x, sigma, cond) -> velocity; `cond` is whatever the model is conditioned on (e.g. text embeddings).
ConditionalModel = Callable[[Tensor, Tensor, Any], Tensor]


def cfg_denoiser(
    model_fn: ConditionalModel,
    cond: Any,
    uncond: Any,
    scale: float,
    *,
    batch: Callable[[Any, Any], Any] | None = None,
) -> Denoiser:
    """Classifier-free guidance (Ho & Salimans 2022): v = v_uncond + scale * (v_cond - v_uncond).

    At scale 1 that is v_cond, so the unconditional pass is skipped (half the model calls). With `batch`
    (cond, uncond) -> one conditioning of batch 2B, cond first, both passes go through the model as one
    call on [x; x]: the same 2 evaluations, 1 call (fuller kernels on a GPU, twice the activations).
    """

    def denoise(x: Tensor, sigma: Tensor) -> Tensor:
        if scale != 1 and batch is not None:
            v_cond, v_uncond = model_fn(torch.cat([x, x]), sigma, batch(cond, uncond)).chunk(
                2
            )  # 2 x (B, ...)
            return v_uncond + scale * (v_cond - v_uncond)
        v_cond = model_fn(x, sigma, cond)
        if scale == 1:
            return v_cond
        v_uncond = model_fn(x, sigma, uncond)
        return v_uncond + scale * (v_cond - v_uncond)

    return denoise


def expert_denoiser(
    high_noise: Denoiser, low_noise: Denoiser, *, boundary: float, timestep: Callable[[Tensor], Tensor]
) -> Denoiser:
    """Wan 2.2 A14B mixture of experts: `high_noise` while timestep(sigma) >= boundary, `low_noise` after.

    `boundary` is boundary_ratio * num_train_timesteps and `timestep` maps a sigma to the model timestep
    (`FlowSchedule.timestep`), the rule of Wan 2.2 and of diffusers' WanPipeline. Each expert carries its
    own guidance scale by being its own `cfg_denoiser`.
    """

    def denoise(x: Tensor, sigma: Tensor) -> Tensor:
        expert = high_noise if timestep(sigma) >= boundary else low_noise
        return expert(x, sigma)

    return denoise
