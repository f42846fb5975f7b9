"""yingxi (影戏): open, self-hostable multi-shot video generation."""

__version__ = "0.1.0"


def load_pipeline(name_or_path, device="cpu", dtype=None, **options):
    """Load a Wan pipeline by variant name or folder (imports torch lazily); `options` as
    `yingxi.pipelines.wan.load_pipeline` takes them (offload, sampler, schedule, loras, loras_2, ...)."""
    from yingxi.pipelines.wan import load_pipeline as _load

    return _load(name_or_path, device=device, dtype=dtype, **options)
