"""Image I/O: decode what people hand us (never trusting the extension), fit it to a frame, save PNGs."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

from yingxi.errors import InputError
from yingxi.media.files import replaced_when_done

MAX_IMAGE_SIDE = 8192  # px; larger uploads are refused before decoding the pixels (decompression bombs)


def _to_8bit(image: Image.Image) -> Image.Image:
    """An "L" image from a 16-bit, 32-bit or float grey one, scaled by range: Pillow's own convert clips
    those at 255, so a 16-bit PNG (mode I;16) would come out nearly all white."""
    a = np.asarray(image)
    if image.mode.startswith("I;16") or (image.mode == "I" and a.size and a.max() > 255):
        a = np.clip(a.astype(np.float64), 0, 65535) / 257.0  # 16-bit full scale -> 8-bit
    elif image.mode == "F" and a.size and np.nanmax(a) <= 1.0:
        a = np.nan_to_num(a.astype(np.float64)) * 255.0  # float images are usually 0..1
    a = np.clip(np.rint(np.nan_to_num(a.astype(np.float64))), 0, 255).astype(np.uint8)
    return Image.fromarray(a, "L")


def _to_rgb(image: Image.Image) -> np.ndarray:
    """uint8 (H, W, 3): EXIF orientation applied, deep grey scaled to 8 bits, alpha composited on black."""
    image = ImageOps.exif_transpose(image)
    if image.mode.startswith("I") or image.mode == "F":
        image = _to_8bit(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(black, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def _decode(source: io.BytesIO | Path, file: str, max_side: int | None) -> np.ndarray:
    try:
        with Image.open(source) as image:
            width, height = image.size
            if max_side is not None and max(width, height) > max_side:
                raise InputError(
                    f"cannot read image: {width}x{height} is too large (at most {max_side} px a side)",
                    file=file,
                )
            image.load()
            return _to_rgb(image)
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError("cannot read image: no such file", file=file) from None
    except IsADirectoryError:
        raise InputError("cannot read image: it is a folder, not a file", file=file) from None
    except PermissionError:
        raise InputError("cannot read image: permission denied", file=file) from None
    except UnidentifiedImageError:
        raise InputError("cannot read image: not an image format we can decode", file=file) from None
    except Image.DecompressionBombError as e:
        raise InputError(f"cannot read image: too large ({e})", file=file) from None
    except (OSError, ValueError, SyntaxError) as e:  # Pillow reports truncated/corrupt data this way
        raise InputError(f"cannot read image: corrupt or truncated ({e})", file=file) from None


def load_image(path: str | Path) -> np.ndarray:
    """uint8 (H, W, 3) RGB from a file; InputError naming the file when it cannot be decoded."""
    path = Path(path)
    return _decode(path, str(path), MAX_IMAGE_SIDE * 4)


def decode_image_bytes(data: bytes, *, name: str = "upload") -> np.ndarray:
    """uint8 (H, W, 3) RGB from uploaded bytes; refuses sides over MAX_IMAGE_SIDE."""
    if not data:
        raise InputError("cannot read image: it is empty", file=name)
    return _decode(io.BytesIO(data), name, MAX_IMAGE_SIDE)


FITS = (
    "cover",
    "contain",
    "blur",
)  # crop to fill; whole image with black bars; whole image on a blurred fill
BLUR_RADIUS = 0.04  # blurred fill's Gaussian radius, fraction of the frame's longer side
BLUR_DIM = 0.7  # the fill is darkened to this, so the picture itself stands out


def cover_kept(src_w: int, src_h: int, width: int, height: int) -> float:
    """Fraction of a src_w x src_h image's area that a cover fit to width x height keeps (1.0: nothing cut)."""
    a, b = src_w / src_h, width / height
    return min(a, b) / max(a, b)


def _resize(img: np.ndarray, width: int, height: int, box: tuple[float, float, float, float] | None = None):
    image = Image.fromarray(np.ascontiguousarray(img[..., :3]))
    return np.asarray(image.resize((width, height), Image.Resampling.LANCZOS, box=box), dtype=np.uint8)


def blurred_fill(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """uint8 (height, width, 3): the image covering the frame, blurred and dimmed, to sit behind it."""
    small_w, small_h = max(2, width // 8), max(2, height // 8)  # blur at 1/8 size: same look, 64x cheaper
    back = Image.fromarray(fit_image(img, small_w, small_h, "cover"))
    back = back.filter(ImageFilter.GaussianBlur(BLUR_RADIUS * max(small_w, small_h)))
    back = back.resize((width, height), Image.Resampling.BILINEAR)
    return (np.asarray(back, dtype=np.float32) * BLUR_DIM + 0.5).astype(np.uint8)


def fit_image(img: np.ndarray, width: int, height: int, fit: str = "cover") -> np.ndarray:
    """The image at width x height (Lanczos). cover: scaled to fill and the centre cropped; contain: all of it,
    with black bars; blur: all of it, on a blurred, dimmed copy of itself instead of bars."""
    if fit not in FITS:
        raise ValueError(f"fit is one of {', '.join(FITS)}, got {fit!r}")
    h, w = img.shape[:2]
    if (w, h) == (width, height):
        return img
    if fit == "cover":
        scale = max(width / w, height / h)
        crop_w, crop_h = width / scale, height / scale  # crop box in source pixels, the target's aspect
        left, top = (w - crop_w) / 2, (h - crop_h) / 2
        return _resize(img, width, height, (left, top, left + crop_w, top + crop_h))
    scale = min(width / w, height / h)
    inner_w, inner_h = max(1, min(width, round(w * scale))), max(1, min(height, round(h * scale)))
    if fit == "contain":
        out = np.zeros((height, width, 3), np.uint8)
    else:
        out = blurred_fill(img, width, height)
    x0, y0 = (width - inner_w) // 2, (height - inner_h) // 2
    out[y0 : y0 + inner_h, x0 : x0 + inner_w] = _resize(img, inner_w, inner_h)
    return out


def side_by_side(images: list[np.ndarray], width: int, height: int, fit: str = "cover") -> np.ndarray:
    """A group shot: uint8 (height, width, 3) with each image fitted into its own equal-width column, left to
    right in order (a two-shot for two)."""
    if not images:
        raise ValueError("side_by_side needs at least one image")
    n = len(images)
    edges = [round(i * width / n) for i in range(n + 1)]
    out = np.empty((height, width, 3), np.uint8)
    for img, x0, x1 in zip(images, edges, edges[1:], strict=False):
        out[:, x0:x1] = fit_image(img, x1 - x0, height, fit)
    return out


def save_png(img: np.ndarray, path: str | Path) -> Path:
    """Write a PNG atomically: a reader never sees half a file."""
    path = Path(path)
    with replaced_when_done(path) as tmp:
        Image.fromarray(np.ascontiguousarray(img)).save(tmp, format="PNG")
    return path


def image_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) as shown (EXIF rotation applied) from the file's header alone, or None when it cannot
    be read: the planner's notes use it, and the decode that follows reports the error with its field."""
    try:
        with Image.open(path) as image:
            w, h = image.size
            orientation = image.getexif().get(0x0112, 1)  # 5-8: stored turned a quarter
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)
