"""Every piece of drawn text (title cards, subtitles) goes through one font chain with per-character
fallback: DejaVu Sans for Latin, Greek, Cyrillic and symbols (é ß — • ½ €), WenQuanYi Micro Hei for Chinese,
Japanese and Korean, then Pillow's built-in font. Coverage is read from each font's cmap table, so a
character is drawn by the first font that has it, never as another font's empty box."""

from __future__ import annotations

import struct
from functools import lru_cache
from pathlib import Path

from PIL import ImageDraw, ImageFont

# `make` installs fonts-dejavu-core and fonts-wqy-microhei; the others are used where installed.
LATIN_FONTS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/Library/Fonts/Arial Unicode.ttf",
    "C:/Windows/Fonts/arial.ttf",
)
CJK_FONTS = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/System/Library/Fonts/PingFang.ttc",
    "C:/Windows/Fonts/msyh.ttc",
)


def script_of(text: str) -> str:
    """Which script family the text needs: 'cjk', 'wide' (Cyrillic, Greek, ...) or 'latin'. Fonts no longer
    depend on it (the chain covers all); layout may (CJK breaks between characters)."""
    script = "latin"
    for ch in text:
        o = ord(ch)
        if 0x2E80 <= o <= 0x9FFF or 0xAC00 <= o <= 0xD7AF or 0xF900 <= o <= 0xFAFF or 0xFF00 <= o <= 0xFFEF:
            return "cjk"
        if o > 0x24F and not 0x2000 <= o <= 0x206F:  # beyond Latin, and not general punctuation
            script = "wide"
    return script


@lru_cache(maxsize=16)
def covered(path: str) -> frozenset[int]:
    """Code points the font file maps to a real glyph (cmap format 4 or 12 of its first face; the face
    Pillow loads). Empty when the file cannot be read as TrueType/OpenType."""
    try:
        data = Path(path).read_bytes()
        return frozenset(_cmap_codepoints(data))
    except (OSError, struct.error, ValueError):
        return frozenset()


def _cmap_codepoints(data: bytes) -> set[int]:
    """The OpenType cmap table, as the spec lays it out (https://learn.microsoft.com/typography/opentype/spec/cmap)."""
    face = struct.unpack_from(">I", data, 12)[0] if data[:4] == b"ttcf" else 0  # first face of a collection
    (num_tables,) = struct.unpack_from(">H", data, face + 4)
    tables = {}
    for k in range(num_tables):
        tag, _, offset, _ = struct.unpack_from(">4sIII", data, face + 12 + 16 * k)
        tables[tag] = offset
    cmap = tables[b"cmap"]
    (n,) = struct.unpack_from(">H", data, cmap + 2)
    subtables = {}
    for k in range(n):
        platform, encoding, offset = struct.unpack_from(">HHI", data, cmap + 4 + 8 * k)
        subtables[(platform, encoding)] = cmap + offset
    for key in ((3, 10), (0, 6), (0, 4), (3, 1), (0, 3), (0, 2), (0, 1), (0, 0)):
        if key in subtables:
            at = subtables[key]
            fmt = struct.unpack_from(">H", data, at)[0]
            if fmt == 12:
                return _format12(data, at)
            if fmt == 4:
                return _format4(data, at)
    raise ValueError("no Unicode cmap of format 4 or 12")


def _format4(data: bytes, at: int) -> set[int]:
    seg = struct.unpack_from(">H", data, at + 6)[0] // 2
    ends = struct.unpack_from(f">{seg}H", data, at + 14)
    starts = struct.unpack_from(f">{seg}H", data, at + 16 + 2 * seg)
    deltas = struct.unpack_from(f">{seg}h", data, at + 16 + 4 * seg)
    range_at = at + 16 + 6 * seg
    offsets = struct.unpack_from(f">{seg}H", data, range_at)
    out = set()
    for i, (start, end, delta, offset) in enumerate(zip(starts, ends, deltas, offsets, strict=True)):
        for c in range(start, min(end, 0xFFFE) + 1):
            if offset == 0:
                glyph = (c + delta) & 0xFFFF
            else:
                glyph = struct.unpack_from(">H", data, range_at + 2 * i + offset + 2 * (c - start))[0]
                glyph = (glyph + delta) & 0xFFFF if glyph else 0
            if glyph:
                out.add(c)
    return out


def _format12(data: bytes, at: int) -> set[int]:
    (groups,) = struct.unpack_from(">I", data, at + 12)
    out = set()
    for k in range(groups):
        start, end, glyph = struct.unpack_from(">III", data, at + 16 + 12 * k)
        out.update(range(start + (glyph == 0), min(end, 0x10FFFF) + 1))
    return out


@lru_cache(maxsize=1)
def chain_paths() -> tuple[str, ...]:
    """The installed fonts of the chain, in order: the first Latin font, then the first CJK font."""
    found = []
    for family in (LATIN_FONTS, CJK_FONTS):
        path = next((p for p in family if Path(p).is_file() and covered(p)), None)
        if path:
            found.append(path)
    return tuple(found)


class FontChain:
    """Fonts of one pixel size tried in order for each character; Pillow's built-in font last."""

    def __init__(self, size: int):
        self.size = size
        self.paths = chain_paths()
        self.fonts: list[ImageFont.FreeTypeFont | ImageFont.ImageFont] = [
            ImageFont.truetype(p, size) for p in self.paths
        ]
        self.fonts.append(ImageFont.load_default(size=size))
        self.path = self.paths[0] if self.paths else None  # the primary font's file

    def font_of(self, ch: str):
        """The first font whose cmap has `ch` (whitespace and controls: the primary font)."""
        for path, font in zip(self.paths, self.fonts, strict=False):
            if ord(ch) in covered(path):
                return font
        return self.fonts[0] if not ch.isprintable() or ch.isspace() else self.fonts[-1]

    def runs(self, text: str) -> list[tuple[str, object]]:
        """`text` split into (piece, font) runs of characters the same font draws."""
        out: list[tuple[str, object]] = []
        for ch in text:
            font = self.font_of(ch)
            if out and out[-1][1] is font:
                out[-1] = (out[-1][0] + ch, font)
            else:
                out.append((ch, font))
        return out

    def getlength(self, text: str) -> float:
        return sum(font.getlength(piece) for piece, font in self.runs(text))

    def getmetrics(self) -> tuple[int, int]:
        """(ascent, descent) covering every font of the chain, so mixed lines share one baseline."""
        metrics = [f.getmetrics() for f in self.fonts if hasattr(f, "getmetrics")] or [
            (self.size, self.size // 4)
        ]
        return max(a for a, _ in metrics), max(d for _, d in metrics)


Font = FontChain


def draw_text(
    draw: ImageDraw.ImageDraw,
    xy: tuple[float, float],
    text: str,
    font: FontChain,
    *,
    fill,
    anchor: str = "la",
    stroke_width: int = 0,
    stroke_fill=None,
) -> None:
    """ImageDraw.text for a font chain: each run in its own font on one shared baseline. `anchor` as
    Pillow's (horizontal l/m/r, vertical a/m/s/d) for the whole line."""
    ascent, descent = font.getmetrics()
    width = font.getlength(text)
    x = xy[0] - width * {"l": 0.0, "m": 0.5, "r": 1.0}[anchor[0]]
    baseline = xy[1] + {"a": ascent, "m": (ascent - descent) / 2, "s": 0.0, "d": -descent}[anchor[1]]
    for piece, f in font.runs(text):
        if isinstance(f, ImageFont.FreeTypeFont):
            draw.text((x, baseline), piece, font=f, fill=fill, anchor="ls", stroke_width=stroke_width,
                      stroke_fill=stroke_fill)  # fmt: skip
        else:  # Pillow without FreeType: its bitmap font takes no anchor; its top sits about 0.8 em up
            draw.text((x, baseline - 0.8 * font.size), piece, font=f, fill=fill)
        x += f.getlength(piece)


@lru_cache(maxsize=64)
def font_for_script(script: str, size: int) -> FontChain:
    """The font chain at `size` px (the same chain for every script: it falls back per character)."""
    return FontChain(size)


def font_for(text: str, size: int) -> FontChain:
    """A font chain of `size` px that can draw `text`, character by character."""
    return font_for_script("any", size)


def wrap_text(text: str, font, max_width: float) -> list[str]:
    """Greedy wrap measured in pixels; explicit newlines start new lines. A word wider than a line (Chinese
    and Japanese have no spaces) breaks between characters, starting on the current line."""
    lines: list[str] = []
    for paragraph in text.splitlines():
        cur = ""
        for word in paragraph.split():
            trial = f"{cur} {word}" if cur else word
            if font.getlength(trial) <= max_width:
                cur = trial
            elif font.getlength(word) <= max_width:
                lines.append(cur)
                cur = word
            else:  # fill the current line, then carry on character by character
                cur = f"{cur} " if cur else ""
                for ch in word:
                    if cur.strip() and font.getlength(cur + ch) > max_width:
                        lines.append(cur.rstrip())
                        cur = ""
                    cur += ch
        if cur:
            lines.append(cur)
    return lines
