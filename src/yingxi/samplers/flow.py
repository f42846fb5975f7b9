"""Samplers for flow-matching models: pure functions with one signature, k-diffusion style.

A denoiser here is `denoise(x, sigma) -> v`, the flow velocity v = noise - x0 that Wan predicts
(rectified flow), so x0 = x - sigma * v. `sigmas` is a descending schedule ending in 0
(`yingxi.samplers.flow_sigmas`). `callback` gets a dict per step: i, x (after the step), sigma,
sigma_next, denoised (x0 estimate).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import Tensor

__all__ = ["Callback", "Denoiser", "sample_euler", "sample_unipc"]

Denoiser = Callable[[Tensor, Tensor], Tensor]  # (x, sigma) -> velocity, same shape as x
Callback = Callable[[dict[str, Any]], None]


@torch.no_grad()
def sample_euler(denoise: Denoiser, x: Tensor, sigmas: Tensor, *, callback: Callback | None = None) -> Tensor:
    """Euler's method on the flow ODE dx/dsigma = v (as diffusers' FlowMatchEulerDiscreteScheduler).

    Steps are taken in float32 (float64 if x is) whatever the model's dtype.
    """
    x = x.to(torch.promote_types(x.dtype, torch.float32))
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        v = denoise(x, sigma)
        denoised = x - sigma * v
        x = x + (sigma_next - sigma) * v
        if callback is not None:
            callback({"i": i, "x": x, "sigma": sigma, "sigma_next": sigma_next, "denoised": denoised})
    return x


def _lambda(sigma: Tensor) -> Tensor:
    """Half log-SNR of the flow path x = (1 - s) x0 + s noise: log(alpha) - log(sigma) with alpha = 1 - s."""
    return torch.log(1 - sigma) - torch.log(sigma)


def _unipc_coefficients(
    sigmas: Tensor, target: int, source: int, earlier: list[int], order: int, variant: str
) -> tuple[Tensor, Tensor, Tensor, Tensor, list[Tensor]]:
    """Shared terms of UniP and UniC from sigmas[source] to sigmas[target] (Zhao et al. 2023, alg. 2, B(h)).

    Returns alpha_t, sigma_t/sigma_s0, h*phi_1, B(h), the rk ratios of the earlier points, and the
    (order,) right-hand side b with the Vandermonde rows R (as lists for the caller to solve).
    """
    sigma_t, sigma_s0 = sigmas[target], sigmas[source]
    alpha_t = 1 - sigma_t
    lambda_s0 = _lambda(sigma_s0)
    h = _lambda(sigma_t) - lambda_s0
    rks = [(_lambda(sigmas[s]) - lambda_s0) / h for s in earlier]
    rks_all = torch.stack([*rks, torch.ones(())])
    hh = -h  # data prediction (predict_x0)
    h_phi_1 = torch.expm1(hh)  # h * phi_1(h) = e^h - 1
    h_phi_k = h_phi_1 / hh - 1
    b_h = hh if variant == "bh1" else torch.expm1(hh)
    rows, rhs, factorial = [], [], 1
    for k in range(1, order + 1):
        rows.append(torch.pow(rks_all, k - 1))
        rhs.append(h_phi_k * factorial / b_h)
        factorial *= k + 1
        h_phi_k = h_phi_k / hh - 1 / factorial
    return alpha_t, sigma_t / sigma_s0, h_phi_1, b_h, [torch.stack(rows), torch.stack(rhs), rks]


@torch.no_grad()
def sample_unipc(
    denoise: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    order: int = 2,
    variant: Literal["bh1", "bh2"] = "bh2",
    callback: Callback | None = None,
) -> Tensor:
    """UniPC multistep predictor-corrector in data prediction (Zhao et al. 2023, "UniPC", arXiv:2302.04867).

    Reproduces diffusers' UniPCMultistepScheduler(use_flow_sigmas=True, prediction_type="flow_prediction",
    predict_x0=True), Wan's default: a UniC correction with each new model output (none after the last
    predictor step, which costs no model call), warm-up from order 1, and lower orders at the end
    (always: the last step lands on sigma = 0 where h is infinite and only order 1 is defined; there it
    returns the last x0 estimate, where diffusers' bh1 computes inf * 0 = nan).
    """
    if order not in (1, 2, 3):
        raise ValueError(f"order must be 1, 2 or 3, got {order}")
    if variant not in ("bh1", "bh2"):
        raise ValueError(f'variant must be "bh1" or "bh2", got "{variant}"')
    x = x.to(torch.promote_types(x.dtype, torch.float32))  # latents stay full precision across steps
    # The step coefficients are scalars: work them out on the CPU (as diffusers keeps its sigmas there),
    # so a schedule handed over on the GPU neither mixes devices nor syncs for every tiny op.
    sigmas = sigmas.detach().to("cpu", torch.float32)
    num_steps = len(sigmas) - 1
    history: list[Tensor] = []  # x0 estimates, newest last, at most `order`
    last_x: Tensor | None = None  # x before the last predictor step
    this_order = 1
    for i in range(num_steps):
        v = denoise(x, sigmas[i])
        x0 = x - sigmas[i] * v  # (B, C, ...) data prediction from the flow velocity
        if last_x is not None:
            x = _unic(sigmas, i, history, x0, last_x, this_order, variant)
        history = [*history, x0][-order:]
        this_order = min(order, num_steps - i, len(history))  # warm-up: one more order per step taken
        last_x = x
        x = _unip(sigmas, i, history, x, this_order, variant)
        if callback is not None:
            callback({"i": i, "x": x, "sigma": sigmas[i], "sigma_next": sigmas[i + 1], "denoised": x0})
    return x


def _unip(sigmas: Tensor, i: int, history: list[Tensor], x: Tensor, order: int, variant: str) -> Tensor:
    """UniP-p predictor from sigmas[i] to sigmas[i + 1] using the last `order` x0 estimates."""
    m0 = history[-1]
    earlier = [i - k for k in range(1, order)]
    alpha_t, ratio, h_phi_1, b_h, (rows, rhs, rks) = _unipc_coefficients(
        sigmas, i + 1, i, earlier, order, variant
    )
    x_next = ratio * x - alpha_t * h_phi_1 * m0
    if order > 1:
        d1s = [(history[-(k + 1)] - m0) / rks[k - 1] for k in range(1, order)]
        if order == 2:
            rhos = torch.full((1,), 0.5)  # UniPC's fixed rho for p = 2
        else:
            rhos = torch.linalg.solve(rows[:-1, :-1], rhs[:-1])
        x_next = x_next - alpha_t * b_h * sum(r * d for r, d in zip(rhos, d1s, strict=True))
    return x_next.to(x.dtype)


def _unic(
    sigmas: Tensor, i: int, history: list[Tensor], x0_t: Tensor, last_x: Tensor, order: int, variant: str
) -> Tensor:
    """UniC-p corrector of the step sigmas[i - 1] -> sigmas[i] once the model output x0_t at sigmas[i] is known."""
    m0 = history[-1]
    earlier = [i - 1 - k for k in range(1, order)]
    alpha_t, ratio, h_phi_1, b_h, (rows, rhs, rks) = _unipc_coefficients(
        sigmas, i, i - 1, earlier, order, variant
    )
    rhos = torch.full((1,), 0.5) if order == 1 else torch.linalg.solve(rows, rhs)
    d1s = [(history[-(k + 1)] - m0) / rks[k - 1] for k in range(1, order)]
    corr = sum((r * d for r, d in zip(rhos[:-1], d1s, strict=True)), 0)
    x_t = ratio * last_x - alpha_t * h_phi_1 * m0 - alpha_t * b_h * (corr + rhos[-1] * (x0_t - m0))
    return x_t.to(last_x.dtype)
