"""fit_image's three modes (issue 8, item 11) and group shots, on the pixels they give."""

from __future__ import annotations

import numpy as np
import pytest

from yingxi.media.image import cover_kept, fit_image, image_size, side_by_side


def striped(width: int = 200, height: int = 100) -> np.ndarray:
    """Left half red, right half green, a blue frame 8 px wide around it: uint8 (H, W, 3)."""
    img = np.zeros((height, width, 3), np.uint8)
    img[:, : width // 2] = (220, 40, 30)
    img[:, width // 2 :] = (30, 200, 40)
    img[:8], img[-8:], img[:, :8], img[:, -8:] = (20, 30, 230), (20, 30, 230), (20, 30, 230), (20, 30, 230)
    return img


def test_cover_crops_the_sides_and_fills_the_frame():
    out = fit_image(striped(), 100, 100, "cover")  # 2:1 into 1:1: half the width is cut
    assert out.shape == (100, 100, 3)
    assert (
        out[50, 2, 0] > 180 and out[50, -3, 1] > 160
    )  # red and green reach the edges: the blue frame is gone
    assert out[2, 50, 2] > 200  # top and bottom keep it


def test_contain_shows_everything_with_black_bars():
    out = fit_image(striped(), 100, 100, "contain")
    assert out.shape == (100, 100, 3)
    assert out[:23].max() == 0 and out[-23:].max() == 0  # 25 px bars, clear of the resampled edge
    assert out[50, 2, 2] > 200 and out[50, -3, 2] > 200  # the blue frame left and right: nothing cut
    assert out[50, 30, 0] > 180 and out[50, 70, 1] > 160


def test_blur_fills_the_bars_with_a_blurred_copy():
    out = fit_image(striped(), 100, 100, "blur").astype(np.float64)
    contain = fit_image(striped(), 100, 100, "contain")
    assert np.array_equal(out[27:73], contain[27:73])  # the picture itself, as contain places it
    bars = np.concatenate([out[:23], out[-23:]])
    assert bars.mean() > 30  # not black
    assert bars[..., 0][:, :40].mean() > bars[..., 1][:, :40].mean()  # red side above red, green above green
    assert bars[..., 1][:, -40:].mean() > bars[..., 0][:, -40:].mean()
    assert np.abs(np.diff(bars[10], axis=0)).max() < 20  # soft: no hard edge along a row of the fill


def test_same_size_is_returned_as_is_and_unknown_fit_is_refused():
    img = striped()
    for fit in ("cover", "contain", "blur"):
        assert fit_image(img, 200, 100, fit) is img
    with pytest.raises(ValueError, match="fit"):
        fit_image(img, 100, 100, "stretch")


def test_cover_kept_is_the_area_a_cover_fit_keeps():
    assert cover_kept(1280, 720, 1280, 720) == 1.0
    assert cover_kept(1280, 720, 640, 720) == pytest.approx(0.5)
    assert cover_kept(100, 100, 160, 90) == pytest.approx(0.5625)


def test_side_by_side_gives_each_image_its_column():
    red = np.full((60, 60, 3), (220, 30, 30), np.uint8)
    blue = np.full((90, 40, 3), (30, 30, 220), np.uint8)
    out = side_by_side([red, blue], 160, 90)
    assert out.shape == (90, 160, 3)
    assert (out[:, :80, 0] > 200).all() and (out[:, 80:, 2] > 200).all()
    three = side_by_side([red, blue, red], 161, 90)
    assert three.shape == (90, 161, 3) and (three[:, 110:, 0] > 200).all()


def test_image_size_reads_only_the_header(tmp_path):
    from PIL import Image

    Image.new("RGB", (300, 120)).save(tmp_path / "a.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    assert image_size(tmp_path / "a.png") == (300, 120)
    assert image_size(tmp_path / "bad.png") is None and image_size(tmp_path / "missing.png") is None
