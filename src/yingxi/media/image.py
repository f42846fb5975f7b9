"""Image I/O: decode what people hand us (never trusting the extension), fit it to a frame, save PNGs."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

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


def fit_image(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale to cover width x height and crop the centre (Lanczos), so the frame is filled without bars."""
    h, w = img.shape[:2]
    if (w, h) == (width, height):
        return img
    scale = max(width / w, height / h)
    # Crop box in source pixels whose aspect matches the target, centred.
    crop_w, crop_h = width / scale, height / scale
    left, top = (w - crop_w) / 2, (h - crop_h) / 2
    image = Image.fromarray(np.ascontiguousarray(img[..., :3]))
    out = image.resize(
        (width, height), Image.Resampling.LANCZOS, box=(left, top, left + crop_w, top + crop_h)
    )
    return np.asarray(out, dtype=np.uint8)


def save_png(img: np.ndarray, path: str | Path) -> Path:
    """Write a PNG atomically: a reader never sees half a file."""
    path = Path(path)
    with replaced_when_done(path) as tmp:
        Image.fromarray(np.ascontiguousarray(img)).save(tmp, format="PNG")
    return path
