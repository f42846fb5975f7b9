"""Title cards for the animatic: a seeded gradient with the shot's text set legibly on top."""

from __future__ import annotations

import colorsys
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from yingxi.media.fonts import draw_text, font_for_script, script_of, wrap_text

__all__ = ["title_card", "type_size"]

TEXT_FILL = (248, 244, 236)  # warm white: reads as "paper", not as a UI element
OUTLINE_FILL = (16, 16, 20)
ELLIPSIS = "\u2026"
TEXT_WIDTH = 0.84  # fraction of the frame width the text block may use
TEXT_HEIGHT = 0.72  # fraction of the frame height the text block may use
MAX_LINES = 6
LINE_GAP = 1.22  # line pitch as a multiple of the font size
PALETTE_HUE_JITTER = 0.015  # a style's colour varies this much (fraction of the hue circle) from card to card


def _with_ellipsis(line: str, font: ImageFont.FreeTypeFont, max_width: float) -> str:
    """Trim the line until it and an ellipsis fit."""
    line = line.rstrip(" .,;:")
    while line and font.getlength(line + ELLIPSIS) > max_width:
        line = line[:-1].rstrip(" .,;:")
    return line + ELLIPSIS


def _balanced(text: str, font: ImageFont.FreeTypeFont, max_width: float, n_lines: int) -> list[str]:
    """The narrowest wrap with the same line count, so a last line is not left with one orphan word."""
    lo, hi = 0.4 * max_width, max_width
    for _ in range(8):  # bisection on the line width; wrapping is monotone in it
        mid = 0.5 * (lo + hi)
        if len(wrap_text(text, font, mid)) <= n_lines:
            hi = mid
        else:
            lo = mid
    return wrap_text(text, font, hi)


def type_size(width: int, height: int) -> int:
    """Nominal title size in pixels for a frame: by area, so landscape and portrait get the same size."""
    return max(9, round(0.055 * math.sqrt(width * height)))


def _layout(
    text: str, max_w: float, max_h: float, nominal: float
) -> tuple[ImageFont.FreeTypeFont, list[str], int, bool]:
    """Largest font (down to 60% of the nominal size) at which the text fits the box; else truncate."""
    script = script_of(text)
    for scale in (1.0, 0.9, 0.8, 0.7, 0.6):
        size = max(8, round(nominal * scale))
        font = font_for_script(script, size)
        max_lines = max(1, min(MAX_LINES, int(max_h / (LINE_GAP * size))))
        lines = wrap_text(text, font, max_w)
        if len(lines) <= max_lines:
            return font, _balanced(text, font, max_w, len(lines)), size, False
    lines = lines[:max_lines]
    lines[-1] = _with_ellipsis(lines[-1], font, max_w)
    return font, lines, size, True


def _tones(rng: np.random.Generator, palette: tuple[tuple[int, int, int], ...]) -> tuple[tuple, tuple]:
    """The gradient's (dark, light) RGB in 0..1: from the palette's first two colours (the first twice when
    it has one), at the card's brightness, with a little seeded variation; else a seeded analogous pair."""
    if not palette:
        hue = rng.uniform()
        hue2 = (hue + rng.uniform(0.06, 0.18) * rng.choice((-1.0, 1.0))) % 1.0  # an analogous neighbour
        dark = colorsys.hsv_to_rgb(hue, rng.uniform(0.45, 0.75), rng.uniform(0.16, 0.26))
        light = colorsys.hsv_to_rgb(hue2, rng.uniform(0.40, 0.65), rng.uniform(0.40, 0.55))
        return dark, light
    tones = []
    for rgb, value in (
        (palette[0], rng.uniform(0.16, 0.26)),
        (palette[min(1, len(palette) - 1)], rng.uniform(0.40, 0.55)),
    ):
        h, s, _ = colorsys.rgb_to_hsv(*(c / 255 for c in rgb))
        h = (h + rng.uniform(-PALETTE_HUE_JITTER, PALETTE_HUE_JITTER)) % 1.0
        tones.append(colorsys.hsv_to_rgb(h, min(s, 0.75), value))
    return tones[0], tones[1]


def _background(
    width: int, height: int, rng: np.random.Generator, palette: tuple[tuple[int, int, int], ...] = ()
) -> np.ndarray:
    """Diagonal two-colour gradient, a soft light behind the text, vignette and fine grain: uint8 (H, W, 3)."""
    dark, light = _tones(rng, palette)
    angle = rng.uniform(0.0, 2.0 * math.pi)
    aspect = width / height
    ys = (np.arange(height, dtype=np.float32) + 0.5) / height - 0.5  # (H,)
    xs = ((np.arange(width, dtype=np.float32) + 0.5) / width - 0.5) * aspect  # (W,) in height units
    proj = xs[None, :] * math.cos(angle) + ys[:, None] * math.sin(angle)  # (H, W)
    t = (proj - proj.min()) / max(float(proj.max() - proj.min()), 1e-6)
    r2 = xs[None, :] ** 2 + ys[:, None] ** 2  # (H, W) squared distance from the centre
    r2 /= r2.max()
    light_pool = 1.0 + 0.22 * np.exp(-r2 / 0.18)  # brighter where the text sits
    shade = light_pool * (1.0 - 0.38 * r2**1.4) * 255.0  # (H, W) with the vignette
    grain = rng.standard_normal((height, width), dtype=np.float32) * 2.2  # static film grain
    img = np.empty((height, width, 3), dtype=np.uint8)
    for c in range(3):  # per channel keeps the temporaries 2-D and float32
        ch = (dark[c] + (light[c] - dark[c]) * t) * shade + grain
        img[..., c] = np.clip(ch + 0.5, 0.0, 255.0)
    return img


def title_card(
    width: int,
    height: int,
    text: str,
    seed: int,
    *,
    text_box: tuple[float, float, float, float] | None = None,
    size: float | None = None,
    palette: tuple[tuple[int, int, int], ...] = (),
) -> np.ndarray:
    """A title card: uint8 (H, W, 3). Colours come from the palette (the style's colour words, RGB) when it
    has any, else from the seed; a film's cards vary with the seed but reproduce.

    text_box (x0, y0, x1, y1) is where the text block must fit, centred in it (default: the middle
    84% x 72% of the card); size is the nominal type size in pixels (default: `type_size(width, height)`).
    """
    rng = np.random.default_rng(seed % (1 << 63))
    card = Image.fromarray(_background(width, height, rng, palette), "RGB")
    text = " ".join(text.split()) if "\n" not in text else text.strip()
    if not text:
        return np.asarray(card).copy()
    if text_box is None:
        mx, my = (1 - TEXT_WIDTH) / 2 * width, (1 - TEXT_HEIGHT) / 2 * height
        text_box = (mx, my, width - mx, height - my)
    bx0, by0, bx1, by1 = text_box
    font, lines, px, truncated = _layout(text, bx1 - bx0, by1 - by0, size or type_size(width, height))
    cx, cy = (bx0 + bx1) / 2, (by0 + by1) / 2
    pitch = LINE_GAP * px
    top = cy - pitch * (len(lines) - 1) / 2.0  # centre of the first line
    stroke = round(px / 16)  # no outline on tiny type, where it would swallow the letters

    # Soft drop shadow: the text mask, blurred and offset, darkens the background under the letters.
    mask = Image.new("L", (width, height), 0)
    mdraw = ImageDraw.Draw(mask)
    for i, line in enumerate(lines):
        draw_text(mdraw, (cx, top + i * pitch), line, font, fill=255, anchor="mm", stroke_width=stroke)
    shift = max(1, round(px * 0.06))
    radius = max(1.0, px * 0.12)
    x0, y0, x1, y1 = mask.getbbox() or (0, 0, width, height)
    pad = int(3 * radius) + 1
    box = (max(0, x0 - pad), max(0, y0 - pad), min(width, x1 + pad), min(height, y1 + pad))
    shadow = mask.crop(box).filter(ImageFilter.GaussianBlur(radius=radius)).point(lambda v: int(v * 0.7))
    card.paste((0, 0, 0), (box[0] + shift, box[1] + shift), mask=shadow)  # blurred only around the text
    draw = ImageDraw.Draw(card)
    for i, line in enumerate(lines):
        draw_text(
            draw,
            (cx, top + i * pitch),
            line,
            font,
            fill=TEXT_FILL,
            anchor="mm",
            stroke_width=stroke,
            stroke_fill=OUTLINE_FILL,
        )
    # A short rule under a short title, the way a slate or chapter card is set.
    ascent, descent = font.getmetrics()
    rule_y = top + (len(lines) - 1) * pitch + 0.5 * (ascent + descent) + 0.45 * px  # below the descenders
    half = min(0.08 * (bx1 - bx0) / TEXT_WIDTH, 1.2 * px)
    if len(lines) <= 3 and not truncated and rule_y + stroke < by1:
        draw.line([(cx - half, rule_y), (cx + half, rule_y)], fill=(230, 224, 214), width=max(1, stroke))
    return np.asarray(card).copy()
