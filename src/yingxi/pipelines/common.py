"""What every pipeline family shares: input checks, the initial noise, pixels <-> tensors."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from yingxi.errors import InputError
from yingxi.media.image import fit_image

__all__ = [
    "as_uint8_image",
    "check_frames",
    "check_size",
    "image_to_tensor",
    "initial_latents",
    "latent_shape",
    "video_to_uint8",
]


def check_size(width: int, height: int, multiple: int, *, model: str) -> None:
    """InputError unless both sides are positive multiples of `multiple` (VAE stride x patch size)."""
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or value < multiple or value % multiple:
            raise InputError(
                f"{value} is not a multiple of {multiple} px, which {model} needs "
                f"(e.g. {max(multiple, round(value / multiple) * multiple) if isinstance(value, int) else multiple})",
                field=name,
            )


def check_frames(num_frames: int, *, temporal: int, max_frames: int | None, model: str) -> None:
    """InputError unless num_frames = temporal * k + 1 (the VAE's causal first frame) and within the limit."""
    if not isinstance(num_frames, int) or num_frames < 1 or (num_frames - 1) % temporal:
        near = (
            max(1, round((num_frames - 1) / temporal)) * temporal + 1 if isinstance(num_frames, int) else 81
        )
        raise InputError(
            f"{num_frames} frames: {model} makes {temporal}k+1 frames (e.g. {near})", field="num_frames"
        )
    if max_frames is not None and num_frames > max_frames:
        raise InputError(f"{num_frames} frames: {model} makes at most {max_frames}", field="num_frames")


def latent_shape(
    channels: int, num_frames: int, height: int, width: int, *, temporal: int, spatial: int
) -> tuple[int, int, int, int, int]:
    """(1, C, 1 + (F-1)/temporal, H/spatial, W/spatial): the latent video the sampler works on."""
    return (1, channels, (num_frames - 1) // temporal + 1, height // spatial, width // spatial)


def initial_latents(shape: tuple[int, ...], seed: int | None, device: torch.device) -> Tensor:
    """Gaussian noise from a CPU generator (the same numbers on every device, as diffusers' randn_tensor)."""
    generator = torch.Generator("cpu")
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(int(seed))
    return torch.randn(shape, generator=generator, dtype=torch.float32).to(device)


def as_uint8_image(image: object, *, field: str) -> np.ndarray:
    """uint8 (H, W, 3) from an array or PIL image; InputError naming the field otherwise."""
    if hasattr(image, "convert") and hasattr(image, "size"):  # PIL.Image
        image = np.asarray(image.convert("RGB"))
    if isinstance(image, torch.Tensor):
        raise InputError("pass images as uint8 (H, W, 3) arrays or PIL images, not tensors", field=field)
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    if array.ndim != 3 or array.shape[-1] not in (3, 4) or array.dtype != np.uint8:
        raise InputError(f"expected a uint8 (H, W, 3) image, got {array.dtype} {array.shape}", field=field)
    return np.ascontiguousarray(array[..., :3])


def image_to_tensor(image: np.ndarray, width: int, height: int, device: torch.device) -> Tensor:
    """uint8 (H, W, 3) -> (1, 3, height, width) float32 in [-1, 1], filled to the frame (cover + centre crop)."""
    image = fit_image(image, width, height)
    x = torch.from_numpy(image.astype(np.float32) / 255.0)  # as diffusers' VaeImageProcessor
    x = 2.0 * x - 1.0
    return x.permute(2, 0, 1).unsqueeze(0).to(device)  # (1, 3, H, W)


def video_to_uint8(video: Tensor) -> np.ndarray:
    """(1, 3, F, H, W) in [-1, 1] -> uint8 (F, H, W, 3), rounded as diffusers' numpy_to_pil."""
    x = (video[0].float() / 2 + 0.5).clamp(0, 1)  # (3, F, H, W)
    x = (x * 255).round().to(torch.uint8)
    return x.permute(1, 2, 3, 0).contiguous().cpu().numpy()  # (F, H, W, 3)
