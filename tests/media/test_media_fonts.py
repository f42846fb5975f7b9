"""The font chain: every character is drawn by a font that has it (DejaVu Sans, then WenQuanYi), checked
as pixels at each character's box against the font's own missing-glyph box."""

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from yingxi.media.fonts import CJK_FONTS, LATIN_FONTS, covered, draw_text, font_for, script_of, wrap_text

SYMBOLS = "éüßñÇ—•½€£"
CJK = "新年快乐，老朋友"
MISSING = "\ue000"  # private use: no font maps it, so each draws its .notdef box


def ink(text: str, size: int = 32, font=None) -> np.ndarray:
    img = Image.new("L", (size * (len(text) + 2), size * 2))
    draw = ImageDraw.Draw(img)
    if font is None:
        draw_text(draw, (4, 4), text, font_for(text, size), fill=255)
    else:
        draw.text((4, 4), text, font=font, fill=255)
    return np.asarray(img)


def test_scripts():
    assert script_of("Happy new year") == "latin"
    assert script_of("С Новым годом") == "wide"
    assert script_of("老贾：新年快乐") == "cjk"


def test_the_chain_is_dejavu_then_wenquanyi_read_from_their_cmaps():
    chain = font_for("x", 32)
    assert chain.paths[0] in LATIN_FONTS and chain.paths[1] in CJK_FONTS  # `make` installs both
    dejavu, wqy = (covered(p) for p in chain.paths)
    assert all(ord(c) in dejavu for c in SYMBOLS + "ЖΩ") and ord("新") not in dejavu
    assert all(ord(c) in wqy for c in CJK) and ord(MISSING) not in dejavu | wqy
    assert [chain.font_of(c).getname()[0] for c in "é新"] == ["DejaVu Sans", "WenQuanYi Micro Hei"]


@pytest.mark.parametrize("ch", list(SYMBOLS + CJK))
def test_every_character_is_a_real_glyph_not_the_fallback_box(ch):
    chain = font_for(ch, 32)
    font = chain.font_of(ch)
    glyph, box = ink(ch), ink(MISSING, font=font)
    assert glyph.any() and not np.array_equal(glyph, box)
    # What the old code did for a Latin title: Pillow's built-in font, which has no glyph for some of them.
    if ch in "—•½€":
        builtin = ImageFont.load_default(size=32)
        assert np.array_equal(ink(ch, font=builtin), ink(MISSING, font=builtin))


def test_a_mixed_line_draws_each_run_in_its_font_on_one_baseline():
    chain = font_for("", 40)
    text = "Café — 新年 ½ €5"
    assert [piece for piece, _ in chain.runs(text)] == ["Café — ", "新年", " ½ €5"]
    assert chain.getlength(text) == pytest.approx(sum(f.getlength(p) for p, f in chain.runs(text)))
    img = ink(text, 40)
    cols = np.flatnonzero(img.any(axis=0))
    assert cols[-1] - cols[0] == pytest.approx(chain.getlength(text), abs=12)  # side bearings
    # The bottoms of "a" (DejaVu) and "年" (WenQuanYi) sit near the same baseline.
    a_rows = np.flatnonzero(ink("a", 40).any(axis=1))
    nian_rows = np.flatnonzero(ink("年", 40).any(axis=1))
    assert abs(int(a_rows[-1]) - int(nian_rows[-1])) <= 6


def test_one_wrap_for_titles_and_subtitles():
    font = font_for("OLD JIA: 新年快乐", 24)
    # Explicit newlines start lines; words stay whole; every line fits.
    assert wrap_text("one two\nthree", font, 1000) == ["one two", "three"]
    long = "OLD JIA: " + "新年快乐！饺子好了，快来吃吧。" * 3
    lines = wrap_text(long, font, 300)
    assert all(font.getlength(line) <= 300 for line in lines) and len(lines) > 1
    # Unspaced text carries on from the name on the first line, not on a line of its own; nothing is lost.
    assert lines[0].startswith("OLD JIA: 新年") and "".join(lines).replace(" ", "") == long.replace(" ", "")
    assert wrap_text("", font, 100) == [] and wrap_text("word", font, 1) == ["w", "o", "r", "d"]
