"""yingxi (影戏): open, self-hostable multi-shot video generation."""

__version__ = "0.1.0"


def load_pipeline(name_or_path, device="cpu", dtype=None, **kwargs):
    """Load a Wan pipeline by variant name, folder or transformer file (imports torch lazily); kwargs: as
    `yingxi.pipelines.wan.load_pipeline` (offload, schedule, loras, vae=, text_encoder=, model_2=, comfy_root=, ...)."""
    from yingxi.pipelines.wan import load_pipeline as _load

    return _load(name_or_path, device=device, dtype=dtype, **kwargs)
