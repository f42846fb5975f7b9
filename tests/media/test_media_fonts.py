import numpy as np
from PIL import Image, ImageDraw

from yingxi.media.fonts import CJK_FONTS, font_for, script_of, wrap_text


def ink(text: str, size: int = 32) -> np.ndarray:
    img = Image.new("L", (size * (len(text) + 1), size * 2))
    ImageDraw.Draw(img).text((4, 4), text, font=font_for(text, size), fill=255)
    return np.asarray(img)


def test_scripts():
    assert script_of("Happy new year") == "latin"
    assert script_of("С Новым годом") == "wide"
    assert script_of("老贾：新年快乐") == "cjk"


def test_chinese_is_drawn_with_a_cjk_font_and_distinct_glyphs():
    font = font_for("新年快乐", 32)
    assert getattr(font, "path", None) in CJK_FONTS  # `make` installs fonts-wqy-microhei
    a, b = ink("新年"), ink("快乐")
    assert a.any() and b.any() and not np.array_equal(a, b)  # real glyphs, not two identical "tofu" boxes


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
