"""Per-frame camera motion: what the director plans and the animatic applies."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CameraPath:
    """Per-frame camera motion in image space, planned by the director.

    Each array has one value per output frame. Offsets are fractions of the frame's width/height
    (positive x: the view moves right, so content moves left; positive y: the view moves up);
    zoom is a scale factor (>1 magnifies); roll in degrees; yaw in [-1, 1] is an orbit's
    perspective turn. The animatic applies it literally; neural backends get the same move as words.
    """

    offset_x: np.ndarray  # (F,)
    offset_y: np.ndarray  # (F,)
    zoom: np.ndarray  # (F,)
    roll: np.ndarray  # (F,)
    yaw: np.ndarray  # (F,)
    framing: float = (
        1.0  # FRAMING_SCALE of the shot size: >1 closer into the focus, <1 shows beyond the edges
    )
    focus: tuple[float, float] = (0.5, 0.5)  # (x, y) fractions of the keyframe a closer framing centres on
    fill: str = "blur"  # what a wider framing shows beyond the keyframe: "blur" (its blurred copy) or "black"

    @property
    def num_frames(self) -> int:
        return int(self.offset_x.shape[0])


# How far each move travels over a whole shot at normal speed (fractions of the frame, or zoom factor).
PAN_TRAVEL = 0.20  # pan/truck/orbit: fraction of frame width
TILT_TRAVEL = 0.20  # tilt/crane: fraction of frame height
ZOOM_TRAVEL = 0.35  # zoom in: 1 -> 1.35
DOLLY_TRAVEL = 0.25
HANDHELD_SHAKE = 0.012  # std of the smoothed shake, fraction of frame
SPEED_FACTOR = {"slow": 0.5, "normal": 1.0, "fast": 2.0}
# Shot size as magnification of the keyframe, which is taken to be a medium shot of its subject: a close-up
# shows the middle 1/1.5 of it (about head and shoulders of a waist-up picture), an extreme wide shrinks it
# to 70% of the frame with the rest filled. The animatic applies it on top of the move.
FRAMING_SCALE = {
    "extreme wide": 0.7,
    "wide": 0.85,
    "medium": 1.0,
    "close-up": 1.5,
    "extreme close-up": 2.4,
}

# Prompt phrases for neural backends, in the words video models are captioned with.
FRAMING_PHRASES = {
    "extreme wide": "extreme wide shot",
    "wide": "wide shot",
    "medium": "medium shot",
    "close-up": "close-up shot",
    "extreme close-up": "extreme close-up shot",
}
MOVE_PHRASES = {
    ("static", None): "static camera, locked-off shot",
    ("pan", "left"): "the camera pans left",
    ("pan", "right"): "the camera pans right",
    ("tilt", "up"): "the camera tilts up",
    ("tilt", "down"): "the camera tilts down",
    ("zoom", "in"): "the camera zooms in",
    ("zoom", "out"): "the camera zooms out",
    ("dolly", "in"): "the camera dollies in, moving toward the subject",
    ("dolly", "out"): "the camera dollies out, moving away from the subject",
    ("truck", "left"): "the camera trucks left, tracking sideways",
    ("truck", "right"): "the camera trucks right, tracking sideways",
    ("orbit", "left"): "the camera orbits left around the subject",
    ("orbit", "right"): "the camera orbits right around the subject",
    ("crane", "up"): "crane shot, the camera rises up",
    ("crane", "down"): "crane shot, the camera descends",
    ("handheld", None): "handheld camera, slight natural shake",
}
SPEED_PHRASES = {"slow": "slowly", "normal": "", "fast": "quickly"}


def ease(t: np.ndarray) -> np.ndarray:
    """Smoothstep ease-in-out: moves start and stop gently, as a real camera operator's do."""
    return t * t * (3.0 - 2.0 * t)


def camera_phrase(framing: str, kind: str, direction: str | None, speed: str = "normal") -> str:
    """'wide shot, the camera pans left slowly' for neural prompts."""
    move = MOVE_PHRASES[(kind, direction)]
    adverb = SPEED_PHRASES[speed]
    if adverb and kind not in ("static", "handheld"):
        move = f"{move} {adverb}"
    return f"{FRAMING_PHRASES[framing]}, {move}"


def camera_path(
    kind: str,
    direction: str | None,
    speed: str,
    num_frames: int,
    seed: int = 0,
    *,
    framing: str = "medium",
    focus: tuple[float, float] | None = None,
    fill: str = "blur",
    keyframe_framing: str = "medium",
) -> CameraPath:
    """An eased, speed-scaled motion curve with one sample per frame, seen at the framing's shot size.
    `keyframe_framing` is the shot size the keyframe already has (a continued shot's: the previous shot's)."""
    n = num_frames
    t = ease(np.linspace(0.0, 1.0, n)) if n > 1 else np.zeros(1)  # (F,) progress 0 -> 1
    s = SPEED_FACTOR[speed]
    zeros, ones = np.zeros(n), np.ones(n)
    x, y, zoom, roll, yaw = zeros.copy(), zeros.copy(), ones.copy(), zeros.copy(), zeros.copy()
    sign = -1.0 if direction in ("left", "down", "out") else 1.0
    if kind in ("pan", "truck"):
        x = sign * PAN_TRAVEL * s * t
    elif kind == "tilt":
        y = sign * TILT_TRAVEL * s * t
    elif kind == "crane":
        # Rising: the view goes up and widens a little, as a boom lifting away does.
        y = sign * TILT_TRAVEL * s * t
        zoom = 1.0 - sign * 0.06 * s * t
    elif kind in ("zoom", "dolly"):
        travel = (ZOOM_TRAVEL if kind == "zoom" else DOLLY_TRAVEL) * s
        zoom = 1.0 + travel * t if sign > 0 else (1.0 + travel) - travel * t
    elif kind == "orbit":
        x = sign * PAN_TRAVEL * 0.6 * s * t
        yaw = sign * np.clip(0.5 * s, 0, 1) * t
    elif kind == "handheld":
        x, y, roll = _shake(n, seed, s)
    return CameraPath(offset_x=x, offset_y=y, zoom=np.maximum(zoom, 0.5), roll=roll, yaw=yaw,
                      framing=FRAMING_SCALE[framing] / FRAMING_SCALE[keyframe_framing],
                      focus=focus or (0.5, 0.5), fill=fill)  # fmt: skip


def _shake(n: int, seed: int, strength: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smoothed random walk: low-passed noise, so it wobbles like hands, not like static."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((3, n + 24))
    kernel = np.hanning(13)
    kernel /= kernel.sum()
    smooth = np.stack([np.convolve(row, kernel, mode="same")[12 : 12 + n] for row in noise])  # (3, F)
    smooth /= smooth.std(axis=1, keepdims=True) + 1e-8
    amp = HANDHELD_SHAKE * strength
    return amp * smooth[0], amp * smooth[1], 0.6 * strength * smooth[2]
