"""Where model weights live on disk, and fetching them from the Hugging Face Hub.

A variant is looked for, in order, in `$YINGXI_MODELS/<name>`, `~/.cache/yingxi/models/<name>` and the
local Hugging Face cache (the Wan-AI `-Diffusers` repo, else the original-layout repo of the same model). Nothing here touches the
network except `pull`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from yingxi.errors import ModelNotFoundError
from yingxi.models.wan.config import VARIANTS, WanVariant, get_variant

__all__ = [
    "is_model_folder", "list_models", "local_path", "models_dir", "original_repo_id", "pull", "search_paths",
]  # fmt: skip


def models_dir() -> Path:
    """Where `pull` puts weights: `$YINGXI_MODELS`, else `~/.cache/yingxi/models`."""
    env = os.environ.get("YINGXI_MODELS")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "yingxi" / "models"


def search_paths(name: str) -> list[Path]:
    """The folders `local_path` tries for a variant name, in order (the HF cache aside)."""
    paths = []
    env = os.environ.get("YINGXI_MODELS")
    if env:
        paths.append(Path(env).expanduser() / name)
    paths.append(Path.home() / ".cache" / "yingxi" / "models" / name)
    return paths


def is_model_folder(path: Path) -> bool:
    """A Wan model folder: diffusers layout (`model_index.json` beside `transformer/` or `transformer_2/`),
    or Wan's original one (`Wan2.x_VAE.pth` beside `config.json` or the A14B `high_noise_model/`)."""
    if (path / "model_index.json").is_file():
        return (path / "transformer").is_dir() or (path / "transformer_2").is_dir()
    return any(path.glob("Wan2.*_VAE.pth")) and (
        (path / "config.json").is_file() or (path / "high_noise_model").is_dir()
    )


def _as_variant(variant: WanVariant | str) -> WanVariant:
    return variant if isinstance(variant, WanVariant) else get_variant(variant)


def _hf_cached(repo_id: str) -> Path | None:
    """The complete snapshot of `repo_id` in the local HF cache, without any network access."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        path = Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None
    return path if is_model_folder(path) else None


def local_path(variant: WanVariant | str) -> Path | None:
    """The folder holding `variant`'s weights, or None when they are not on this machine."""
    variant = _as_variant(variant)
    for path in search_paths(variant.name):
        if is_model_folder(path):
            return path
    # The Wan-AI -Diffusers repo, else the original-layout repo it was converted from (same name without it).
    return _hf_cached(variant.repo_id) or _hf_cached(original_repo_id(variant))


def original_repo_id(variant: WanVariant) -> str:
    """The Hugging Face repo of the variant in Wan's original layout (e.g. Wan-AI/Wan2.1-T2V-1.3B)."""
    return re.sub(r"-diffusers$", "", variant.repo_id, flags=re.IGNORECASE)


def list_models() -> list[tuple[WanVariant, bool, Path | None]]:
    """Every registered variant with whether its weights are here and where."""
    out = []
    for variant in VARIANTS.values():
        path = local_path(variant)
        out.append((variant, path is not None, path))
    return out


def where_to_put(variant: WanVariant) -> str:
    """How a person gets the files onto this machine, for error messages."""
    places = " or ".join(str(p) for p in search_paths(variant.name))
    return (
        f"put the diffusers-layout folder of {variant.repo_id} (model_index.json, transformer/, vae/, "
        f"text_encoder/, tokenizer/, ...) at {places}, or run `yingxi models pull {variant.name}` "
        f"on a machine with network access"
    )


def pull(name: str, dest: str | Path | None = None) -> Path:
    """Download a variant's diffusers-layout snapshot to `dest` (default `models_dir() / name`)."""
    from huggingface_hub import constants, snapshot_download

    variant = get_variant(name)
    dest = Path(dest).expanduser() if dest is not None else models_dir() / variant.name
    offline = constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in (
        "1",
        "ON",
        "YES",
        "TRUE",
    )
    try:
        path = Path(snapshot_download(variant.repo_id, local_dir=dest, local_files_only=offline))
    except Exception as exc:  # offline, no network, gated repo, disk full: all end the same way for a person
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
        why = "HF_HUB_OFFLINE is set" if offline else reason
        raise ModelNotFoundError(
            f"could not download {variant.name} from https://huggingface.co/{variant.repo_id} ({why}); "
            f"{where_to_put(variant)}"
        ) from exc
    if not is_model_folder(path):
        raise ModelNotFoundError(
            f"the download of {variant.name} into {path} is incomplete (no model_index.json and transformer/); "
            f"{where_to_put(variant)}"
        )
    return path
