"""Image decoding: decoded, never trusted by extension; errors name the file."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from yingxi.errors import InputError
from yingxi.media.image import decode_image_bytes, fit_image, load_image, save_png


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_rgba_is_composited_on_black(tmp_path: Path):
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 128  # half transparent red over black -> about 100
    path = tmp_path / "a.png"
    Image.fromarray(rgba, "RGBA").save(path)
    img = load_image(path)
    assert img.shape == (4, 6, 3) and img.dtype == np.uint8
    assert abs(int(img[0, 0, 0]) - 100) <= 1 and img[0, 0, 1] == 0


def test_exif_orientation_is_applied(tmp_path: Path):
    img = Image.new("RGB", (40, 20), (10, 200, 30))
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "photo.jpg"
    img.save(path, exif=exif.tobytes())
    assert load_image(path).shape == (40, 20, 3)


def test_extension_is_not_trusted(tmp_path: Path):
    path = tmp_path / "really_a_png.jpg"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(path, format="PNG")
    assert load_image(path)[0, 0].tolist() == [1, 2, 3]


@pytest.mark.parametrize(
    "name, content, why",
    [
        ("missing.png", None, "no such file"),
        ("corrupt.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "cannot read image"),
        ("notes.png", b"this is a text file, not a picture\n", "not an image"),
    ],
)
def test_load_errors_name_the_file(tmp_path: Path, name: str, content: bytes | None, why: str):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=why) as info:
        load_image(path)
    assert info.value.file == str(path) and name in str(info.value)


def test_truncated_png_is_an_input_error(tmp_path: Path):
    data = png_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)))
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.png"):
        load_image(path)


def test_decode_bytes_and_limits():
    img = decode_image_bytes(png_bytes(Image.new("RGB", (5, 3), (9, 8, 7))), name="ref.png")
    assert img.shape == (3, 5, 3) and img[1, 1].tolist() == [9, 8, 7]
    with pytest.raises(InputError, match="upload.*empty"):
        decode_image_bytes(b"")
    with pytest.raises(InputError, match="ref.png.*not an image"):
        decode_image_bytes(b"GIF? no", name="ref.png")
    huge = png_bytes(Image.new("L", (8200, 2)))
    with pytest.raises(InputError, match="8200x2 is too large"):
        decode_image_bytes(huge)


def test_fit_image_covers_and_crops_the_centre():
    # 100x50: left quarter red, middle half green, right quarter blue; fit into 48x48 keeps only the middle.
    img = np.zeros((50, 100, 3), np.uint8)
    img[:, :25, 0] = 255
    img[:, 25:75, 1] = 255
    img[:, 75:, 2] = 255
    out = fit_image(img, 48, 48)
    assert out.shape == (48, 48, 3)
    # Lanczos rings a little at the edges of the crop: the interior is pure green within 2 levels.
    assert np.abs(out[:, 2:-2].astype(int) - [0, 255, 0]).max() <= 2
    wide = fit_image(img, 64, 16)  # wider than the source: crops top/bottom instead
    assert wide.shape == (16, 64, 3)
    assert wide[8, 4, 0] > 200 and wide[8, 32, 1] > 200 and wide[8, 60, 2] > 200


def test_save_png_round_trip_atomic(tmp_path: Path):
    img = np.random.default_rng(1).integers(0, 255, (7, 9, 3), np.uint8)
    path = save_png(img, tmp_path / "last.png")
    assert np.array_equal(load_image(path), img)
    assert [p.name for p in tmp_path.iterdir()] == ["last.png"]


def test_16_bit_grey_png_is_scaled_not_clipped(tmp_path: Path):
    ramp = np.linspace(0, 65535, 64).round().astype(np.uint16)[None].repeat(4, axis=0)  # (4, 64)
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)  # Pillow writes (and reads) it as mode I;16
    img = load_image(path)
    expected = np.rint(ramp / 257.0).astype(np.uint8)
    assert np.abs(img[..., 0].astype(int) - expected).max() <= 1  # 8-bit rounding
    assert (img[..., 0] == img[..., 2]).all() and img[0, 32, 0] in (129, 130)


def test_float_and_32_bit_grey_are_scaled(tmp_path: Path):
    half = tmp_path / "half.tiff"
    Image.fromarray(np.full((4, 4), 0.5, np.float32)).save(half)  # mode F, 0..1
    assert load_image(half)[0, 0].tolist() == [128, 128, 128]
    deep = tmp_path / "deep.tiff"
    Image.fromarray(np.full((4, 4), 32896, np.int32)).save(deep)  # mode I holding 16-bit values
    assert load_image(deep)[0, 0].tolist() == [128, 128, 128]


def test_cmyk_jpeg_and_animated_gif(tmp_path: Path):
    cmyk = tmp_path / "print.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(cmyk, quality=100)  # red ink
    r, g, b = load_image(cmyk)[8, 8].tolist()
    assert r > 240 and g < 15 and b < 15
    gif = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert load_image(gif)[0, 0].tolist() == [255, 0, 0]  # the first frame
