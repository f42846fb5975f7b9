"""Wan 2.1 / 2.2 pipelines: built components in, uint8 frames out; `load_pipeline` builds them from disk."""

from yingxi.pipelines.wan.common import WAN_OFFLOAD_ORDER
from yingxi.pipelines.wan.pipeline import StepProgress, WanComponents, WanPipeline

__all__ = ["WAN_OFFLOAD_ORDER", "StepProgress", "WanComponents", "WanPipeline", "load_pipeline"]


def load_pipeline(name_or_path, device="cpu", dtype=None, **kwargs):
    """Build a WanPipeline from a registered variant name or a diffusers-layout folder (see `load.py`)."""
    from yingxi.pipelines.wan.load import load_pipeline as _load

    return _load(name_or_path, device=device, dtype=dtype, **kwargs)
