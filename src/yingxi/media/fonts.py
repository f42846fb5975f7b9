"""One font choice for every piece of drawn text (title cards, subtitles), by the script the text is in."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from PIL import ImageFont

# Pillow's built-in scalable font (Aileron) covers Latin only; these cover other scripts when installed
# (`make` installs fonts-wqy-microhei; Noto CJK, Droid and the macOS/Windows system fonts also work).
CJK_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/System/Library/Fonts/PingFang.ttc",
    "C:/Windows/Fonts/msyh.ttc",
)
WIDE_FONTS = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/Library/Fonts/Arial Unicode.ttf")

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def script_of(text: str) -> str:
    """Which font family the text needs: 'cjk', 'wide' (Cyrillic, Greek, ...) or 'latin'."""
    script = "latin"
    for ch in text:
        o = ord(ch)
        if 0x2E80 <= o <= 0x9FFF or 0xAC00 <= o <= 0xD7AF or 0xF900 <= o <= 0xFAFF or 0xFF00 <= o <= 0xFFEF:
            return "cjk"
        if o > 0x24F and not 0x2000 <= o <= 0x206F:  # beyond Latin, and not general punctuation
            script = "wide"
    return script


@lru_cache(maxsize=64)
def font_for_script(script: str, size: int) -> Font:
    candidates = {"cjk": CJK_FONTS + WIDE_FONTS, "wide": WIDE_FONTS}.get(script, ())
    for path in candidates:
        if Path(path).is_file():
            try:
                return ImageFont.truetype(path, size)
            except OSError:
                continue
    return ImageFont.load_default(size=size)


def font_for(text: str, size: int) -> Font:
    """A font of `size` px that can draw `text`: the built-in one for Latin, an installed one otherwise."""
    return font_for_script(script_of(text), size)


def wrap_text(text: str, font: Font, max_width: float) -> list[str]:
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
