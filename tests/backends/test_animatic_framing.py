"""Shot sizes on the animatic (issue 8, item 3): the keyframe's subject grows from extreme wide to extreme
close-up by FRAMING_SCALE, about a focus point, a wider framing shows a fill beyond the keyframe, and camera
moves still move the picture. Also speaker cuts inside a shot (item 4) and title-card palettes (item 12)."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
from PIL import Image, ImageDraw

from yingxi.backends.animatic import AnimaticGenerator
from yingxi.backends.base import ClipRequest
from yingxi.director.camera import FRAMING_SCALE, PAN_TRAVEL, camera_path
from yingxi.director.palette import style_palette
from yingxi.film.model import FRAMINGS

W, H, F = 192, 108, 6
GROUND = 110  # the keyframe's grey ground
RADIUS = 12.0  # the drawn disc's radius at medium


def disc_key(cx: float = W / 2, cy: float = H / 2, radius: float = RADIUS) -> np.ndarray:
    """A white disc of known radius on a grey ground, drawn at 4x and reduced (smooth edges): uint8 (H, W, 3)."""
    img = Image.new("RGB", (4 * W, 4 * H), (GROUND,) * 3)
    ImageDraw.Draw(img).ellipse([4 * (cx - radius), 4 * (cy - radius), 4 * (cx + radius), 4 * (cy + radius)],
                                fill=(255, 255, 255))  # fmt: skip
    return np.asarray(img.resize((W, H), Image.Resampling.BOX)).copy()


def shoot(framing: str, key: np.ndarray, *, move=("static", None), focus=None, fill="blur", n=F, **kw):
    path = camera_path(move[0], move[1], "normal", n, framing=framing, focus=focus, fill=fill)
    request = ClipRequest(prompt="a disc", width=W, height=H, num_frames=n, fps=12.0, seed=1, first_frame=key,
                          camera=path, **kw)  # fmt: skip
    return AnimaticGenerator().generate(request).frames


def disc_radius(frame: np.ndarray) -> float:
    """Radius from the disc's area: pixels brighter than midway between ground and white, sub-pixel weighted."""
    lum = frame.astype(np.float64).mean(axis=2)
    cover = np.clip((lum - GROUND) / (255.0 - GROUND), 0.0, 1.0)
    cover[lum < GROUND + 8] = 0.0  # the ground and its fill are never part of the disc
    return float(np.sqrt(cover.sum() / np.pi))


def disc_centre(frame: np.ndarray) -> tuple[float, float]:
    lum = frame.astype(np.float64).mean(axis=2)
    mass = np.clip(lum - 200.0, 0.0, None)
    ys, xs = np.mgrid[0:H, 0:W]
    return float((xs * mass).sum() / mass.sum()), float((ys * mass).sum() / mass.sum())


def test_extreme_wide_and_extreme_close_up_differ():
    """The bug as filed: both framings of one keyframe gave identical frames."""
    key = disc_key()
    assert not np.array_equal(shoot("extreme wide", key)[0], shoot("extreme close-up", key)[0])


def test_subject_grows_by_the_framing_scale():
    key = disc_key(radius=8.0)  # small enough that the extreme close-up still holds all of it
    radii = {f: disc_radius(shoot(f, key, n=1)[0]) for f in FRAMINGS}
    for framing in FRAMINGS:
        assert radii[framing] == pytest.approx(8.0 * FRAMING_SCALE[framing], rel=0.04), framing
    sizes = [radii[f] for f in FRAMINGS]
    assert sizes == sorted(sizes)  # extreme wide < wide < medium < close-up < extreme close-up
    assert radii["close-up"] / radii["medium"] == pytest.approx(1.5, rel=0.04)
    assert radii["extreme close-up"] / radii["close-up"] == pytest.approx(2.4 / 1.5, rel=0.04)


def test_medium_is_the_keyframe_itself():
    key = disc_key()
    assert np.array_equal(shoot("medium", key)[0], key)


@pytest.mark.parametrize(("fill", "low", "high"), [("blur", 0.55 * GROUND, 0.85 * GROUND), ("black", 0, 2)])
def test_wide_shows_a_fill_beyond_the_keyframe(fill, low, high):
    key = disc_key()
    frame = shoot("extreme wide", key, fill=fill, n=1)[0].astype(np.float64)
    margin_x = round(W * (1 - FRAMING_SCALE["extreme wide"]) / 2)  # the keyframe ends here
    band = frame[:, : margin_x - 2]  # left margin, clear of the resampled edge
    assert low <= band.mean() <= high  # blurred and dimmed copy (not black), or black bars
    inside = frame[H // 2 - 5 : H // 2 + 5, margin_x + 3 : margin_x + 12]  # the keyframe's own ground
    assert inside.mean() == pytest.approx(GROUND, abs=3)


def test_close_up_centres_on_the_focus_point():
    key = disc_key(cx=0.36 * W, cy=0.4 * H, radius=6.0)  # near enough the middle that no clamp applies
    centred = shoot("close-up", key, n=1)[0]
    focused = shoot("close-up", key, focus=(0.36, 0.4), n=1)[0]
    assert disc_centre(focused) == pytest.approx((W / 2, H / 2), abs=1.0)  # the subject is in the middle
    cx, cy = disc_centre(centred)  # without a focus point the centre is magnified: the disc moves outward
    assert cx == pytest.approx(W / 2 + (0.36 - 0.5) * W * 1.5, abs=1.0)
    assert cy == pytest.approx(H / 2 + (0.4 - 0.5) * H * 1.5, abs=1.0)


def test_focus_near_an_edge_keeps_the_view_inside_the_keyframe():
    key = disc_key(cx=4, cy=4, radius=3.0)
    frame = shoot("extreme close-up", key, focus=(0.0, 0.0), n=1)[0]
    assert disc_centre(frame) == pytest.approx((4 * 2.4, 4 * 2.4), abs=1.0)  # the corner, magnified, no fill


def test_moves_still_work_inside_a_framing():
    """A pan in a close-up travels PAN_TRAVEL of the frame, as in a medium shot; a zoom still magnifies."""
    key = disc_key(radius=5.0)
    for framing in ("close-up", "wide"):
        frames = shoot(framing, key, move=("pan", "right"), n=9)
        (x0, _), (x1, _) = disc_centre(frames[0]), disc_centre(frames[-1])
        assert x0 - x1 == pytest.approx(PAN_TRAVEL * W, rel=0.15), framing  # content moves left
    zoomed = shoot("close-up", key, move=("zoom", "in"), n=9)
    assert disc_radius(zoomed[-1]) > 1.25 * disc_radius(zoomed[0])


def test_cuts_switch_the_keyframe_at_their_frame():
    red = np.zeros((H, W, 3), np.uint8)
    red[..., 0] = 200
    blue = np.zeros((H, W, 3), np.uint8)
    blue[..., 2] = 200
    frames = shoot("medium", red, n=10, cuts=((4, blue), (7, red)))
    reds = [f[..., 0].mean() > 150 for f in frames]
    assert reds == [True] * 4 + [False] * 3 + [True] * 3


def test_cuts_are_checked():
    key = disc_key()
    with pytest.raises(ValueError, match="cuts"):
        shoot("medium", key, n=4, cuts=((4, key),))  # past the shot's end
    with pytest.raises(ValueError, match="cuts"):
        shoot("medium", key, n=4, cuts=((2, key[:10]),))  # wrong size


def _hue_sat(rgb: np.ndarray) -> tuple[float, float]:
    h, s, _ = colorsys.rgb_to_hsv(*(rgb / 255.0))
    return h * 360.0, s


@pytest.mark.parametrize("style", ["Ink-wash painting, subdued blue-grey palette.", "水墨，蓝灰色调"])
def test_a_blue_grey_style_gives_blue_grey_title_cards(style):
    palette = tuple(rgb for _, rgb in style_palette(style))
    for seed in range(4):
        request = ClipRequest(prompt="On the ice", width=W, height=H, num_frames=1, fps=12.0, seed=seed,
                              palette=palette)  # fmt: skip
        hue, sat = _hue_sat(AnimaticGenerator().generate(request).frames[0].reshape(-1, 3).mean(axis=0))
        assert 195 <= hue <= 235 and 0.06 <= sat <= 0.4, (seed, hue, sat)  # blue-grey, not green or red


def test_without_colour_words_cards_keep_their_seeded_colours():
    hues = set()
    for seed in range(6):
        request = ClipRequest(prompt="On the ice", width=W, height=H, num_frames=1, fps=12.0, seed=seed)
        hues.add(
            round(_hue_sat(AnimaticGenerator().generate(request).frames[0].reshape(-1, 3).mean(0))[0] / 30)
        )
    assert len(hues) >= 3


def test_title_cards_are_not_reframed():
    """A card's text is laid out for the frame: a close-up of it would cut words off."""
    cards = []
    for framing in ("extreme wide", "extreme close-up"):
        path = camera_path("static", None, "normal", 1, framing=framing)
        request = ClipRequest(
            prompt="On the ice", width=W, height=H, num_frames=1, fps=12.0, seed=3, camera=path
        )
        cards.append(AnimaticGenerator().generate(request).frames[0])
    assert np.array_equal(cards[0], cards[1])
