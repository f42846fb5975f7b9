"""The embedded default camera: moves a keyframe (or a title card) along the director's path, on CPU.

No weights and no GPU: each frame is one bilinear warp of the keyframe, so a whole film previews in
seconds and every camera move the director plans can be seen before a neural model is asked for it.
"""

from __future__ import annotations

import bisect
import math
import os
from concurrent.futures import ThreadPoolExecutor
from numbers import Real
from typing import Any

import numpy as np
from PIL import Image

from yingxi.backends.animatic_card import TEXT_HEIGHT, TEXT_WIDTH, title_card, type_size
from yingxi.backends.base import CameraPath, Capabilities, Clip, ClipRequest, ShotProgress
from yingxi.backends.checks import refuse_unsupported
from yingxi.director.camera import ease
from yingxi.errors import CapabilityError
from yingxi.media.image import blurred_fill

__all__ = ["AnimaticGenerator", "build_animatic", "view_homographies"]

MAX_YAW_DEG = 12.0  # an orbit's full turn (yaw = +-1) is shown as the picture turning this far
FOCAL = 1.0  # focal length in frame widths for the orbit's perspective (about a 53-degree view)
SHEEN_GAIN = 0.06  # peak of the light that sweeps across a title card, fraction of full white
SHEEN_TINT = (1.0, 0.96, 0.88)  # warm, like a lamp passing
SHEEN_SIGMA = 0.12  # width of that light, fraction of the frame width
SHEEN_SLANT = 0.35  # its lean: x shift per row, so the band runs diagonally
CARD_MAX_SCALE = 2.0  # a title card is drawn up to this much larger than the frame, so zooms stay crisp
OPTIONS = {"sheen": "bool: sweep a soft light across title cards (default true)"}


def _translate(x: float, y: float) -> np.ndarray:
    return np.array([[1.0, 0.0, x], [0.0, 1.0, y], [0.0, 0.0, 1.0]])


def _scale(s: float) -> np.ndarray:
    return np.diag([s, s, 1.0])


def _rotate(degrees: float) -> np.ndarray:
    """Output -> source rotation that shows the picture turned clockwise on screen for positive roll."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])


def _turn(yaw: float, focal: float) -> np.ndarray:
    """Output -> source homography of the picture seen from a camera turned about the vertical axis.

    Pinhole camera with focal length `focal` (pixels) rotated by theta, looking at the picture plane z = focal;
    the centre's shift (focal * tan theta) is removed because an orbit keeps its subject centred. Positive yaw
    (orbit right) brings the picture's right edge nearer, so it appears larger.
    """
    th = -math.radians(MAX_YAW_DEG) * yaw
    c, s = math.cos(th), math.sin(th)
    a = np.array([[focal * c, 0.0, focal * focal * s], [0.0, focal, 0.0], [-s, 0.0, focal * c]])
    return _translate(-focal * math.tan(th), 0.0) @ a


def _check_path(path: CameraPath, num_frames: int) -> None:
    arrays = {
        n: np.asarray(getattr(path, n), dtype=np.float64)
        for n in ("offset_x", "offset_y", "zoom", "roll", "yaw")
    }
    for name, arr in arrays.items():
        if arr.shape != (num_frames,):
            raise ValueError(
                f"camera path {name} has shape {arr.shape}, expected ({num_frames},) for {num_frames} frames"
            )
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"camera path {name} has non-finite values")
    if np.any(arrays["zoom"] <= 0.0):
        raise ValueError("camera path zoom must be > 0")
    if np.any(np.abs(arrays["yaw"]) > 1.0):
        raise ValueError("camera path yaw must be in [-1, 1]")
    framing, focus = path.framing, path.focus
    if not (isinstance(framing, Real) and math.isfinite(framing) and 0.1 <= framing <= 10.0):
        raise ValueError(f"camera path framing must be a scale in [0.1, 10], got {framing!r}")
    if not (len(focus) == 2 and all(isinstance(v, Real) and 0.0 <= v <= 1.0 for v in focus)):
        raise ValueError(f"camera path focus must be (x, y) fractions in [0, 1], got {focus!r}")
    if path.fill not in ("blur", "black"):
        raise ValueError(f'camera path fill must be "blur" or "black", got {path.fill!r}')


def view_homographies(path: CameraPath | None, width: int, height: int, num_frames: int) -> np.ndarray:
    """Per-frame output-pixel -> keyframe-pixel maps, (F, 3, 3), in continuous coordinates (pixel centres at +0.5).

    The view is: perspective turn, roll, 1/zoom, then the offset (fractions of the frame, in screen units at
    zoom 1), about the frame centre. If any frame would see past the keyframe's edge, the whole path is centred
    on the keyframe and magnified once by the least factor that keeps every frame's corners inside it; a path
    that already fits (static, zoom in) is left alone, so its first frame is the keyframe itself.
    """
    w, h = float(width), float(height)
    centre = _translate(-w / 2, -h / 2)
    if path is None:
        views = np.repeat(centre[None], num_frames, axis=0)  # (F, 3, 3)
    else:
        _check_path(path, num_frames)
        views = np.empty((num_frames, 3, 3))
        for i in range(num_frames):
            # Positive offset_y moves the view up, i.e. toward smaller image y.
            move = _translate(float(path.offset_x[i]) * w, -float(path.offset_y[i]) * h)
            view = move @ _scale(1.0 / float(path.zoom[i])) @ _rotate(float(path.roll[i]))
            if path.yaw[i] != 0.0:
                view = view @ _turn(float(path.yaw[i]), FOCAL * w)
            views[i] = view @ centre
    corners = np.array([[0.0, 0.0, 1.0], [w, 0.0, 1.0], [0.0, h, 1.0], [w, h, 1.0]])  # (4, 3)
    seen = np.einsum("fij,cj->fci", views, corners)  # (F, 4, 3)
    seen = seen[..., :2] / seen[..., 2:]  # (F, 4, 2) view coordinates relative to the keyframe centre
    lo, hi = seen.reshape(-1, 2).min(axis=0), seen.reshape(-1, 2).max(axis=0)  # (2,), (2,)
    half = np.array([w / 2, h / 2])
    if np.all(lo >= -half - 1e-9) and np.all(hi <= half + 1e-9):
        shift, margin = np.zeros(2), 1.0
    else:
        shift = -(lo + hi) / 2
        margin = max(1.0, float(np.max((hi - lo) / 2 / half)))
    fit = _translate(w / 2, h / 2) @ _scale(1.0 / margin) @ _translate(float(shift[0]), float(shift[1]))
    maps = fit[None] @ views  # (F, 3, 3)
    return maps / maps[:, 2:3, 2:3]


def _warp(key: Image.Image, m: np.ndarray, width: int, height: int) -> np.ndarray:
    """One bilinear warp of the keyframe: uint8 (H, W, 3). Axis-aligned maps use Pillow's resize, ~3x faster."""
    if abs(m[0, 1]) < 1e-12 and abs(m[1, 0]) < 1e-12 and abs(m[2, 0]) < 1e-15 and abs(m[2, 1]) < 1e-15:
        x0, y0 = m[0, 2], m[1, 2]
        x1, y1 = x0 + m[0, 0] * width, y0 + m[1, 1] * height
        # Rounding can put the box a hair outside the keyframe, which resize refuses; the fit keeps it inside.
        dx, dy = max(0.0, -x0) + min(0.0, key.width - x1), max(0.0, -y0) + min(0.0, key.height - y1)
        box = (
            max(0.0, x0 + dx),
            max(0.0, y0 + dy),
            min(float(key.width), x1 + dx),
            min(float(key.height), y1 + dy),
        )
        out = key.resize((width, height), Image.Resampling.BILINEAR, box=box)
    elif abs(m[2, 0]) < 1e-15 and abs(m[2, 1]) < 1e-15:
        data = (m[0, 0], m[0, 1], m[0, 2], m[1, 0], m[1, 1], m[1, 2])
        out = key.transform((width, height), Image.Transform.AFFINE, data, Image.Resampling.BILINEAR)
    else:
        data = tuple(float(v) for v in m.reshape(-1)[:8])
        out = key.transform((width, height), Image.Transform.PERSPECTIVE, data, Image.Resampling.BILINEAR)
    return np.frombuffer(out.tobytes(), dtype=np.uint8).reshape(height, width, 3)


class _Sheen:
    """A soft diagonal light that crosses a title card once per shot; it starts and ends off-screen.

    The light is added (saturating) from one precomputed band image sliced at a per-frame offset, so it costs
    two uint8 passes over the band's columns.
    """

    def __init__(self, width: int, height: int, num_frames: int):
        sigma = SHEEN_SIGMA * width
        self.reach = int(math.ceil(2.0 * sigma))  # beyond 2 sigma the light is under a level
        self.lean = int(math.ceil(SHEEN_SLANT * (height - 1)))
        self.u0 = self.reach + self.lean  # band centre in the band image at row 0
        u = np.arange(2 * self.reach + self.lean + 1, dtype=np.float64)  # (Wb,)
        y = np.arange(height, dtype=np.float64)  # (H,)
        light = np.exp(-(((u[None, :] + SHEEN_SLANT * y[:, None] - self.u0) / sigma) ** 2))  # (H, Wb)
        self.band = np.rint(light[..., None] * (255.0 * SHEEN_GAIN * np.array(SHEEN_TINT))).astype(np.uint8)
        self.headroom = 255 - self.band  # (H, Wb, 3): clamp first, so the add cannot wrap
        span = width + self.lean
        t = np.linspace(0.0, 1.0, num_frames) if num_frames > 1 else np.zeros(1)
        # (F,) the light's column at row 0: from just left of the frame to just past its right edge.
        self.centres = np.rint(-self.reach + t * (span + 2 * self.reach)).astype(int)

    def apply(self, frame: np.ndarray, i: int) -> None:
        """Lighten `frame` (uint8 (H, W, 3)) in place."""
        c = int(self.centres[i])
        xa, xb = max(0, c - self.reach - self.lean), min(frame.shape[1], c + self.reach + 1)
        if xb <= xa:
            return
        o = self.u0 - c  # frame column x reads band column x + o
        sub = frame[:, xa:xb]
        np.minimum(sub, self.headroom[:, xa + o : xb + o], out=sub)
        sub += self.band[:, xa + o : xb + o]


def _framed(
    key: np.ndarray, path: CameraPath | None, width: int, height: int
) -> tuple[np.ndarray, np.ndarray]:
    """The keyframe seen at the shot size: (source uint8 (Hs, Ws, 3), (3, 3) frame-pixel -> source-pixel map).

    Closer than medium (framing > 1) looks at the middle 1/framing of the keyframe around the focus point,
    kept inside the keyframe; wider (framing < 1) shrinks it about the centre onto a canvas whose margin is
    the keyframe's blurred copy (or black), so the moves that follow stay inside that wider view.
    """
    s = 1.0 if path is None else float(path.framing)
    w, h = float(width), float(height)
    if abs(s - 1.0) < 1e-12:
        return key, np.eye(3)
    if s > 1.0:
        fx, fy = path.focus
        cx = min(max(fx * w, w / (2 * s)), w - w / (2 * s))
        cy = min(max(fy * h, h / (2 * s)), h - h / (2 * s))
        return key, _translate(cx, cy) @ _scale(1.0 / s) @ _translate(-w / 2, -h / 2)
    ox, oy = math.ceil(w / 2 * (1 / s - 1)), math.ceil(h / 2 * (1 / s - 1))  # the margin around the keyframe
    cw, ch = width + 2 * ox, height + 2 * oy
    canvas = np.zeros((ch, cw, 3), np.uint8) if path.fill == "black" else blurred_fill(key, cw, ch)
    canvas[oy : oy + height, ox : ox + width] = key
    return canvas, _translate(cw / 2, ch / 2) @ _scale(1.0 / s) @ _translate(-w / 2, -h / 2)


def _card_keyframe(request: ClipRequest, maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A title card laid out for the camera path: (uint8 (Hc, Wc, 3) card, (F, 3, 3) maps onto it).

    The card is drawn at the path's largest magnification (so a zoom does not blow up soft pixels) and its
    text is set inside the part of the card that every frame sees, so a pan never cuts a word off.
    """
    w, h = request.width, request.height
    # Screen pixels per keyframe pixel, per frame (at the centre; exact for affine maps).
    gain = 1.0 / np.sqrt(np.abs(np.linalg.det(maps[:, :2, :2])))  # (F,)
    scale = float(np.clip(gain.max(), 1.0, CARD_MAX_SCALE))
    wc, hc = max(w, round(w * scale)), max(h, round(h * scale))
    to_card = np.diag([wc / w, hc / h, 1.0])
    corners = np.array([[0.0, 0.0, 1.0], [w, 0.0, 1.0], [0.0, h, 1.0], [w, h, 1.0]])  # TL, TR, BL, BR
    quad = np.einsum("fij,cj->fci", maps, corners)
    quad = quad[..., :2] / quad[..., 2:]  # (F, 4, 2) each frame's view on the keyframe
    left = float(np.max(quad[:, [0, 2], 0])) * wc / w
    right = float(np.min(quad[:, [1, 3], 0])) * wc / w
    top = float(np.max(quad[:, [0, 1], 1])) * hc / h
    bottom = float(np.min(quad[:, [2, 3], 1])) * hc / h
    # Type is its nominal size in the least magnified frame, and grows as the camera closes in.
    zoom_out = wc / w / float(gain.min())  # card pixels per screen pixel at that frame
    box_w = min(0.94 * (right - left), TEXT_WIDTH * w * zoom_out)
    box_h = min(0.94 * (bottom - top), TEXT_HEIGHT * h * zoom_out)
    cx, cy = (left + right) / 2, (top + bottom) / 2
    box = (cx - box_w / 2, cy - box_h / 2, cx + box_w / 2, cy + box_h / 2)
    text = request.title or request.prompt
    card = title_card(wc, hc, text, request.seed, text_box=box, size=type_size(w, h) * zoom_out,
                      palette=request.palette)  # fmt: skip
    return card, to_card[None] @ maps


def _check_image(name: str, image: np.ndarray | None, width: int, height: int) -> None:
    if image is None:
        return
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.shape != (height, width, 3):
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"{name} must be uint8 ({height}, {width}, 3) to match the request, got {got}")


def _check_request(request: ClipRequest) -> None:
    for name in ("width", "height"):
        value = getattr(request, name)
        if not isinstance(value, (int, np.integer)) or value <= 0 or value % 2:
            raise CapabilityError(f"the animatic needs a positive even {name}, got {value!r}", field=name)
    if not isinstance(request.num_frames, (int, np.integer)) or request.num_frames < 1:
        raise CapabilityError(f"need at least 1 frame, got {request.num_frames!r}", field="num_frames")
    if not (isinstance(request.fps, Real) and math.isfinite(request.fps) and request.fps > 0):
        raise CapabilityError(f"fps must be a positive number, got {request.fps!r}", field="fps")
    unknown = sorted(set(request.options) - set(OPTIONS))
    if unknown:
        accepted = ", ".join(f"{k} ({v})" for k, v in OPTIONS.items())
        raise CapabilityError(
            f"unknown animatic option(s) {', '.join(unknown)}; accepted: {accepted}", field="options"
        )
    if not isinstance(request.options.get("sheen", True), bool):
        raise CapabilityError(
            f"option sheen must be true or false, got {request.options['sheen']!r}", field="options"
        )
    _check_image("first_frame", request.first_frame, request.width, request.height)
    _check_image("last_frame", request.last_frame, request.width, request.height)
    previous = 0
    for j, cut in enumerate(request.cuts):
        frame, image = cut if isinstance(cut, tuple) and len(cut) == 2 else (None, None)
        if not isinstance(frame, (int, np.integer)) or not previous < frame < request.num_frames:
            raise ValueError(
                f"cuts[{j}] must start at a frame after the one before, within the shot, got {frame!r}"
            )
        _check_image(f"cuts[{j}]", image, request.width, request.height)
        if request.first_frame is None:
            raise ValueError("cuts need a first_frame to cut from")
        previous = frame


class AnimaticGenerator:
    """Shoots a shot by moving its keyframe along the camera path; a title card stands in for a missing keyframe.

    `workers` > 1 warps frames on that many threads (Pillow releases the GIL while it resamples); the frames
    are the same either way.
    """

    name = "animatic"

    def __init__(self, workers: int = 1):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities()

    def check(self, request: ClipRequest) -> None:
        """Every check `generate` makes, without shooting: render() calls it on all shots before the first."""
        refuse_unsupported(request, self.capabilities, "the animatic")
        _check_request(request)
        if request.camera is not None:
            _check_path(request.camera, int(request.num_frames))

    def generate(self, request: ClipRequest, progress: ShotProgress | None = None) -> Clip:
        refuse_unsupported(request, self.capabilities, "the animatic")
        _check_request(request)
        w, h, n = int(request.width), int(request.height), int(request.num_frames)
        maps = view_homographies(request.camera, w, h, n)  # (F, 3, 3) frame -> virtual keyframe at medium
        is_card = request.first_frame is None
        segments = []  # (first frame, source image, (F, 3, 3) maps onto it, still): the keyframe and its cuts
        if is_card:
            key, card_maps = _card_keyframe(request, maps)
            segments.append((0, key, card_maps))
        else:
            for start, image in ((0, request.first_frame), *request.cuts):
                source, framing = _framed(image, request.camera, w, h)
                segments.append((int(start), source, framing[None] @ maps))
        starts = [start for start, _, _ in segments]
        images = [Image.fromarray(np.ascontiguousarray(src), "RGB") for _, src, _ in segments]
        sheen = _Sheen(w, h, n) if is_card and request.options.get("sheen", True) and n > 1 else None
        # The dissolve always lands on last_frame: weight 256/256 on the final frame (also for a 1-frame shot).
        weights = np.rint(256 * (ease(np.linspace(0.0, 1.0, n)) if n > 1 else np.ones(1))).astype(np.uint16)
        last16 = request.last_frame.astype(np.uint16) if request.last_frame is not None else None
        frames = np.empty((n, h, w, 3), dtype=np.uint8)

        def shoot(i: int) -> None:
            k = bisect.bisect_right(starts, i) - 1  # the segment frame i is in
            _, source, seg_maps = segments[k]
            if source.shape == (h, w, 3) and np.allclose(seg_maps[i], np.eye(3), rtol=0.0, atol=1e-9):
                frames[i] = source
            else:
                frames[i] = _warp(images[k], seg_maps[i], w, h)
            if sheen is not None:
                sheen.apply(frames[i], i)
            if last16 is not None and weights[i] > 0:
                mixed = frames[i].astype(np.uint16) * (256 - weights[i]) + last16 * weights[i] + 128
                frames[i] = (mixed >> 8).astype(np.uint8)

        if self.workers > 1 and n > 1:
            with ThreadPoolExecutor(self.workers) as pool:
                for done, _ in enumerate(pool.map(shoot, range(n)), start=1):
                    if progress is not None:
                        progress(done / n)
        else:
            for i in range(n):
                shoot(i)
                if progress is not None:
                    progress((i + 1) / n)
        return Clip(frames=frames, fps=float(request.fps))


def build_animatic(model: str | None, options: dict[str, Any]) -> AnimaticGenerator:
    """The registry's builder (the animatic takes no model and no options): frames are the same on any
    thread count, so it warps on up to 4."""
    return AnimaticGenerator(workers=min(4, os.cpu_count() or 1))
