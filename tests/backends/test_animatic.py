"""The animatic backend: asserts on the frames it shoots (motion direction, scale, borders, title cards)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from yingxi.backends.animatic import AnimaticGenerator, view_homographies
from yingxi.backends.animatic_card import title_card
from yingxi.backends.base import CameraPath, Capabilities, ClipRequest
from yingxi.director.camera import MOVE_PHRASES, PAN_TRAVEL, TILT_TRAVEL, ZOOM_TRAVEL, camera_path
from yingxi.errors import CapabilityError

W, H, F = 160, 96, 16


def texture(
    width: int = W, height: int = H, seed: int = 0, low: int = 30, high: int = 230, blur: float = 1.5
) -> np.ndarray:
    """Smooth random texture, uint8 (H, W, 3): features at several scales for phase correlation."""
    rng = np.random.default_rng(seed)
    noise = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")
    a = np.asarray(noise.filter(ImageFilter.GaussianBlur(blur))).astype(np.float64)
    a = (a - a.min()) / (a.max() - a.min())
    return (low + (high - low) * a).astype(np.uint8)


def dots(points: list[tuple[float, float]], radius: float = 5.0) -> np.ndarray:
    """White discs on a dark ground at the given (x, y) centres, uint8 (H, W, 3)."""
    img = Image.new("RGB", (W, H), (20, 20, 20))
    draw = ImageDraw.Draw(img)
    for x, y in points:
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=(255, 255, 255))
    return np.asarray(img).copy()


def centroid(frame: np.ndarray, x0: int = 0, x1: int = W, y0: int = 0, y1: int = H) -> tuple[float, float]:
    lum = frame[y0:y1, x0:x1].astype(np.float64).mean(axis=2)
    mass = np.where(lum > 128, lum, 0.0)
    ys, xs = np.mgrid[y0:y1, x0:x1]
    return float((xs * mass).sum() / mass.sum()), float((ys * mass).sum() / mass.sum())


def shift_between(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(dx, dy) by which the content of b is displaced from a (phase correlation, integer pixels)."""
    ga, gb = (x.astype(np.float64).mean(axis=2) for x in (a, b))
    win = np.outer(np.hanning(ga.shape[0]), np.hanning(ga.shape[1]))
    fa, fb = np.fft.fft2((ga - ga.mean()) * win), np.fft.fft2((gb - gb.mean()) * win)
    cross = fb * np.conj(fa)
    corr = np.fft.ifft2(cross / (np.abs(cross) + 1e-9)).real
    dy, dx = np.unravel_index(np.argmax(corr), corr.shape)
    h, w = corr.shape
    return float(dx - w if dx > w // 2 else dx), float(dy - h if dy > h // 2 else dy)


def shoot(camera: CameraPath | None = None, n: int = F, **kw) -> np.ndarray:
    kw.setdefault("prompt", "a quiet harbour at dusk")
    kw.setdefault("width", W)
    kw.setdefault("height", H)
    req = ClipRequest(num_frames=n, fps=kw.pop("fps", 24.0), seed=kw.pop("seed", 7), camera=camera, **kw)
    clip = AnimaticGenerator().generate(req)
    assert clip.fps == req.fps
    return clip.frames


def path(kind: str, direction: str | None, speed: str = "normal", n: int = F, seed: int = 0) -> CameraPath:
    return camera_path(kind, direction, speed, n, seed)


def custom(n: int, **curves: list[float]) -> CameraPath:
    base = {
        "offset_x": [0.0] * n,
        "offset_y": [0.0] * n,
        "zoom": [1.0] * n,
        "roll": [0.0] * n,
        "yaw": [0.0] * n,
    }
    base.update(curves)
    return CameraPath(**{k: np.asarray(v, dtype=np.float64) for k, v in base.items()})


# --- shapes, determinism, interface -------------------------------------------------------------------------


def test_interface_and_shapes():
    gen = AnimaticGenerator()
    assert gen.name == "animatic"
    assert gen.capabilities == Capabilities()
    frames = shoot(path("pan", "left", n=13), n=13, width=256, height=144, fps=12.0)
    assert frames.shape == (13, 144, 256, 3) and frames.dtype == np.uint8
    portrait = shoot(None, n=3, width=90, height=160)
    assert portrait.shape == (3, 160, 90, 3)


def test_same_request_gives_identical_frames_and_seeds_change_the_card():
    kw = {"camera": path("handheld", None, seed=3), "title": "Scene one"}
    a, b = shoot(**kw), shoot(**kw)
    assert np.array_equal(a, b)
    c = shoot(seed=8, **kw)
    assert np.abs(a[0].astype(int) - c[0]).mean() > 5.0  # a different palette, not just noise


def test_threads_shoot_the_same_frames():
    req = ClipRequest(
        prompt="x",
        width=W,
        height=H,
        num_frames=12,
        fps=24,
        seed=2,
        camera=path("handheld", None, n=12, seed=2),
        last_frame=texture(seed=9),
    )
    seen: list[float] = []
    threaded = AnimaticGenerator(workers=3).generate(req, progress=seen.append).frames
    assert np.array_equal(threaded, AnimaticGenerator().generate(req).frames)
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) == 12
    with pytest.raises(ValueError, match="workers"):
        AnimaticGenerator(workers=0)


def test_progress_runs_to_one():
    seen: list[float] = []
    req = ClipRequest(
        prompt="x", width=W, height=H, num_frames=9, fps=24, seed=1, camera=path("zoom", "in", n=9)
    )
    AnimaticGenerator().generate(req, progress=seen.append)
    assert len(seen) == 9 and seen[-1] == 1.0
    assert all(0.0 < p <= 1.0 for p in seen) and seen == sorted(seen)


# --- camera moves, measured on the frames -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "direction", "expect_dx", "expect_dy"),
    [
        ("pan", "left", +PAN_TRAVEL * W, 0.0),  # the view moves left, so the picture slides right
        ("pan", "right", -PAN_TRAVEL * W, 0.0),
        ("truck", "left", +PAN_TRAVEL * W, 0.0),
        ("truck", "right", -PAN_TRAVEL * W, 0.0),
        ("tilt", "up", 0.0, +TILT_TRAVEL * H),  # the view moves up, so the picture slides down
        ("tilt", "down", 0.0, -TILT_TRAVEL * H),
    ],
)
def test_translating_moves_displace_the_picture_the_stated_way(kind, direction, expect_dx, expect_dy):
    frames = shoot(path(kind, direction), first_frame=texture())
    dx, dy = shift_between(frames[0], frames[-1])
    # Phase correlation finds integer shifts; the path travels 32 px (x) or 19.2 px (y) here.
    assert abs(dx - expect_dx) <= 1.5 and abs(dy - expect_dy) <= 1.5


def test_crane_up_moves_the_picture_down():
    frames = shoot(path("crane", "up"), first_frame=texture())
    dx, dy = shift_between(frames[0], frames[-1])
    assert dy > 0.1 * H and abs(dx) <= 2


QUADRANT_DOTS = [(W / 2 + sx * W / 4, H / 2 + sy * H / 4) for sx in (-1, 1) for sy in (-1, 1)]


def spread(frame: np.ndarray) -> float:
    """Mean distance of the four quadrant dots from the frame centre."""
    cs = [centroid(frame, x0, x0 + W // 2, y0, y0 + H // 2) for x0 in (0, W // 2) for y0 in (0, H // 2)]
    return float(np.mean([np.hypot(x - W / 2, y - H / 2) for x, y in cs]))


@pytest.mark.parametrize(
    ("kind", "direction", "ratio"),
    [("zoom", "in", 1 + ZOOM_TRAVEL), ("zoom", "out", 1 / (1 + ZOOM_TRAVEL)), ("dolly", "in", 1.25)],
)
def test_zooms_scale_features_about_the_centre(kind, direction, ratio):
    frames = shoot(path(kind, direction), first_frame=dots(QUADRANT_DOTS))
    measured = spread(frames[-1]) / spread(frames[0])
    assert measured == pytest.approx(ratio, rel=0.03)  # centroids of 5 px discs: about 1 px of slack
    # Centred: the dots stay symmetric about the middle of the frame.
    xs = [centroid(frames[-1], x0, x0 + W // 2)[0] for x0 in (0, W // 2)]
    assert abs(np.mean(xs) - W / 2) < 1.0


def test_zoom_in_starts_on_the_keyframe_itself():
    key = texture()
    frames = shoot(path("zoom", "in"), first_frame=key)
    assert np.array_equal(frames[0], key)  # the path fits inside the keyframe, so no margin is added


def test_static_frames_are_the_keyframe():
    key = texture()
    for camera in (None, path("static", None)):
        frames = shoot(camera, first_frame=key)
        assert all(np.array_equal(f, key) for f in frames)


def test_handheld_moves_a_little():
    key = texture(blur=4.0)
    frames = shoot(path("handheld", None, n=24, seed=5), n=24, first_frame=key)
    moved = [not np.array_equal(frames[i], frames[i + 1]) for i in range(23)]
    assert sum(moved) >= 20
    for i in range(1, 24):
        dx, dy = shift_between(frames[0], frames[i])
        assert abs(dx) <= 0.05 * W and abs(dy) <= 0.05 * H  # a shake, not a move: within 8 px / 5 px here
        step = shift_between(frames[i - 1], frames[i])
        assert max(abs(step[0]), abs(step[1])) <= 2.0  # smooth from frame to frame
        assert np.corrcoef(frames[i].ravel(), frames[0].ravel())[0, 1] > 0.3  # unrelated textures give ~0


def test_orbit_turns_the_picture():
    frames = shoot(path("orbit", "right"), first_frame=texture())
    assert np.abs(frames[-1].astype(int) - frames[0]).mean() > 10
    # Turning toward the right edge brings it nearer: of two equal discs, the right one grows.
    turned = shoot(custom(2, yaw=[0.0, 1.0]), n=2, first_frame=dots([(W * 0.25, H / 2), (W * 0.75, H / 2)]))
    lum = turned.astype(np.float64).mean(axis=3) > 128
    left0, right0 = lum[0, :, : W // 2].sum(), lum[0, :, W // 2 :].sum()
    left1, right1 = lum[1, :, : W // 2].sum(), lum[1, :, W // 2 :].sum()
    assert abs(int(left0) - int(right0)) <= 0.05 * left0
    assert right1 > 1.2 * left1


def test_positive_roll_turns_the_picture_clockwise():
    frames = shoot(custom(1, roll=[10.0]), n=1, first_frame=dots([(W * 0.75, H / 2)]))
    x, y = centroid(frames[0])
    assert y > H / 2 + 3  # a dot right of centre swings down


def test_no_empty_borders_at_extreme_paths():
    for width, height in ((W, H), (H, W)):
        bright = texture(width, height, seed=2, low=180, high=250)
        for kind, direction in MOVE_PHRASES:
            for seed in (0, 1):
                cam = camera_path(kind, direction, "fast", F, seed)
                frames = shoot(cam, width=width, height=height, first_frame=bright)
                edges = np.concatenate(
                    [frames[:, 0].reshape(-1, 3), frames[:, -1].reshape(-1, 3)]
                    + [frames[:, :, 0].reshape(-1, 3), frames[:, :, -1].reshape(-1, 3)]
                )
                assert edges.min() >= 170, (kind, direction, width, height)


def test_every_view_stays_inside_the_keyframe():
    for kind, direction in MOVE_PHRASES:
        for speed in ("slow", "fast"):
            maps = view_homographies(camera_path(kind, direction, speed, 20, 4), W, H, 20)
            corners = np.array([[0, 0, 1], [W, 0, 1], [0, H, 1], [W, H, 1]], dtype=np.float64)
            seen = np.einsum("fij,cj->fci", maps, corners)
            xy = seen[..., :2] / seen[..., 2:]
            assert xy[..., 0].min() >= -1e-6 and xy[..., 0].max() <= W + 1e-6
            assert xy[..., 1].min() >= -1e-6 and xy[..., 1].max() <= H + 1e-6


# --- keyframes in and out -----------------------------------------------------------------------------------


def test_dissolves_onto_the_last_frame():
    a, b = texture(seed=3), texture(seed=4)
    frames = shoot(None, first_frame=a, last_frame=b)
    assert np.array_equal(frames[0], a) and np.array_equal(frames[-1], b)
    mid = frames[F // 2].astype(int)
    assert np.abs(mid - (a.astype(int) + b) / 2).mean() < 8  # about halfway through the dissolve
    moving = shoot(path("pan", "left"), first_frame=a, last_frame=b)
    assert np.array_equal(moving[-1], b)  # the shot ends on the last frame even while the camera moves


def test_one_frame_shot_ends_on_the_last_frame():
    a, b = texture(seed=3), texture(seed=4)
    assert np.array_equal(shoot(None, n=1, first_frame=a, last_frame=b)[0], b)


# --- title cards --------------------------------------------------------------------------------------------


def sharp(img: np.ndarray, span: float = 100.0) -> np.ndarray:
    """(H, W) bool: pixels whose 3x3 neighbourhood spans more than `span` levels of luminance (edges of text)."""
    lum = np.pad(img.astype(np.float64).mean(axis=2), 1, mode="edge")
    h, w = img.shape[:2]
    shifted = [lum[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    return np.max(shifted, axis=0) - np.min(shifted, axis=0) > span


def edges(img: np.ndarray) -> int:
    """High-contrast pixels in the frame's central band."""
    h, w = img.shape[:2]
    return int(sharp(img, 120.0)[int(0.3 * h) : int(0.7 * h), int(0.1 * w) : int(0.9 * w)].sum())


def test_title_card_draws_legible_text():
    titled = shoot(None, n=2, width=256, height=144, title="The Ferry", options={"sheen": False})[0]
    blank = shoot(None, n=2, width=256, height=144, title=" ", prompt="", options={"sheen": False})[0]
    assert edges(titled) > 100  # light letters against a dark outline and shadow
    assert edges(blank) == 0  # the ground is a smooth gradient with faint grain
    lum = titled.astype(np.float64).mean(axis=2)
    assert lum[50:94, 40:216].max() > 220  # the letters themselves are near white
    # Without a title the prompt is the text.
    assert np.array_equal(
        shoot(None, n=1, title="", prompt="The Ferry")[0], shoot(None, n=1, title="The Ferry")[0]
    )


@pytest.mark.parametrize(("width", "height"), [(854, 480), (480, 854), (1920, 1080)])
def test_title_type_scales_with_the_frame(width, height):
    card = title_card(width, height, "Harbour", seed=1)
    ys, xs = np.nonzero(card.astype(np.float64).mean(axis=2) > 200)
    cap = ys.max() - ys.min()
    assert 0.022 * np.sqrt(width * height) < cap < 0.09 * np.sqrt(width * height)  # rule + letters
    assert abs((xs.min() + xs.max()) / 2 - width / 2) < 0.02 * width  # centred


def test_long_title_is_wrapped_inside_the_frame():
    for width, height in ((256, 144), (144, 256)):
        card = title_card(width, height, "a very long title that keeps going " * 40, seed=2)
        ys, xs = np.nonzero(card.astype(np.float64).mean(axis=2) > 200)
        assert len(ys) > 200
        assert xs.min() >= 0.05 * width and xs.max() <= 0.95 * width
        assert ys.min() >= 0.05 * height and ys.max() <= 0.95 * height
    unspaced = title_card(256, 144, "影戏" * 200 + "x" * 300, seed=3)
    assert unspaced.shape == (144, 256, 3)


def test_title_card_light_sweeps_and_leaves():
    frames = shoot(None, n=12, title="Dawn")
    card = title_card(W, H, "Dawn", seed=7)
    assert np.array_equal(frames[0], card) and np.array_equal(frames[-1], card)
    diffs = [int(np.abs(f.astype(int) - card).max()) for f in frames[1:-1]]
    assert max(diffs) <= 16 and min(diffs) > 0  # subtle, and alive in every frame between
    still = shoot(None, n=12, title="Dawn", options={"sheen": False})
    assert all(np.array_equal(f, card) for f in still)


# --- bad input ----------------------------------------------------------------------------------------------


def test_bad_requests_say_what_is_wrong():
    with pytest.raises(CapabilityError, match="even width"):
        shoot(None, width=161)
    with pytest.raises(CapabilityError, match="height"):
        shoot(None, height=0)
    with pytest.raises(CapabilityError, match="num_frames|at least 1 frame"):
        shoot(None, n=0)
    with pytest.raises(CapabilityError, match="unknown animatic option"):
        shoot(None, options={"steps": 3})
    with pytest.raises(CapabilityError, match="sheen must be true or false"):
        shoot(None, options={"sheen": "no"})
    with pytest.raises(ValueError, match=r"first_frame must be uint8 \(96, 160, 3\)"):
        shoot(None, first_frame=np.zeros((H, W + 2, 3), np.uint8))
    with pytest.raises(ValueError, match="first_frame"):
        shoot(None, first_frame=np.zeros((H, W, 3), np.float32))
    with pytest.raises(ValueError, match="last_frame"):
        shoot(None, last_frame=np.zeros((H, W), np.uint8))
    with pytest.raises(ValueError, match=r"expected \(16,\)"):
        shoot(path("pan", "left", n=10))
    with pytest.raises(ValueError, match="zoom"):
        shoot(custom(F, zoom=[0.0] * F))


def test_check_rejects_up_front_what_generate_would():
    gen = AnimaticGenerator()
    good = ClipRequest(
        prompt="x", width=W, height=H, num_frames=F, fps=24, seed=0, camera=path("pan", "left")
    )
    gen.check(good)  # no error, no frames
    with pytest.raises(CapabilityError, match="width"):
        gen.check(replace(good, width=7))
    with pytest.raises(ValueError, match=r"expected \(12,\)"):
        gen.check(replace(good, num_frames=12))
    with pytest.raises(ValueError, match="last_frame"):
        gen.check(replace(good, last_frame=np.zeros((H, W, 4), np.uint8)))


@pytest.mark.parametrize(
    ("kind", "direction"), [("pan", "left"), ("tilt", "down"), ("zoom", "in"), ("orbit", "right")]
)
def test_title_text_stays_in_frame_while_the_camera_moves(kind, direction):
    frames = shoot(
        path(kind, direction, "fast"), width=320, height=180, title="The ferry leaves the harbour at night"
    )
    for f in frames:
        text = sharp(f)  # (H, W) letter edges; the card's ground has none
        assert text.sum() > 150  # the title is in every frame
        assert not (text[:, :4].any() or text[:, -4:].any() or text[:4].any() or text[-4:].any())  # whole
