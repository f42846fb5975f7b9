"""Text to video: the noise is the whole input; only the text conditions the transformer."""

from __future__ import annotations

import torch

from yingxi.pipelines.wan.common import TaskInputs

__all__ = ["t2v_inputs"]


def t2v_inputs(shape: tuple[int, ...], *, per_token_timesteps: bool, device: torch.device) -> TaskInputs:
    """Nothing to add for Wan 2.1 / A14B; TI2V-5B is trained with per-token timesteps, all equal here."""
    if not per_token_timesteps:
        return TaskInputs()
    _, _, f, h, w = shape
    return TaskInputs(keep=torch.ones(1, 1, f, h, w, device=device))
