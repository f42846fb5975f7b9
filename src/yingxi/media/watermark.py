"""Ark's `watermark: true`: a small "AI生成" ("AI-generated") mark in the lower-right corner of every frame,
where Seedance puts its own; drawn over the finished picture (white, half opaque, with a dark outline)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from yingxi.media.fonts import draw_text, font_for

WATERMARK_TEXT = "AI生成"
OPACITY = 0.6


@lru_cache(maxsize=8)
def watermark_mask(width: int, height: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(alpha (h, w) float32 in [0, 1], colour (h, w, 3) float32, top, left) of the mark for a frame size;
    made once per size, so marking a frame is one blend of a small corner."""
    size = max(10, min(width, height) // 20)  # text height: 36 px at 720p
    font = font_for(WATERMARK_TEXT, size)
    pad = max(2, size // 6)
    w, h = int(font.getlength(WATERMARK_TEXT)) + 2 * pad, int(size * 1.4) + 2 * pad
    w, h = min(w, width), min(h, height)
    layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw_text(ImageDraw.Draw(layer), (pad, pad), WATERMARK_TEXT, font, fill=(255, 255, 255, 255),
              stroke_width=max(1, size // 12), stroke_fill=(0, 0, 0, 255))  # fmt: skip
    rgba = np.asarray(layer, np.float32) / 255.0  # (h, w, 4)
    margin = max(2, min(width, height) // 40)
    top, left = max(0, height - h - margin), max(0, width - w - margin)
    return rgba[..., 3] * OPACITY, rgba[..., :3] * 255.0, top, left


def add_watermark(frame: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) -> the same frame with the mark blended into its lower-right corner (a new array)."""
    alpha, colour, top, left = watermark_mask(frame.shape[1], frame.shape[0])
    out = np.array(frame)
    h, w = alpha.shape
    corner = out[top : top + h, left : left + w].astype(np.float32)  # (h, w, 3)
    a = alpha[..., None]
    out[top : top + h, left : left + w] = np.clip(corner * (1 - a) + colour * a + 0.5, 0, 255).astype(
        np.uint8
    )
    return out
