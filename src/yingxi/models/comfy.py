"""Find model files where ComfyUI keeps them: `<root>/models/{diffusion_models,unet,text_encoders,vae,
clip_vision,loras}`, by file name with or without its extension (subfolders too, as ComfyUI lists them).

The root comes from `--comfy-root DIR` or `YINGXI_COMFY_ROOT`; it may be the ComfyUI folder or its `models/`.
"""

from __future__ import annotations

import os
from pathlib import Path

from yingxi.errors import InputError, ModelNotFoundError, closest

__all__ = ["FOLDERS", "comfy_root", "find_file", "resolve_file"]

ENV = "YINGXI_COMFY_ROOT"
EXTENSIONS = (".safetensors", ".gguf", ".pth", ".pt", ".bin", ".ckpt")
# What each part of a Wan model is, and the ComfyUI folders it lives in (in the order ComfyUI searches).
FOLDERS: dict[str, tuple[str, ...]] = {
    "model": ("diffusion_models", "unet"),
    "text_encoder": ("text_encoders", "clip"),
    "vae": ("vae",),
    "image_encoder": ("clip_vision",),
    "lora": ("loras",),
}


def comfy_root(root: str | Path | None = None) -> Path | None:
    """The ComfyUI `models/` folder from `root` or $YINGXI_COMFY_ROOT, or None when neither is set."""
    text = str(root) if root is not None else os.environ.get(ENV, "").strip()
    if not text:
        return None
    path = Path(text).expanduser()
    if not path.is_dir():
        raise ModelNotFoundError(f"{path}: ComfyUI root not found (--comfy-root / {ENV})")
    return path / "models" if (path / "models").is_dir() else path


def _files(models: Path, part: str) -> list[Path]:
    out: list[Path] = []
    for sub in FOLDERS[part]:
        folder = models / sub
        if folder.is_dir():
            out.extend(sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in EXTENSIONS))
    return out


def find_file(name: str, part: str, root: str | Path | None = None) -> Path:
    """The file called `name` (extension optional, subfolder allowed) in the ComfyUI folders for `part`;
    InputError naming the closest file name when nothing matches."""
    models = comfy_root(root)
    if models is None:
        raise ModelNotFoundError(f"{name}: no such file (and no --comfy-root / {ENV} to look it up in)")
    files = _files(models, part)
    want = name.replace("\\", "/").lower()
    for file in files:
        for sub in FOLDERS[part]:
            rel = (
                file.relative_to(models / sub).as_posix().lower() if file.is_relative_to(models / sub) else ""
            )
            if want in (rel, rel.rsplit(".", 1)[0], file.name.lower(), file.stem.lower()):
                return file
    names = [f.name for f in files]
    if not names:
        folders = ", ".join(f"{models / s}" for s in FOLDERS[part])
        raise InputError(f'no model files in {folders} (looking for "{name}")', field=part)
    hint = closest(name, names) or closest(Path(name).stem, [f.stem for f in files])
    did = f' (did you mean "{hint}"?)' if hint else ""
    raise InputError(
        f'no {part.replace("_", " ")} file "{name}" in ComfyUI\'s {"/".join(FOLDERS[part])}{did}; '
        f"there: {', '.join(names[:12])}{' ...' if len(names) > 12 else ''}",
        field=part,
    )


def resolve_file(name: str | Path, part: str, root: str | Path | None = None) -> Path:
    """`name` itself when it is a file on disk, else its ComfyUI file (see `find_file`)."""
    path = Path(name).expanduser()
    if path.is_file():
        return path
    if path.exists():
        raise InputError(f"{path} is a folder; give one {part.replace('_', ' ')} file", field=part)
    return find_file(str(name), part, root)
