"""Title-card palettes from the style's colour words, English and Chinese: "subdued blue-grey palette", 蓝灰."""

from __future__ import annotations

import colorsys
import re

RGB = tuple[int, int, int]

# Colour words -> sRGB. Longer words are matched first, so "blue-grey" is one colour, not blue and grey.
COLOUR_WORDS: dict[str, RGB] = {
    "blue-grey": (104, 120, 142), "grey-blue": (104, 120, 142), "slate": (96, 110, 128),
    "steel blue": (82, 118, 160), "blue-green": (48, 128, 128), "teal": (40, 124, 128),
    "black and white": (128, 128, 128), "monochrome": (128, 128, 128), "greyscale": (128, 128, 128),
    "sepia": (150, 112, 74), "warm": (176, 112, 64), "cool": (84, 120, 160), "earth": (128, 98, 66),
    "grey": (124, 124, 128), "silver": (168, 170, 176), "charcoal": (60, 62, 66), "ink": (52, 54, 60),
    "blue": (52, 92, 170), "navy": (30, 44, 96), "indigo": (62, 52, 140), "cyan": (60, 160, 176),
    "green": (62, 132, 70), "jade": (66, 140, 110), "olive": (112, 116, 58),
    "red": (170, 44, 40), "crimson": (150, 24, 48), "scarlet": (190, 40, 30), "pink": (206, 120, 150),
    "orange": (206, 112, 40), "amber": (200, 140, 40), "gold": (190, 150, 60), "golden": (190, 150, 60),
    "yellow": (210, 186, 60), "brown": (120, 80, 50), "purple": (110, 60, 140), "violet": (130, 80, 170),
    "white": (230, 228, 222), "black": (24, 24, 26), "cream": (226, 214, 186), "ivory": (232, 226, 206),
    "蓝灰": (104, 120, 142), "灰蓝": (104, 120, 142), "黑白": (128, 128, 128), "水墨": (52, 54, 60),
    "暖色": (176, 112, 64), "暖": (176, 112, 64), "冷色": (84, 120, 160), "冷": (84, 120, 160),
    "灰": (124, 124, 128), "蓝": (52, 92, 170), "青": (40, 124, 128), "绿": (62, 132, 70),
    "红": (170, 44, 40), "粉": (206, 120, 150), "橙": (206, 112, 40), "金": (190, 150, 60),
    "黄": (210, 186, 60), "棕": (120, 80, 50), "褐": (120, 80, 50), "紫": (110, 60, 140),
    "白": (230, 228, 222), "黑": (24, 24, 26), "墨": (52, 54, 60),
}  # fmt: skip
# Words that soften every colour of the style (saturation x this).
MUTED_WORDS = {"subdued": 0.6, "muted": 0.6, "desaturated": 0.45, "pastel": 0.6, "faded": 0.6,
               "淡": 0.6, "素": 0.6, "低饱和": 0.45}  # fmt: skip
SPELLINGS = (("gray", "grey"), ("bluish", "blue"), ("blueish", "blue"), ("greyish", "grey"),
             ("b&w", "black and white"), ("black-and-white", "black and white"), ("colour", "color"))  # fmt: skip
MAX_COLOURS = 3


def _normalise(text: str) -> str:
    text = text.lower()
    for a, b in SPELLINGS:
        text = text.replace(a, b)
    return re.sub(r"(?<=[a-z])[\s-]+(?=grey|blue|green)", "-", text)  # "blue grey" / "blue - grey"


def _find(text: str) -> list[tuple[int, str]]:
    """(position, word) of every colour word, longest first, without overlaps."""
    taken = [False] * len(text)
    found = []
    for word in sorted(COLOUR_WORDS, key=len, reverse=True):
        pattern = re.escape(word) if not word.isascii() else rf"(?<![a-z]){re.escape(word)}(?![a-z])"
        for m in re.finditer(pattern, text):
            if not any(taken[m.start() : m.end()]):
                taken[m.start() : m.end()] = [True] * (m.end() - m.start())
                found.append((m.start(), word))
    return sorted(found)


def style_palette(style: str) -> tuple[tuple[str, RGB], ...]:
    """The colours a style's words name, in the order written (at most MAX_COLOURS, no repeats), softened
    by words such as "subdued"; () when it names none (a title card then picks its colours from the seed)."""
    text = _normalise(style)
    words = list(dict.fromkeys(w for _, w in _find(text)))[:MAX_COLOURS]
    soften = min([f for w, f in MUTED_WORDS.items() if w in text], default=1.0)
    out = []
    for word in words:
        r, g, b = (c / 255 for c in COLOUR_WORDS[word])
        h, s, v = colorsys.rgb_to_hsv(r, g, b)
        rgb = colorsys.hsv_to_rgb(h, s * soften, v)
        out.append((word, tuple(round(c * 255) for c in rgb)))
    return tuple(out)


def palette_words(palette: tuple[tuple[str, RGB], ...]) -> str:
    """'blue-grey #6e7d91, red #aa2c28' for the plan."""
    return ", ".join(f"{w} #{r:02x}{g:02x}{b:02x}" for w, (r, g, b) in palette)
